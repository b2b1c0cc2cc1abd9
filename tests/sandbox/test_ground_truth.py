"""The paper exchange's books: Binance accounting, SPEC §4 ground truth, determinism.

Generated data is checked against independent re-derivations (replay_check.py) and
scripted scenarios against numbers computed by hand in the test.
"""

from __future__ import annotations

import filecmp
from collections import defaultdict
from decimal import Decimal as D
from pathlib import Path

import pytest

from sandbox.generator import GenerateConfig, generate
from sandbox.scenario import Scenario, worked_example
from tests.sandbox.replay_check import latest_versions, load, replay_binance, resolve_links

STATUSES = {"open", "partial", "closed"}
REASONS = {"take_profit", "stop_loss", "manual", "external", "liquidation"}


def rows_by_id(path: Path) -> dict[str, dict]:
    return {r["strategy_position_id"]: r for r in load(path, "expected_strategy_positions.jsonl")}


@pytest.fixture(scope="module", params=[("hedge", 7), ("one_way", 11), ("hedge", 23)], ids=lambda p: f"{p[0]}-{p[1]}")
def generated(request, tmp_path_factory) -> Path:
    mode, seed = request.param
    out = tmp_path_factory.mktemp(f"gen-{mode}-{seed}")
    generate(GenerateConfig(out=out, days=4, strategies=6, mode=mode, seed=seed))
    return out


# --------------------------------------------------------------------------- Binance accounting
def test_realized_pnl_of_every_fill_follows_the_average_entry_rule(generated):
    trades = load(generated, "futures_trades.jsonl")
    assert len(trades) > 2000
    wrong = [(t["id"], t["realizedPnl"], pnl) for t, *_, pnl in replay_binance(trades) if D(t["realizedPnl"]) != pnl]
    assert wrong == []
    assert any(D(t["realizedPnl"]) != 0 for t in trades)


def test_position_risk_snapshots_match_replayed_fills(generated):
    trades = load(generated, "futures_trades.jsonl")
    snaps = load(generated, "position_risk.jsonl")
    by_time = defaultdict(list)
    for s in snaps:
        by_time[s["snapshotTime"]].append(s)
    replayed = list(replay_binance(trades))
    checked = 0
    for snap_time in sorted(by_time):
        state = {}
        for t, key, qty, avg, _ in replayed:
            if t["time"] <= snap_time:
                state[key] = (qty, avg)
        for s in by_time[snap_time]:
            qty, avg = state.get(f"{s['symbol']}_{s['positionSide']}", (D(0), D(0)))
            assert D(s["positionAmt"]) == qty, s
            if qty:
                assert D(s["entryPrice"]) == avg.quantize(D("1e-8")), s
                assert D(s["unRealizedProfit"]) == ((D(s["markPrice"]) - avg) * qty).quantize(D("1e-8")), s
            checked += 1
    assert checked == len(snaps) > 100


def test_income_mirrors_fills_and_funding(generated):
    trades = load(generated, "futures_trades.jsonl")
    income = load(generated, "income.jsonl")
    by_type = defaultdict(lambda: D(0))
    for i in income:
        by_type[(i["incomeType"], i["asset"])] += D(i["income"])
    assert by_type[("REALIZED_PNL", "USDT")] == sum(D(t["realizedPnl"]) for t in trades)
    for asset in ("USDT", "BNB"):
        paid = sum(D(t["commission"]) for t in trades if t["commissionAsset"] == asset)
        assert paid > 0, f"no commission paid in {asset}"
        assert -by_type[("COMMISSION", asset)] == paid
    assert by_type[("FUNDING_FEE", "USDT")] != 0
    assert len({i["tranId"] for i in income}) == len(income)


# --------------------------------------------------------------------------- ground truth (SPEC §4)
def test_ground_truth_uses_the_links_of_spec_3_3(generated):
    """Entry/exit quantities per position equal the fills of the orders the §3.3 rules link to it."""
    links = resolve_links(generated)
    roles = defaultdict(int)
    entry = defaultdict(lambda: D(0))
    for t in load(generated, "futures_trades.jsonl"):
        sid, role = links[(t["symbol"], t["orderId"])]
        roles[role] += 1
        if role == "entry":
            entry[sid] += D(t["qty"])
    assert {"entry", "take_profit", "stop_loss", "close", "unlinked"} <= set(roles)
    rows = rows_by_id(generated)
    strategy_rows = {k: r for k, r in rows.items() if not r["is_unattributed"]}
    assert {k: D(r["entry_quantity"]) for k, r in strategy_rows.items()} == dict(entry)
    link_files = load(generated, "order_links.jsonl")
    assert any("order_id" in x for x in link_files) and any("client_order_id" in x for x in link_files)
    assert load(generated, "futures_algo_orders.jsonl"), "some TP/SL go through the algo service"


def test_ground_truth_reconciles_with_the_exchange(generated):
    """R2 quantities, R5 PnL identity, R6 fees and funding totals hold on the ground truth."""
    rows = load(generated, "expected_strategy_positions.jsonl")
    trades = load(generated, "futures_trades.jsonl")
    snaps = load(generated, "position_risk.jsonl")
    last = max(s["snapshotTime"] for s in snaps)
    final = {f"{s['symbol']}_{s['positionSide']}": s for s in snaps if s["snapshotTime"] == last}
    one_way = all(k.endswith("_BOTH") for k in final)

    open_by_key = defaultdict(lambda: D(0))
    for r in rows:
        q = D(r["open_quantity"])
        if one_way and not r["is_unattributed"] and r["side"] == "SHORT":
            q = -q  # strategy positions report magnitudes; BOTH buckets are already signed
        elif not one_way and r["side"] == "SHORT":
            q = -q
        open_by_key[r["exchange_position_key"]] += q
    for key, snap in final.items():
        assert open_by_key[key] == D(snap["positionAmt"]), key

    fills = defaultdict(int)
    for t in trades:
        fills[t["symbol"]] += 1
    for symbol in {s["symbol"] for s in final.values()}:
        ours = sum(D(r["realized_pnl"]) + D(r["unrealized_pnl"]) for r in rows if r["symbol"] == symbol)
        binance = sum(D(t["realizedPnl"]) for t in trades if t["symbol"] == symbol) + sum(
            D(s["unRealizedProfit"]) for s in final.values() if s["symbol"] == symbol
        )
        assert abs(ours - binance) <= D("1e-8") * fills[symbol], symbol

    # R6: pro-rata commission shares are rounded to 18 decimals each, within the SPEC's 1e-9
    fees = sum(D(r["fees"]) for r in rows)
    assert abs(fees - sum(D(t["commission"]) for t in trades if t["commissionAsset"] == "USDT")) <= D("1e-9")
    funding = sum(D(i["income"]) for i in load(generated, "income.jsonl") if i["incomeType"] == "FUNDING_FEE")
    assert sum(D(r["funding_fees"]) for r in rows) == funding


def test_ground_truth_rows_are_consistent(generated):
    rows = load(generated, "expected_strategy_positions.jsonl")
    assert len({r["strategy_position_id"] for r in rows}) == len(rows)
    reasons = defaultdict(int)
    for r in rows:
        assert r["status"] in STATUSES
        entry, exit_, open_ = D(r["entry_quantity"]), D(r["exit_quantity"]), D(r["open_quantity"])
        if r["is_unattributed"]:
            assert r["strategy_id"] == "unattributed" and r["signal_id"] is None
            assert r["strategy_position_id"] == f"unattributed:{r['exchange_position_id']}"
            continue
        assert r["strategy_position_id"] == r["signal_id"]
        assert entry > 0 and 0 <= exit_ <= entry and open_ == entry - exit_
        assert r["status"] == ("open" if exit_ == 0 else "closed" if open_ == 0 else "partial")
        assert (r["close_reason"] in REASONS) == (r["status"] == "closed")
        if r["status"] == "closed":
            reasons[r["close_reason"]] += 1
        net = D(r["realized_pnl"]) - D(r["fees"]) - D(r["other_fees"]) + D(r["funding_fees"]) + D(r["other_income"])
        assert D(r["realized_pnl_net"]) == net
        assert r["exchange_position_id"].split(":")[1] == r["exchange_position_key"]
    assert {"take_profit", "stop_loss", "manual"} <= set(reasons)


def test_same_seed_gives_identical_files(tmp_path):
    cfg = {"days": 1.5, "strategies": 4, "symbols": ("BTCUSDT", "ETHUSDT", "SOLUSDT"), "seed": 99}
    a = generate(GenerateConfig(out=tmp_path / "a", **cfg))
    generate(GenerateConfig(out=tmp_path / "b", **cfg))
    generate(GenerateConfig(out=tmp_path / "c", **{**cfg, "seed": 100}))
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "expected_strategy_positions.jsonl" in names and "futures_trades.jsonl" in names
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == names
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == len(names)
    assert not filecmp.cmp(tmp_path / "a" / "futures_trades.jsonl", tmp_path / "c" / "futures_trades.jsonl", False)
    assert a.fills > 0


def test_many_strategies_get_distinct_signal_ids(tmp_path):
    """More strategies than names: suffixed names must not share signal ids."""
    summary = generate(GenerateConfig(out=tmp_path, days=0.5, strategies=15, symbols=("BTCUSDT", "ETHUSDT"), seed=3))
    ids = [s.get("signal_id", s.get("id")) for s in load(tmp_path, "signals.jsonl")]
    assert len(ids) == len(set(ids)) and summary.positions > 0
    assert {s["strategy_id"] for s in load(tmp_path, "signals.jsonl")} >= {"trend_follow", "trend_follow_2"}
    assert not list(tmp_path.glob(".closed-*"))


def test_orders_have_versions_and_final_states(generated):
    orders = load(generated, "futures_orders.jsonl")
    latest = latest_versions(orders, "orderId", "updateTime")
    assert len(latest) < len(orders), "resting orders are written when placed and again when final"
    statuses = {o["status"] for o in latest.values()}
    assert {"FILLED", "CANCELED"} <= statuses
    trades = load(generated, "futures_trades.jsonl")
    executed = defaultdict(lambda: D(0))
    for t in trades:
        executed[(t["symbol"], t["orderId"])] += D(t["qty"])
    for oid, qty in executed.items():
        assert D(latest[oid]["executedQty"]) == qty
    cids = {o["clientOrderId"] for o in latest.values()}
    assert any(c.startswith("web_") for c in cids)
    assert any(c.startswith(("autoclose-", "adl_autoclose")) for c in cids)


# --------------------------------------------------------------------------- scripted scenarios
def test_worked_example_of_spec_4_4(tmp_path):
    worked_example(tmp_path)
    trades = load(tmp_path, "futures_trades.jsonl")
    assert [t["realizedPnl"] for t in trades] == ["0", "0", "2.33333333", "6.66666667"]
    rows = rows_by_id(tmp_path)
    assert set(rows) == {"A1", "B1"}
    a, b = rows["A1"], rows["B1"]
    assert (D(a["realized_pnl"]), D(b["realized_pnl"])) == (D(3), D(6))
    assert D(a["realized_pnl"]) + D(b["realized_pnl"]) == sum(D(t["realizedPnl"]) for t in trades) == D(9)
    for r in (a, b):
        assert r["status"] == "closed" and r["close_reason"] == "take_profit"
        assert r["exchange_position_id"] == "default:BTCUSDT_LONG:1"
    assert (a["entry_price"], a["exit_price"], b["entry_price"], b["exit_price"]) == (
        "45000",
        "48000",
        "46000",
        "49000",
    )
    # fees: taker 0.05 % of each fill, pro rata: A 45·0.0005 + 48·0.0005, B 92·0.0005 + 98·0.0005
    assert (D(a["fees"]), D(b["fees"])) == (D("0.0465"), D("0.095"))
    assert a["realized_pnl_pct"] == "6.666666666666666667"


def test_liquidation_flattening_two_strategies(tmp_path):
    s = Scenario(tmp_path, mode="hedge")
    s.signal("A", "sa", "ETHUSDT", "sell", "0.5", at=0, stop_loss_pct="0.02")
    s.trade("A-en", "ETHUSDT", "SELL", [("0.2", "2000"), ("0.3", "2001")], at=1)  # partial fills
    s.signal("B", "sb", "ETHUSDT", "sell", "1", at=5)
    s.trade("B-en", "ETHUSDT", "SELL", ("1", "2010"), at=6)
    s.trade("A-tp", "ETHUSDT", "BUY", ("0.1", "1990"), at=10)  # a partial take-profit of A
    s.trade("autoclose-17000001", "ETHUSDT", "BUY", ("1.4", "2100"), at=20, position_side="SHORT")
    s.finish({"ETHUSDT": "2100"})
    rows = rows_by_id(tmp_path)
    a, b = rows["A"], rows["B"]
    # A: entry VWAP (0.2·2000 + 0.3·2001)/0.5 = 2000.6; exits 0.1 @1990 and 0.4 of the liquidation @2100
    assert D(a["entry_price"]) == D("2000.6")
    assert D(a["exit_quantity"]) == D("0.5") and a["status"] == "closed" and a["close_reason"] == "liquidation"
    assert D(a["realized_pnl"]) == (D("1990") - D("2000.6")) * D("0.1") * -1 + (D("2100") - D("2000.6")) * D("0.4") * -1
    assert D(a["stop_loss_price"]) == D("2000.6") * D("1.02")
    assert D(b["realized_pnl"]) == (D("2100") - D("2010")) * -1 and b["close_reason"] == "liquidation"
    assert "unattributed:default:ETHUSDT_SHORT:1" not in rows  # the pool went to A and B entirely


def test_manual_reduce_then_episode_end_is_external(tmp_path):
    s = Scenario(tmp_path, mode="hedge")
    s.signal("A", "sa", "BTCUSDT", "buy", "0.002", at=0, take_profit="50000")
    s.trade("A-en", "BTCUSDT", "BUY", ("0.002", "45000"), at=1)
    s.signal("B", "sb", "BTCUSDT", "buy", "0.002", at=2)
    s.trade("B-en", "BTCUSDT", "BUY", ("0.002", "47000"), at=3)
    s.trade("web_abc", "BTCUSDT", "SELL", ("0.001", "46000"), at=4, position_side="LONG")
    s.trade("web_def", "BTCUSDT", "SELL", ("0.001", "46500"), at=5, position_side="LONG")
    s.trade("B-sl", "BTCUSDT", "SELL", ("0.002", "44000"), at=6)  # B's stop flattens the key
    s.finish({"BTCUSDT": "44000"})
    rows = rows_by_id(tmp_path)
    a, b = rows["A"], rows["B"]
    assert b["close_reason"] == "stop_loss" and D(b["realized_pnl"]) == D("-6")
    # A still held 0.002 when the key went flat: the manual sells (pool 0.002) are re-allocated to it
    assert a["status"] == "closed" and a["close_reason"] == "external"
    assert D(a["exit_price"]) == D("46250") and D(a["realized_pnl"]) == D("2.5")
    assert a["exit_time"] == s.at(5)
    assert not any(r["is_unattributed"] for r in rows.values())


def test_over_close_goes_to_the_bucket(tmp_path):
    s = Scenario(tmp_path, mode="hedge")
    s.signal("A", "sa", "SOLUSDT", "buy", "3", at=0)
    s.trade("A-en", "SOLUSDT", "BUY", ("3", "100"), at=1)
    s.trade("web_1", "SOLUSDT", "BUY", ("2", "101"), at=2, position_side="LONG")  # bucket +2
    s.trade("A-cl", "SOLUSDT", "SELL", ("4", "103"), at=3)  # closes 3, over-closes 1
    s.finish({"SOLUSDT": "104"})
    rows = rows_by_id(tmp_path)
    a = rows["A"]
    assert a["close_reason"] == "manual" and D(a["exit_quantity"]) == 3 and D(a["realized_pnl"]) == 9
    bucket = rows["unattributed:default:SOLUSDT_LONG:1"]
    assert (D(bucket["entry_quantity"]), D(bucket["exit_quantity"]), D(bucket["open_quantity"])) == (2, 1, 1)
    assert bucket["status"] == "open" and D(bucket["entry_price"]) == 101
    assert D(bucket["realized_pnl"]) == 2 and D(bucket["unrealized_pnl"]) == 3


def test_one_way_zero_crossing_splits_the_fill(tmp_path):
    s = Scenario(tmp_path, mode="one_way")
    s.signal("L", "long_bot", "BTCUSDT", "buy", "0.002", at=0)
    s.trade("L-en", "BTCUSDT", "BUY", ("0.002", "40000"), at=1)
    s.signal("S", "short_bot", "BTCUSDT", "sell", "0.003", at=2)
    s.trade("S-en", "BTCUSDT", "SELL", ("0.003", "41000"), at=3)  # crosses zero: -0.001 net
    s.trade("L-tp", "BTCUSDT", "SELL", ("0.002", "42000"), at=4)
    s.finish({"BTCUSDT": "41500"})
    trades = load(tmp_path, "futures_trades.jsonl")
    assert [t["realizedPnl"] for t in trades] == ["0", "2.00000000", "0"]  # 0.002 closed at 41000 vs 40000
    rows = rows_by_id(tmp_path)
    assert rows["L"]["exchange_position_id"] == "default:BTCUSDT_BOTH:1"
    assert rows["S"]["exchange_position_id"] == "default:BTCUSDT_BOTH:1"
    assert D(rows["L"]["realized_pnl"]) == 4 and rows["L"]["close_reason"] == "take_profit"
    assert rows["S"]["status"] == "open" and D(rows["S"]["unrealized_pnl"]) == (D(41500) - 41000) * D("0.003") * -1
    # exchange: -0.003 at avg 41333.33…; R2 on BOTH: -0.003 (S) = snapshot
    final = load(tmp_path, "position_risk.jsonl")[-1]
    assert D(final["positionAmt"]) == D("-0.003")


def test_explicit_links_and_funding_allocation(tmp_path):
    s = Scenario(tmp_path, mode="hedge")
    s.signal("A", "sa", "BTCUSDT", "buy", "0.003", at=0)
    s.signal("B", "sb", "BTCUSDT", "sell", "0.001", at=0)
    s.link("A", "entry", client_order_id="legacy-77")
    s.trade("legacy-77", "BTCUSDT", "BUY", ("0.003", "50000"), at=1)
    s.trade("x-random", "BTCUSDT", "SELL", ("0.001", "50000"), at=2, position_side="SHORT", link=None)
    s.finish({"BTCUSDT": "50000"}, at=3)
    # without a link the SHORT sale is unattributed; A got its entry through the explicit link
    rows = rows_by_id(tmp_path)
    assert D(rows["A"]["entry_quantity"]) == D("0.003")
    assert "B" not in rows and D(rows["unattributed:default:BTCUSDT_SHORT:1"]["entry_quantity"]) == D("0.001")

    s = Scenario(tmp_path / "f", mode="hedge")
    s.signal("A", "sa", "BTCUSDT", "buy", "0.003", at=0)
    s.signal("B", "sb", "BTCUSDT", "sell", "0.001", at=0)
    s.trade("A-en", "BTCUSDT", "BUY", ("0.003", "50000"), at=1)
    s.trade("B-en", "BTCUSDT", "SELL", ("0.001", "50000"), at=2)
    fee = s.funding("BTCUSDT", "0.0001", "50000", at=10)  # net +0.002 long pays 0.01
    s.finish({"BTCUSDT": "50000"}, at=20)
    assert fee == D("-0.01")
    rows = rows_by_id(tmp_path / "f")
    assert (D(rows["A"]["funding_fees"]), D(rows["B"]["funding_fees"])) == (D("-0.015"), D("0.005"))
