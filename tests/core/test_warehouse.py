"""Connections opened in one place: what a user sees when the warehouse is missing, down or refuses the login."""

from __future__ import annotations

import pytest

from stratpos.core.errors import StratposError
from stratpos.core.settings import DEFAULT_DUCKDB_PATH, Settings
from stratpos.core.warehouse import (
    WarehouseUnavailable,
    connect_duckdb,
    connect_mysql,
    ensure_schemas,
    existing_schemas,
    fetch_rows,
    prepare_new_warehouse,
    qualified,
    require_warehouse,
)


def test_missing_folder_is_an_error_and_creates_nothing(tmp_path):
    settings = Settings(duckdb_path=tmp_path / "typo" / "w.duckdb")
    for attempt in (
        lambda: connect_duckdb(settings),
        lambda: ensure_schemas(settings),
        lambda: require_warehouse(settings),
    ):
        with pytest.raises(WarehouseUnavailable, match=r"folder .*typo does not exist — check STRATPOS_DUCKDB_PATH"):
            attempt()
    with pytest.raises(WarehouseUnavailable):
        prepare_new_warehouse(settings)
    assert not (tmp_path / "typo").exists()


def test_a_new_file_in_an_existing_folder_is_created_on_ingest_only(tmp_path):
    settings = Settings(duckdb_path=tmp_path / "w.duckdb")
    with pytest.raises(WarehouseUnavailable, match=r"no DuckDB warehouse at .* run `stratpos ingest` first"):
        require_warehouse(settings)
    with pytest.raises(WarehouseUnavailable, match="no DuckDB warehouse"):
        fetch_rows(settings, "marts", "strategy_positions")  # reading never creates the file
    assert not settings.duckdb_path.exists()
    assert prepare_new_warehouse(settings) is True
    ensure_schemas(settings)
    assert prepare_new_warehouse(settings) is False
    require_warehouse(settings)
    assert existing_schemas(settings) == set(settings.schemas.values())


def test_only_the_default_folder_is_created_on_first_use():
    settings = Settings()
    assert settings.duckdb_path == DEFAULT_DUCKDB_PATH
    # the project's warehouse/ folder is the one exception (a fresh checkout has none): never an error
    prepare_new_warehouse(settings)
    assert DEFAULT_DUCKDB_PATH.parent.is_dir()


def test_dialect_quoting():
    assert qualified(Settings(schema_prefix="a_"), "marts", "t") == '"a_marts"."t"'
    assert qualified(Settings(target="mysql", schema_prefix="a_"), "raw", "t") == "`a_raw`.`t`"


def test_wrong_mysql_user_is_one_line_naming_the_variables(mysql_available):
    settings = Settings(target="mysql", mysql=mysql_available.model_copy(update={"user": "no_such_user_h1"}))
    with pytest.raises(WarehouseUnavailable) as caught:
        connect_mysql(settings, connect_timeout=3)
    m = settings.mysql
    assert str(caught.value) == (
        f"MariaDB at {m.host}:{m.port} refused user 'no_such_user_h1' — "
        "check STRATPOS_MYSQL_USER/STRATPOS_MYSQL_PASSWORD"
    )
    assert isinstance(caught.value, StratposError) and caught.value.exit_code == 3


def test_mysql_connection_options(mysql_available):
    settings = Settings(target="mysql", mysql=mysql_available)
    con = connect_mysql(settings, bulk=True)
    try:
        with con.cursor() as cur:
            cur.execute("select @@session.autocommit, @@character_set_client")
            autocommit, charset = cur.fetchone()
    finally:
        con.close()
    assert (int(autocommit), charset) == (1, "utf8mb4")


def test_mysql_sessions_keep_temporary_tables_in_memory_up_to_the_setting(mysql_available):
    """STRATPOS_MYSQL_TMP_TABLE_MB sets both limits of every pipeline session (the smaller one rules)."""
    settings = Settings(target="mysql", mysql=mysql_available.model_copy(update={"tmp_table_mb": 96}))
    for bulk in (False, True):
        con = connect_mysql(settings, bulk=bulk)
        try:
            with con.cursor() as cur:
                cur.execute("select @@session.tmp_table_size, @@session.max_heap_table_size")
                assert cur.fetchone() == (96 * 1024 * 1024, 96 * 1024 * 1024)
        finally:
            con.close()
