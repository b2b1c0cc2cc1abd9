"""SPEC §4 on both warehouses: hand-computed scenarios, sandbox ground truth, incremental runs.

Expected numbers in the scenario tests are worked out by hand in the comments, not by
the code under test.
"""

from __future__ import annotations

import logging
from decimal import Decimal as D
from pathlib import Path

import pytest

from ingestion.replay import load_replay
from sandbox.books import Link
from sandbox.generator import GenerateConfig, generate
from sandbox.scenario import Scenario, add_worked_example
from stratpos.core.settings import Settings
from stratpos.transform import run_dbt
from tests.dbt.replay_split import cut_replay
from tests.dbt.truth import diff_against_truth, mart_rows

MARTS = ("fct_fill_allocations", "strategy_positions", "exchange_positions", "position_contributions")


def build(settings: Settings, replay: Path, full_refresh: bool = False) -> None:
    logging.getLogger("ingestion").setLevel(logging.WARNING)
    load_replay(replay, settings)
    run_dbt(settings, "build", full_refresh=full_refresh, extra_args=["--quiet"])


def by_id(settings: Settings, table: str, key: str) -> dict[str, dict]:
    return {r[key]: r for r in mart_rows(settings, table)}


def _canonical(value) -> str | None:
    """One spelling per value across warehouses: MySQL booleans are 0/1, DuckDB's True/False."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, D | float):
        return str(D(str(value)).normalize())
    return str(value)


def snapshot(settings: Settings) -> dict[str, list]:
    """Every mart as sorted rows of exact values (for equality across runs and targets)."""
    out = {}
    for table in MARTS:
        rows = []
        for r in mart_rows(settings, table):
            rows.append(tuple((k, _canonical(v)) for k, v in sorted(r.items())))
        out[table] = sorted(rows, key=repr)
    return out


# --------------------------------------------------------------------------- hand-computed scenarios
@pytest.fixture(scope="module")
def hedge_replay(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hedge-scenarios")
    s = Scenario(out, mode="hedge")
    add_worked_example(s)  # BTCUSDT — SPEC §4.4
    # ETHUSDT — a SHORT with partial entry fills, a partial take-profit, then the stop-loss
    s.signal("S1", "shorty", "ETHUSDT", "sell", "0.5", at=300, price="2001")
    s.trade("S1-en", "ETHUSDT", "SELL", [("0.2", "2000"), ("0.3", "2001")], at=301)
    s.trade("S1-tp", "ETHUSDT", "BUY", ("0.2", "1990"), at=400)
    s.trade("S1-sl", "ETHUSDT", "BUY", ("0.3", "2020"), at=500)
    # SOLUSDT — a liquidation flattens two strategies
    s.signal("LA", "strat_a", "SOLUSDT", "buy", "2", at=600)
    s.trade("LA-en", "SOLUSDT", "BUY", ("2", "100"), at=601)
    s.signal("LB", "strat_b", "SOLUSDT", "buy", "3", at=610)
    s.trade("LB-en", "SOLUSDT", "BUY", ("3", "102"), at=611)
    s.trade("autoclose-1767226300000123", "SOLUSDT", "SELL", ("5", "90"), at=700, position_side="LONG")
    # BNBUSDT — a manual reduce in the UI, then the episode ends with A still holding
    s.signal("MA", "strat_a", "BNBUSDT", "buy", "1", at=800)
    s.trade("MA-en", "BNBUSDT", "BUY", ("1", "300"), at=801)
    s.signal("MB", "strat_b", "BNBUSDT", "buy", "1", at=810)
    s.trade("MB-en", "BNBUSDT", "BUY", ("1", "310"), at=811)
    s.trade("web_manual1", "BNBUSDT", "SELL", ("0.5", "305"), at=820, position_side="LONG")
    s.trade("MB-tp", "BNBUSDT", "SELL", ("1", "320"), at=830)
    s.trade("MA-cl", "BNBUSDT", "SELL", ("0.5", "295"), at=840)
    # XRPUSDT — an over-close: A's close sells more than A bought
    s.signal("OA", "strat_a", "XRPUSDT", "buy", "100", at=900)
    s.trade("OA-en", "XRPUSDT", "BUY", ("100", "0.5"), at=901)
    s.trade("web_manual2", "XRPUSDT", "BUY", ("50", "0.51"), at=902, position_side="LONG")
    s.trade("OA-cl", "XRPUSDT", "SELL", ("120", "0.52"), at=903)
    # DOGEUSDT — explicit order_links: entry by client id, take-profit by order id; stays partial
    s.signal("D1", "legacy", "DOGEUSDT", "buy", "1000", at=1000)
    s.link("D1", "entry", client_order_id="legacy-1")
    s.trade("legacy-1", "DOGEUSDT", "BUY", ("1000", "0.08"), at=1001)
    tp = s.trade(
        "x-777", "DOGEUSDT", "SELL", ("400", "0.09"), at=1002, position_side="LONG", link=Link("D1", "take_profit")
    )
    s.link("D1", "take_profit", order_id=tp)
    # ADAUSDT — an open position with percentage TP/SL
    s.signal("E1", "pct_bot", "ADAUSDT", "buy", "10", at=1100, take_profit_pct="0.02", stop_loss_pct="0.01")
    s.trade("E1-en", "ADAUSDT", "BUY", ("10", "0.5"), at=1101)
    # LINKUSDT — funding shared by signed quantity (A long 3, B short 1)
    s.signal("FA", "strat_a", "LINKUSDT", "buy", "3", at=1200)
    s.trade("FA-en", "LINKUSDT", "BUY", ("3", "15"), at=1201)
    s.signal("FB", "strat_b", "LINKUSDT", "sell", "1", at=1210)
    s.trade("FB-en", "LINKUSDT", "SELL", ("1", "15"), at=1211)
    s.funding("LINKUSDT", "0.0001", "15", at=1300)
    s.finish({"XRPUSDT": "0.53", "DOGEUSDT": "0.085", "ADAUSDT": "0.52", "LINKUSDT": "15"}, at=2000)
    return out


@pytest.fixture(scope="module")
def one_way_replay(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one-way-scenarios")
    s = Scenario(out, mode="one_way")
    s.signal("L", "long_bot", "BTCUSDT", "buy", "0.002", at=0)
    s.trade("L-en", "BTCUSDT", "BUY", ("0.002", "40000"), at=1)
    s.signal("S", "short_bot", "BTCUSDT", "sell", "0.003", at=2)
    s.trade("S-en", "BTCUSDT", "SELL", ("0.003", "41000"), at=3)  # crosses zero: 0.002 closes, 0.001 opens
    s.trade("L-tp", "BTCUSDT", "SELL", ("0.002", "42000"), at=4)
    s.finish({"BTCUSDT": "41500"}, at=10)
    return out


@pytest.fixture(scope="module", params=["duckdb", "mysql"])
def scenario_marts(request, hedge_replay, one_way_replay, tmp_path_factory):
    """Both scenario replays built into one warehouse per target."""
    if request.param == "duckdb":
        settings = Settings(target="duckdb", duckdb_path=tmp_path_factory.mktemp("wh") / "s.duckdb")
    else:
        mysql = request.getfixturevalue("mysql_available")
        import uuid

        from stratpos.core.warehouse import drop_schemas

        settings = Settings(target="mysql", mysql=mysql, schema_prefix=f"t{uuid.uuid4().hex[:8]}_")
        request.addfinalizer(lambda: drop_schemas(settings))
    hedge = settings.with_overrides(schema_prefix=settings.schema_prefix + "h")
    one_way = settings.with_overrides(schema_prefix=settings.schema_prefix + "o")
    if request.param == "mysql":
        from stratpos.core.warehouse import drop_schemas

        request.addfinalizer(lambda: (drop_schemas(hedge), drop_schemas(one_way)))
    build(hedge, hedge_replay)
    build(one_way, one_way_replay)
    return hedge, one_way


def test_worked_example(scenario_marts):
    hedge, _ = scenario_marts
    p = by_id(hedge, "strategy_positions", "strategy_position_id")
    a, b = p["A1"], p["B1"]
    assert (a["realized_pnl"], b["realized_pnl"]) == (D(3), D(6))
    assert a["close_reason"] == b["close_reason"] == "take_profit"
    assert (a["status"], b["status"]) == ("closed", "closed")
    e = by_id(hedge, "exchange_positions", "exchange_position_id")["default:BTCUSDT_LONG:1"]
    # Binance books 2.33333333 + 6.66666667; the average after both entries is 137/3 thousand
    assert e["realized_pnl"] == D(9) and e["status"] == "closed" and e["peak_quantity"] == D("0.003")
    assert e["weighted_avg_price"] == D("45666.666666666666666667")
    assert e["computed_realized_pnl"] == D("9.000000000000000000")
    assert e["contributing_strategies"] == '["strat_a","strat_b"]' and e["total_contributions"] == 2
    c = by_id(hedge, "position_contributions", "strategy_position_id")
    assert (c["A1"]["position_sequence"], c["B1"]["position_sequence"]) == (1, 2)
    assert (c["A1"]["exchange_realized_pnl"], c["B1"]["exchange_realized_pnl"]) == (D("2.33333333"), D("6.66666667"))
    assert (c["A1"]["contribution_pnl"], c["B1"]["contribution_pnl"]) == (D(3), D(6))
    assert (c["B1"]["exchange_quantity_before"], c["B1"]["exchange_quantity_after"]) == (D("0.001"), D("0.003"))


def test_short_with_partial_entries_partial_tp_then_sl(scenario_marts):
    hedge, _ = scenario_marts
    s1 = by_id(hedge, "strategy_positions", "strategy_position_id")["S1"]
    # entry VWAP (0.2·2000 + 0.3·2001)/0.5 = 2000.6; exits 0.2@1990 and 0.3@2020 → VWAP 2008
    assert (s1["side"], s1["entry_price"], s1["exit_price"]) == ("SHORT", D("2000.6"), D(2008))
    # realized = −[(1990 − 2000.6)·0.2 + (2020 − 2000.6)·0.3] = −(−2.12 + 5.82) = −3.70
    assert s1["realized_pnl"] == D("-3.7")
    assert s1["close_reason"] == "stop_loss"
    # taker 0.05 %: (400 + 600.3 + 398 + 606)·0.0005 = 1.00215
    assert s1["fees"] == D("1.00215") and s1["realized_pnl_net"] == D("-4.70215")
    # −3.70 / (2000.6·0.5)·100
    assert s1["realized_pnl_pct"] == D("-0.369889033290012996")


def test_liquidation_flattens_two_strategies(scenario_marts):
    hedge, _ = scenario_marts
    p = by_id(hedge, "strategy_positions", "strategy_position_id")
    assert p["LA"]["close_reason"] == p["LB"]["close_reason"] == "liquidation"
    assert (p["LA"]["realized_pnl"], p["LB"]["realized_pnl"]) == (D(-20), D(-36))  # (90−100)·2, (90−102)·3
    assert "unattributed:default:SOLUSDT_LONG:1" not in p
    allocs = [a for a in mart_rows(hedge, "fct_fill_allocations") if a["symbol"] == "SOLUSDT" and a["is_reallocated"]]
    assert sorted((a["strategy_position_id"], a["quantity"], a["role"]) for a in allocs) == [
        ("LA", D(2), "liquidation"),
        ("LB", D(3), "liquidation"),
    ]


def test_manual_reduce_then_episode_end(scenario_marts):
    hedge, _ = scenario_marts
    p = by_id(hedge, "strategy_positions", "strategy_position_id")
    assert p["MB"]["close_reason"] == "take_profit" and p["MB"]["realized_pnl"] == D(10)
    # A closed 0.5 itself @295 and got the manual 0.5 @305 at the episode end: VWAP 300, PnL 0
    ma = p["MA"]
    assert (ma["status"], ma["close_reason"], ma["exit_price"], ma["realized_pnl"]) == (
        "closed",
        "external",
        D(300),
        D(0),
    )


def test_over_close_goes_to_the_bucket(scenario_marts):
    hedge, _ = scenario_marts
    p = by_id(hedge, "strategy_positions", "strategy_position_id")
    assert p["OA"]["exit_quantity"] == D(100) and p["OA"]["realized_pnl"] == D(2)  # (0.52 − 0.5)·100
    bucket = p["unattributed:default:XRPUSDT_LONG:1"]
    # bucket: +50 @0.51 (manual), −20 @0.52 (over-close) → open 30, realized 0.2, unrealized (0.53−0.51)·30
    assert (bucket["entry_quantity"], bucket["exit_quantity"], bucket["open_quantity"]) == (D(50), D(20), D(30))
    assert (bucket["realized_pnl"], bucket["unrealized_pnl"]) == (D("0.2"), D("0.6"))
    assert bucket["strategy_id"] == "unattributed" and bucket["status"] == "open"
    over = [a for a in mart_rows(hedge, "fct_fill_allocations") if a["is_over_close"]]
    assert [(a["strategy_position_id"], a["quantity"]) for a in over] == [
        ("unattributed:default:XRPUSDT_LONG:1", D(20))
    ]


def test_explicit_links_and_open_partial_positions(scenario_marts):
    hedge, _ = scenario_marts
    p = by_id(hedge, "strategy_positions", "strategy_position_id")
    d1 = p["D1"]
    assert (d1["status"], d1["entry_quantity"], d1["exit_quantity"], d1["open_quantity"]) == (
        "partial",
        D(1000),
        D(400),
        D(600),
    )
    assert d1["realized_pnl"] == D(4) and d1["unrealized_pnl"] == D(3)  # (0.09−0.08)·400, (0.085−0.08)·600
    assert d1["close_reason"] is None and d1["mark_price"] == D("0.085")
    e1 = p["E1"]
    assert (e1["status"], e1["take_profit_price"], e1["stop_loss_price"]) == ("open", D("0.51"), D("0.495"))
    assert e1["unrealized_pnl"] == D("0.2")  # (0.52 − 0.5)·10


def test_funding_allocation(scenario_marts):
    hedge, _ = scenario_marts
    p = by_id(hedge, "strategy_positions", "strategy_position_id")
    # net +2 long pays 2·15·0.0001 = 0.003: A (+3) −0.0045, B (−1) +0.0015
    assert (p["FA"]["funding_fees"], p["FB"]["funding_fees"]) == (D("-0.0045"), D("0.0015"))


def test_one_way_netting_with_a_zero_crossing(scenario_marts):
    _, one_way = scenario_marts
    p = by_id(one_way, "strategy_positions", "strategy_position_id")
    assert p["L"]["realized_pnl"] == D(4) and p["L"]["close_reason"] == "take_profit"  # (42000−40000)·0.002
    assert p["S"]["status"] == "open" and p["S"]["unrealized_pnl"] == D("-1.5")  # (41500−41000)·0.003·−1
    assert p["S"]["exchange_position_id"] == "default:BTCUSDT_BOTH:1"  # its first leg closed episode 1
    e = by_id(one_way, "exchange_positions", "exchange_position_id")
    assert e["default:BTCUSDT_BOTH:1"]["realized_pnl"] == D(2)  # 0.002 closed at 41000 vs 40000
    assert e["default:BTCUSDT_BOTH:1"]["status"] == "closed"
    ep2 = e["default:BTCUSDT_BOTH:2"]
    assert (ep2["side"], ep2["current_quantity"], ep2["is_current"]) == ("SHORT", D("-0.003"), True)
    assert ep2["weighted_avg_price"] == D("41666.666666666666666667")  # (0.001·41000 + 0.002·42000)/0.003
    legs = [a for a in mart_rows(one_way, "fct_fill_allocations") if a["strategy_position_id"] == "S"]
    assert sorted((a["leg_no"], a["quantity"]) for a in legs) == [(1, D("0.002")), (2, D("0.001"))]


def test_scenarios_match_the_sandbox_ground_truth(scenario_marts, hedge_replay, one_way_replay):
    hedge, one_way = scenario_marts
    assert diff_against_truth(hedge, hedge_replay) == []
    assert diff_against_truth(one_way, one_way_replay) == []


# --------------------------------------------------------------------------- sandbox ground truth
@pytest.fixture(scope="module", params=[("hedge", 3), ("one_way", 4), ("hedge", 9)], ids=lambda p: f"{p[0]}-{p[1]}")
def generated(request, tmp_path_factory) -> Path:
    mode, seed = request.param
    out = tmp_path_factory.mktemp(f"acct-{mode}-{seed}")
    generate(GenerateConfig(out=out, days=3, strategies=5, mode=mode, seed=seed))
    return out


def test_marts_equal_ground_truth_on_both_targets_and_each_other(generated, duckdb_settings, mysql_settings):
    build(duckdb_settings, generated)
    assert diff_against_truth(duckdb_settings, generated) == []
    build(mysql_settings, generated)
    assert diff_against_truth(mysql_settings, generated) == []
    assert snapshot(duckdb_settings) == snapshot(mysql_settings)


def test_incremental_run_equals_full_refresh(warehouse_settings, tmp_path):
    replay = tmp_path / "full"
    cfg = GenerateConfig(out=replay, days=4, strategies=4, seed=21, mode="hedge")
    generate(cfg)
    start = int(cfg.start.timestamp() * 1000)
    build(warehouse_settings, cut_replay(replay, tmp_path / "half", start + 2 * 86_400_000))
    build(warehouse_settings, replay)  # new raw data appended, incremental dbt build
    incremental = snapshot(warehouse_settings)
    assert diff_against_truth(warehouse_settings, replay) == []
    run_dbt(warehouse_settings, "build", full_refresh=True, extra_args=["--quiet"])
    assert snapshot(warehouse_settings) == incremental
    assert len(incremental["fct_fill_allocations"]) > 1000


def test_an_episode_longer_than_recursion_limits(warehouse_settings, tmp_path):
    """MySQL/MariaDB cap recursive CTEs at 1000 iterations by default; an episode can be longer."""
    s = Scenario(tmp_path, mode="hedge")
    s.signal("LONG1", "stacker", "ETHUSDT", "buy", "600", at=0)
    for i in range(600):  # 600 entry fills and 500 partial exits: 1,100 legs, the key never flat
        s.trade("LONG1-en", "ETHUSDT", "BUY", ("1", str(2000 + i % 7)), at=1 + i)  # ids repeat once filled
        if i >= 100:
            s.trade("LONG1-cl", "ETHUSDT", "SELL", ("1", str(2003 + i % 5)), at=1.5 + i)
    s.finish({"ETHUSDT": "2001"}, at=5000)
    build(warehouse_settings, tmp_path)
    assert diff_against_truth(warehouse_settings, tmp_path) == []
    e = by_id(warehouse_settings, "exchange_positions", "exchange_position_id")["default:ETHUSDT_LONG:1"]
    binance = s.account.keys["ETHUSDT_LONG"]
    assert (e["current_quantity"], e["weighted_avg_price"]) == (binance.qty, binance.avg)
