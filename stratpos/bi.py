"""The read-only BI user of SPEC §9: dashboards read ``{prefix}marts`` and nothing else.

On MySQL/MariaDB :func:`ensure_bi_user` creates (or refreshes) the account named by
``STRATPOS_BI_USER`` (default ``stratpos_bi``) with the password in ``STRATPOS_BI_PASSWORD``
and leaves it exactly one privilege: ``SELECT`` on ``{prefix}marts``. Every other privilege is
revoked on each refresh — global (``*.*``), on any database (``raw``, ``audit``, ``mysql`` …), on
single tables and columns, and ``GRANT OPTION`` — so a refresh repairs a widened grant; the same
user name at another host (e.g. a ``'%'`` account left by an older default) loses its privileges
too, with a warning. One BI user serves one deployment (prefix). Its host is ``STRATPOS_BI_HOST``
(default ``localhost``; ``%`` only when configured). It is idempotent — run it after every build.
Without a password nothing is created. DuckDB
is an embedded file with no users: BI opens it read-only (``duckdb.connect(path,
read_only=True)``). The password never reaches a log line or an error message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from stratpos.core.settings import ConfigError, Settings
from stratpos.core.warehouse import mysql_connection

log = logging.getLogger(__name__)

DEFAULT_BI_USER = "stratpos_bi"
DEFAULT_BI_HOST = "localhost"  # never '%' unless configured: the BI user connects from where it is told


class BIUserError(RuntimeError):
    """The BI user could not be created or granted; the message never holds the password."""


@dataclass(frozen=True)
class BIUser:
    name: str
    host: str = DEFAULT_BI_HOST

    def describe(self) -> str:
        return f"'{self.name}'@'{self.host}'"


def bi_user_from_env(env: Mapping[str, str] | None = None) -> tuple[BIUser, str | None]:
    """The BI account (settings ``bi_user``, ``bi_host``: ``STRATPOS_BI_USER``, ``STRATPOS_BI_HOST``) and its
    password (``STRATPOS_BI_PASSWORD``), if one is set; ``env`` None: the process environment and ``.env``."""
    from stratpos.core.settings import load_settings

    s = load_settings(env)
    host = s.bi_host.strip() or DEFAULT_BI_HOST
    if len(host) > 255 or not all(c.isalnum() or c in "_-.%:" for c in host):
        raise ConfigError(f"STRATPOS_BI_HOST may hold only a host name, an address or %, got {host!r}")
    password = s.bi_password.get_secret_value() if s.bi_password is not None else None
    return BIUser(s.bi_user, host), password or None


def ensure_bi_user(settings: Settings, env: Mapping[str, str] | None = None) -> BIUser | None:
    """Create or refresh the read-only BI user on a MySQL/MariaDB target; returns it, or None.

    None when the target is DuckDB or no ``STRATPOS_BI_PASSWORD`` is set. The user gets
    ``SELECT`` on ``{prefix}marts`` and nothing else: every other privilege it holds (global,
    database, table, column level, grant option) is revoked, so a refresh also repairs a widened grant.
    """
    if settings.target != "mysql":
        return None
    user, password = bi_user_from_env(env)
    if password is None:
        log.info("STRATPOS_BI_PASSWORD is not set: BI user %s not created", user.describe())
        return None
    import pymysql

    account = "%s@%s"
    try:
        with mysql_connection(settings) as con, con.cursor() as cur:
            # parameters are quoted by the driver: user, host and password are never spliced into SQL
            cur.execute(f"create user if not exists {account} identified by %s", (user.name, user.host, password))
            cur.execute(f"alter user {account} identified by %s", (user.name, user.host, password))
            # everything, at every level (global, database, table, column, GRANT OPTION), then the one grant
            cur.execute(f"revoke all privileges, grant option from {account}", (user.name, user.host))
            cur.execute(f"grant select on `{settings.schema('marts')}`.* to {account}", (user.name, user.host))
            cur.execute("select host from mysql.user where user = %s and host <> %s", (user.name, user.host))
            for (other,) in cur.fetchall():
                other = other.decode() if isinstance(other, bytes) else other
                cur.execute(f"revoke all privileges, grant option from {account}", (user.name, other))
                log.warning(
                    "BI user %s also exists at host %r: its privileges were revoked (drop it if unused)",
                    user.describe(),
                    other,
                )
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args else "?"
        message = str(exc.args[-1]) if exc.args else type(exc).__name__
        detail = f"MySQL error {code}: {_scrub(message, password)}"
        raise BIUserError(f"cannot set up BI user {user.describe()}: {detail}") from None
    log.info("BI user %s: SELECT on %s", user.describe(), settings.schema("marts"))
    return user


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text
