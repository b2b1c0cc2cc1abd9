"""What the Airflow tests run in a child process (``python tests/airflow/child.py <command> <out.json>``).

Each command writes a JSON result for the test to assert on; Airflow's own output goes to the
child's stdout, which the test keeps in a file for its failure messages.

* ``parse`` — parse the DAG folder with a DagBag while an audit hook records every socket
  connection, SQLite connection and subprocess the parse attempts (there must be none), and
  which heavy libraries the parse imported.
* ``test <since>`` — parse the DAG and run it once with ``dag.test(run_conf={"since": since})``;
  records the run state and every task instance's state.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

# imported by tasks only (SPEC STYLE: no heavy imports at parse time)
HEAVY = ("pandas", "great_expectations", "binance", "duckdb", "pymysql", "dbt", "gx", "pyarrow")
WATCHED_EVENTS = ("socket.connect", "socket.getaddrinfo", "sqlite3.connect", "subprocess.Popen", "os.system")


def parse(out: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    events: list[list[str]] = []
    heavy_before = {m for m in HEAVY if m in sys.modules}

    def hook(name: str, args: tuple) -> None:
        if name in WATCHED_EVENTS:
            events.append([name, repr(args)[:300]])

    sys.addaudithook(hook)  # permanent for this process, which is why this runs in a child
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    result = {
        "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
        "io_events": events,
        "heavy_imports": sorted(m for m in HEAVY if m in sys.modules and m not in heavy_before),
        "dags": {dag_id: describe(dag) for dag_id, dag in bag.dags.items()},
    }
    out.write_text(json.dumps(result, indent=1, default=str))


def _seconds(value):
    return value.total_seconds() if isinstance(value, timedelta) else value


def describe(dag) -> dict:
    """The parts of a parsed DAG the tests assert on, as JSON."""
    return {
        "schedule": str(dag.schedule),
        "timetable": [type(dag.timetable).__name__, getattr(dag.timetable, "expression", None)],
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "max_active_tasks": dag.max_active_tasks,
        "tags": sorted(dag.tags),
        "default_args": {k: _seconds(v) for k, v in dag.default_args.items()},
        "params": {key: dag.params[key] for key in dag.params},
        "doc_md": dag.doc_md,
        "has_failure_callback": bool(dag.on_failure_callback),
        "tasks": {
            t.task_id: {
                "operator": type(t).__name__,
                "upstream": sorted(t.upstream_task_ids),
                "retries": t.retries,
                "retry_delay_seconds": t.retry_delay.total_seconds(),
                "outlets": sorted(getattr(o, "uri", str(o)) for o in t.outlets),
                "pool": t.pool,
                "pool_slots": t.pool_slots,
                "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
            }
            for t in dag.tasks
        },
    }


def run_once(out: Path, since: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        out.write_text(json.dumps({"import_errors": {k: str(v) for k, v in bag.import_errors.items()}}))
        return
    run = bag.get_dag("stratpos_hourly").test(run_conf={"since": since})
    tis = run.get_task_instances()
    states = {ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in tis}
    out.write_text(json.dumps({"import_errors": {}, "state": str(run.state), "tasks": states}, indent=1))


if __name__ == "__main__":
    command, target = sys.argv[1], Path(sys.argv[2])
    if command == "parse":
        parse(target)
    elif command == "test":
        run_once(target, sys.argv[3])
    else:
        raise SystemExit(f"unknown command {command!r}")
