"""Warehouses built once per test module and target for the SPEC §6 performance mart tests."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from ingestion.replay import load_replay
from stratpos.core.settings import Settings
from stratpos.core.warehouse import drop_schemas
from stratpos.transform import run_dbt


def build(settings: Settings, replay: Path, target_path: Path | None = None) -> None:
    logging.getLogger("ingestion").setLevel(logging.WARNING)
    load_replay(replay, settings)
    run_dbt(settings, "build", extra_args=["--quiet"], target_path=target_path)


def module_warehouse(request, tmp_path_factory, name: str) -> Settings:
    """An empty warehouse of the module fixture's target (``request.param``), dropped at module end."""
    if request.param == "duckdb":
        return Settings(target="duckdb", duckdb_path=tmp_path_factory.mktemp(name) / "w.duckdb")
    mysql = request.getfixturevalue("mysql_available")
    settings = Settings(target="mysql", mysql=mysql, schema_prefix=f"t{uuid.uuid4().hex[:10]}_")
    request.addfinalizer(lambda: drop_schemas(settings))
    return settings
