"""The pipeline's steps as plain functions: the CLI (`stratpos run`) and the Airflow DAG call these.

Each step takes the SPEC §2 settings, does one thing, and returns a small JSON-able
summary (counts, not data) — what Airflow passes through XCom.

Several Binance accounts (sub-accounts per desk or per strategy family) are read by one deployment:
``STRATPOS_ACCOUNTS`` lists their ids (:func:`configured_accounts`); each account's key comes from
``BINANCE_API_KEY_<ACCOUNT>`` / ``BINANCE_API_SECRET_<ACCOUNT>`` or from the Airflow connection
``binance_<account>`` (:func:`account_credentials`), and every raw row it loads carries its id. Without
``STRATPOS_ACCOUNTS`` there is one account, ``default``, read as before (``BINANCE_API_KEY``, the
connection ``binance_default``, else the sandbox).

All tasks of one IP share Binance's request-weight budget: :data:`BINANCE_POOL` and
:func:`pool_slots` size an Airflow pool so that the ingestion tasks running together stay under it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from stratpos.core.errors import StratposError
from stratpos.core.settings import ConfigError, Settings

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- accounts
DEFAULT_ACCOUNT = "default"
# an account id names the Airflow connection binance_<account> and the variables ..._<ACCOUNT>: lower case
# letters, digits and _ keep both unambiguous (Airflow looks connections up as AIRFLOW_CONN_<CONN_ID upper>)
_ACCOUNT_ID = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")


class AccountIngestionError(StratposError, RuntimeError):
    """One or more accounts could not be read; the others were. The message names each account and why
    (the CLI prints it as one line)."""


def configured_accounts(settings: Settings | None = None) -> list[str]:
    """The account ids to read: the setting ``accounts`` (``STRATPOS_ACCOUNTS``, comma-separated, validated by
    the settings), else ``["default"]``."""
    if settings is None:
        from stratpos.core.settings import load_settings

        settings = load_settings()
    return list(getattr(settings, "accounts", ()) or ()) or [DEFAULT_ACCOUNT]


def account_credentials(account: str, env: Mapping[str, str] | None = None):
    """The :class:`~ingestion.binance_client.BinanceCredentials` of one account.

    ``default``: as a single-account deployment always did (``BINANCE_API_KEY``/``_SECRET``, the Airflow
    connection ``binance_default``, else the paper exchange). Any other account ``desk_a``:
    ``BINANCE_API_KEY_DESK_A`` / ``BINANCE_API_SECRET_DESK_A`` (with ``STRATPOS_BINANCE_BASE_URL_DESK_A`` and
    ``STRATPOS_BINANCE_ENDPOINT_DESK_A`` for a testnet/custom host), else the Airflow connection
    ``binance_desk_a`` (login = key, password = secret, extra ``{"base_url": …, "endpoint": "testnet|custom"}``).
    A named account never falls back to the sandbox: without a key it is an error naming both places.
    """
    from ingestion.binance_client import (
        ENV_ALLOW_TRADING_KEY,
        ENV_API_KEY,
        ENV_API_SECRET,
        ENV_BASE_URL,
        ENV_ENDPOINT,
        resolve_credentials,
    )

    env = os.environ if env is None else env
    if account == DEFAULT_ACCOUNT:
        return resolve_credentials(env)
    if not _ACCOUNT_ID.match(account):
        raise ConfigError(f"{account!r} is not an account id (lower-case letters, digits, _)")
    suffix = account.upper()
    conn_id = f"binance_{account}"
    own = {
        name: env.get(f"{name}_{suffix}", "")
        for name in (ENV_API_KEY, ENV_API_SECRET, ENV_BASE_URL, ENV_ENDPOINT, ENV_ALLOW_TRADING_KEY)
    }
    own[ENV_ALLOW_TRADING_KEY] = own[ENV_ALLOW_TRADING_KEY] or env.get(ENV_ALLOW_TRADING_KEY, "")
    conn_var = f"AIRFLOW_CONN_{conn_id.upper()}"
    if conn_var in env:
        own[conn_var] = env[conn_var]
    creds = resolve_credentials(own, conn_id=conn_id)
    if not creds.real_key:
        raise ConfigError(
            f"account {account}: no Binance key (set {ENV_API_KEY}_{suffix} and {ENV_API_SECRET}_{suffix}, "
            f"or the Airflow connection {conn_id})"
        )
    return creds


def account_api(account: str, env: Mapping[str, str] | None = None):
    """The python-binance API (retries, weight budget, key check) of one account."""
    from ingestion.binance_client import BinanceApi

    return BinanceApi.for_credentials(account_credentials(account, env))


def _account_id(account: str | None) -> str:
    return account or DEFAULT_ACCOUNT


# ----------------------------------------------------------------------------- the shared weight budget
# Binance limits request weight per IP, not per key ("The limits on the API are based on the IPs, not the API
# keys", USD-M futures General Info, Limits); GET /fapi/v1/exchangeInfo's rateLimits carry
# {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400} for USD-M.
# Every task's BinanceApi reads the IP's used weight (X-MBX-USED-WEIGHT-1M) from each answer and waits for the
# next minute once BUDGET_FRACTION of the limit is used; tasks running side by side can each send at most one
# request past that point before they see it. So the pool keeps the heaviest requests of the tasks running
# together within the rest of the limit: LIMIT - BUDGET = 480 weight, in slots of SLOT_WEIGHT.
REQUEST_WEIGHT_LIMIT_1M = 2400
BUDGET_FRACTION = 0.8  # BinanceApi's default budget_fraction
SLOT_WEIGHT = 5  # the lightest request ingestion pages with (allOrders, userTrades, positionRisk: 5)
BINANCE_POOL = "binance_api"
BINANCE_POOL_SLOTS = (REQUEST_WEIGHT_LIMIT_1M - int(REQUEST_WEIGHT_LIMIT_1M * BUDGET_FRACTION)) // SLOT_WEIGHT
# the heaviest request of each ingestion step (weights as Binance documents them, see README)
TASK_MAX_WEIGHT = {
    "discover_symbols": 5,  # positionRisk v3 (time and exchangeInfo: 1)
    "ingest_account_income": 30,  # positionSide/dual 30, income 30
    "ingest_symbol": 5,  # allOrders, allAlgoOrders, userTrades: 5 each
    "snapshot_positions": 5,  # positionRisk v3, balance v3: 5 each
    "ingest_klines": 10,  # klines with limit 1500: 10
}


def pool_slots(task: str) -> int:
    """Slots of :data:`BINANCE_POOL` one ingestion task holds: its heaviest request in :data:`SLOT_WEIGHT` units."""
    return -(-TASK_MAX_WEIGHT[task] // SLOT_WEIGHT)


# ----------------------------------------------------------------------------- which account failed
ACCOUNT_TASKS = ("discover_symbols", "ingest_account_income", "ingest_symbol", "snapshot_positions", "ingest_klines")
FAILED_STATES = frozenset({"failed", "upstream_failed"})


def failed_accounts(
    states: Mapping[str, str],
    accounts: list[str],
    plan: list[dict] | None,
    tasks: Iterable[str] = ACCOUNT_TASKS,
) -> dict[str, list[str]]:
    """``{account: ["ingest_symbol[desk_b:BTCUSDT] failed", …]}`` for the accounts with a failed task.

    ``states`` maps ``<task_id>_<map_index>`` to a state (Airflow's task states of one run); the tasks are
    mapped over ``accounts`` (index = position), except ``ingest_symbol``, mapped over ``plan``
    (``{"account", "symbol"}`` per index).
    """
    wanted = set(tasks)
    out: dict[str, list[str]] = {}
    for key, state in states.items():
        task, _, index = key.rpartition("_")
        if task not in wanted or not index.isdigit() or state not in FAILED_STATES:
            continue
        i = int(index)
        if task == "ingest_symbol":
            item = (plan or [])[i] if i < len(plan or []) else None
            if item is None:
                continue
            account, label = item["account"], f"{item['account']}:{item['symbol']}"
        else:
            if i >= len(accounts):
                continue
            account = label = accounts[i]
        out.setdefault(account, []).append(f"{task}[{label}] {state}")
    return {a: sorted(v) for a, v in sorted(out.items())}


def describe_failures(failures: Mapping[str, list[str]]) -> str:
    """One line per failed account."""
    return "; ".join(f"account {a}: {', '.join(tasks)}" for a, tasks in failures.items())


def symbol_plan(found: Iterable[Iterable[dict] | None]) -> list[dict]:
    """The per-account discoveries as one list of ``{"account", "symbol"}`` (an account that failed has none)."""
    plan: list[dict] = []
    for items in found:
        plan.extend(items or [])
    return plan


def _summaries(stats) -> list[dict]:
    return [
        {
            "source": s.source,
            "received": s.received,
            "loaded": s.loaded,
            "duplicates": s.duplicates,
            "quarantined": s.quarantined,
            "seconds": round(s.seconds, 2),
        }
        for s in stats
    ]


def discover_symbols(
    settings: Settings, symbols: Iterable[str] | None = None, *, account: str | None = None
) -> list[str]:
    """Symbols the next ingestion of ``account`` reads: configured ∪ seen in income, positions, signals and trades."""
    from ingestion.binance_source import discover_symbols as discover

    configured = list(symbols or []) or list(settings.symbols)
    account_id = _account_id(account)

    def step() -> list[str]:
        return discover(settings, symbols=configured, client=account_api(account_id), account_id=account_id)

    return _for_account(account_id, step)


def discover_account_symbols(
    settings: Settings, symbols: Iterable[str] | None = None, *, account: str | None = None
) -> list[dict]:
    """:func:`discover_symbols` as ``{"account", "symbol"}`` items, what the DAG maps ``ingest_symbol`` over."""
    account_id = _account_id(account)
    return [{"account": account_id, "symbol": s} for s in discover_symbols(settings, symbols, account=account_id)]


def _for_account(account: str, step):
    """Run ``step``; a failure says which account it was (the original error stays the cause)."""
    try:
        return step()
    except Exception as exc:
        if account == DEFAULT_ACCOUNT:
            raise  # a single-account deployment's messages stay as they were
        told = str(exc) if str(exc).startswith(f"account {account}:") else f"account {account}: {exc}"
        raise AccountIngestionError(f"binance {told}") from exc


def ingest_exchange(
    settings: Settings,
    *,
    streams: Iterable[str],
    symbols: Iterable[str] | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    discover: bool = False,
    account: str | None = None,
) -> list[dict]:
    """One part of one account's Binance ingestion: ``streams`` from ``ingestion.binance_source.STREAMS``
    (account, exchange_info, income, per-symbol orders+trades, positions, balances, klines)."""
    from ingestion.binance_source import ingest_binance

    account_id = _account_id(account)

    def step():
        return ingest_binance(
            settings,
            symbols=list(symbols or []),
            since_ms=since_ms,
            until_ms=until_ms,
            streams=tuple(streams),
            discover=discover,
            client=account_api(account_id),
            account_id=account_id,
        )

    return _summaries(_for_account(account_id, step))


def ingest_exchange_all(
    settings: Settings,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    accounts: Iterable[str] | None = None,
) -> list[dict]:
    """The whole Binance ingestion in one process (``stratpos run``): every configured account, every stream,
    symbols discovered. An account that fails does not stop the others; the failures are raised at the end
    (:class:`AccountIngestionError`, one account's own error when it is the only one)."""
    from ingestion.binance_source import STREAMS

    todo = list(accounts) if accounts is not None else configured_accounts(settings)
    stats: list[dict] = []
    failures: dict[str, Exception] = {}
    for account in todo:
        try:
            stats += ingest_exchange(
                settings, streams=STREAMS, since_ms=since_ms, until_ms=until_ms, discover=True, account=account
            )
        except Exception as exc:
            if len(todo) == 1:
                raise
            log.error("binance account %s failed: %s", account, exc)
            failures[account] = exc
    if failures:
        raise AccountIngestionError(
            f"{len(failures)} of {len(todo)} Binance accounts failed (the others were read): "
            + "; ".join(str(e) for e in failures.values())
        )
    return stats


def ingest_signals(settings: Settings, landing: Path | None = None) -> list[dict]:
    """Signal files from the landing folder (``STRATPOS_SIGNALS_LANDING``), each file once."""
    from ingestion.signals import ingest_signal_files

    folder = landing or settings.signals_landing
    if folder is None:
        log.info("no signal landing folder configured (STRATPOS_SIGNALS_LANDING); nothing to read")
        return []
    if not folder.is_dir():
        raise FileNotFoundError(f"signal landing folder {folder} does not exist")
    return _summaries(ingest_signal_files(settings, folder))


def ingest_replay(settings: Settings, directory: Path) -> list[dict]:
    """A replay directory (SPEC §3.4)."""
    from ingestion.replay import load_replay

    return _summaries(load_replay(directory, settings))


def transform(settings: Settings, *, full_refresh: bool = False) -> dict:
    """``dbt build``; raises TransformError when a model or test fails."""
    from stratpos.transform import run_dbt

    result = run_dbt(settings, "build", full_refresh=full_refresh, extra_args=["--quiet"])
    return {"seconds": round(result.seconds, 2), "nodes": len(result.nodes), "summary": result.summary()}


def validate(settings: Settings) -> dict:
    """Reconciliation R1–R9 (SPEC §5); raises when a `fail` check failed, after alerting."""
    from stratpos.validate import run_validation

    report = run_validation(settings)
    report.raise_for_failures()
    return report.as_dict()


def alert_failure(context) -> None:
    """Airflow failure callback: tell the alert channels which task of which run failed."""
    from stratpos.alerts import send_task_failure

    send_task_failure(context)
