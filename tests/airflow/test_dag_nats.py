"""The DAG with the paper account's signals arriving over NATS JetStream instead of a landing folder.

``stratpos sandbox publish`` sends the account's signals to a throw-away stream; the DAG reads them
through its ``ingest_nats`` task, configured by the Airflow connection ``nats_default`` (an
``AIRFLOW_CONN_NATS_DEFAULT`` URI with the stream and subjects in its extras). The marts must be the
ones the file-based run of the same account produces (tests/airflow/test_dag.py): both equal the
paper exchange's ground truth. The compose file's NATS profile is checked statically here too.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import yaml

from ingestion.nats_source import KINDS
from sandbox.publish import publish_replay
from stratpos.core.settings import PROJECT_ROOT, Settings
from tests.airflow.conftest import SINCE, airflow_env
from tests.airflow.helpers import errors_in, run_child, stratpos_env
from tests.dbt.truth import diff_against_truth
from tests.ingestion.nats_support import throwaway_stream
from tests.ingestion.warehouse_dump import rows, state


@pytest.mark.timeout(1200)  # one whole DAG run on a loaded machine (the child may take up to 900 s)
def test_dag_run_with_signals_over_nats_reproduces_the_ground_truth(tmp_path, airflow_home, sandbox_url, replay_dir):
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "warehouse.duckdb")
    signals = [json.loads(line) for line in (replay_dir / "signals.jsonl").read_text().splitlines() if line.strip()]
    with throwaway_stream() as cfg:
        published = publish_replay(cfg, replay_dir)
        assert published.stored["signals"] == len(signals) > 0
        host, port = cfg.servers[0].removeprefix("nats://").split(":")
        extra = {
            "stream": cfg.stream,
            "signals_subject": cfg.signals_subject,
            "links_subject": cfg.links_subject,
            "durable": cfg.durable,
        }
        env = airflow_env(
            airflow_home,
            STRATPOS_BINANCE_BASE_URL=sandbox_url,
            # no STRATPOS_SIGNALS_LANDING: the signals come only from the bus
            AIRFLOW_CONN_NATS_DEFAULT=f"nats://{host}:{port}?{urlencode(extra)}",
            **stratpos_env(settings),
        )
        result, log = run_child("test", env, tmp_path, SINCE, timeout=900)

        states = result["tasks"]
        failed = {task: state for task, state in states.items() if state != "success"}
        assert "ingest_nats" in states and not failed, f"tasks did not succeed: {failed}\n{errors_in(log)}"
        assert result["state"] == "success", errors_in(log)
        loaded = rows(settings, "select signal_id, source from {raw}.signals")
        assert sorted(r["signal_id"] for r in loaded) == sorted(s["signal_id"] for s in signals)
        assert {r["source"] for r in loaded} == {cfg.source("signals")}
        assert state(settings, "nats:")[cfg.state_key("signals")] == f"int:{len(signals)}"
        assert diff_against_truth(settings, replay_dir) == []


def test_compose_profile_nats_runs_a_jetstream_server_and_the_listener():
    services = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    nats, listener = services["nats"], services["listener"]
    assert nats["profiles"] == listener["profiles"] == ["nats"]
    assert "-js" in nats["command"] and any(v.endswith(":/data") for v in nats["volumes"])
    assert "js-enabled-only=true" in " ".join(nats["healthcheck"]["test"])
    assert listener["command"] == ["stratpos", "listen", "nats"]
    assert listener["stop_signal"] == "SIGTERM"
    assert listener["environment"]["STRATPOS_NATS_SERVERS"].endswith(":-nats://nats:4222}")
    assert listener["depends_on"]["nats"] == {"condition": "service_healthy"}
    assert listener["depends_on"]["warehouse"] == {"condition": "service_healthy"}
    # its healthcheck looks for the consumer the listener registers
    assert "stratpos_signals" in " ".join(listener["healthcheck"]["test"])
    assert KINDS == ("signals", "order_links")


@pytest.mark.parametrize("conn_id", ["nats_default"])
def test_the_dag_reads_nats_settings_from_the_airflow_connection(conn_id, monkeypatch):
    """``airflow_nats_settings`` in a task: the connection over the environment, none without either."""
    from ingestion.nats_source import AIRFLOW_CONN_ID, airflow_nats_settings
    from stratpos.core.settings import load_settings

    assert conn_id == AIRFLOW_CONN_ID
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", "nats://:s3cret@bus:4333?stream=ENGINE&durable=books")
    cfg = airflow_nats_settings(load_settings({"STRATPOS_NATS_BATCH_SIZE": "77"}))
    assert cfg.servers == ("nats://bus:4333",) and cfg.token.get_secret_value() == "s3cret"
    assert (cfg.stream, cfg.durable, cfg.batch_size) == ("ENGINE", "books", 77)
    assert "s3cret" not in repr(cfg)
    monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}")
    assert airflow_nats_settings(load_settings({})) is None
    configured = airflow_nats_settings(load_settings({"STRATPOS_NATS_SERVERS": "nats://a:1"}))
    assert configured.servers == ("nats://a:1",)
