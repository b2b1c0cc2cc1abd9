"""The BI user (SPEC §9, issue 16): after a refresh it holds exactly SELECT on the marts.

Someone widened its grants — global privileges, a whole other database (``mysql``), single tables of
``raw`` and ``audit``, a column, INSERT on the marts, the grant option; a refresh revokes all of it.
The host is configured: ``localhost`` by default, never ``%`` unless asked; the same user name left
at ``%`` by an older default loses its privileges too.
"""

from __future__ import annotations

import logging
import uuid

import pymysql
import pytest

from stratpos.bi import DEFAULT_BI_HOST, ensure_bi_user
from stratpos.core.settings import ConfigError, Settings
from stratpos.core.warehouse import drop_schemas, ensure_schemas, mysql_connection

PASSWORD = "bi-Pw_" + uuid.uuid4().hex[:12]


@pytest.fixture
def wh(mysql_available):
    settings = Settings(target="mysql", mysql=mysql_available, schema_prefix=f"t{uuid.uuid4().hex[:10]}_")
    ensure_schemas(settings)
    with mysql_connection(settings) as con, con.cursor() as cur:
        for layer in ("raw", "audit", "marts"):
            cur.execute(f"create table `{settings.schema(layer)}`.t (id int primary key, secret int)")
            cur.execute(f"insert into `{settings.schema(layer)}`.t values (1, 42)")
    user = f"bi_{uuid.uuid4().hex[:10]}"
    yield settings, user
    drop_schemas(settings)
    with mysql_connection(settings) as con, con.cursor() as cur:
        for host in ("localhost", "%", "127.0.0.1"):
            cur.execute("drop user if exists %s@%s", (user, host))


def grants(settings: Settings, user: str, host: str) -> list[str]:
    with mysql_connection(settings) as con, con.cursor() as cur:
        cur.execute("show grants for %s@%s", (user, host))
        return sorted(r[0] for r in cur.fetchall() if not r[0].startswith("GRANT USAGE"))


def hosts(settings: Settings, user: str) -> set[str]:
    with mysql_connection(settings) as con, con.cursor() as cur:
        cur.execute("select host from mysql.user where user = %s", (user,))
        return {r[0] for r in cur.fetchall()}


def widen(settings: Settings, user: str, host: str) -> None:
    raw, audit, marts = (settings.schema(layer) for layer in ("raw", "audit", "marts"))
    with mysql_connection(settings) as con, con.cursor() as cur:
        for sql in (
            "grant select, process, reload on *.* to %s@%s",  # global
            "grant select on mysql.* to %s@%s",  # a whole other database
            "grant select on mysql.user to %s@%s",  # table level
            f"grant select, insert on `{raw}`.t to %s@%s",
            f"grant select (secret) on `{audit}`.t to %s@%s",  # column level
            f"grant select on `{audit}`.* to %s@%s",
            f"grant insert, delete on `{marts}`.* to %s@%s with grant option",
        ):
            cur.execute(sql, (user, host))


def test_a_refresh_leaves_exactly_select_on_the_marts(wh, caplog):
    settings, user = wh
    env = {"STRATPOS_BI_USER": user, "STRATPOS_BI_PASSWORD": PASSWORD, "STRATPOS_BI_HOST": "127.0.0.1"}
    ensure_bi_user(settings, env)
    expected = [f"GRANT SELECT ON `{settings.schema('marts')}`.* TO `{user}`@`127.0.0.1`"]
    assert grants(settings, user, "127.0.0.1") == expected
    widen(settings, user, "127.0.0.1")
    assert len(grants(settings, user, "127.0.0.1")) > 4  # the widening took
    with caplog.at_level(logging.DEBUG):
        ensure_bi_user(settings, env)
    assert grants(settings, user, "127.0.0.1") == expected
    assert PASSWORD not in caplog.text
    # and as the BI user: the marts read, nothing else
    con = pymysql.connect(host=settings.mysql.host, port=settings.mysql.port, user=user, password=PASSWORD)
    with con, con.cursor() as cur:
        cur.execute(f"select secret from `{settings.schema('marts')}`.t")
        assert cur.fetchall() == ((42,),)
        for sql in (
            f"select secret from `{settings.schema('raw')}`.t",
            f"select secret from `{settings.schema('audit')}`.t",
            "select count(*) from mysql.user",
            f"insert into `{settings.schema('marts')}`.t values (2, 0)",
        ):
            with pytest.raises(pymysql.err.MySQLError) as err:
                cur.execute(sql)
            assert err.value.args[0] in (1044, 1142, 1143), sql


def test_the_host_defaults_to_localhost_and_a_stale_any_host_account_is_emptied(wh, caplog):
    settings, user = wh
    assert DEFAULT_BI_HOST == "localhost"
    with mysql_connection(settings) as con, con.cursor() as cur:  # left by an older default: '%' with wide grants
        cur.execute("create user %s@'%%' identified by %s", (user, PASSWORD))
    widen(settings, user, "%")
    with caplog.at_level(logging.WARNING):
        ensure_bi_user(settings, {"STRATPOS_BI_USER": user, "STRATPOS_BI_PASSWORD": PASSWORD})
    assert hosts(settings, user) == {"localhost", "%"}
    assert grants(settings, user, "localhost") == [
        f"GRANT SELECT ON `{settings.schema('marts')}`.* TO `{user}`@`localhost`"
    ]
    assert grants(settings, user, "%") == []
    assert "also exists at host '%'" in caplog.text


def test_a_host_that_is_no_host_is_refused(wh):
    settings, user = wh
    with pytest.raises(ConfigError, match="STRATPOS_BI_HOST"):
        ensure_bi_user(
            settings, {"STRATPOS_BI_USER": user, "STRATPOS_BI_PASSWORD": PASSWORD, "STRATPOS_BI_HOST": "a'b"}
        )
