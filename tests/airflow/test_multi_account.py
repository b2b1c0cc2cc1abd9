"""Several Binance accounts through one deployment (issue 12, SPEC §2, §8).

The fast tests check how accounts are configured (``STRATPOS_ACCOUNTS``, keys per account from variables or
the Airflow connection ``binance_<account>``), how a failed account is told from the task states of a run,
and the size of the shared request-weight pool.

The DAG test serves two paper accounts, each with its own key, on two fake Binance APIs (two ports), plus a
third account whose key was revoked, and runs ``stratpos_hourly`` once with ``dag.test()`` on DuckDB: only
the third account's tasks fail (its snapshot and klines are skipped), the two others are read, dbt and
validate run, each account's ``strategy_positions`` equal its own ground truth, and the run ends failed,
naming the failed account.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from ingestion.binance_client import BinanceIngestError
from sandbox.generator import DEFAULT_START, GenerateConfig, generate
from sandbox.server import SandboxServer, ServerConfig
from stratpos import pipeline
from stratpos.core.settings import ConfigError, Settings, load_settings
from stratpos.core.warehouse import fetch_rows
from tests.airflow.conftest import SINCE, airflow_env
from tests.airflow.helpers import errors_in, run_child, stratpos_env
from tests.dbt.truth import expected_rows, normalise, truth_columns

ACCOUNTS = {"desk_a": 21, "desk_b": 22}  # account id -> generator seed
EXCHANGE_TABLES = ("accounts", "futures_trades", "futures_orders", "income", "position_snapshots", "balance_snapshots")


# ----------------------------------------------------------------------------- configuration (fast)
def test_no_accounts_setting_is_one_default_account():
    assert pipeline.configured_accounts(load_settings({})) == ["default"]
    both = load_settings({"STRATPOS_ACCOUNTS": " desk_a, desk_b ,"})
    assert pipeline.configured_accounts(both) == ["desk_a", "desk_b"]


@pytest.mark.parametrize("value", ["Desk_A", "desk-a", "a" * 33, "desk_a,desk_a"])
def test_bad_account_lists_are_refused_in_one_line(value):
    with pytest.raises(ConfigError, match="STRATPOS_ACCOUNTS") as err:
        load_settings({"STRATPOS_ACCOUNTS": value})
    assert "\n" not in str(err.value)


def test_each_account_has_its_own_key_from_variables_or_its_connection():
    env = {
        "BINANCE_API_KEY_DESK_A": "key-a-123",
        "BINANCE_API_SECRET_DESK_A": "secret-a-123",
        # another account on a custom host (its Airflow connection binance_desk_b is the DAG test's way)
        "BINANCE_API_KEY_DESK_B": "key-b-456",
        "BINANCE_API_SECRET_DESK_B": "secret-b-456",
        "STRATPOS_BINANCE_BASE_URL_DESK_B": "http://127.0.0.1:9",
        "STRATPOS_BINANCE_ENDPOINT_DESK_B": "custom",
        # the single-account variables are not any named account's
        "BINANCE_API_KEY": "key-default-789",
        "BINANCE_API_SECRET": "secret-default-789",
    }
    a = pipeline.account_credentials("desk_a", env)
    assert (a.api_key, a.api_secret, a.base_url, a.endpoint) == ("key-a-123", "secret-a-123", None, "binance")
    b = pipeline.account_credentials("desk_b", env)
    assert (b.api_key, b.base_url, b.endpoint) == ("key-b-456", "http://127.0.0.1:9", "custom")
    default = pipeline.account_credentials("default", env)
    assert default.api_key == "key-default-789"
    # no key at all: the default account reads the paper exchange, as a single-account deployment did
    assert pipeline.account_credentials("default", {}).endpoint == "sandbox"


def test_a_named_account_without_a_key_is_an_error_not_the_sandbox():
    with pytest.raises(ConfigError, match=r"account desk_c: no Binance key .*binance_desk_c"):
        pipeline.account_credentials("desk_c", {"BINANCE_API_KEY": "key-default-789", "BINANCE_API_SECRET": "x" * 8})


def test_a_named_accounts_key_goes_to_another_host_only_with_the_opt_in():
    env = {
        "BINANCE_API_KEY_DESK_A": "key-a-123",
        "BINANCE_API_SECRET_DESK_A": "secret-a-123",
        "STRATPOS_BINANCE_BASE_URL_DESK_A": "http://127.0.0.1:9",
    }
    with pytest.raises(BinanceIngestError, match="refusing to send the Binance API key"):
        pipeline.account_credentials("desk_a", env)
    creds = pipeline.account_credentials("desk_a", {**env, "STRATPOS_BINANCE_ENDPOINT_DESK_A": "custom"})
    assert (creds.base_url, creds.endpoint) == ("http://127.0.0.1:9", "custom")


def test_failed_accounts_are_told_apart_by_map_index():
    accounts = ["desk_a", "desk_b"]
    plan = [
        {"account": "desk_a", "symbol": "BTCUSDT"},
        {"account": "desk_b", "symbol": "BTCUSDT"},
        {"account": "desk_b", "symbol": "ETHUSDT"},
    ]
    states = {
        "discover_symbols_0": "success",
        "discover_symbols_1": "success",
        "ingest_account_income_0": "success",
        "ingest_account_income_1": "success",
        "ingest_symbol_0": "success",
        "ingest_symbol_1": "success",
        "ingest_symbol_2": "failed",
        "snapshot_positions_1": "skipped",
        "ingest_signals": "success",
    }
    assert pipeline.failed_accounts(states, accounts, plan) == {"desk_b": ["ingest_symbol[desk_b:ETHUSDT] failed"]}
    states["ingest_account_income_0"] = "upstream_failed"
    failures = pipeline.failed_accounts(states, accounts, plan)
    assert failures == {
        "desk_a": ["ingest_account_income[desk_a] upstream_failed"],
        "desk_b": ["ingest_symbol[desk_b:ETHUSDT] failed"],
    }
    assert pipeline.describe_failures(failures) == (
        "account desk_a: ingest_account_income[desk_a] upstream_failed; "
        "account desk_b: ingest_symbol[desk_b:ETHUSDT] failed"
    )
    assert pipeline.symbol_plan([[plan[0]], None, plan[1:]]) == plan


def test_the_pool_keeps_concurrent_requests_under_binances_weight_limit():
    # every task may send one request past the 80 % budget before it sees the IP's used weight; the pool
    # admits tasks whose heaviest requests together fit in the rest of the limit
    headroom = pipeline.REQUEST_WEIGHT_LIMIT_1M - int(pipeline.REQUEST_WEIGHT_LIMIT_1M * pipeline.BUDGET_FRACTION)
    assert pipeline.BINANCE_POOL_SLOTS * pipeline.SLOT_WEIGHT <= headroom == 480
    for task, weight in pipeline.TASK_MAX_WEIGHT.items():
        assert pipeline.pool_slots(task) * pipeline.SLOT_WEIGHT >= weight, task
    assert pipeline.pool_slots("ingest_account_income") == 6 and pipeline.pool_slots("ingest_symbol") == 1


# ----------------------------------------------------------------------------- two accounts through the DAG
def _prefix_strategies(replay: Path, prefix: str) -> None:
    """Rename the account's strategies (and so its signal, client order and position ids): SPEC §3.1 wants
    signal ids unique, and the generator names the strategies of every account alike."""
    names = {json.loads(line)["strategy_id"] for line in (replay / "signals.jsonl").read_text().splitlines()}
    pattern = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, sorted(names))) + r")(?![A-Za-z])")
    for path in replay.glob("*.jsonl"):
        path.write_text(pattern.sub(lambda m: prefix + m[1], path.read_text()))


@pytest.fixture(scope="module")
def desks(tmp_path_factory) -> dict[str, Path]:
    """Two small paper accounts (1 day, 2 strategies, BTCUSDT + ETHUSDT), desk_b's ids prefixed.

    Each generated account lives in its own simulated market, with its own BNBUSDT price path; the real
    market has one, and ``raw.klines`` (public data) holds one price per minute. So desk_b trades the day
    after desk_a: the minutes whose BNB commission is converted never overlap.
    """
    out = {}
    for day, (account, seed) in enumerate(ACCOUNTS.items()):
        replay = tmp_path_factory.mktemp(account)
        generate(
            GenerateConfig(
                out=replay,
                days=1,
                strategies=2,
                symbols=("BTCUSDT", "ETHUSDT"),
                seed=seed,
                account_id=account,
                start=DEFAULT_START + timedelta(days=day),
            )
        )
        assert not (replay / "order_links.jsonl").exists(), "explicit order links would need loading first"
        out[account] = replay
    _prefix_strategies(out["desk_b"], "b")
    ids = [{json.loads(x)["signal_id"] for x in (r / "signals.jsonl").read_text().splitlines()} for r in out.values()]
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    minutes = [{json.loads(x)["kline"][0] for x in (r / "klines.jsonl").read_text().splitlines()} for r in out.values()]
    assert not minutes[0] & minutes[1]
    return out


@pytest.fixture(scope="module")
def servers(desks):
    """Each account on its own fake Binance API, with its own key."""
    logging.getLogger("sandbox.server").setLevel(logging.WARNING)
    started = {
        account: SandboxServer(
            replay,
            config=ServerConfig(api_key=f"key-{account}", api_secret=f"secret-{account}", weight_limit_1m=1_000_000),
        )
        for account, replay in desks.items()
    }
    for server in started.values():
        server.start()
    yield {account: server.url for account, server in started.items()}
    for server in started.values():
        server.stop()


def _connection(account: str, url: str, key: str | None = None) -> str:
    return json.dumps(
        {
            "conn_type": "generic",
            "login": key or f"key-{account}",
            "password": f"secret-{account}",
            "extra": {"base_url": url, "endpoint": "custom"},
        }
    )


def _diff(settings: Settings, account: str, replay: Path) -> list[str]:
    """Differences between the account's rows of marts.strategy_positions and its ground truth."""
    columns = truth_columns(replay)
    expected = expected_rows(replay)
    rows = fetch_rows(settings, "marts", "strategy_positions")
    actual = {r["strategy_position_id"]: normalise(r, columns) for r in rows if r["account_id"] == account}
    problems = [f"missing {k}" for k in sorted(set(expected) - set(actual))]
    problems += [f"unexpected {k}" for k in sorted(set(actual) - set(expected))]
    for key in sorted(set(expected) & set(actual)):
        problems += [
            f"{key}.{c}: expected {expected[key][c]!r}, got {actual[key][c]!r}"
            for c in expected[key]
            if expected[key][c] != actual[key][c]
        ]
    return problems[:20]


def _raw_accounts(settings: Settings) -> dict[str, dict[str, int]]:
    """Rows per account in every raw table of the exchange (each row carries its account id)."""
    out: dict[str, dict[str, int]] = {}
    for table in EXCHANGE_TABLES:
        for row in fetch_rows(settings, "raw", table):
            out.setdefault(table, {}).setdefault(row["account_id"], 0)
            out[table][row["account_id"]] += 1
    return out


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


@pytest.mark.timeout(1200)  # one whole DAG run (about 60 tasks) on a loaded machine
def test_two_accounts_through_one_dag_run_and_a_bad_key_fails_only_its_account(tmp_path, airflow_home, desks, servers):
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "warehouse.duckdb")
    landing = tmp_path / "landing"
    landing.mkdir()
    for account, replay in desks.items():
        shutil.copy(replay / "signals.jsonl", landing / f"signals_{account}.jsonl")
    env = airflow_env(
        airflow_home,
        **stratpos_env(settings),
        STRATPOS_SIGNALS_LANDING=str(landing),
        # desk_c sits between the others, so its map index is neither the first nor the last
        STRATPOS_ACCOUNTS="desk_a,desk_c,desk_b",
        AIRFLOW_CONN_BINANCE_DESK_A=_connection("desk_a", servers["desk_a"]),
        AIRFLOW_CONN_BINANCE_DESK_B=_connection("desk_b", servers["desk_b"]),
        # a revoked key: the exchange answers -2015 (a ban would fail the same tasks)
        AIRFLOW_CONN_BINANCE_DESK_C=_connection("desk_c", servers["desk_a"], key="key-revoked"),
    )
    result, log = run_child("test", env, tmp_path, SINCE, timeout=1200)
    states = result["tasks"]
    assert result["state"] == "failed", errors_in(log)
    desk_c = {t: s for t, s in states.items() if t.endswith("[1]") and not t.startswith("ingest_symbol")}
    assert desk_c == {
        "discover_symbols[1]": "failed",
        "ingest_account_income[1]": "failed",
        "snapshot_positions[1]": "skipped",
        "ingest_klines[1]": "skipped",
    }, states
    assert states["check_accounts"] == "failed"
    healthy = {t: s for t, s in states.items() if t not in desk_c and t != "check_accounts"}
    assert sum(t.startswith("ingest_symbol[") for t in healthy) == 4, states  # 2 symbols each of desk_a, desk_b
    assert {"dbt.dbt_project_test", "validate", "accounts_ingested", "snapshot_positions[2]"} <= set(healthy)
    not_ok = {t: s for t, s in healthy.items() if s != "success"}
    assert not not_ok, f"{not_ok}\n{errors_in(log)}"
    text = log.read_text(encoding="utf-8", errors="replace")
    told = [ln for ln in text.splitlines() if "account desk_c: discover_symbols[desk_c] failed" in ln]
    assert told and not any("account desk_a" in ln or "account desk_b" in ln for ln in told), errors_in(log)
    assert "key-revoked" not in text and "secret-desk_c" not in text  # the key is never logged

    raw = _raw_accounts(settings)
    for table, counts in raw.items():
        assert set(counts) == set(ACCOUNTS), (table, counts)  # every exchange table holds both accounts' rows
    for account, replay in desks.items():
        assert raw["futures_trades"][account] == _lines(replay / "futures_trades.jsonl"), account
        assert _diff(settings, account, replay) == [], account


def test_stratpos_run_reads_every_account_and_names_the_failed_one(duckdb_settings, servers, desks, monkeypatch):
    """``ingest_exchange_all`` (``stratpos run``) goes on past a refused key and raises at the end."""
    monkeypatch.setenv("BINANCE_API_KEY_DESK_A", "key-revoked")
    monkeypatch.setenv("BINANCE_API_SECRET_DESK_A", "secret-desk_a")
    for account in ACCOUNTS:
        monkeypatch.setenv(f"STRATPOS_BINANCE_BASE_URL_{account.upper()}", servers[account])
        monkeypatch.setenv(f"STRATPOS_BINANCE_ENDPOINT_{account.upper()}", "custom")
    monkeypatch.setenv("BINANCE_API_KEY_DESK_B", "key-desk_b")
    monkeypatch.setenv("BINANCE_API_SECRET_DESK_B", "secret-desk_b")
    with pytest.raises(pipeline.AccountIngestionError, match=r"^1 of 2 Binance accounts failed .*desk_a: ") as err:
        pipeline.ingest_exchange_all(duckdb_settings, since_ms=0, accounts=["desk_a", "desk_b"])
    assert "\n" not in str(err.value) and "key-revoked" not in str(err.value)
    raw = _raw_accounts(duckdb_settings)
    assert raw["futures_trades"] == {"desk_b": _lines(desks["desk_b"] / "futures_trades.jsonl")}
