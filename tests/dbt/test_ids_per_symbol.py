"""SPEC §3.2/§3.3: order, algo and trade ids are sequences per symbol — every link includes the symbol.

BTCUSDT and ETHUSDT of one account use the same order ids (1001–1004), trade ids (5001–5004)
and algo id (7001), as Binance's per-symbol sequences do. Only the right symbol's order may
link: the take-profit that BTCUSDT's algo order placed (actualOrderId "1002"), an explicit link
naming its symbol, and a symbol-less explicit link matched on its signal's symbol. Expected
numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from stratpos.core.settings import Settings
from stratpos.core.warehouse import drop_schemas
from tests.dbt.binance_shapes import D, Replay, build, by, rows

RECON = ("recon_r1_fill_coverage", "recon_r2_open_quantity", "recon_r3_exchange_positions",
         "recon_r4_episode_realized_pnl", "recon_r5_pnl_identity")  # fmt: skip


def account(out: Path, *, finished: bool) -> Path:
    r = Replay(out, "ids", "hedge")
    r.signal("T1", "algo_tp", "BTCUSDT", "buy", "0.01", at=100)
    r.signal("T2", "linked_sym", "ETHUSDT", "buy", "1", at=100)
    r.signal("T3", "linked_nosym", "BTCUSDT", "sell", "0.02", at=100)
    # T1's entry on BTCUSDT, and a manual ETHUSDT buy with the same order and trade numbers
    r.order("BTCUSDT", 1001, "T1-en", "BUY", "LONG", "0.01", "40000", at=1000)
    r.fill("BTCUSDT", 5001, 1001, "BUY", "LONG", "0.01", "40000", "0", at=1000)
    r.order("ETHUSDT", 1001, "web_e1", "BUY", "LONG", "0.5", "2000", at=1000)
    r.fill("ETHUSDT", 5001, 1001, "BUY", "LONG", "0.5", "2000", "0", at=1000)
    # T1's take-profit through the algo service: TRIGGERED names actualOrderId "1002" on BTCUSDT,
    # FINISHED (latest updateTime) follows; the order it placed has a client id of Binance's own
    r.algo("BTCUSDT", 7001, "T1-tp", "SELL", "LONG", "0.01", "41000", "TRIGGERED", 1002, at=1900)
    if finished:
        r.algo("BTCUSDT", 7001, "T1-tp", "SELL", "LONG", "0.01", "41000", "FINISHED", 1002, at=2100)
    # ETHUSDT's algo order 7001 (same number), never triggered, updated last
    r.algo("ETHUSDT", 7001, "web_sl_e", "SELL", "LONG", "0.5", "1900", "EXPIRED", None, at=2200)
    r.order("BTCUSDT", 1002, "4ttmFWsQ1x0PAn8fXeKZ2b", "SELL", "LONG", "0.01", "41000", at=2000)
    r.fill("BTCUSDT", 5002, 1002, "SELL", "LONG", "0.01", "41000", "10", at=2000)  # (41000 − 40000)·0.01
    r.order("ETHUSDT", 1002, "web_e2", "BUY", "LONG", "0.5", "2010", at=2000)
    r.fill("ETHUSDT", 5002, 1002, "BUY", "LONG", "0.5", "2010", "0", at=2000)
    # explicit link naming its symbol: ETHUSDT order 1003 is T2's entry; BTCUSDT's 1003 is manual
    r.link("T2", "entry", 1003, symbol="ETHUSDT")
    r.order("ETHUSDT", 1003, "x-eth-entry", "BUY", "LONG", "1", "2020", at=3000)
    r.fill("ETHUSDT", 5003, 1003, "BUY", "LONG", "1", "2020", "0", at=3000)
    r.order("BTCUSDT", 1003, "web_b3", "BUY", "LONG", "0.005", "40500", at=3000)
    r.fill("BTCUSDT", 5003, 1003, "BUY", "LONG", "0.005", "40500", "0", at=3000)
    # explicit link without a symbol: order 1004 of T3's symbol (BTCUSDT), not ETHUSDT's 1004
    r.link("T3", "entry", 1004)
    r.order("BTCUSDT", 1004, "y-btc-short", "SELL", "SHORT", "0.02", "40800", at=4000)
    r.fill("BTCUSDT", 5004, 1004, "SELL", "SHORT", "0.02", "40800", "0", at=4000)
    r.order("ETHUSDT", 1004, "web_e4", "SELL", "SHORT", "0.5", "2030", at=4000)
    r.fill("ETHUSDT", 5004, 1004, "SELL", "SHORT", "0.5", "2030", "0", at=4000)
    at = 10_000
    r.position("BTCUSDT", "LONG", "0.005", "40500", "40600", at=at)
    r.position("BTCUSDT", "SHORT", "-0.02", "40800", "40600", at=at)
    r.position("ETHUSDT", "LONG", "2", "2012.5", "2025", at=at)  # (1000 + 1005 + 2020)/2
    r.position("ETHUSDT", "SHORT", "-0.5", "2030", "2025", at=at)
    return r.write()


def links(settings: Settings) -> dict[tuple, tuple]:
    return {
        (r["symbol"], r["order_id"]): (r["link_rule"], r["link_role"], r["strategy_position_id"])
        for r in rows(settings, "intermediate", "int_order_links_resolved")
    }


EXPECTED_LINKS = {
    ("BTCUSDT", 1001): ("convention", "entry", "T1"),
    ("ETHUSDT", 1001): ("none", "unlinked", None),
    ("BTCUSDT", 1002): ("convention_algo", "take_profit", "T1"),
    ("ETHUSDT", 1002): ("none", "unlinked", None),
    ("ETHUSDT", 1003): ("explicit_order_id", "entry", "T2"),
    ("BTCUSDT", 1003): ("none", "unlinked", None),
    ("BTCUSDT", 1004): ("explicit_order_id", "entry", "T3"),
    ("ETHUSDT", 1004): ("none", "unlinked", None),
}


@pytest.fixture(scope="module", params=["duckdb", "mysql"])
def two_runs(request, tmp_path_factory) -> tuple[Settings, dict]:
    """First run while T1's algo order is TRIGGERED, second run once it is FINISHED."""
    if request.param == "duckdb":
        settings = Settings(target="duckdb", duckdb_path=tmp_path_factory.mktemp("wh") / "i.duckdb")
    else:
        mysql = request.getfixturevalue("mysql_available")
        settings = Settings(target="mysql", mysql=mysql, schema_prefix=f"t{uuid.uuid4().hex[:8]}_")
        request.addfinalizer(lambda: drop_schemas(settings))
    tmp = tmp_path_factory.mktemp("ids")
    build(settings, account(tmp / "triggered", finished=False))
    first = links(settings)
    build(settings, account(tmp / "finished", finished=True))
    return settings, first


def test_links_are_per_symbol_while_triggered_and_once_finished(two_runs):
    settings, first = two_runs
    assert first == EXPECTED_LINKS
    assert links(settings) == EXPECTED_LINKS
    algos = {(r["symbol"], r["algo_id"]): (r["algo_status"], r["is_final"], r["actual_order_id"])
             for r in rows(settings, "staging", "stg_binance__algo_orders")}  # fmt: skip
    assert algos == {("BTCUSDT", 7001): ("FINISHED", 1, 1002), ("ETHUSDT", 7001): ("EXPIRED", 1, None)}


def test_strategy_positions_take_only_their_own_symbol(two_runs):
    settings, _ = two_runs
    p = by(settings, "marts", "strategy_positions", "strategy_position_id")
    t1 = p["T1"]  # 0.01 @ 40000, algo take-profit 0.01 @ 41000: (41000 − 40000)·0.01
    assert (t1["symbol"], t1["status"], t1["close_reason"], t1["realized_pnl"]) == (
        "BTCUSDT",
        "closed",
        "take_profit",
        D(10),
    )
    t2 = p["T2"]  # 1 @ 2020 on ETHUSDT only; mark 2025: (2025 − 2020)·1
    assert (t2["symbol"], t2["entry_quantity"], t2["entry_price"], t2["unrealized_pnl"]) == (
        "ETHUSDT",
        D(1),
        D(2020),
        D(5),
    )
    t3 = p["T3"]  # SHORT 0.02 @ 40800 on BTCUSDT; mark 40600: (40600 − 40800)·0.02·(−1)
    assert (t3["symbol"], t3["side"], t3["entry_quantity"], t3["unrealized_pnl"]) == (
        "BTCUSDT",
        "SHORT",
        D("0.02"),
        D(4),
    )
    eth = p["unattributed:ids:ETHUSDT_LONG:1"]  # the manual 0.5 @ 2000 and 0.5 @ 2010: VWAP 2005
    assert (eth["entry_quantity"], eth["entry_price"], eth["exit_quantity"], eth["unrealized_pnl"]) == (
        D(1), D(2005), D(0), D(20),
    )  # fmt: skip
    btc = p["unattributed:ids:BTCUSDT_LONG:2"]  # the manual 0.005 @ 40500: (40600 − 40500)·0.005
    assert (btc["entry_quantity"], btc["unrealized_pnl"]) == (D("0.005"), D("0.5"))
    short = p["unattributed:ids:ETHUSDT_SHORT:1"]  # 0.5 @ 2030: (2025 − 2030)·0.5·(−1)
    assert (short["entry_quantity"], short["unrealized_pnl"]) == (D("0.5"), D("2.5"))
    assert not [k for k in p if k.startswith("unattributed:ids:BTCUSDT_LONG:1")]  # T1 held all of episode 1
    allocs = rows(settings, "marts", "fct_fill_allocations")
    assert sorted((a["symbol"], a["trade_id"], a["strategy_position_id"]) for a in allocs if a["trade_id"] == 5002) == [
        ("BTCUSDT", 5002, "T1"),
        ("ETHUSDT", 5002, "unattributed:ids:ETHUSDT_LONG:1"),
    ]


def test_reconciliation_per_symbol(two_runs):
    settings, _ = two_runs
    for view in RECON:
        assert rows(settings, "audit", view) == [], view
