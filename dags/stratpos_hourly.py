"""
### stratpos_hourly

Every hour: ingest the account's raw facts, rebuild the per-strategy books with dbt
(through Cosmos), prove with Great Expectations that the attribution reconciles with
the exchange, and alert when it does not.

1. **discover_symbols** — configured symbols ∪ those seen in income, positions, signals.
2. **ingest_account_income** (position mode, exchangeInfo symbols with their margin assets,
   income), **ingest_signals**, **ingest_symbol** (mapped per symbol: orders, algo orders,
   trades), then **snapshot_positions** (positionRisk and wallet balances after the fills) and
   **ingest_klines** (1m prices converting commission paid in another asset, e.g. BNB).
3. **dbt** — a Cosmos task group over `dbt_project/` (models, then all tests).
4. **validate** — reconciliation checks R1–R9; a failed check fails the run at once (no
   retry: the result is deterministic). The channels hear what changed (a check starts failing,
   a new failing key, a recovery; standing warnings once a day); the DAG's failure callback
   covers the failure of any other task, so one problem makes one message.

Manual runs take `since`/`until` (UTC ISO) to override the window; backfills use
Airflow's own backfill — the window end is the data interval end, and ingestion is
watermark-based, so re-running an interval changes nothing. Everything here calls the
same functions as the `stratpos` CLI (`stratpos.pipeline`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, Param, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior
from cosmos.operators.local import DbtTestLocalOperator

from stratpos.core.settings import load_settings

PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
SETTINGS = load_settings()  # read when the DAG is parsed: the target, the retries, dbt's environment
TARGET = SETTINGS.target
RAW = Asset("stratpos://warehouse/raw")
MARTS = Asset("stratpos://warehouse/marts")
# overridable so that tests and the demo fail fast instead of waiting out retries
RETRIES = SETTINGS.dag_retries
RETRY_DELAY = timedelta(seconds=SETTINGS.dag_retry_delay_seconds)


def _settings():
    from stratpos.core.settings import load_settings

    return load_settings()


def _window(params: dict, data_interval_end, dag_run) -> tuple[int | None, int | None]:
    """(since_ms, until_ms): manual params win; otherwise up to the data interval end.

    A run triggered without a logical date (the UI's and REST API's default in Airflow 3) has no
    data interval: it reads up to the moment it was triggered, the same cut-off for every task.
    """
    from stratpos.core.timeparse import epoch_ms as _ms

    end = data_interval_end or dag_run.run_after
    until = _ms(params.get("until")) if params.get("until") else int(end.timestamp() * 1000)
    return _ms(params.get("since")) if params.get("since") else None, until


def _alert_on_failure(context) -> None:
    """The DAG's failure callback: tell the channels which task failed — except ``validate``,
    which alerts for itself (its own callback below), so one problem makes one message."""
    ti = context.get("ti") or context.get("task_instance")
    if getattr(ti, "task_id", None) == "validate":
        return
    from stratpos.pipeline import alert_failure

    alert_failure(context)


def _alert_on_validate_failure(context) -> None:
    """``validate``'s failure callback: a reconciliation failure (AirflowFailException) was already
    told to every channel, by change, by the validation; any other error (e.g. the warehouse is
    unreachable, after its retries) is told here."""
    from airflow.sdk.exceptions import AirflowFailException

    if isinstance(context.get("exception"), AirflowFailException):
        return
    from stratpos.pipeline import alert_failure

    alert_failure(context)


@dag(
    dag_id="stratpos_hourly",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # one DuckDB file takes one writer at a time; MySQL/MariaDB runs tasks in parallel
    max_active_tasks=1 if TARGET == "duckdb" else 16,
    default_args={"owner": "stratpos", "retries": RETRIES, "retry_delay": RETRY_DELAY},
    params={
        "since": Param(None, type=["null", "string"], description="UTC start for keys without a watermark"),
        "until": Param(None, type=["null", "string"], description="UTC end (default: data interval end)"),
        "symbols": Param([], type="array", description="symbols to read besides the discovered ones"),
    },
    tags=["stratpos", "binance", "dbt", "reconciliation"],
    doc_md=__doc__,
    on_failure_callback=_alert_on_failure,
)
def stratpos_hourly():
    @task
    def discover_symbols(params=None) -> list[str]:
        from stratpos.pipeline import discover_symbols as discover

        return discover(_settings(), params.get("symbols") or [])

    @task(outlets=[RAW])
    def ingest_account_income(params=None, data_interval_end=None, dag_run=None) -> list[dict]:
        from stratpos.pipeline import ingest_exchange

        since, until = _window(params, data_interval_end, dag_run)
        return ingest_exchange(
            _settings(), streams=["account", "exchange_info", "income"], since_ms=since, until_ms=until
        )

    @task(outlets=[RAW])
    def ingest_signals() -> list[dict]:
        from stratpos.pipeline import ingest_signals as load

        return load(_settings())

    @task(outlets=[RAW], map_index_template="{{ task.op_kwargs['symbol'] }}")
    def ingest_symbol(symbol: str, params=None, data_interval_end=None, dag_run=None) -> list[dict]:
        from stratpos.pipeline import ingest_exchange

        since, until = _window(params, data_interval_end, dag_run)
        return ingest_exchange(_settings(), streams=["symbols"], symbols=[symbol], since_ms=since, until_ms=until)

    @task(outlets=[RAW])
    def snapshot_positions() -> list[dict]:
        from stratpos.pipeline import ingest_exchange

        return ingest_exchange(_settings(), streams=["positions", "balances"])

    @task(outlets=[RAW])
    def ingest_klines(params=None, data_interval_end=None, dag_run=None) -> list[dict]:
        from stratpos.pipeline import ingest_exchange

        since, until = _window(params, data_interval_end, dag_run)
        return ingest_exchange(_settings(), streams=["klines"], since_ms=since, until_ms=until)

    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(PROJECT_DIR),
        profile_config=ProfileConfig(
            profile_name="stratpos",
            target_name="mysql" if TARGET == "mysql" else "duckdb",
            profiles_yml_filepath=PROJECT_DIR / "profiles.yml",
        ),
        execution_config=ExecutionConfig(invocation_mode=InvocationMode.DBT_RUNNER),
        render_config=RenderConfig(load_method=LoadMode.CUSTOM, test_behavior=TestBehavior.AFTER_ALL),
        # dbt runs from a temporary copy of the project: give it the warehouse with absolute paths (no secrets:
        # Airflow stores and renders operator env; the password comes from the worker's own environment)
        operator_args={
            "install_deps": False,
            "outlets": [MARTS],
            "env": SETTINGS.to_env(warehouse_only=True, secrets=False),
        },
    )
    # Cosmos 1.15's custom parser keys nodes by name but finds leaves by unique_id, so the AFTER_ALL
    # test task gets no model upstream and would test the previous run's tables (cosmos#745):
    # put it after the last models explicitly.
    dbt_tests = [t for t in dbt if isinstance(t, DbtTestLocalOperator)]
    dbt_models = [t for t in dbt if not isinstance(t, DbtTestLocalOperator)]
    last_models = [t for t in dbt_models if not t.downstream_task_ids & {m.task_id for m in dbt_models}]
    for test in dbt_tests:
        test.set_upstream(last_models)

    @task(on_failure_callback=_alert_on_validate_failure)
    def validate() -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from stratpos.pipeline import validate as run
        from stratpos.validate import ValidationFailed

        try:
            return run(_settings())
        except ValidationFailed as exc:
            # deterministic: a retry would re-validate the same tables (and could alert again) — fail now
            raise AirflowFailException(str(exc)) from exc

    symbols = discover_symbols()
    loaded = [ingest_account_income(), ingest_signals(), ingest_symbol.expand(symbol=symbols)]
    snapshot, prices = snapshot_positions(), ingest_klines()
    loaded >> snapshot >> dbt >> validate()
    loaded >> prices >> dbt


stratpos_hourly()
