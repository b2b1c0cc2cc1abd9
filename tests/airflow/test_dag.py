"""The DAG ``stratpos_hourly`` (SPEC §8): its contract as parsed, and whole runs against the paper exchange.

Airflow always runs in a child process (tests/airflow/child.py, see conftest.py for why). The parse
tests read the DagBag as JSON; the run tests call ``dag.test()`` with ``since`` on a copy of a
migrated SQLite metadata database, with the sandbox API served from this process and the account's
signals in a landing folder, once on DuckDB and once on MariaDB, and compare
``marts.strategy_positions`` with the paper exchange's ground truth.
"""

from __future__ import annotations

import importlib.util

import pytest

from stratpos.core.settings import Settings
from tests.airflow.conftest import SINCE, airflow_env
from tests.airflow.helpers import errors_in, run_child, stratpos_env
from tests.dbt.truth import diff_against_truth

DAG_ID = "stratpos_hourly"
RAW, MARTS = "stratpos://warehouse/raw", "stratpos://warehouse/marts"
INGEST_TASKS = ("discover_symbols", "ingest_account_income", "ingest_signals", "ingest_symbol", "snapshot_positions")
# nothing answers at TEST-NET-1 addresses (RFC 5737): a parse that connected anywhere would hang or fail
UNREACHABLE = "192.0.2.1"


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict[str, dict]:
    """The DAG folder parsed offline, per target: no metadata database, warehouse or exchange reachable.

    The MySQL parse also sets STRATPOS_DAG_RETRIES / _RETRY_DELAY_SECONDS; the DuckDB one keeps
    the production defaults.
    """
    results = {}
    for target, extra in {
        "duckdb": {},
        "mysql": {"STRATPOS_DAG_RETRIES": "0", "STRATPOS_DAG_RETRY_DELAY_SECONDS": "7"},
    }.items():
        home = tmp_path_factory.mktemp(f"parse-{target}")
        env = airflow_env(
            home,
            # a metadata database in a folder that does not exist: any use of it at parse time fails
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'absent' / 'airflow.db'}",
            STRATPOS_TARGET=target,
            STRATPOS_MYSQL_HOST=UNREACHABLE,
            STRATPOS_DUCKDB_PATH=str(home / "absent" / "warehouse.duckdb"),
            STRATPOS_BINANCE_BASE_URL=f"http://{UNREACHABLE}:9",
        )
        del env["STRATPOS_DAG_RETRIES"]
        env.update(extra)
        results[target], _ = run_child("parse", env, home, timeout=300)
    return results


@pytest.fixture(scope="module")
def dag(parsed) -> dict:
    return parsed["duckdb"]["dags"][DAG_ID]


@pytest.mark.parametrize("target", ["duckdb", "mysql"])
def test_dag_parses_offline_without_io_or_heavy_imports(parsed, target):
    result = parsed[target]
    assert result["import_errors"] == {}
    assert list(result["dags"]) == [DAG_ID]
    # the parse opened no socket, database or subprocess (audit hook in the child)
    assert result["io_events"] == []
    # pandas, GX, python-binance, DuckDB, PyMySQL and dbt are imported by the tasks, not by the parse
    assert result["heavy_imports"] == []


def test_dag_contract(dag):
    assert {"stratpos", "binance", "dbt", "reconciliation"} <= set(dag["tags"])
    assert dag["default_args"]["owner"] == "stratpos"
    assert dag["default_args"]["retries"] == 2 and dag["default_args"]["retry_delay"] == 120
    assert all(t["retries"] == 2 and t["retry_delay_seconds"] == 120 for t in dag["tasks"].values())
    assert dag["max_active_runs"] == 1
    assert dag["schedule"] == "@hourly" and dag["timetable"][1] == "0 * * * *"
    assert dag["catchup"] is False
    assert dag["params"] == {"since": None, "until": None, "symbols": []}
    assert dag["doc_md"] and "### stratpos_hourly" in dag["doc_md"] and "validate" in dag["doc_md"]
    assert dag["has_failure_callback"]


def test_retries_and_parallelism_follow_the_environment(parsed, dag):
    mysql = parsed["mysql"]["dags"][DAG_ID]
    assert mysql["default_args"]["retries"] == 0 and mysql["default_args"]["retry_delay"] == 7
    # one writer at a time on a DuckDB file; MySQL/MariaDB runs the mapped ingestion tasks in parallel
    assert dag["max_active_tasks"] == 1 and mysql["max_active_tasks"] > 1


def _ancestors(tasks: dict, task_id: str) -> set[str]:
    seen, todo = set(), list(tasks[task_id]["upstream"])
    while todo:
        t = todo.pop()
        if t not in seen:
            seen.add(t)
            todo.extend(tasks[t]["upstream"])
    return seen


def test_task_graph_ingest_then_dbt_models_then_dbt_tests_then_validate(dag):
    tasks = dag["tasks"]
    models = [t for t, d in tasks.items() if d["operator"] == "DbtRunLocalOperator"]
    tests = [t for t, d in tasks.items() if d["operator"] == "DbtTestLocalOperator"]
    # one dbt run of every model, then one dbt test: not one task (and one dbt process) per model or layer
    assert models == ["dbt.dbt_project_run"]
    assert tests == ["dbt.dbt_project_test"], "one dbt test task after all models"
    assert tasks[tests[0]]["upstream"] == models
    # the tests must see this run's tables: every model precedes them
    assert set(models) <= _ancestors(tasks, tests[0])
    assert set(INGEST_TASKS) <= _ancestors(tasks, tests[0])
    for model in models:
        assert "snapshot_positions" in _ancestors(tasks, model)
        assert tasks[model]["outlets"] == [MARTS]
    assert tasks["validate"]["upstream"] == tests
    assert set(tasks["snapshot_positions"]["upstream"]) >= {"ingest_account_income", "ingest_signals", "ingest_symbol"}
    assert tasks["ingest_symbol"]["upstream"] == ["symbol_plan"]
    assert tasks["symbol_plan"]["upstream"] == ["discover_symbols"]
    assert tasks["discover_symbols"]["upstream"] == ["list_accounts"]
    # mapped per account (and per account × symbol): one account's failure fails its own map indexes
    for name in ("discover_symbols", "ingest_account_income", "ingest_symbol", "snapshot_positions", "ingest_klines"):
        assert tasks[name]["operator"] == "DecoratedMappedOperator", name
        # the tasks of one IP share Binance's request weight (issue 12): slots by the heaviest request
        assert tasks[name]["pool"] == "binance_api" and tasks[name]["pool_slots"] >= 1, name
    assert tasks["ingest_account_income"]["pool_slots"] == 6 and tasks["ingest_symbol"]["pool_slots"] == 1
    # an account that failed does not stop the others: dbt runs after accounts_ingested, which waits for all
    assert tasks["accounts_ingested"]["trigger_rule"] == "all_done"
    assert tasks["check_accounts"]["trigger_rule"] == "all_done"
    assert not any("check_accounts" in t["upstream"] for t in tasks.values()), "a leaf: it fails the run"
    for name in INGEST_TASKS[1:]:
        assert tasks[name]["outlets"] == [RAW]


def test_dbt_models_ref_only_their_own_or_earlier_layers():
    """The dbt project is layered: every model's refs are in its own layer or an earlier one."""
    import re

    from stratpos.core.settings import PROJECT_ROOT

    layers = ["staging", "intermediate", "marts", "reconciliation"]
    models = PROJECT_ROOT / "dbt_project" / "models"
    files = {f.stem: f for f in models.rglob("*.sql")}
    layer_of = {model: f.relative_to(models).parts[0] for model, f in files.items()}
    assert set(layer_of.values()) == set(layers), "a model outside the layers"
    later = [
        f"{model} ({layer}) refs {ref} ({layer_of[ref]})"
        for model, layer in layer_of.items()
        for ref in re.findall(r"ref\(\s*['\"](\w+)['\"]\s*\)", files[model].read_text())
        if layers.index(layer_of[ref]) > layers.index(layer)
    ]
    assert later == []


@pytest.mark.parametrize("target", ["duckdb", pytest.param("mysql", marks=pytest.mark.mysql)])
def test_dag_run_reproduces_the_ground_truth(
    target, request, tmp_path, airflow_home, sandbox_url, signal_landing, replay_dir
):
    """One ``dag.test()`` run: every task succeeds and the marts equal the paper exchange's books."""
    if target == "duckdb":
        settings = Settings(target="duckdb", duckdb_path=tmp_path / "warehouse.duckdb")
    else:
        settings = request.getfixturevalue("mysql_settings")
    env = airflow_env(
        airflow_home,
        STRATPOS_BINANCE_BASE_URL=sandbox_url,
        STRATPOS_SIGNALS_LANDING=str(signal_landing),
        **stratpos_env(settings),
    )
    result, log = run_child("test", env, tmp_path, SINCE, timeout=900)

    assert result["import_errors"] == {}
    states = result["tasks"]
    assert {"ingest_symbol[0]", "ingest_symbol[1]", "dbt.dbt_project_test", "validate"} <= set(states)
    # stratpos.validate arrives with the GX issue; until then only its task may fail
    may_fail = {"validate"} if importlib.util.find_spec("stratpos.validate") is None else set()
    failed = {task: state for task, state in states.items() if state != "success" and task not in may_fail}
    assert not failed, f"tasks did not succeed: {failed}\n{errors_in(log)}"
    if not may_fail:
        assert result["state"] == "success", errors_in(log)
    assert diff_against_truth(settings, replay_dir) == []
