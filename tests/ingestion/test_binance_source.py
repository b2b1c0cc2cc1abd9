"""Binance ingestion (SPEC §3.2, §3.5, §9) against the fake exchange, through the real python-binance client.

No mocks: a :class:`SandboxServer` serves a generated paper account on loopback and ``ingest_binance``
reads it with python-binance. The replay files the server serves are the reference: loaded with the
replay loader they give the raw rows a complete Binance ingest must reproduce, column by column.
Retry waits and budget sleeps go through an injected ``sleep`` so the suite stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ingestion.batch import Batch, new_run_id
from ingestion.binance_client import (
    SANDBOX_API_KEY,
    SANDBOX_BASE_URL,
    BinanceApi,
    BinanceIngestError,
    RetryPolicy,
    build_client,
    resolve_credentials,
    scrub,
)
from ingestion.binance_source import FINAL_ALGO_STATUSES, FINAL_ORDER_STATUSES, ingest_binance
from ingestion.replay import load_replay
from ingestion.schema import ALL_TABLES, AUDIT_TABLES, RAW_TABLES
from ingestion.store import RawStore
from sandbox import server as sandbox_server
from sandbox.generator import GenerateConfig, generate
from sandbox.server import SandboxServer, ServerConfig, make_client
from stratpos.core.settings import Settings

DAY = 86_400_000
START = datetime(2026, 1, 5, tzinfo=UTC)
SINCE = int(START.timestamp() * 1000)
SYMBOLS = ("BTCUSDT", "ETHUSDT")
COMPARED = ("futures_trades", "futures_orders", "futures_algo_orders", "income", "symbols")
LINEAGE = {"payload", "payload_hash", "source", "run_id", "loaded_at"}
PAGE = 100  # small pages so that every source pages several times on a 2-day account
BATCH = 250  # and commits several batches


# ----------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def account_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("binance") / "acct"
    generate(GenerateConfig(out=out, days=2, strategies=3, symbols=SYMBOLS, start=START, seed=42))
    return out


def _jsonl(directory: Path, name: str) -> list[dict]:
    with open(directory / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def files(account_dir: Path) -> dict[str, list[dict]]:
    names = ("futures_trades", "futures_orders", "futures_algo_orders", "income", "position_risk", "symbols")
    return {n: _jsonl(account_dir, f"{n}.jsonl") for n in names}


@pytest.fixture(scope="module")
def data_end(files) -> int:
    times = [r["time"] for r in files["futures_trades"] + files["income"]]
    times += [r["updateTime"] for r in files["futures_orders"] + files["futures_algo_orders"]]
    times += [r["snapshotTime"] for r in files["position_risk"]]
    return max(times)


def table_rows(settings: Settings, name: str, *, lineage: bool = False) -> set[tuple]:
    cols = [c for c in ALL_TABLES[name].column_names if lineage or c not in LINEAGE]
    with RawStore(settings) as store:
        rows = store.fetchall(f"select {', '.join(store.q(c) for c in cols)} from {store.table(name)}")
    return {tuple(int(v) if isinstance(v, bool) else v for v in r) for r in rows}


@pytest.fixture(scope="module")
def expected(account_dir: Path, tmp_path_factory) -> dict[str, set[tuple]]:
    """The raw rows of the replay files, loaded by the replay loader."""
    settings = Settings(target="duckdb", duckdb_path=tmp_path_factory.mktemp("replay") / "replay.duckdb")
    load_replay(account_dir, settings)
    return {name: table_rows(settings, name) for name in (*COMPARED, "klines")}


def needed_klines(files) -> set[tuple[str, int]]:
    """(pair, minute) of every fill whose commission is paid in another asset than its symbol's margin asset."""
    margin = {s["symbol"]: s.get("marginAsset") or s["quoteAsset"] for s in files["symbols"]}
    return {
        (t["commissionAsset"] + margin[t["symbol"]], t["time"] - t["time"] % 60_000)
        for t in files["futures_trades"]
        if t["commissionAsset"] != margin[t["symbol"]] and Decimal(t["commission"]) != 0
    }


@pytest.fixture
def server(account_dir: Path):
    with SandboxServer(account_dir, config=ServerConfig(weight_limit_1m=1_000_000)) as srv:
        yield srv


def make_api(srv: SandboxServer, *, key=None, secret=None, timeout=0.3, attempts=4, **kw) -> BinanceApi:
    cfg = srv.config
    client = make_client(srv.url, key or cfg.api_key, secret or cfg.api_secret, requests_params={"timeout": timeout})
    kw.setdefault("sleep", lambda s: None)
    return BinanceApi(client, retry=RetryPolicy(attempts=attempts, base_wait=0.001, max_wait=0.01), **kw)


def ingest(settings: Settings, api: BinanceApi, end: int, **kw):
    kw.setdefault("since_ms", SINCE)
    kw.setdefault("until_ms", end + DAY)
    kw.setdefault("page_limit", PAGE)
    kw.setdefault("batch_size", BATCH)
    stats = ingest_binance(settings, client=api, **kw)
    assert all(s.balanced for s in stats), stats
    return {s.source: s for s in stats}


def watermarks(settings: Settings) -> dict[str, str]:
    with RawStore(settings) as store:
        return store.watermarks("binance:")


def audit(settings: Settings, run_id: str) -> list[tuple]:
    with RawStore(settings) as store:
        ph = "?" if settings.target == "duckdb" else "%s"
        return store.fetchall(
            f"select source, batch_no, status, received, loaded, message from {store.table('ingestion_runs')} "
            f"where run_id = {ph} order by source, batch_no",
            [run_id],
        )


def assert_matches_replay(settings: Settings, files, expected) -> None:
    for name in COMPARED:
        got = table_rows(settings, name)
        assert got == expected[name], f"{name}: {len(got ^ expected[name])} rows differ"
    # klines: exactly the minutes that convert a commission paid in another asset (e.g. BNB), as served
    klines = table_rows(settings, "klines")
    assert klines <= expected["klines"]
    assert {(k[0], k[2]) for k in klines} == needed_klines(files) != set()
    trades = defaultdict(int)
    for r in files["futures_trades"]:
        trades[r["symbol"]] += 1
    with RawStore(settings) as store:
        per_symbol = dict(store.fetchall(f"select symbol, count(*) from {store.table('futures_trades')} group by 1"))
        assert per_symbol == dict(trades)
        assert store.count("income") == len(files["income"])
        # ids are per symbol (SPEC §3.2): the paper exchange reuses the same numbers on every symbol
        assert store.count("futures_orders") == len({(r["symbol"], r["orderId"]) for r in files["futures_orders"]})
        algo_keys = {(r["symbol"], r["algoId"]) for r in files["futures_algo_orders"]}
        assert store.count("futures_algo_orders") == len(algo_keys)
        assert store.fetchall(f"select account_id, position_mode from {store.table('accounts')}") == [
            ("default", "hedge")
        ]


def visible(rows: list[dict], id_field: str, clock: int) -> dict[int, dict]:
    """The latest version of each record visible at ``clock`` (what the exchange shows then)."""
    out: dict[int, dict] = {}
    for r in rows:
        t = r.get("updateTime", r.get("time"))
        if t <= clock and (r[id_field] not in out or t >= out[r[id_field]].get("updateTime", 0)):
            out[r[id_field]] = r
    return out


def expected_watermarks(files, clock: int) -> dict[str, str]:
    out = {}
    income = [r["time"] for r in files["income"] if r["time"] <= clock]
    if income:
        out["binance:default:income"] = str(max(income))
    for symbol in SYMBOLS:
        trades = [r["id"] for r in files["futures_trades"] if r["symbol"] == symbol and r["time"] <= clock]
        if trades:
            out[f"binance:default:trades:{symbol}"] = str(max(trades))
        for name, state, id_field, status, final in (
            ("futures_orders", "orders", "orderId", "status", FINAL_ORDER_STATUSES),
            ("futures_algo_orders", "algo_orders", "algoId", "algoStatus", FINAL_ALGO_STATUSES),
        ):
            seen = visible([r for r in files[name] if r["symbol"] == symbol], id_field, clock)
            if seen:
                open_ids = [i for i, r in seen.items() if r[status] not in final]
                out[f"binance:default:{state}:{symbol}"] = str(min(open_ids) if open_ids else max(seen) + 1)
    return out


# ----------------------------------------------------------------------------- complete, idempotent
def test_full_ingest_matches_replay_and_rerun_loads_nothing(warehouse_settings, server, files, expected, data_end):
    api = make_api(server)
    run_id = new_run_id()
    progress: list[tuple[str, int, int]] = []
    stats = ingest(warehouse_settings, api, data_end, run_id=run_id, progress=lambda *a: progress.append(a))
    assert_matches_replay(warehouse_settings, files, expected)
    assert stats["futures_trades"].loaded == len(files["futures_trades"])
    assert stats["income"].loaded == len(files["income"])
    assert ("symbols", 2, 2) in progress and any(p[0] == "income" for p in progress)
    rows = audit(warehouse_settings, run_id)
    # retention counts back from the paper exchange's data clock (X-Sandbox-Data-Clock), not the wall clock:
    # the account is all within it, so nothing is cut and nothing is noted
    assert [r for r in rows if r[0] == "binance:default:retention"] == []
    assert {r[2] for r in rows} == {"ok"}
    trade_batches = [r for r in rows if r[0] == "binance:default:trades:BTCUSDT"]
    assert len(trade_batches) >= 2  # BATCH < trades of BTCUSDT: several commits, each with its own audit row
    assert sum(r[4] for r in trade_batches) == sum(1 for t in files["futures_trades"] if t["symbol"] == "BTCUSDT")
    marks = watermarks(warehouse_settings)
    # a snapshot is stamped with the exchange's now: the paper exchange stands still at its data clock
    clock = str(server.visible_until)
    assert marks == {
        **expected_watermarks(files, data_end),
        "binance:default:position_risk": clock,
        "binance:default:balances": clock,
    }

    before = {name: table_rows(warehouse_settings, name, lineage=True) for name in RAW_TABLES}
    snapshots = len(before["position_snapshots"])
    # the same instant read twice is the same snapshot: nothing new
    assert all(s.loaded == 0 for k, s in ingest(warehouse_settings, api, data_end).items() if k != "income")
    assert table_rows(warehouse_settings, "balance_snapshots", lineage=True) == before["balance_snapshots"]
    server.set_visible_until(server.visible_until + 60_000)  # a minute later, with no new record
    again = ingest(warehouse_settings, api, data_end)
    for kind, s in again.items():
        if kind not in ("position_risk", "balances"):  # snapshots: one more per run
            assert s.loaded == 0 and s.quarantined == 0, s.summary()
    assert again["futures_trades"].received == 0  # incremental by fromId: nothing re-read
    assert again["income"].duplicates > 0  # the lookback re-reads late rows; harmless duplicates
    after = {name: table_rows(warehouse_settings, name, lineage=True) for name in RAW_TABLES}
    for name in RAW_TABLES:
        if name not in ("position_snapshots", "balance_snapshots"):
            assert after[name] == before[name], name
    # each run takes exactly one more positionRisk and one more balance snapshot
    assert before["position_snapshots"] < after["position_snapshots"]
    assert len(after["position_snapshots"]) == 2 * snapshots
    assert before["balance_snapshots"] < after["balance_snapshots"]
    assert len(after["balance_snapshots"]) == 2 * len(before["balance_snapshots"]) > 0


def test_late_arriving_data_is_loaded_exactly_once(warehouse_settings, server, files, expected, data_end):
    api = make_api(server)
    loaded: dict[str, int] = defaultdict(int)
    for clock in (SINCE + (data_end - SINCE) // 3, SINCE + 2 * (data_end - SINCE) // 3, None):
        server.set_visible_until(clock)
        stats = ingest(warehouse_settings, api, data_end)
        assert stats["futures_trades"].duplicates == 0  # trades are never re-read
        for kind, s in stats.items():
            loaded[kind] += s.loaded
        marks = watermarks(warehouse_settings)
        marks.pop("binance:default:position_risk")
        marks.pop("binance:default:balances")
        assert marks == expected_watermarks(files, clock or data_end)
    assert_matches_replay(warehouse_settings, files, expected)
    assert loaded["futures_trades"] == len(files["futures_trades"])
    assert loaded["income"] == len(files["income"])
    # every order loaded once, plus once per status change seen between runs
    assert loaded["futures_orders"] > len({(r["symbol"], r["orderId"]) for r in files["futures_orders"]})


# ----------------------------------------------------------------------------- faults and limits
FAULTS = {
    "http_5xx": {"kind": "http_5xx", "count": 3, "path": "/fapi/v1/userTrades"},
    "timeout": {"kind": "timeout", "count": 2, "delay_seconds": 1.0, "path": "/fapi/v1/allOrders"},
    "malformed": {"kind": "malformed", "count": 3, "path": "/fapi/v1/income"},
    "timestamp": {"kind": "timestamp", "count": 3, "path": "/fapi/v1/allAlgoOrders"},
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faults_are_survived_by_retries(fault, duckdb_settings, server, files, expected, data_end):
    api = make_api(server)
    server.set_faults(FAULTS[fault])
    ingest(duckdb_settings, api, data_end)
    assert server.faults()[0]["fired"] == FAULTS[fault]["count"]
    assert api.stats["retries"] == FAULTS[fault]["count"]
    if fault == "timestamp":
        assert api.stats["time_syncs"] == 1 + 3  # once at start, once per -1021
    assert_matches_replay(duckdb_settings, files, expected)


def test_all_faults_at_once_on_both_targets(warehouse_settings, server, files, expected, data_end):
    api = make_api(server)
    server.set_faults(*FAULTS.values())
    ingest(warehouse_settings, api, data_end)
    assert [f["fired"] for f in server.faults()] == [f["count"] for f in FAULTS.values()]
    assert_matches_replay(warehouse_settings, files, expected)


def test_clock_skew_is_resynced_on_1021(server):
    api = make_api(server)
    api.client.timestamp_offset = -3_600_000  # our clock an hour behind: Binance answers -1021
    assert api.call("futures_account_trades", symbol="BTCUSDT", limit=1)
    assert api.stats["http_400"] == 1 and api.stats["time_syncs"] == 1
    assert abs(api.client.timestamp_offset) < 5_000


def test_429_waits_for_retry_after(account_dir, duckdb_settings, files, expected, data_end):
    config = ServerConfig(weight_limit_1m=40, retry_after_seconds=7, weight_window="rolling")
    with SandboxServer(account_dir, config=config) as srv:
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:  # "waiting" frees the server's budget
            sleeps.append(seconds)
            srv.reset_weight()

        api = make_api(srv, sleep=sleep, weight_limit=1_000_000)  # no budget of our own: run into 429s
        ingest(duckdb_settings, api, data_end)
    assert api.stats["http_429"] > 0
    assert sleeps.count(7.0) == api.stats["http_429"]
    assert_matches_replay(duckdb_settings, files, expected)


def test_weight_budget_waits_for_the_next_minute(account_dir, duckdb_settings, files, expected, data_end):
    config = ServerConfig(weight_limit_1m=200, retry_after_seconds=7, weight_window="rolling")
    with SandboxServer(account_dir, config=config) as srv:
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            srv.reset_weight()

        api = make_api(srv, sleep=sleep, clock=lambda: 1_800_000_015.0)  # 15 s into a minute
        ingest(duckdb_settings, api, data_end)
    assert api.weight_limit == 200  # read from exchangeInfo
    assert api.stats["budget_sleeps"] > 0 and api.stats["http_429"] == 0
    assert sleeps == [pytest.approx(45.05)] * api.stats["budget_sleeps"]
    assert_matches_replay(duckdb_settings, files, expected)


def test_the_limit_is_not_guessed_before_exchange_info_says_it(account_dir):
    """Other processes used most of Binance's default 2,400 this minute, but this server allows 1,000,000:
    prepare() must not wait on the default before exchangeInfo has told the real limit."""
    config = ServerConfig(weight_limit_1m=1_000_000, weight_window="rolling")
    with SandboxServer(account_dir, config=config) as srv:
        sleeps: list[float] = []
        api = make_api(srv, sleep=sleeps.append)
        srv.weights.consume(2_300)  # the IP's weight, used by other tasks this minute
        api.prepare()
        assert api.weight_limit == 1_000_000 and api.used_weight >= 2_300
        api.call("futures_account_trades", symbol="BTCUSDT", limit=1)
    assert sleeps == [] and api.stats["budget_sleeps"] == 0


def test_nothing_is_read_past_the_exchanges_now(duckdb_settings, server):
    """A window ending after the exchange's now (on the paper exchange: months of wall clock after its data)
    reads with the same requests as one ending at that now: no empty 7-day windows."""
    clock = server.visible_until
    ingest(duckdb_settings, make_api(server), clock, until_ms=clock)
    requests = {}
    for name, until in (("at the clock", clock), ("200 days later", clock + 200 * DAY)):
        api = make_api(server)
        ingest(duckdb_settings, api, clock, until_ms=until)
        requests[name] = api.stats["requests"]
    assert requests["200 days later"] == requests["at the clock"]


def test_a_fault_that_never_stops_fails_cleanly(warehouse_settings, server, files, data_end):
    api = make_api(server, attempts=3)
    server.set_visible_until(SINCE + (data_end - SINCE) // 2)
    ingest(warehouse_settings, api, data_end)
    marks = watermarks(warehouse_settings)
    with RawStore(warehouse_settings) as store:
        trades = store.count("futures_trades")
    server.set_visible_until(None)
    server.set_faults(kind="http_5xx", path="/fapi/v1/userTrades")  # every request, forever
    run_id = new_run_id()
    with pytest.raises(BinanceIngestError) as err:
        ingest(warehouse_settings, api, data_end, run_id=run_id)
    message = str(err.value)
    assert "/fapi/v1/userTrades" in message and "BTCUSDT" in message and "gave up after 3 attempts" in message
    assert "503" in message and "signature" not in message and SANDBOX_API_KEY not in message
    assert (err.value.symbol, err.value.status_code, err.value.attempts) == ("BTCUSDT", 503, 3)
    after = watermarks(warehouse_settings)
    for symbol in SYMBOLS:
        key = f"binance:default:trades:{symbol}"
        assert after[key] == marks[key]  # not advanced
    with RawStore(warehouse_settings) as store:
        assert store.count("futures_trades") == trades
    rows = {r[0]: r for r in audit(warehouse_settings, run_id)}
    failed = rows["binance:default:trades:BTCUSDT"]
    assert failed[2] == "failed" and failed[4] == 0 and "gave up" in failed[5]
    assert "binance:default:trades:ETHUSDT" not in rows  # the run stopped there
    assert rows["binance:default:orders:BTCUSDT"][2] == "ok"  # earlier sources of the run stay committed

    server.clear_faults()  # the next run catches up from the watermark
    ingest(warehouse_settings, api, data_end)
    with RawStore(warehouse_settings) as store:
        assert store.count("futures_trades") == len(files["futures_trades"])


def test_non_retryable_error_fails_at_once(server, duckdb_settings, data_end):
    api = make_api(server, key="not-the-key")
    with pytest.raises(BinanceIngestError) as err:
        ingest(duckdb_settings, api, data_end)
    assert err.value.code == -2015 and err.value.attempts == 1 and "gave up" not in str(err.value)
    assert "not-the-key" not in str(err.value)


# ----------------------------------------------------------------------------- symbols, positions, algo
def _load(settings: Settings, kind: str, objects: list[dict]) -> None:
    batch = Batch(kind, "test", "default", new_run_id())
    for obj in objects:
        batch.add_object(obj)
    with RawStore(settings) as store:
        assert batch.commit(store).loaded == len(objects)


def test_symbols_come_from_signals_trades_income_and_positions(duckdb_settings, server, data_end, caplog):
    signal = {"strategy_id": "s1", "action": "hold", "timestamp": SINCE}
    _load(duckdb_settings, "signals", [{**signal, "signal_id": "a1", "symbol": "SOLUSDT"}])
    _load(duckdb_settings, "signals", [{**signal, "signal_id": "a2", "symbol": "FOOUSDT"}])  # unknown to Binance
    run_id = new_run_id()
    caplog.set_level(logging.WARNING)
    ingest(duckdb_settings, make_api(server), data_end, run_id=run_id, symbols=["bnbusdt"])
    sources = {r[0] for r in audit(duckdb_settings, run_id)}
    # asked for: read, or skipped because this paper exchange does not list it (its exchangeInfo comes from
    # the replay's symbols.jsonl, which names only the symbols the account needs)
    skipped = {m.split()[2].rstrip(":") for m in caplog.messages if m.startswith("skipping symbol") and "-1121" in m}
    read = {s.rsplit(":", 1)[1] for s in sources if s.startswith("binance:default:trades:")}
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"):  # income/positions, signals, argument
        assert symbol in read | skipped, symbol
    assert {"BTCUSDT", "ETHUSDT"} <= read
    assert not any("FOOUSDT" in s for s in sources)
    assert any("skipping symbol FOOUSDT" in m and "-1121" in m for m in caplog.messages)


def test_flat_keys_get_explicit_zero_rows(duckdb_settings, server, data_end, files):
    trade = dict(files["futures_trades"][0], symbol="BNBUSDT", id=1, positionSide="LONG")
    _load(duckdb_settings, "futures_trades", [trade])  # a key Binance no longer lists: flat now
    ingest(duckdb_settings, make_api(server), data_end)
    with RawStore(duckdb_settings) as store:
        snap = store.fetchall(f"select max(snapshot_time_ms) from {store.table('position_snapshots')}")[0][0]
        rows = store.fetchall(
            f"select symbol, position_side, position_amt, mark_price, payload from "
            f"{store.table('position_snapshots')} where snapshot_time_ms = {snap}"
        )
        keys = set(store.fetchall(f"select distinct symbol, position_side from {store.table('futures_trades')}"))
    by_key = {(r[0], r[1]): r for r in rows}
    assert set(by_key) >= keys  # every key ever traded is in the snapshot, flat or not
    bnb = by_key[("BNBUSDT", "LONG")]
    # a symbol v3 does not list at all has no mark in the answer: NULL (unknown), never a 0 mark
    assert bnb[2] == 0 and bnb[3] is None and json.loads(bnb[4])["stratposFlat"] is True
    served = [r for r in rows if not json.loads(r[4]).get("stratposFlat")]
    assert served and all(abs(r[3]) > 0 for r in served)  # real rows keep their mark price
    assert snap == server.visible_until  # snapshotTime = the exchange's now: the paper exchange's data clock


def test_missing_algo_endpoint_is_skipped(duckdb_settings, server, files, expected, data_end, monkeypatch, caplog):
    monkeypatch.delitem(sandbox_server.ROUTES, ("GET", "/fapi/v1/allAlgoOrders"))
    caplog.set_level(logging.WARNING)
    stats = ingest(duckdb_settings, make_api(server), data_end)
    assert "futures_algo_orders" not in stats
    assert sum(1 for m in caplog.messages if "conditional (algo) orders are not available" in m) == 1
    assert table_rows(duckdb_settings, "futures_trades") == expected["futures_trades"]
    assert table_rows(duckdb_settings, "futures_orders") == expected["futures_orders"]
    assert table_rows(duckdb_settings, "futures_algo_orders") == set()


# ----------------------------------------------------------------------------- secrets and credentials
KEY = "stratposKEY-7f3e9a1c5b2d8e4f6a0b"
SECRET = "stratposSECRET-c4d2e8f1a9b7c3e5d6f0"


def test_secrets_never_reach_logs_errors_or_tables(account_dir, duckdb_settings, data_end, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    # importing dbt (other tests) raises urllib3's level; the signed URLs must be logged here to prove the scrub
    caplog.set_level(logging.DEBUG, logger="urllib3")
    config = ServerConfig(api_key=KEY, api_secret=SECRET, weight_limit_1m=1_000_000)
    texts: list[str] = []
    with SandboxServer(account_dir, config=config) as srv:
        srv.set_faults(*FAULTS.values(), {"kind": "http_5xx", "count": 1})
        ingest(duckdb_settings, make_api(srv), data_end)
        srv.set_faults(kind="timeout", delay_seconds=1.0, path="/fapi/v1/allOrders")  # never stops
        with pytest.raises(BinanceIngestError) as err:
            ingest(duckdb_settings, make_api(srv, attempts=2), data_end)
        texts.append(str(err.value))
        with pytest.raises(BinanceIngestError) as err:
            ingest(duckdb_settings, make_api(srv, secret="another-secret-9a8b"), data_end)
        assert err.value.code == -1022  # bad signature
        texts.append(str(err.value))
    out, errout = capsys.readouterr()
    log_text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    texts += [out, errout, log_text]
    with RawStore(duckdb_settings) as store:
        for name in {**RAW_TABLES, **AUDIT_TABLES}:
            texts.append(repr(store.fetchall(f"select * from {store.table(name)}")))
    everything = "\n".join(texts)
    assert "urllib3" in log_text and "signature=***" in log_text  # signed URLs were logged, and scrubbed
    assert KEY not in everything and SECRET not in everything
    assert not re.search(r"signature=[0-9a-f]{16}", everything)
    assert "GET /fapi/v1/allOrders (symbol BTCUSDT): gave up after 2 attempts: request timed out" in texts[0]


def test_connection_errors_are_retried_and_scrubbed():
    client = make_client("http://127.0.0.1:1", KEY, SECRET, requests_params={"timeout": 0.3})  # nothing listens
    api = BinanceApi(client, retry=RetryPolicy(attempts=2, base_wait=0.001), sleep=lambda s: None)
    with pytest.raises(BinanceIngestError) as err:
        api.call("futures_account_trades", symbol="BTCUSDT", fromId=5)
    message = str(err.value)
    assert message.startswith("GET /fapi/v1/userTrades (symbol BTCUSDT): gave up after 2 attempts: connection failed")
    assert "fromId=5" in message and "signature=***" in message  # the URL is kept, its signature is not
    assert not re.search(r"signature=[0-9a-f]{16}", message) and KEY not in message
    assert api.stats["connection_errors"] == 2


def test_scrub_removes_registered_secrets_and_signatures():
    build_client(resolve_credentials({"BINANCE_API_KEY": "abcd-key-1", "BINANCE_API_SECRET": "abcd-secret-1"}))
    text = "GET /x?symbol=A&signature=deadbeef&timestamp=1 key abcd-key-1 secret abcd-secret-1"
    assert scrub(text) == "GET /x?symbol=A&signature=***&timestamp=1 key *** secret ***"


def test_credentials_env_then_sandbox():
    creds = resolve_credentials({"BINANCE_API_KEY": "k-123456", "BINANCE_API_SECRET": "s-123456"})
    assert (creds.api_key, creds.api_secret, creds.base_url, creds.origin) == ("k-123456", "s-123456", None, "env")
    assert "k-123456" not in repr(creds) and "s-123456" not in repr(creds)
    with pytest.raises(BinanceIngestError, match="BINANCE_API_SECRET is not set"):
        resolve_credentials({"BINANCE_API_KEY": "k-123456"})
    creds = resolve_credentials({})
    assert (creds.api_key, creds.base_url, creds.origin) == (SANDBOX_API_KEY, SANDBOX_BASE_URL, "sandbox")
    creds = resolve_credentials({"STRATPOS_BINANCE_BASE_URL": "http://127.0.0.1:9999/"})
    client = build_client(creds, timeout=1.5)
    assert client.FUTURES_URL == "http://127.0.0.1:9999/fapi" and client._requests_params == {"timeout": 1.5}
    real = build_client(resolve_credentials({"BINANCE_API_KEY": "k-1234", "BINANCE_API_SECRET": "s-1234"}))
    assert real.FUTURES_URL == "https://fapi.binance.com/fapi"  # keys without a base URL: Binance itself


def test_credentials_from_the_airflow_connection(tmp_path):
    """In a child process: importing Airflow configures logging and AIRFLOW_HOME globally."""
    conn = {
        "conn_type": "generic",
        "login": "af-key-123",
        "password": "af-secret-123",
        "extra": {"base_url": "http://h:1"},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BINANCE_", "AIRFLOW", "STRATPOS_BINANCE"))}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW_CONN_BINANCE_DEFAULT=json.dumps(conn))
    code = (
        "from ingestion.binance_client import resolve_credentials as r; c = r(); "
        "print(c.origin, c.base_url, c.endpoint, c.api_key == 'af-key-123', c.api_secret == 'af-secret-123')"
    )
    # a base URL in the connection without the opt-in: the key is not sent there
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "refusing to send the Binance API key (airflow:binance_default) to http://h:1" in (
        done.stderr
    )
    conn["extra"]["endpoint"] = "custom"
    env.update(AIRFLOW_CONN_BINANCE_DEFAULT=json.dumps(conn))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()  # Airflow's logging prints the loud warning to stdout first
    assert "GOES TO http://h:1, NOT TO BINANCE" in done.stdout + done.stderr
    assert lines[-1].split() == ["airflow:binance_default", "http://h:1", "custom", "True", "True"]


# ----------------------------------------------------------------------------- a real account's shapes
def test_a_real_account_replay_loads_whole_and_the_api_agrees(tmp_path):
    """The paper exchange with every real-account shape (SPEC §7: history from mid-position, overlapping
    per-symbol ids, rebates, BNB fees, a quarterly, account income): nothing is quarantined, and reading it
    through the API gives the replay's rows (klines: exactly the minutes that convert a BNB fee)."""
    out = tmp_path / "real"
    generate(GenerateConfig(out=out, days=2, strategies=3, seed=11, real_account=True, start=START))
    replay = Settings(target="duckdb", duckdb_path=tmp_path / "replay.duckdb")
    assert all(s.quarantined == 0 for s in load_replay(out, replay))
    names = ("futures_trades", "futures_orders", "futures_algo_orders", "income", "position_risk", "symbols")
    real_files = {n: _jsonl(out, f"{n}.jsonl") for n in names}
    assert any(Decimal(t["commission"]) < 0 for t in real_files["futures_trades"])  # rebates
    assert any("_" in s["symbol"] for s in real_files["symbols"])  # a quarterly
    end = max(r["time"] for r in real_files["futures_trades"] + real_files["income"])

    api_settings = Settings(target="duckdb", duckdb_path=tmp_path / "api.duckdb")
    account = json.loads((out / "account.json").read_text())["account_id"]
    with SandboxServer(out, config=ServerConfig(weight_limit_1m=1_000_000)) as srv:
        first = min(r["time"] for r in real_files["futures_trades"])
        ingest(api_settings, make_api(srv, timeout=5), end, since_ms=first - DAY, account_id=account)
    for name in ("futures_trades", "futures_orders", "futures_algo_orders", "income", "symbols"):
        assert table_rows(api_settings, name) == table_rows(replay, name), name
    klines = table_rows(api_settings, "klines")
    assert klines <= table_rows(replay, "klines")
    assert {(k[0], k[2]) for k in klines} == needed_klines(real_files) != set()
    assert table_rows(api_settings, "quarantine") == set()
