"""Connections to the configured warehouse and the schemas of SPEC §2.

DuckDB is an embedded file; MySQL/MariaDB is a server where each stratpos schema is a
database. Both get the same five layer schemas (``{prefix}raw`` … ``{prefix}audit``).
"""

from __future__ import annotations

from contextlib import contextmanager

from stratpos.config import Settings


class WarehouseUnavailable(RuntimeError):
    """The configured warehouse cannot be reached; the message says where we looked."""


@contextmanager
def duckdb_connection(settings: Settings, read_only: bool = False):
    import duckdb

    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.duckdb_path), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def mysql_connection(settings: Settings, database: str | None = None, connect_timeout: int = 5):
    import pymysql

    m = settings.mysql
    try:
        con = pymysql.connect(
            host=m.host,
            port=m.port,
            user=m.user,
            password=m.password.get_secret_value(),
            database=database,
            connect_timeout=connect_timeout,
            charset="utf8mb4",
            autocommit=True,
        )
    except pymysql.err.OperationalError as exc:
        raise WarehouseUnavailable(f"cannot connect to MySQL/MariaDB at {m.describe()}: {exc.args[-1]}") from None
    try:
        yield con
    finally:
        con.close()


def ensure_schemas(settings: Settings) -> list[str]:
    """Create the layer schemas that do not exist yet; returns their names."""
    names = list(settings.schemas.values())
    if settings.target == "duckdb":
        with duckdb_connection(settings) as con:
            for name in names:
                con.execute(f'create schema if not exists "{name}"')
    else:
        with mysql_connection(settings) as con, con.cursor() as cur:
            for name in names:
                cur.execute(f"create database if not exists `{name}` character set utf8mb4 collate utf8mb4_bin")
    return names


def existing_schemas(settings: Settings) -> set[str]:
    """The stratpos layer schemas that exist in the warehouse."""
    wanted = set(settings.schemas.values())
    if settings.target == "duckdb":
        with duckdb_connection(settings) as con:
            rows = con.execute("select schema_name from information_schema.schemata").fetchall()
    else:
        with mysql_connection(settings) as con, con.cursor() as cur:
            cur.execute("select schema_name from information_schema.schemata")
            rows = cur.fetchall()
    return {r[0] for r in rows} & wanted


def drop_schemas(settings: Settings) -> None:
    """Drop every layer schema of this prefix (tests and `stratpos` resets only)."""
    if settings.target == "duckdb":
        with duckdb_connection(settings) as con:
            for name in settings.schemas.values():
                con.execute(f'drop schema if exists "{name}" cascade')
    else:
        with mysql_connection(settings) as con, con.cursor() as cur:
            for name in settings.schemas.values():
                cur.execute(f"drop database if exists `{name}`")


def fetch_rows(settings: Settings, layer: str, table: str) -> list[dict]:
    """All rows of ``{layer}.{table}`` as dicts (small tables: marts for display and tests)."""
    schema = settings.schema(layer)
    if settings.target == "duckdb":
        with duckdb_connection(settings, read_only=True) as con:
            cur = con.execute(f'select * from "{schema}"."{table}"')
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    with mysql_connection(settings) as con, con.cursor() as cur:
        cur.execute(f"select * from `{schema}`.`{table}`")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
