"""A failing ``validate`` inside a real ``dag.test()`` of ``stratpos_hourly`` → exactly ONE alert.

The reconciliation is deterministic: ``validate`` fails at once (AirflowFailException, no retry
even with the production retries), its validation tells the channels what changed, and neither
the task's nor the DAG's failure callback repeats it. The run covers the ``validate`` task only
(``partial_subset``) on a DuckDB warehouse whose reconciliation relations hold one failing R3
row, with the generic webhook pointed at a receiver in this process.

Run as a script, this file is the child process that runs the DAG (see conftest.py for why
Airflow runs in a child).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from expectations.checks import CHECKS, MISMATCH_COLUMNS
from stratpos.core.settings import Settings
from stratpos.core.warehouse import duckdb_connection
from tests.airflow.conftest import airflow_env
from tests.airflow.helpers import errors_in, stratpos_env
from tests.reconciliation.helpers import alert_payload
from tests.reconciliation.receivers import WebhookReceiver


def broken_warehouse(path: Path) -> Settings:
    """The nine reconciliation relations as dbt leaves them, R3 with one failing row."""
    settings = Settings(target="duckdb", duckdb_path=path)
    schema = settings.schema("audit")
    cols = ", ".join(f"{c} {'decimal(38,18)' if c in ('expected', 'observed', 'diff', 'tolerance') else 'varchar'}"
                     for c in MISMATCH_COLUMNS)  # fmt: skip
    with duckdb_connection(settings) as con:
        con.execute(f'create schema if not exists "{schema}"')
        for check in CHECKS:
            con.execute(f'create table "{schema}"."{check.relation}" ({cols})')
        con.execute(
            f'insert into "{schema}"."recon_r3_exchange_positions" values '
            "('R3', 'exchange_positions', 'fail', 'default:BTCUSDT_LONG', 'position_amount', 0.014, 0.013, "
            "-0.001, 0.000000001, 'positionRisk after the last fill')"
        )
    return settings


def test_a_failing_validate_sends_exactly_one_alert(tmp_path, airflow_home):
    settings = broken_warehouse(tmp_path / "warehouse.duckdb")
    with WebhookReceiver() as webhook:
        env = airflow_env(
            airflow_home,
            **stratpos_env(settings),
            STRATPOS_ALERT_WEBHOOK_URL=webhook.url("/hook"),
            # production retries: the reconciliation failure must not use them
            STRATPOS_DAG_RETRIES="2",
            STRATPOS_DAG_RETRY_DELAY_SECONDS="1",
        )
        out, log = tmp_path / "run.json", tmp_path / "run.log"
        with open(log, "w", encoding="utf-8") as fh:
            done = subprocess.run(
                [sys.executable, __file__, str(out)], env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=600
            )
        assert done.returncode == 0 and out.exists(), errors_in(log)
        result = json.loads(out.read_text())
        assert result["state"] == "failed", errors_in(log)
        assert result["tasks"] == {"validate": ["failed", 1]}, errors_in(log)  # state, try number: no retry
        assert len(webhook.requests) == 1, [r.body.get("event") for r in webhook.requests]
    [alert] = webhook.requests
    payload = alert_payload(alert)
    assert (payload["event"], payload["status"]) == ("validation", "failed")
    assert [(c["check_id"], c["event"]) for c in payload["checks"]] == [("R3", "started failing")]
    assert "default:BTCUSDT_LONG" in alert.body["message"]


def run_validate_only(out: Path) -> None:
    """Child: parse the DAG folder, ``dag.test()`` its ``validate`` task alone, write the outcome."""
    import os

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("stratpos_hourly").partial_subset(
        task_ids=["validate"], include_upstream=False, include_downstream=False
    )
    run = dag.test()
    tis = {ti.task_id: [str(ti.state), ti.try_number] for ti in run.get_task_instances()}
    out.write_text(json.dumps({"state": str(run.state), "tasks": tis}))


if __name__ == "__main__":
    run_validate_only(Path(sys.argv[1]))
