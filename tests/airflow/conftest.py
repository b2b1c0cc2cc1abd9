"""Fixtures for the Airflow tests: a paper account served on loopback and isolated Airflow homes.

Airflow reads its configuration (``AIRFLOW_HOME``, the metadata database, the DAG folder) once,
when ``airflow`` is first imported, and keeps process-wide state after that. So every test that
*runs* the DAG does it in a child process whose environment is complete before Airflow starts
(:func:`airflow_env`), with its own ``AIRFLOW_HOME`` in a temporary folder: nothing here reads
or writes ``~/airflow`` or the repository's ``warehouse/``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.generator import GenerateConfig, generate
from sandbox.server import SandboxServer, ServerConfig
from stratpos.core.settings import PROJECT_ROOT

DAGS_FOLDER = PROJECT_ROOT / "dags"
AIRFLOW_BIN = Path(sys.executable).with_name("airflow")
# the sandbox account is from January 2026: ingestion starts here (keys have no watermark yet)
SINCE = "2026-01-01T00:00:00+00:00"


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow process: this one's, minus stray Airflow/stratpos settings, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STRATPOS_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            # Cosmos caches partial-parse files per DAG; keep them out of the shared /tmp/cosmos
            "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            "GX_ANALYTICS_ENABLED": "False",
            # a failing task fails the run at once instead of waiting out the production retries
            "STRATPOS_DAG_RETRIES": "0",
            "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        }
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def replay_dir(tmp_path_factory) -> Path:
    """A small deterministic paper account (2 days, 3 strategies, 2 symbols) with its ground truth."""
    out = tmp_path_factory.mktemp("airflow-replay")
    generate(GenerateConfig(out=out, days=2, strategies=3, symbols=("BTCUSDT", "ETHUSDT"), seed=1))
    return out


@pytest.fixture(scope="session")
def signal_landing(replay_dir, tmp_path_factory) -> Path:
    """The account's signals in a landing folder, where the DAG's ``ingest_signals`` reads them.

    Signals come from the trade engine, not from Binance: without them every fill would land in
    the unattributed bucket. This account links its orders by the clientOrderId convention only;
    it has no explicit link records, which the DAG has no source for (only ``stratpos ingest
    replay`` reads ``order_links.jsonl``).
    """
    assert not (replay_dir / "order_links.jsonl").exists(), "explicit order links would need loading first"
    landing = tmp_path_factory.mktemp("signal-landing")
    shutil.copy(replay_dir / "signals.jsonl", landing)
    return landing


@pytest.fixture(scope="session")
def sandbox_url(replay_dir) -> Iterator[str]:
    """The paper account as a fake Binance API on loopback, served from this process's thread."""
    logging.getLogger("sandbox.server").setLevel(logging.WARNING)
    with SandboxServer(replay_dir, config=ServerConfig(weight_limit_1m=1_000_000)) as server:
        yield server.url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """An Airflow metadata database (SQLite) migrated once per session; tests copy it."""
    home = tmp_path_factory.mktemp("airflow-template")
    done = subprocess.run(
        [str(AIRFLOW_BIN), "db", "migrate"], env=airflow_env(home), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return home / "airflow.db"


@pytest.fixture
def airflow_home(tmp_path, migrated_sqlite) -> Path:
    """A fresh AIRFLOW_HOME holding a copy of the migrated metadata database."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    shutil.copy(migrated_sqlite, home / "airflow.db")
    return home
