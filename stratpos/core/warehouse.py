"""Connections to the configured warehouse, opened in this one place, and the dialect helpers.

DuckDB is an embedded file; MySQL/MariaDB is a server where each stratpos schema is a
database. Both get the same five layer schemas (``{prefix}raw`` … ``{prefix}audit``).

A DuckDB file is created when it is missing but its folder exists (``stratpos ingest`` says so);
a folder that does not exist is an error (a typo in ``STRATPOS_DUCKDB_PATH`` must not start an
empty warehouse) — except the default ``warehouse/`` folder of the project, created on first use.
An unreachable server is a :class:`WarehouseUnavailable` naming host, port and the variables.
"""

from __future__ import annotations

from contextlib import contextmanager

from stratpos.core.errors import WarehouseUnavailable
from stratpos.core.settings import DEFAULT_DUCKDB_PATH, Settings

__all__ = [
    "WarehouseUnavailable",
    "connect_duckdb",
    "connect_mysql",
    "drop_schemas",
    "duckdb_connection",
    "ensure_schemas",
    "existing_schemas",
    "fetch_rows",
    "mysql_connection",
    "prepare_new_warehouse",
    "qualified",
    "quote",
    "require_warehouse",
    "warehouse_exists",
]

# MySQL client error codes (PyMySQL raises them as OperationalError args[0]): the server cannot be
# reached (2003 CR_CONN_HOST_ERROR, 2005 CR_UNKNOWN_HOST, 2006 gone away, 2013 lost during connect),
# or it refused the login (1045 ER_ACCESS_DENIED_ERROR, 1698 ER_ACCESS_DENIED_NO_PASSWORD_ERROR)
_UNREACHABLE = {2003, 2005, 2006, 2013}
_DENIED = {1045, 1698}


def quote(settings: Settings, name: str) -> str:
    """An identifier quoted for the target's dialect."""
    return f'"{name}"' if settings.target == "duckdb" else f"`{name}`"


def qualified(settings: Settings, layer: str, name: str) -> str:
    """``{prefix}{layer}.{name}`` quoted for the target."""
    return f"{quote(settings, settings.schema(layer))}.{quote(settings, name)}"


def server_name(settings: Settings) -> str:
    """MariaDB or MySQL, as the settings say."""
    return "MariaDB" if settings.mysql.flavor == "mariadb" else "MySQL"


def warehouse_exists(settings: Settings) -> bool:
    """DuckDB: the file exists. MySQL: always True (the server is asked when connecting)."""
    return settings.target != "duckdb" or settings.duckdb_path.is_file()


def require_warehouse(settings: Settings) -> None:
    """Raise :class:`WarehouseUnavailable` when the DuckDB warehouse has not been created yet."""
    if warehouse_exists(settings):
        return
    path = settings.duckdb_path
    if not path.parent.is_dir():
        raise WarehouseUnavailable(
            f"the DuckDB warehouse folder {path.parent} does not exist — check STRATPOS_DUCKDB_PATH"
        )
    raise WarehouseUnavailable(
        f"no DuckDB warehouse at {path} — run `stratpos ingest` first, or check STRATPOS_DUCKDB_PATH"
    )


def prepare_new_warehouse(settings: Settings) -> bool:
    """Before ingestion: True when it will create a new DuckDB warehouse (its folder exists, or is the
    project's default ``warehouse/``, created here); a missing folder is :class:`WarehouseUnavailable`."""
    if warehouse_exists(settings):
        return False
    _duckdb_folder(settings)
    return True


def _duckdb_folder(settings: Settings) -> None:
    path = settings.duckdb_path
    if path.parent.is_dir():
        return
    if path == DEFAULT_DUCKDB_PATH:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    raise WarehouseUnavailable(
        f"the DuckDB warehouse folder {path.parent} does not exist — check STRATPOS_DUCKDB_PATH "
        "(create the folder to start a new warehouse there)"
    )


def connect_duckdb(settings: Settings, *, read_only: bool = False, memory_limit: str | None = None):
    """A DuckDB connection to the warehouse file (the caller closes it)."""
    import duckdb

    _duckdb_folder(settings)
    if read_only:
        require_warehouse(settings)
    config = {"memory_limit": memory_limit} if memory_limit else {}
    try:
        return duckdb.connect(str(settings.duckdb_path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WarehouseUnavailable(f"cannot open the DuckDB warehouse {settings.duckdb_path}: {first}") from None


def connect_mysql(settings: Settings, database: str | None = None, *, connect_timeout: int = 5, bulk: bool = False):
    """A PyMySQL connection (autocommit, utf8mb4; ``bulk``: 64 MiB packets and LOAD DATA LOCAL)."""
    import pymysql

    m = settings.mysql
    # SPEC §9: the reconciliation views group and join the whole history; at the server's default
    # 16 MiB their temporary tables go to disk (see dbt_project/macros/mariadb_session.sql)
    tmp = m.tmp_table_mb * 1024 * 1024
    options = {"init_command": f"SET SESSION tmp_table_size = {tmp}, max_heap_table_size = {tmp}"}
    if bulk:
        options |= {"max_allowed_packet": 64 * 1024 * 1024, "local_infile": True}
    try:
        return pymysql.connect(
            host=m.host,
            port=m.port,
            user=m.user,
            password=m.password.get_secret_value(),
            database=database,
            connect_timeout=connect_timeout,
            charset="utf8mb4",
            autocommit=True,
            **options,
        )
    except pymysql.err.OperationalError as exc:
        raise WarehouseUnavailable(mysql_error_message(settings, exc)) from None


def mysql_error_message(settings: Settings, exc: BaseException) -> str:
    """One actionable line for a failed MySQL/MariaDB login."""
    m = settings.mysql
    server = f"{server_name(settings)} at {m.host}:{m.port}"
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code in _DENIED:
        return f"{server} refused user {m.user!r} — check STRATPOS_MYSQL_USER/STRATPOS_MYSQL_PASSWORD"
    if code in _UNREACHABLE or code is None:
        return f"cannot connect to {server} — is it running? check STRATPOS_MYSQL_HOST/STRATPOS_MYSQL_PORT"
    detail = str(exc.args[-1]) if exc.args else type(exc).__name__
    return f"cannot connect to {server} as {m.user!r}: {detail}"


@contextmanager
def duckdb_connection(settings: Settings, read_only: bool = False, memory_limit: str | None = None):
    con = connect_duckdb(settings, read_only=read_only, memory_limit=memory_limit)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def mysql_connection(settings: Settings, database: str | None = None, connect_timeout: int = 5):
    con = connect_mysql(settings, database, connect_timeout=connect_timeout)
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
    sql = f"select * from {qualified(settings, layer, table)}"
    if settings.target == "duckdb":
        with duckdb_connection(settings, read_only=True) as con:
            cur = con.execute(sql)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    with mysql_connection(settings) as con, con.cursor() as cur:
        cur.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
