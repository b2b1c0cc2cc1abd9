"""Shared fixtures: isolated warehouses on DuckDB and on MariaDB.

MariaDB tests skip with a reason when no server answers, unless REQUIRE_MYSQL=1 (CI), in
which case an unreachable server is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

from stratpos.core.settings import MySQLSettings, Settings, load_settings
from stratpos.core.warehouse import WarehouseUnavailable, drop_schemas, mysql_connection
from stratpos.transform import default_target_path

os.environ.setdefault("DO_NOT_TRACK", "1")


def _mysql_base() -> Settings:
    return load_settings({k: v for k, v in os.environ.items() if k.startswith("STRATPOS_MYSQL_")}).with_overrides(
        target="mysql"
    )


@pytest.fixture(scope="session")
def mysql_available() -> MySQLSettings:
    settings = _mysql_base()
    try:
        with mysql_connection(settings, connect_timeout=3) as con, con.cursor() as cur:
            cur.execute("select version()")
    except WarehouseUnavailable as exc:
        if os.environ.get("REQUIRE_MYSQL") == "1":
            pytest.fail(f"REQUIRE_MYSQL=1 but {exc}")
        pytest.skip(f"no MySQL/MariaDB server reachable ({exc}); set REQUIRE_MYSQL=1 to make this fail")
    return settings.mysql


@pytest.fixture
def mysql_settings(mysql_available: MySQLSettings):
    """Settings for a MariaDB warehouse under a unique schema prefix, dropped afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    settings = Settings(target="mysql", mysql=mysql_available, schema_prefix=prefix)
    yield settings
    drop_schemas(settings)
    shutil.rmtree(default_target_path(settings), ignore_errors=True)  # its dbt target directory


@pytest.fixture
def duckdb_settings(tmp_path):
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "warehouse.duckdb")
    yield settings
    shutil.rmtree(default_target_path(settings), ignore_errors=True)  # its dbt target directory


@pytest.fixture(params=["duckdb", "mysql"])
def warehouse_settings(request):
    """Run a test once per warehouse target."""
    return request.getfixturevalue(f"{request.param}_settings")
