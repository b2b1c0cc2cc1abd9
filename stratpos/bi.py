"""The read-only BI user of SPEC §9: dashboards read ``{prefix}marts`` and nothing else.

On MySQL/MariaDB :func:`ensure_bi_user` creates (or refreshes) the account named by
``STRATPOS_BI_USER`` (default ``stratpos_bi``) with the password in ``STRATPOS_BI_PASSWORD``
and leaves it exactly one privilege in this prefix's schemas: ``SELECT`` on ``{prefix}marts``.
It is idempotent — run it after every build. Without a password nothing is created. DuckDB
is an embedded file with no users: BI opens it read-only (``duckdb.connect(path,
read_only=True)``). The password never reaches a log line or an error message.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from stratpos.config import ConfigError, Settings
from stratpos.warehouse import mysql_connection

log = logging.getLogger(__name__)

DEFAULT_BI_USER = "stratpos_bi"
# MySQL/MariaDB error "There is no such grant defined …": a REVOKE of nothing.
_NO_SUCH_GRANT = (1141, 1147)


class BIUserError(RuntimeError):
    """The BI user could not be created or granted; the message never holds the password."""


@dataclass(frozen=True)
class BIUser:
    name: str
    host: str = "%"

    def describe(self) -> str:
        return f"'{self.name}'@'{self.host}'"


def bi_user_from_env(env: Mapping[str, str] | None = None) -> tuple[BIUser, str | None]:
    """The BI account (``STRATPOS_BI_USER``, ``STRATPOS_BI_HOST``) and its password, if one is set."""
    env = os.environ if env is None else env
    name = env.get("STRATPOS_BI_USER", "").strip() or DEFAULT_BI_USER
    host = env.get("STRATPOS_BI_HOST", "").strip() or "%"
    if len(name) > 80 or not all(c.isalnum() or c in "_-." for c in name):
        raise ConfigError(f"STRATPOS_BI_USER may hold only letters, digits, _ - . (at most 80), got {name!r}")
    password = env.get("STRATPOS_BI_PASSWORD") or None
    return BIUser(name, host), password


def ensure_bi_user(settings: Settings, env: Mapping[str, str] | None = None) -> BIUser | None:
    """Create or refresh the read-only BI user on a MySQL/MariaDB target; returns it, or None.

    None when the target is DuckDB or no ``STRATPOS_BI_PASSWORD`` is set. The user gets
    ``SELECT`` on ``{prefix}marts``; any other privilege it holds on this prefix's schemas
    (raw … audit) is revoked, so a refresh also repairs a widened grant.
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
            for layer, schema in settings.schemas.items():
                try:
                    cur.execute(f"revoke all privileges on `{schema}`.* from {account}", (user.name, user.host))
                except pymysql.err.MySQLError as exc:
                    if exc.args[0] not in _NO_SUCH_GRANT:
                        raise
                if layer == "marts":
                    cur.execute(f"grant select on `{schema}`.* to {account}", (user.name, user.host))
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args else "?"
        message = str(exc.args[-1]) if exc.args else type(exc).__name__
        detail = f"MySQL error {code}: {_scrub(message, password)}"
        raise BIUserError(f"cannot set up BI user {user.describe()}: {detail}") from None
    log.info("BI user %s: SELECT on %s", user.describe(), settings.schema("marts"))
    return user


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text
