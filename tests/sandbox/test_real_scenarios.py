"""Scripted real-account situations, with every expected number worked out by hand in the comments.

Covered: an opening state recovered from a reducing fill's realizedPnl and from the snapshot
(SPEC §4.1), two symbols sharing order id numbers with a TP placed through the algo service
(§3.2, §3.3), a maker rebate, a BNB fee converted at its minute's close, INSURANCE_CLEAR on a
liquidation, a rebate-programme payment and a quarterly delivery (§4.5), the wallet balance.
"""

from __future__ import annotations

from decimal import Decimal as D
from decimal import localcontext

from sandbox.scenario import Scenario
from tests.sandbox.replay_check import WIDE, balance_moves_by_income, load, opening_states

Q18 = D("1e-18")


def rows_by_id(path) -> dict[str, dict]:
    return {r["strategy_position_id"]: r for r in load(path, "expected_strategy_positions.jsonl")}


def test_opening_state_from_a_reducing_fill(tmp_path):
    s = Scenario(tmp_path, mode="hedge", history_start=100)
    # before the served history: BUY 0.003 @ 40000, BUY 0.001 @ 42000 (avg 40500), and strategy P's entry
    # BUY 0.001 @ 41000: the key holds 0.005 at avg (0.004·40500 + 41)/0.005 = 40600
    s.trade("web_pre1", "BTCUSDT", "BUY", ("0.003", "40000"), at=0, position_side="LONG")
    s.trade("web_pre2", "BTCUSDT", "BUY", ("0.001", "42000"), at=10, position_side="LONG")
    s.signal("P", "old_bot", "BTCUSDT", "buy", "0.001", at=19)
    s.trade("P-en", "BTCUSDT", "BUY", ("0.001", "41000"), at=20)
    # served from t=100: A enters 0.002 @ 43000 → key 0.007 at 289/0.007 = 41285.714285714285714286
    s.signal("A", "new_bot", "BTCUSDT", "buy", "0.002", at=109)
    s.trade("A-en", "BTCUSDT", "BUY", ("0.002", "43000"), at=110)
    # A's TP sells 0.001 @ 44000: Binance books (44000 − 41285.714285714…)·0.001 = 2.714285714… → "2.71428571"
    s.trade("A-tp", "BTCUSDT", "SELL", ("0.001", "44000"), at=120)
    # P's close: its entry predates the history, so it is no strategy position: an over-close to the bucket
    s.trade("P-cl", "BTCUSDT", "SELL", ("0.001", "44500"), at=130)
    s.finish({"BTCUSDT": "45000"}, at=200)

    trades = load(tmp_path, "futures_trades.jsonl")
    assert [t["realizedPnl"] for t in trades] == ["0", "2.71428571", "3.21428571"]
    # §4.1 by hand: qty0 = 0.005 (snapshot) − (0.002 − 0.001 − 0.001) = 0.005;
    # avg at A-tp = 44000 − 2.71428571/0.001 = 41285.71429;
    # walked back over A-en: (0.007·41285.71429 − 0.002·43000)/0.005 = 203.00000003/0.005 = 40600.000006
    avg0 = D("40600.000006")
    assert opening_states(tmp_path)["BTCUSDT_LONG"] == (D("0.005"), avg0)
    rows = rows_by_id(tmp_path)
    assert set(rows) == {"A", "unattributed:default:BTCUSDT_LONG:1"}, "P predates the history"
    a, bucket = rows["A"], rows["unattributed:default:BTCUSDT_LONG:1"]
    assert a["exchange_position_id"] == "default:BTCUSDT_LONG:1" and a["status"] == "partial"
    assert D(a["realized_pnl"]) == 1 and D(a["unrealized_pnl"]) == 2  # (44000−43000)·0.001, (45000−43000)·0.001
    # the bucket: opening allocation 0.005 @ avg0 at A-en's time, P's over-close 0.001 @ 44500
    assert bucket["entry_time"] == s.at(110) and D(bucket["entry_quantity"]) == D("0.005")
    assert D(bucket["entry_price"]) == avg0
    assert D(bucket["exit_quantity"]) == D("0.001") and D(bucket["open_quantity"]) == D("0.004")
    assert D(bucket["realized_pnl"]) == (D(44500) - avg0) * D("0.001")  # 3.899999994
    assert D(bucket["unrealized_pnl"]) == (D(45000) - avg0) * D("0.004")  # 17.599999976
    # fees: the opening allocation carries none; P-cl 44.5·0.0005, A: (86 + 44)·0.0005
    assert D(bucket["fees"]) == D("0.02225") and D(a["fees"]) == D("0.065")
    # R5: 3 + 21.49999997 = 24.49999997 vs Binance 2.71428571 + 3.21428571 + (45000 − 41285.714…)·0.005
    binance = D("2.71428571") + D("3.21428571") + D("18.57142857")
    ours = sum(D(r["realized_pnl"]) + D(r["unrealized_pnl"]) for r in rows.values())
    assert abs(ours - binance) <= D("3e-8")


def test_opening_state_from_the_snapshot(tmp_path):
    s = Scenario(tmp_path, mode="hedge", history_start=100)
    # before the history: ETHUSDT LONG 1 @ 2000 + 0.5 @ 2030 (avg 2010); SOLUSDT SHORT 3 @ 100
    s.trade("web_e1", "ETHUSDT", "BUY", ("1", "2000"), at=0, position_side="LONG")
    s.trade("web_e2", "ETHUSDT", "BUY", ("0.5", "2030"), at=5, position_side="LONG")
    s.trade("web_s1", "SOLUSDT", "SELL", ("3", "100"), at=1, position_side="SHORT")
    # served: B enters 0.7 @ 2100 → 2.2 at 4485/2.2 = 2038.636363…; the snapshot says "2038.63636364"
    s.signal("B", "bot", "ETHUSDT", "buy", "0.7", at=109)
    s.trade("B-en", "ETHUSDT", "BUY", ("0.7", "2100"), at=110)
    s.finish({"ETHUSDT": "2050", "SOLUSDT": "90"}, at=200)
    snap = {f"{r['symbol']}_{r['positionSide']}": r for r in load(tmp_path, "position_risk.jsonl")}
    assert snap["ETHUSDT_LONG"]["entryPrice"] == "2038.63636364"
    # no reducing fill: avg0 = (2.2·2038.63636364 − 0.7·2100)/1.5 = 3015.000000008/1.5 = 2010.0000000053333…
    with localcontext(WIDE):
        avg0 = ((D("2.2") * D("2038.63636364") - D("0.7") * D(2100)) / D("1.5")).quantize(Q18)
    assert avg0 == D("2010.000000005333333333")
    rows = rows_by_id(tmp_path)
    eth = rows["unattributed:default:ETHUSDT_LONG:1"]
    assert D(eth["entry_quantity"]) == D("1.5") and D(eth["entry_price"]) == avg0
    assert eth["entry_time"] == s.at(110) and eth["status"] == "open"
    assert rows["B"]["exchange_position_id"] == "default:ETHUSDT_LONG:1"
    # SOLUSDT_SHORT: a snapshot position and no served fill: an open episode of just its opening,
    # at the snapshot's time, at its entryPrice 100: unrealized (90 − 100)·3·(−1) = 30
    sol = rows["unattributed:default:SOLUSDT_SHORT:1"]
    assert (sol["side"], sol["entry_time"], D(sol["entry_price"]), D(sol["open_quantity"])) == (
        "SHORT",
        s.at(200),
        D(100),
        D(3),
    )
    assert D(sol["unrealized_pnl"]) == 30 and D(sol["fees"]) == 0 and sol["fees_by_asset"] == {}
    assert {t["symbol"] for t in load(tmp_path, "futures_trades.jsonl")} == {"ETHUSDT"}


def test_two_symbols_share_order_ids_and_an_algo_take_profit(tmp_path):
    s = Scenario(tmp_path, mode="hedge")
    s.signal("T", "trend", "BTCUSDT", "buy", "0.002", at=0, take_profit="47000")
    s.trade("T-en", "BTCUSDT", "BUY", ("0.002", "45000"), at=1)
    s.signal("E", "eth_bot", "ETHUSDT", "buy", "1", at=2)
    s.trade("E-en", "ETHUSDT", "BUY", ("1", "2400"), at=3)
    # T's TP goes through the algo service, placed at 4, triggered at 50; its order gets id N (forced, so
    # that the ETHUSDT sequence can reach the same number)
    n = 8_389_765_100
    algo_id, tp_order = s.algo_exit(
        "T-tp",
        "BTCUSDT",
        "SELL",
        ("0.002", "47000"),
        at=50,
        placed_at=4,
        trigger_price="47000",
        triggering=True,
        order_id=n,
    )
    assert tp_order == n
    # a manual ETHUSDT order with the very same orderId: it must not inherit T's take-profit link
    s.trade("web_x", "ETHUSDT", "SELL", ("0.4", "2450"), at=60, position_side="LONG", order_id=tp_order)
    # an unlinked BTCUSDT order, and E's close linked explicitly by the same number on ETHUSDT
    x = s.trade("web_btc", "BTCUSDT", "BUY", ("0.001", "46000"), at=70, position_side="LONG")
    s.link("E", "close", order_id=x, symbol="ETHUSDT")
    s.trade("x-close-e", "ETHUSDT", "SELL", ("0.6", "2500"), at=80, order_id=x)
    s.finish({"BTCUSDT": "46000", "ETHUSDT": "2500"}, at=100)

    orders = load(tmp_path, "futures_orders.jsonl")
    assert {o["symbol"] for o in orders if o["orderId"] == tp_order} == {"BTCUSDT", "ETHUSDT"}
    assert {o["symbol"] for o in orders if o["orderId"] == x} == {"BTCUSDT", "ETHUSDT"}
    algos = [a for a in load(tmp_path, "futures_algo_orders.jsonl") if a["algoId"] == algo_id]
    assert [(a["algoStatus"], a["actualOrderId"]) for a in algos] == [
        ("NEW", ""),
        ("TRIGGERING", ""),
        ("TRIGGERED", str(tp_order)),
        ("FINISHED", str(tp_order)),
    ]
    assert [a["updateTime"] for a in algos] == sorted({a["updateTime"] for a in algos})
    assert load(tmp_path, "order_links.jsonl") == [
        {"order_id": x, "symbol": "ETHUSDT", "signal_id": "E", "role": "close"}
    ]
    rows = rows_by_id(tmp_path)
    t, e = rows["T"], rows["E"]
    # T: 0.002 @ 45000 → TP 0.002 @ 47000: realized 4
    assert t["close_reason"] == "take_profit" and D(t["realized_pnl"]) == 4
    # E: the manual 0.4 went to the bucket; E's linked close 0.6 @ 2500 flattens the key; the episode-end
    # rule hands the bucket's 0.4 @ 2450 to E: realized 0.6·100 + 0.4·50 = 80, closed "external"
    assert e["status"] == "closed" and e["close_reason"] == "external" and D(e["realized_pnl"]) == 80
    # the BTCUSDT order numbered like E's close is unlinked: a new episode's bucket
    assert D(rows["unattributed:default:BTCUSDT_LONG:2"]["entry_quantity"]) == D("0.001")


def test_rebate_bnb_fee_and_the_rebate_programme(tmp_path):
    s = Scenario(tmp_path, mode="hedge")
    # M: a maker entry at a rebate rate: commission 1000·(−0.00005) = −0.05 USDT
    s.signal("M", "maker_bot", "SOLUSDT", "buy", "10", at=0)
    s.trade("M-en", "SOLUSDT", "BUY", ("10", "100"), at=1, maker=True, commission_rate="-0.00005")
    # M's TP pays its fee in BNB at 300: 1020·0.0005·0.9/300 = 0.00153 BNB; converted back 0.459 USDT
    s.trade("M-tp", "SOLUSDT", "SELL", ("10", "102"), at=62, bnb_price="300")
    # N: a taker entry 0.004 @ 50000: commission 0.1 USDT
    s.signal("N", "taker_bot", "BTCUSDT", "buy", "0.004", at=100)
    s.trade("N-en", "BTCUSDT", "BUY", ("0.004", "50000"), at=101)
    # the day's rebate programme pays 0.01 USDT: pro rata to the day's USDT commission shares
    # (M −0.05, N 0.1; total 0.05): M 0.01·(−0.05/0.05) = −0.01, N (last by id) 0.01 − (−0.01) = 0.02
    s.rebate("COMMISSION_REBATE", "USDT", "0.01", at=3600)
    s.finish({"BTCUSDT": "50000"}, at=7200)

    trades = load(tmp_path, "futures_trades.jsonl")
    assert [(t["commission"], t["commissionAsset"]) for t in trades] == [
        ("-0.05000000", "USDT"),
        ("0.00153000", "BNB"),
        ("0.10000000", "USDT"),
    ]
    commission_income = [i for i in load(tmp_path, "income.jsonl") if i["incomeType"] == "COMMISSION"]
    assert [i["income"] for i in commission_income] == ["0.05000000", "-0.00153000", "-0.10000000"]
    kline = [k for k in load(tmp_path, "klines.jsonl") if k["kline"][0] == s.at(60)]
    assert len(kline) == 1 and kline[0]["symbol"] == "BNBUSDT" and D(kline[0]["kline"][4]) == 300
    rows = rows_by_id(tmp_path)
    m, n = rows["M"], rows["N"]
    assert D(m["fees"]) == D("-0.05") and D(m["other_fees"]) == D("0.459")
    assert m["fees_by_asset"] == {"BNB": "0.00153", "USDT": "-0.05"}
    assert D(m["other_income"]) == D("-0.01") and D(n["other_income"]) == D("0.02")
    # M: realized 2·10 = 20; net = 20 − (−0.05) − 0.459 + 0 + (−0.01) = 19.581
    assert D(m["realized_pnl_net"]) == D("19.581")
    assert balance_moves_by_income(tmp_path) == 0  # one snapshot only; see the delivery test for pairs


def test_insurance_clear_and_quarterly_delivery(tmp_path):
    s = Scenario(tmp_path, mode="hedge")
    # a liquidation flattens LA (1 @ 2000) and LB (3 @ 2010); its clearance fee −2 USDT goes by quantity
    s.signal("LA", "sa", "ETHUSDT", "buy", "1", at=0)
    s.trade("LA-en", "ETHUSDT", "BUY", ("1", "2000"), at=1)
    s.signal("LB", "sb", "ETHUSDT", "buy", "3", at=2)
    s.trade("LB-en", "ETHUSDT", "BUY", ("3", "2010"), at=3)
    s.snapshot(at=10)
    s.trade(
        "autoclose-1767225610000001",
        "ETHUSDT",
        "SELL",
        ("4", "1900"),
        at=20,
        position_side="LONG",
        insurance_clear="-2",
    )
    s.transfer("USDT", "250", at=30)
    # BTCUSDT_260110 is delivered at 2026-01-10 08:00 UTC = 9 days 8 h after the start
    delivery = 9 * 86400 + 8 * 3600
    s.signal("Q1", "carry", "BTCUSDT_260110", "buy", "0.003", at=86400)
    s.trade("Q1-en", "BTCUSDT_260110", "BUY", ("0.003", "45000"), at=86401)
    s.signal("Q2", "basis", "BTCUSDT_260110", "sell", "0.001", at=86402)
    s.trade("Q2-en", "BTCUSDT_260110", "SELL", ("0.001", "45500"), at=86403)
    # a manual sell in the UI: the LONG bucket holds −0.001 (the key 0.002)
    s.trade("web_q", "BTCUSDT_260110", "SELL", ("0.001", "45800"), at=86404, position_side="LONG")
    s.snapshot(at=86500)
    s.deliver("BTCUSDT_260110", "46000", at=delivery)
    s.finish(at=delivery + 60)

    income = load(tmp_path, "income.jsonl")
    clear = [i for i in income if i["incomeType"] == "INSURANCE_CLEAR"]
    assert [(i["income"], i["time"]) for i in clear] == [("-2.00000000", s.at(20) + 1)]
    # delivery fee on the keys: −(0.002 + 0.001)·46000·0.0001 = −0.0138
    settle = [i for i in income if i["incomeType"] == "DELIVERED_SETTELMENT"]
    assert [(i["symbol"], i["income"], i["time"]) for i in settle] == [
        ("BTCUSDT_260110", "-0.01380000", s.at(delivery))
    ]
    orders = [
        o for o in load(tmp_path, "futures_orders.jsonl") if o["clientOrderId"].startswith("settlement_autoclose-")
    ]
    assert len(orders) == 2 and {o["positionSide"] for o in orders} == {"LONG", "SHORT"}
    rows = rows_by_id(tmp_path)
    # INSURANCE_CLEAR by the liquidation fill's allocations: LA 1/4·(−2) = −0.5, LB −1.5
    assert (D(rows["LA"]["other_income"]), D(rows["LB"]["other_income"])) == (D("-0.5"), D("-1.5"))
    # delivery fee by |open quantity| just before (Q1 0.003, Q2 0.001, the LONG bucket |−0.001|; total
    # 0.005): Q1 −0.0138·3/5 = −0.00828, Q2 −0.00276, the bucket (last by id) −0.0138 + 0.01104 = −0.00276
    assert (D(rows["Q1"]["other_income"]), D(rows["Q2"]["other_income"])) == (D("-0.00828"), D("-0.00276"))
    bucket = rows["unattributed:default:BTCUSDT_260110_LONG:1"]
    assert D(bucket["other_income"]) == D("-0.00276")
    # the settlement (SELL 0.002 @ 46000) flattens the LONG key: the episode-end rule gives Q1 the pool
    # (web_q 0.001 @ 45800 and the settlement's 0.002), the bucket keeps no quantity but its income share
    assert (D(bucket["entry_quantity"]), D(bucket["exit_quantity"]), D(bucket["realized_pnl_net"])) == (
        0,
        0,
        D("-0.00276"),
    )
    # Q1: (45800 − 45000)·0.001 + (46000 − 45000)·0.002 = 2.8, closed "external" (the pool holds a manual
    # fill, not only liquidation fills); Q2: −(46000 − 45500)·0.001 = −0.5, closed by the settlement
    assert (rows["Q1"]["close_reason"], D(rows["Q1"]["realized_pnl"])) == ("external", D("2.8"))
    assert (rows["Q2"]["close_reason"], D(rows["Q2"]["realized_pnl"])) == ("liquidation", D("-0.5"))
    # Q1 fees: its entry 135·0.0005 = 0.0675 plus web_q's 45.8·0.0005 = 0.0229 it took over; the
    # settlement fills carry no commission. Net: 2.8 − 0.0904 − 0 + 0 − 0.00828 = 2.70132
    assert D(rows["Q1"]["fees"]) == D("0.0904")
    assert D(rows["Q1"]["realized_pnl_net"]) == D("2.70132")
    assert balance_moves_by_income(tmp_path) == 2 * 3  # USDT, BNB, BTC between three snapshots
    usdt = [b for b in load(tmp_path, "balances.jsonl") if b["asset"] == "USDT"]
    assert D(usdt[1]["balance"]) - D(usdt[0]["balance"]) != 0
