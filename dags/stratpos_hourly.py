"""
### stratpos_hourly

Every hour: ingest the account's raw facts, rebuild the per-strategy books with dbt
(through Cosmos), prove with Great Expectations that the attribution reconciles with
the exchange, and alert when it does not.

0. **ingest_nats** — signals and order links from NATS JetStream (durable pull consumers; settings
   `STRATPOS_NATS_*` or the Airflow connection `nats_default`; nothing to do when neither is set).
1. **list_accounts** — the Binance accounts (`STRATPOS_ACCOUNTS`, keys in the connections
   `binance_<account>`; one account `default` when unset). Everything below is mapped per account.
2. **discover_symbols** (per account) — configured symbols ∪ those seen in income, positions, signals;
   **symbol_plan** joins them into account × symbol pairs.
3. **ingest_account_income** (per account: position mode, exchangeInfo symbols with their margin
   assets, income), **ingest_signals**, **ingest_symbol** (per account × symbol: orders, algo orders,
   trades), then **snapshot_positions** (per account: positionRisk and wallet balances after the fills)
   and **ingest_klines** (per account: 1m prices converting commission paid in another asset, e.g. BNB).
   Every Binance task holds slots of the pool `binance_api` by its heaviest request's weight: the tasks
   of one IP share Binance's request-weight limit. An account whose task failed (bad key, ban) is not
   snapshotted; the other accounts go on: **accounts_ingested** lets dbt and validate run when at least
   one account was read, and **check_accounts** fails the run naming each failed account.
3. **dbt** — one `dbt run` of every model of `dbt_project/`, then one `dbt test` of the whole
   project (Cosmos operators).
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

from airflow.sdk import Asset, Param, TaskGroup, chain, dag, task
from cosmos import ProfileConfig
from cosmos.constants import InvocationMode
from cosmos.operators.local import DbtRunLocalOperator, DbtTestLocalOperator

from stratpos.core.settings import load_settings
from stratpos.pipeline import BINANCE_POOL
from stratpos.pipeline import pool_slots as _slots

PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
SETTINGS = load_settings()  # read when the DAG is parsed: the target, the retries, dbt's environment
TARGET = SETTINGS.target
RAW = Asset("stratpos://warehouse/raw")
MARTS = Asset("stratpos://warehouse/marts")
# overridable so that tests and the demo fail fast instead of waiting out retries
RETRIES = SETTINGS.dag_retries
RETRY_DELAY = timedelta(seconds=SETTINGS.dag_retry_delay_seconds)
# the Airflow pool of every Binance request (create it once: `airflow pools set binance_api 96 ...`, see README)
POOL = BINANCE_POOL


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


def _account_failures(ti, accounts: list[str], plan: list[dict] | None) -> tuple[dict, list[str]]:
    """({account: its failed tasks}, failed shared tasks) of this run, from Airflow's task states."""
    from stratpos.pipeline import ACCOUNT_TASKS, failed_accounts

    shared = ("list_accounts", "ingest_signals", "symbol_plan")
    runs = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=[*ACCOUNT_TASKS, *shared])
    states = {k: str(getattr(v, "value", v)) for k, v in next(iter(runs.values()), {}).items()}
    broken = sorted(f"{t} {states[t]}" for t in shared if states.get(t) in ("failed", "upstream_failed"))
    return failed_accounts(states, accounts, plan), broken


def _skip_failed_account(ti, account: str, accounts: list[str], plan: list[dict] | None) -> None:
    """A snapshot after a failed read of the same account would not match its fills: skip it."""
    from airflow.sdk.exceptions import AirflowSkipException

    from stratpos.pipeline import describe_failures

    failures, _ = _account_failures(ti, accounts, plan)
    if account in failures:
        raise AirflowSkipException(f"not read: {describe_failures({account: failures[account]})}")


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
    def list_accounts() -> list[str]:
        from stratpos.pipeline import configured_accounts

        return configured_accounts(_settings())

    @task(pool=POOL, pool_slots=_slots("discover_symbols"), map_index_template="{{ task.op_kwargs['account'] }}")
    def discover_symbols(account: str, params=None) -> list[dict]:
        from stratpos.pipeline import discover_account_symbols

        return discover_account_symbols(_settings(), params.get("symbols") or [], account=account)

    @task(trigger_rule="all_done")
    def symbol_plan(found) -> list[dict]:
        from stratpos.pipeline import symbol_plan as join

        return join(found)  # an account whose discovery failed has no pairs (and fails the run at the end)

    @task(
        outlets=[RAW],
        pool=POOL,
        pool_slots=_slots("ingest_account_income"),
        map_index_template="{{ task.op_kwargs['account'] }}",
    )
    def ingest_account_income(account: str, params=None, data_interval_end=None, dag_run=None) -> list[dict]:
        from stratpos.pipeline import ingest_exchange

        since, until = _window(params, data_interval_end, dag_run)
        return ingest_exchange(
            _settings(),
            streams=["account", "exchange_info", "income"],
            since_ms=since,
            until_ms=until,
            account=account,
        )

    @task(outlets=[RAW])
    def ingest_signals() -> list[dict]:
        from stratpos.pipeline import ingest_signals as load

        return load(_settings())

    @task(outlets=[RAW])
    def ingest_nats() -> list[dict]:
        from ingestion.nats_source import airflow_nats_settings, ingest_nats_summaries

        settings = _settings()
        return ingest_nats_summaries(settings, airflow_nats_settings(settings))

    @task(
        outlets=[RAW],
        pool=POOL,
        pool_slots=_slots("ingest_symbol"),
        map_index_template="{{ task.op_kwargs['target']['account'] }}:{{ task.op_kwargs['target']['symbol'] }}",
    )
    def ingest_symbol(target: dict, params=None, data_interval_end=None, dag_run=None) -> list[dict]:
        from stratpos.pipeline import ingest_exchange

        since, until = _window(params, data_interval_end, dag_run)
        return ingest_exchange(
            _settings(),
            streams=["symbols"],
            symbols=[target["symbol"]],
            since_ms=since,
            until_ms=until,
            account=target["account"],
        )

    @task(
        outlets=[RAW],
        trigger_rule="all_done",
        pool=POOL,
        pool_slots=_slots("snapshot_positions"),
        map_index_template="{{ task.op_kwargs['account'] }}",
    )
    def snapshot_positions(account: str, accounts: list[str], plan: list[dict], ti=None) -> list[dict]:
        from stratpos.pipeline import ingest_exchange

        _skip_failed_account(ti, account, accounts, plan)
        return ingest_exchange(_settings(), streams=["positions", "balances"], account=account)

    @task(
        outlets=[RAW],
        trigger_rule="all_done",
        pool=POOL,
        pool_slots=_slots("ingest_klines"),
        map_index_template="{{ task.op_kwargs['account'] }}",
    )
    def ingest_klines(
        account: str, accounts: list[str], plan: list[dict], params=None, data_interval_end=None, dag_run=None, ti=None
    ) -> list[dict]:
        from stratpos.pipeline import ingest_exchange

        _skip_failed_account(ti, account, accounts, plan)
        since, until = _window(params, data_interval_end, dag_run)
        return ingest_exchange(_settings(), streams=["klines"], since_ms=since, until_ms=until, account=account)

    @task(trigger_rule="all_done")
    def accounts_ingested(accounts: list[str], plan: list[dict], ti=None) -> list[str]:
        """The accounts read completely; dbt and validate run when there is at least one."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from stratpos.pipeline import describe_failures

        failures, broken = _account_failures(ti, accounts, plan)
        if broken:
            raise AirflowFailException(f"shared ingestion failed: {', '.join(broken)}")
        healthy = [a for a in accounts if a not in failures]
        if not healthy:
            raise AirflowFailException(f"no account was read: {describe_failures(failures)}")
        if failures:
            logging.getLogger(__name__).warning("going on with %s; %s", ", ".join(healthy), describe_failures(failures))
        return healthy

    @task(trigger_rule="all_done")
    def check_accounts(accounts: list[str], plan: list[dict], ti=None) -> None:
        """Fails the run when any account's ingestion failed (after the other accounts' books were built)."""
        from airflow.sdk.exceptions import AirflowFailException

        from stratpos.pipeline import describe_failures

        failures, broken = _account_failures(ti, accounts, plan)
        if failures or broken:
            raise AirflowFailException("; ".join([*broken, describe_failures(failures)]).strip("; "))

    # dbt: one `dbt run` of the whole project, then one `dbt test` (tests after all models: a failing data
    # test does not keep the marts from being built, and validate still reports on them). Cosmos's per-model
    # tasks (one dbt invocation and one task process per model, ~40) cost two thirds of an hourly run; one
    # run per layer (4 + 1 tasks) still spent ~5 s per task on start-up and parsing. `stratpos bench hourly`
    # after 2 days of 30 strategies x 10 symbols: the dbt tasks 45.3 s per layer, 32.7 s as these two, and
    # the whole dag.test() 74.7 s -> 58.5 s. dbt's own threads run independent models in parallel.
    profile = ProfileConfig(
        profile_name="stratpos",
        target_name="mysql" if TARGET == "mysql" else "duckdb",
        profiles_yml_filepath=PROJECT_DIR / "profiles.yml",
    )
    dbt_args = {
        "project_dir": PROJECT_DIR,
        "profile_config": profile,
        "invocation_mode": InvocationMode.DBT_RUNNER,
        "install_deps": False,
        # dbt runs from a temporary copy of the project: give it the warehouse with absolute paths (no
        # secrets: Airflow stores and renders operator env; the password comes from the worker's environment)
        "env": SETTINGS.to_env(warehouse_only=True, secrets=False),
    }
    with TaskGroup("dbt", tooltip="dbt run of every model, then dbt test") as dbt:
        chain(
            DbtRunLocalOperator(task_id="dbt_project_run", outlets=[MARTS], **dbt_args),
            DbtTestLocalOperator(task_id="dbt_project_test", outlets=[MARTS], **dbt_args),
        )

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

    accounts = list_accounts()
    ingest_nats() >> accounts  # signals from the bus first: their symbols are discovered in this run
    plan = symbol_plan(discover_symbols.expand(account=accounts))
    loaded = [ingest_account_income.expand(account=accounts), ingest_signals(), ingest_symbol.expand(target=plan)]
    snapshot = snapshot_positions.partial(accounts=accounts, plan=plan).expand(account=accounts)
    prices = ingest_klines.partial(accounts=accounts, plan=plan).expand(account=accounts)
    ingested = accounts_ingested(accounts, plan)
    loaded >> snapshot >> ingested >> dbt >> validate()
    loaded >> prices >> ingested
    ingested >> check_accounts(accounts, plan)


stratpos_hourly()
