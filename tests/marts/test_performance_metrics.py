"""SPEC §6 performance marts on both warehouses against metrics worked out by hand.

One hedge-mode account over four UTC days (2026-01-01 … 01-04), five strategies chosen for
the edge cases:

- ``strat_a``: wins and losses (W W L L L W by exit time) and a partial position;
- ``strat_b``: a single winning trade in USDT (SPEC §4.4's worked example with ``strat_a``), and
  three trades of ``ETHBTC``, margined in BTC (a win with a BTC commission rebate, a loss and an
  open position paying funding) — two margin assets the marts must keep apart;
- ``oneshot``: a single losing SHORT trade, partly filled, one day only;
- ``steady``: no losses — two wins and a breakeven — with an idle day between trading days,
  and a signal that never filled;
- ``holder``: only open positions (fees and funding, no trade closed);
- ``nofx``: one trade whose BNB fees cannot be converted (the minute's BNBUSDT kline is missing),
  so its net PnL is unknown: counted apart as unpriced, never as a win, loss or breakeven;
- plus manual UI trades (an unattributed bucket that must stay out of every strategy mart).

Fees are Binance's taker 0.05 % of the notional in USDT, except where the account pays them
in BNB: 90 % of that at a BNBUSDT close of 250 (the paper exchange writes the minute's kline),
so the position's USDT ``fees`` are 0 and its ``other_fees`` = 0.00045·notional, converted
back at that close. Expected values are in the comments.
"""

from __future__ import annotations

import json
import math
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from sandbox.scenario import Scenario, add_worked_example
from stratpos.core.settings import Settings
from tests.dbt.truth import mart_rows
from tests.marts.warehouses import build, module_warehouse

DAY = 86_400
HOUR = 3_600
STRATEGIES = {"strat_a", "strat_b", "oneshot", "steady", "holder", "nofx"}
BNB_CLOSE = "250"  # BNB fees: notional·0.0005·0.9 / 250 BNB, exact to 8 places; back in USDT 0.00045·notional


def _xrp_trade(s: Scenario, sid: str, at: float, qty: str, exit_code: str, exit_qty: str, exit_price: str) -> None:
    """strat_a on XRPUSDT_LONG: signal at ``at``, entry @0.5 one second later, exit one hour after the signal;
    fees paid in BNB at a BNBUSDT close of 250."""
    s.signal(sid, "strat_a", "XRPUSDT", "buy", qty, at=at)
    s.trade(f"{sid}-en", "XRPUSDT", "BUY", (qty, "0.5"), at=at + 1, bnb_price=BNB_CLOSE)
    s.trade(f"{sid}-{exit_code}", "XRPUSDT", "SELL", (exit_qty, exit_price), at=at + HOUR, bnb_price=BNB_CLOSE)


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("performance-scenario")
    s = Scenario(out, mode="hedge")
    # ---- day 0 (2026-01-01)
    # A1 (strat_a) 0.001 @45000 → 48000: realized 3, fees (45 + 48)·0.0005 = 0.0465, net 2.9535, held 99 s
    # B1 (strat_b) 0.002 @46000 → 49000: realized 6, fees (92 + 98)·0.0005 = 0.095, net 5.905, held 189 s
    add_worked_example(s, at=0)
    # ST1 (steady) 1 @100 → 110: realized 10, fees 0.05 + 0.055 = 0.105, net 9.895, held 4 h = 14400 s
    s.signal("ST1", "steady", "ETHUSDT", "buy", "1", at=HOUR, price="100")
    s.trade("ST1-en", "ETHUSDT", "BUY", ("1", "100"), at=HOUR + 1)
    s.trade("ST1-tp", "ETHUSDT", "SELL", ("1", "110"), at=5 * HOUR + 1)
    # HO1 (holder) 1 @300, signal price 299, filled 250 ms after the signal: fee 0.15, stays open
    s.signal("HO1", "holder", "BNBUSDT", "buy", "1", at=10 * HOUR, price="299")
    s.trade("HO1-en", "BNBUSDT", "BUY", ("1", "300"), at=10 * HOUR + 0.25)
    # manual UI trades: a bucket, not a strategy
    s.trade("web_m1", "DOGEUSDT", "BUY", ("100", "0.1"), at=12 * HOUR, position_side="LONG")
    s.trade("web_m2", "DOGEUSDT", "SELL", ("100", "0.12"), at=13 * HOUR, position_side="LONG")

    # ---- strat_b on ETHBTC, margined in BTC: every amount below is BTC (taker fee 0.05 % in BTC)
    # XB1 1 @0.05 → 0.055 (day 1): realized 0.005, fees 0.000025 + 0.0000275, a COMMISSION_REBATE of
    # 0.00001 BTC that day goes to it (the day's only BTC commission): net 0.0049575, held 7199 s
    s.signal("XB1", "strat_b", "ETHBTC", "buy", "1", at=DAY + 3 * HOUR, price="0.05")
    s.trade("XB1-en", "ETHBTC", "BUY", ("1", "0.05"), at=DAY + 3 * HOUR + 1)
    s.trade("XB1-tp", "ETHBTC", "SELL", ("1", "0.055"), at=DAY + 5 * HOUR)
    s.rebate("COMMISSION_REBATE", "BTC", "0.00001", at=DAY + 23 * HOUR)
    # XB2 2 @0.05 (signal price 0.0499) → 0.048 (day 2): realized −0.004, fees 0.00005 + 0.000048, net −0.004098
    s.signal("XB2", "strat_b", "ETHBTC", "buy", "2", at=2 * DAY + 3 * HOUR, price="0.0499")
    s.trade("XB2-en", "ETHBTC", "BUY", ("2", "0.05"), at=2 * DAY + 3 * HOUR + 1)
    s.trade("XB2-sl", "ETHBTC", "SELL", ("2", "0.048"), at=2 * DAY + 4 * HOUR)
    # XB3 1 @0.05 (day 3), open: fee 0.000025, funding −1·0.05·0.0001 = −0.000005, mark 0.052 → unrealized 0.002
    s.signal("XB3", "strat_b", "ETHBTC", "buy", "1", at=3 * DAY + HOUR)
    s.trade("XB3-en", "ETHBTC", "BUY", ("1", "0.05"), at=3 * DAY + HOUR + 1)
    s.funding("ETHBTC", "0.0001", "0.05", at=3 * DAY + 8 * HOUR)

    # ---- day 1 (2026-01-02): steady and holder idle
    # OS1 (oneshot) SHORT: signal 10 @20, 8 filled @20.1 1.5 s later, stop-loss @21 at 23:59:59.999
    # realized (21 − 20.1)·8·−1 = −7.2, fees (160.8 + 168)·0.0005 = 0.1644, net −7.3644,
    # held 172799.999 − 93601.5 = 79198.499 s; all of it booked on 01-02, the last millisecond of the day
    s.signal("OS1", "oneshot", "SOLUSDT", "sell", "10", at=DAY + 2 * HOUR, price="20")
    s.trade("OS1-en", "SOLUSDT", "SELL", ("8", "20.1"), at=DAY + 2 * HOUR + 1.5)
    s.trade("OS1-sl", "SOLUSDT", "BUY", ("8", "21"), at=2 * DAY - 0.001)
    # strat_a's XRP trades pay their fees in BNB: other_fees = 0.00045·notional
    _xrp_trade(s, "A2", DAY + 4 * HOUR, "100", "tp", "100", "0.55")  # +5 − (50 + 55)·0.00045 = 4.95275, 3599 s
    _xrp_trade(s, "A3", DAY + 6 * HOUR, "100", "sl", "100", "0.48")  # −2 − (50 + 48)·0.00045 = −2.0441

    # ---- day 2 (2026-01-03)
    # ST2 (steady) 2 @100 → 105: realized 10, fees 0.1 + 0.105 = 0.205, net 9.795, held 3600 s
    s.signal("ST2", "steady", "ETHUSDT", "buy", "2", at=2 * DAY + 2 * HOUR, price="100")
    s.trade("ST2-en", "ETHUSDT", "BUY", ("2", "100"), at=2 * DAY + 2 * HOUR + 1)
    s.trade("ST2-tp", "ETHUSDT", "SELL", ("2", "105"), at=2 * DAY + 3 * HOUR + 1)
    # HO2 (holder) 2 @310 at its signal price, 1 s later: fee 0.31, stays open
    s.signal("HO2", "holder", "BNBUSDT", "buy", "2", at=2 * DAY + 4 * HOUR, price="310")
    s.trade("HO2-en", "BNBUSDT", "BUY", ("2", "310"), at=2 * DAY + 4 * HOUR + 1)
    _xrp_trade(s, "A4", 2 * DAY + 6 * HOUR, "100", "sl", "100", "0.47")  # −3 − 97·0.00045 = −3.04365
    _xrp_trade(s, "A5", 2 * DAY + 8 * HOUR, "100", "cl", "100", "0.49")  # −1 − 99·0.00045 = −1.04455, manual

    # ---- day 3 (2026-01-04)
    # funding at 00:00 on BNBUSDT: −3·320·0.0001 = −0.096 → HO1 −0.032, HO2 −0.064
    s.funding("BNBUSDT", "0.0001", "320", at=3 * DAY)
    # ST3 (steady) 1 @100 → 100 at a zero commission rate: realized 0, net 0 — breakeven, manual
    # close, held 600 s
    s.signal("ST3", "steady", "ETHUSDT", "buy", "1", at=3 * DAY + HOUR, price="100")
    s.trade("ST3-en", "ETHUSDT", "BUY", ("1", "100"), at=3 * DAY + HOUR + 1, commission_rate="0")
    s.trade("ST3-cl", "ETHUSDT", "SELL", ("1", "100"), at=3 * DAY + HOUR + 601, commission_rate="0")
    # ST4 (steady) never fills
    s.signal("ST4", "steady", "ETHUSDT", "buy", "1", at=3 * DAY + 2 * HOUR, price="100")
    _xrp_trade(s, "A6", 3 * DAY + 3 * HOUR, "200", "tp", "200", "0.51")  # +2 − 202·0.00045 = 1.9091
    # partial: realized 4, other fees (50 + 24)·0.00045 = 0.0333, net 3.9667, 60 open
    _xrp_trade(s, "A7", 3 * DAY + 5 * HOUR, "100", "tp", "40", "0.6")
    # NF1 (nofx) 10 @20 → 21 on 01-03, fees in BNB: realized 10, USDT fees 0, other_fees unknown
    s.signal("NF1", "nofx", "SOLUSDT", "buy", "10", at=2 * DAY + 12 * HOUR)
    s.trade("NF1-en", "SOLUSDT", "BUY", ("10", "20"), at=2 * DAY + 12 * HOUR + 1, bnb_price=BNB_CLOSE)
    s.trade("NF1-tp", "SOLUSDT", "SELL", ("10", "21"), at=2 * DAY + 13 * HOUR, bnb_price=BNB_CLOSE)
    s.finish({"BNBUSDT": "320", "XRPUSDT": "0.52", "ETHBTC": "0.052"}, at=3 * DAY + 20 * HOUR)
    # …and the two minutes of NF1's fills have no BNBUSDT kline (no other BNB fee falls in them)
    unpriced = {s.at(2 * DAY + 12 * HOUR), s.at(2 * DAY + 13 * HOUR)}
    klines = (out / "klines.jsonl").read_text().splitlines()
    kept = [k for k in klines if json.loads(k)["kline"][0] not in unpriced]
    assert len(kept) == len(klines) - 2
    (out / "klines.jsonl").write_text("".join(f"{k}\n" for k in kept))
    return out


@pytest.fixture(scope="module", params=["duckdb", "mysql"])
def marts(request, replay, tmp_path_factory) -> Settings:
    settings = module_warehouse(request, tmp_path_factory, "performance")
    build(settings, replay, target_path=tmp_path_factory.mktemp("dbt-target"))
    return settings


def by_key(settings: Settings, table: str, key: str) -> dict:
    return {r[key]: r for r in mart_rows(settings, table)}


def mismatches(row: dict, expected: dict) -> list[str]:
    """Columns of ``row`` that differ: exact for decimals and ints, 1e-9 for floats (DOUBLE metrics)."""
    out = []
    for col, want in expected.items():
        got = row[col]
        if want is None or got is None:
            ok = want is None and got is None
        elif isinstance(want, float):
            ok = math.isclose(float(got), want, rel_tol=1e-9, abs_tol=1e-9)
        elif isinstance(want, str):
            ok = got == want
        else:
            ok = D(str(got)) == D(str(want))
        if not ok:
            out.append(f"{col}: expected {want!r}, got {got!r}")
    return out


def annualised_sharpe(daily: list[D]) -> float:
    """mean / sample standard deviation · √365, written out."""
    x = [float(v) for v in daily]
    mean = sum(x) / len(x)
    variance = sum((v - mean) ** 2 for v in x) / (len(x) - 1)
    return mean / math.sqrt(variance) * math.sqrt(365)


def annualised_sortino(daily: list[D]) -> float:
    """mean / √(Σ min(x, 0)² / N) · √365."""
    x = [float(v) for v in daily]
    downside = math.sqrt(sum(min(v, 0.0) ** 2 for v in x) / len(x))
    return sum(x) / len(x) / downside * math.sqrt(365)


# daily net PnL of each strategy's active span, by hand (see the fixture)
DAILY_NET = {
    # 3 − 0.0465 | 4.95275 − 2.0441 | −3.04365 − 1.04455 | 1.9091 + 3.9667 (A7's partial exit)
    "strat_a": [D("2.9535"), D("2.90865"), D("-4.0882"), D("5.8758")],
    "strat_b": [D("5.905")],  # USDT; its BTC curve is BTC_DAILY_NET
    "oneshot": [D("-7.3644")],
    "steady": [D("9.895"), D("0"), D("9.795"), D("0")],  # day 1 idle; day 3 the breakeven
    "holder": [D("-0.15"), D("0"), D("-0.31"), D("-0.096")],  # fees, idle, fee, funding
}


# strat_b's ETHBTC curve, in BTC: XB1 | XB2 | XB3's fee and funding
BTC_DAILY_NET = [D("0.0049575"), D("-0.004098"), D("-0.00003")]


def test_strategy_performance_with_wins_and_losses(marts):
    row = by_key(marts, "strategy_performance", "strategy_key")["default:strat_a:USDT"]
    expected = {
        "positions_total": 7,
        "positions_open": 0,
        "positions_partial": 1,  # A7
        "positions_closed": 6,
        "margin_asset": "USDT",
        "wins": 3,  # A1 2.9535, A2 4.95275, A6 1.9091
        "losses": 3,  # A3 −2.0441, A4 −3.04365, A5 −1.04455
        "breakevens": 0,
        "unpriced_positions": 0,
        "win_rate": D("0.5"),
        "gross_profit": D("9.81535"),
        "gross_loss": D("-6.1323"),
        "avg_win": D("3.271783333333333333"),  # 9.81535 / 3
        "avg_loss": D("-2.0441"),  # −6.1323 / 3
        "payoff_ratio": D("1.600598470394468633"),  # 3.2717833… / 2.0441
        "profit_factor": D("1.600598470394468633"),  # 9.81535 / 6.1323
        "expectancy": D("0.613841666666666667"),  # (9.81535 − 6.1323) / 6
        "best_trade_pnl": D("4.95275"),
        "worst_trade_pnl": D("-3.04365"),
        "realized_pnl": D("8"),  # 3 + 5 − 2 − 3 − 1 + 2 + 4 (A7's partial exit counts)
        "fees": D("0.0465"),  # A1's USDT commission; the XRP trades paid BNB
        "other_fees": D("0.30375"),  # 0.00045·(105 + 98 + 97 + 99 + 202 + 74)
        "funding_fees": D("0"),
        "other_income": D("0"),
        "realized_pnl_net": D("7.64975"),  # 8 − 0.0465 − 0.30375
        "closed_realized_pnl_net": D("3.68305"),
        "avg_holding_seconds": D("3015.666666666666666667"),  # (99 + 5·3599) / 6
        "avg_holding_seconds_winners": D("2432.333333333333333333"),  # (99 + 3599 + 3599) / 3
        "avg_holding_seconds_losers": D("3599"),
        "take_profit_closes": 3,  # A1, A2, A6
        "stop_loss_closes": 2,  # A3, A4
        "manual_closes": 1,  # A5
        "external_closes": 0,
        "liquidation_closes": 0,
        "take_profit_rate": D("0.5"),
        "stop_loss_rate": D("0.333333333333333333"),
        "manual_rate": D("0.166666666666666667"),
        "external_rate": D("0"),
        "liquidation_rate": D("0"),
        "max_consecutive_wins": 2,  # W W L L L W
        "max_consecutive_losses": 3,
        "active_days": 4,
        "avg_daily_net_pnl": D("1.9124375"),  # 7.64975 / 4
        # cumulative 2.9535, 5.86215, 1.77395, 7.64975: peak 5.86215 → trough 1.77395
        "max_drawdown": D("4.0882"),
        # mean 1.9124375; downside √(4.0882²/4) = 2.0441 → 1.9124375 / 2.0441 · √365
        "sharpe_ratio": annualised_sharpe(DAILY_NET["strat_a"]),
        "sortino_ratio": 1.9124375 / 2.0441 * math.sqrt(365),
        "open_quantity": D("60"),
        "unrealized_pnl": D("1.2"),  # (0.52 − 0.5)·60
    }
    assert mismatches(row, expected) == []
    assert row["sortino_ratio"] == pytest.approx(annualised_sortino(DAILY_NET["strat_a"]), abs=1e-9)


def test_a_strategy_without_losses(marts):
    row = by_key(marts, "strategy_performance", "strategy_key")["default:steady:USDT"]
    expected = {
        "positions_total": 3,  # ST4 never filled: no position
        "positions_closed": 3,
        "wins": 2,
        "losses": 0,
        "breakevens": 1,  # ST3
        "win_rate": D("1"),  # 2 / (2 + 0): the breakeven is excluded
        "profit_factor": None,  # no losses
        "payoff_ratio": None,
        "avg_win": D("9.845"),  # (9.895 + 9.795) / 2
        "avg_loss": None,
        "expectancy": D("6.563333333333333333"),  # 19.69 / 3, the breakeven counts as a trade
        "best_trade_pnl": D("9.895"),
        "worst_trade_pnl": D("0"),
        "realized_pnl": D("20"),
        "fees": D("0.31"),
        "realized_pnl_net": D("19.69"),
        "avg_holding_seconds": D("6200"),  # (14400 + 3600 + 600) / 3
        "avg_holding_seconds_winners": D("9000"),
        "avg_holding_seconds_losers": None,
        "take_profit_rate": D("0.666666666666666667"),
        "manual_rate": D("0.333333333333333333"),
        "max_consecutive_wins": 2,  # W W B
        "max_consecutive_losses": 0,
        "active_days": 4,  # 01-01 … 01-04 with the idle 01-02 counted as 0
        "max_drawdown": D("0"),
        # mean 4.9225; deviations 4.9725, −4.9225, 4.8725, −4.9225 → variance 96.929025 / 3
        "sharpe_ratio": 4.9225 / math.sqrt(96.929025 / 3) * math.sqrt(365),
        "sortino_ratio": None,  # no losing day
        "open_quantity": D("0"),
        "unrealized_pnl": D("0"),
    }
    assert mismatches(row, expected) == []
    assert row["sharpe_ratio"] == pytest.approx(annualised_sharpe(DAILY_NET["steady"]), abs=1e-9)


def test_single_trades(marts):
    perf = by_key(marts, "strategy_performance", "strategy_key")
    loser = {
        "positions_total": 1,
        "positions_closed": 1,
        "wins": 0,
        "losses": 1,
        "win_rate": D("0"),
        "profit_factor": D("0"),  # 0 / 7.3644
        "payoff_ratio": None,  # no wins
        "avg_win": None,
        "avg_loss": D("-7.3644"),
        "expectancy": D("-7.3644"),
        "best_trade_pnl": D("-7.3644"),
        "worst_trade_pnl": D("-7.3644"),
        "fees": D("0.1644"),
        "avg_holding_seconds": D("79198.499"),
        "avg_holding_seconds_losers": D("79198.499"),
        "avg_holding_seconds_winners": None,
        "stop_loss_rate": D("1"),
        "max_consecutive_wins": 0,
        "max_consecutive_losses": 1,
        "active_days": 1,  # entry and exit both on 01-02
        "max_drawdown": D("7.3644"),  # from 0 to −7.3644
        "sharpe_ratio": None,  # one day
        "sortino_ratio": None,
    }
    assert mismatches(perf["default:oneshot:USDT"], loser) == []
    winner = {
        "positions_total": 1,
        "wins": 1,
        "losses": 0,
        "win_rate": D("1"),
        "profit_factor": None,
        "payoff_ratio": None,
        "avg_win": D("5.905"),
        "expectancy": D("5.905"),
        "avg_holding_seconds": D("189"),
        "take_profit_rate": D("1"),
        "max_consecutive_wins": 1,
        "active_days": 1,
        "max_drawdown": D("0"),
        "sharpe_ratio": None,
        "sortino_ratio": None,
    }
    assert mismatches(perf["default:strat_b:USDT"], winner) == []


def test_a_strategy_with_only_open_positions(marts):
    row = by_key(marts, "strategy_performance", "strategy_key")["default:holder:USDT"]
    expected = {
        "positions_total": 2,
        "positions_open": 2,
        "positions_closed": 0,
        "wins": 0,
        "losses": 0,
        "breakevens": 0,
        "win_rate": None,
        "profit_factor": None,
        "payoff_ratio": None,
        "expectancy": None,
        "best_trade_pnl": None,
        "avg_holding_seconds": None,
        "take_profit_rate": None,
        "max_consecutive_wins": 0,
        "max_consecutive_losses": 0,
        "realized_pnl": D("0"),
        "fees": D("0.46"),
        "funding_fees": D("-0.096"),
        "realized_pnl_net": D("-0.556"),
        "closed_realized_pnl_net": D("0"),
        "open_quantity": D("3"),
        "unrealized_pnl": D("40"),  # (320 − 300)·1 + (320 − 310)·2
        "active_days": 4,
        "max_drawdown": D("0.556"),  # never above 0
        "sharpe_ratio": annualised_sharpe(DAILY_NET["holder"]),
        # mean −0.139; downside √((0.0225 + 0.0961 + 0.009216) / 4)
        "sortino_ratio": -0.139 / math.sqrt(0.127816 / 4) * math.sqrt(365),
    }
    assert mismatches(row, expected) == []


def test_two_margin_assets_are_never_added(marts):
    """strat_b trades BTCUSDT (USDT) and ETHBTC (BTC): one row per asset, each with its own numbers only."""
    perf = by_key(marts, "strategy_performance", "strategy_key")
    assert {k for k in perf if k.startswith("default:strat_b:")} == {"default:strat_b:USDT", "default:strat_b:BTC"}
    usdt = {
        "margin_asset": "USDT",
        "positions_total": 1,  # B1 only: the ETHBTC positions are not counted here
        "wins": 1,
        "losses": 0,
        "realized_pnl": D(6),
        "fees": D("0.095"),
        "funding_fees": D(0),
        "other_income": D(0),
        "realized_pnl_net": D("5.905"),  # not 5.905 + 0.0008295
        "best_trade_pnl": D("5.905"),
        "worst_trade_pnl": D("5.905"),
        "unrealized_pnl": D(0),
        "active_days": 1,  # 01-01 only, although strat_b traded ETHBTC until 01-04
        "max_drawdown": D(0),
    }
    assert mismatches(perf["default:strat_b:USDT"], usdt) == []
    btc = {
        "margin_asset": "BTC",
        "positions_total": 3,
        "positions_open": 1,  # XB3
        "positions_closed": 2,
        "wins": 1,
        "losses": 1,
        "win_rate": D("0.5"),
        "gross_profit": D("0.0049575"),
        "gross_loss": D("-0.004098"),
        "avg_win": D("0.0049575"),
        "avg_loss": D("-0.004098"),
        "payoff_ratio": D("1.209736456808199122"),  # 0.0049575 / 0.004098
        "profit_factor": D("1.209736456808199122"),
        "expectancy": D("0.00042975"),  # (0.0049575 − 0.004098) / 2
        "best_trade_pnl": D("0.0049575"),
        "worst_trade_pnl": D("-0.004098"),
        "realized_pnl": D("0.001"),  # 0.005 − 0.004
        "fees": D("0.0001755"),  # 0.0000525 + 0.000098 + 0.000025, all in BTC
        "other_fees": D(0),
        "funding_fees": D("-0.000005"),
        "other_income": D("0.00001"),  # the rebate
        "realized_pnl_net": D("0.0008295"),  # 0.001 − 0.0001755 − 0.000005 + 0.00001
        "closed_realized_pnl_net": D("0.0008595"),
        "avg_holding_seconds": D("5399"),  # (7199 + 3599) / 2
        "take_profit_closes": 1,
        "stop_loss_closes": 1,
        "take_profit_rate": D("0.5"),
        "max_consecutive_wins": 1,
        "max_consecutive_losses": 1,
        "active_days": 3,  # 01-02 … 01-04: the BTC curve's own span
        "avg_daily_net_pnl": D("0.0002765"),  # 0.0008295 / 3
        # cumulative 0.0049575, 0.0008595, 0.0008295: peak 0.0049575 → trough 0.0008295
        "max_drawdown": D("0.004128"),
        "sharpe_ratio": annualised_sharpe(BTC_DAILY_NET),
        "sortino_ratio": annualised_sortino(BTC_DAILY_NET),
        "open_quantity": D(1),
        "unrealized_pnl": D("0.002"),  # (0.052 − 0.05)·1
    }
    assert mismatches(perf["default:strat_b:BTC"], btc) == []

    days = sorted(
        (r for r in mart_rows(marts, "strategy_daily_pnl") if r["strategy_id"] == "strat_b"),
        key=lambda r: (r["margin_asset"], r["pnl_date"]),
    )
    assert [(r["margin_asset"], r["pnl_date"], D(str(r["net_pnl"]))) for r in days] == [
        ("BTC", date(2026, 1, 2), BTC_DAILY_NET[0]),
        ("BTC", date(2026, 1, 3), BTC_DAILY_NET[1]),
        ("BTC", date(2026, 1, 4), BTC_DAILY_NET[2]),
        ("USDT", date(2026, 1, 1), D("5.905")),
    ]
    xb1_day = {"realized_pnl": D("0.005"), "fees": D("0.0000525"), "other_income": D("0.00001"), "day_index": 1}
    assert mismatches(days[0], xb1_day) == []
    xb3_day = {"fees": D("0.000025"), "funding_fees": D("-0.000005"), "positions_opened": 1, "positions_closed": 0}
    assert mismatches(days[2], xb3_day) == []
    assert [D(str(r["drawdown"])) for r in days[:3]] == [D(0), D("0.004098"), D("0.004128")]

    symbols = by_key(marts, "strategy_symbol_performance", "strategy_symbol_key")
    eth = {"margin_asset": "BTC", "positions_total": 3, "fees": D("0.0001755"), "realized_pnl_net": D("0.0008295")}
    assert mismatches(symbols["default:strat_b:ETHBTC"], eth) == []
    assert symbols["default:strat_b:BTCUSDT"]["margin_asset"] == "USDT"

    reasons = by_key(marts, "strategy_close_reasons", "strategy_close_reason_key")
    tp_btc = {"positions_closed": 2, "closes": 1, "close_rate": D("0.5"), "realized_pnl_net": D("0.0049575")}
    assert mismatches(reasons["default:strat_b:BTC:take_profit"], tp_btc) == []
    tp_usdt = {"positions_closed": 1, "closes": 1, "close_rate": D(1), "realized_pnl_net": D("5.905")}
    assert mismatches(reasons["default:strat_b:USDT:take_profit"], tp_usdt) == []
    assert len([k for k in reasons if k.startswith("default:strat_b:")]) == 10  # five reasons × two assets

    # each asset ranks its own trades: B1 is the best USDT trade, XB1 the best BTC trade
    ranks = by_key(marts, "strategy_trade_rankings", "strategy_position_id")
    assert {
        k: (r["margin_asset"], r["best_rank"], r["worst_rank"], r["strategy_trades"])
        for k, r in ranks.items()
        if r["strategy_id"] == "strat_b"
    } == {
        "B1": ("USDT", 1, 1, 1),
        "XB1": ("BTC", 1, 2, 2),
        "XB2": ("BTC", 2, 1, 2),
    }
    assert mismatches(ranks["XB1"], {"other_income": D("0.00001"), "realized_pnl_net": D("0.0049575")}) == []

    quality = by_key(marts, "execution_quality", "signal_id")
    # (0.05 − 0.0499)·2 = 0.0002 BTC; 0.0001 / 0.0499 · 1e4 bps
    xb2 = {"margin_asset": "BTC", "slippage_cost": D("0.0002"), "slippage_bps": D("20.040080160320641283")}
    assert mismatches(quality["XB2"], xb2) == []
    assert quality["B1"]["margin_asset"] == "USDT"
    timeline = by_key(marts, "contribution_timeline", "strategy_position_id")
    assert (timeline["XB1"]["margin_asset"], timeline["B1"]["margin_asset"]) == ("BTC", "USDT")


def test_a_trade_without_a_conversion_price(marts):
    """NF1's BNB fees have no price: its net is NULL, so it is no win, loss or breakeven, and no sum takes it."""
    position = by_key(marts, "strategy_positions", "strategy_position_id")["NF1"]
    assert (position["other_fees"], position["realized_pnl_net"]) == (None, None)
    row = by_key(marts, "strategy_performance", "strategy_key")["default:nofx:USDT"]
    expected = {
        "positions_total": 1,
        "positions_closed": 1,
        "wins": 0,
        "losses": 0,
        "breakevens": 0,
        "unpriced_positions": 1,
        "win_rate": None,
        "realized_pnl": D(10),
        "fees": D(0),
        "other_fees": None,
        "realized_pnl_net": None,
        "expectancy": None,
        "take_profit_closes": 1,
        "max_consecutive_wins": 0,
        "max_consecutive_losses": 0,
    }
    assert mismatches(row, expected) == []
    # its day counts what is known (realized 10) and how many amounts had no price
    [day] = [r for r in mart_rows(marts, "strategy_daily_pnl") if r["strategy_id"] == "nofx"]
    known = {"realized_pnl": D(10), "fees": D(0), "other_fees": D(0), "net_pnl": D(10), "unpriced_amounts": 2}
    assert mismatches(day, known) == []
    assert by_key(marts, "strategy_trade_rankings", "strategy_position_id")["NF1"]["outcome"] == "unpriced"
    tp = by_key(marts, "strategy_close_reasons", "strategy_close_reason_key")["default:nofx:USDT:take_profit"]
    assert mismatches(tp, {"closes": 1, "wins": 0, "losses": 0, "unpriced_closes": 1, "realized_pnl_net": None}) == []


def test_buckets_are_not_strategies(marts):
    assert {r["strategy_id"] for r in mart_rows(marts, "strategy_performance")} == STRATEGIES
    assert {r["strategy_key"] for r in mart_rows(marts, "strategy_performance")} == {
        *(f"default:{s}:USDT" for s in STRATEGIES),
        "default:strat_b:BTC",
    }
    for table in ("strategy_daily_pnl", "strategy_symbol_performance", "strategy_close_reasons", "execution_quality"):
        assert "unattributed" not in {r["strategy_id"] for r in mart_rows(marts, table)}, table


def test_daily_pnl_on_a_date_spine(marts):
    daily: dict[str, list[dict]] = {}
    for r in sorted(mart_rows(marts, "strategy_daily_pnl"), key=lambda r: r["pnl_date"]):
        if r["margin_asset"] == "USDT":
            daily.setdefault(r["strategy_id"], []).append(r)
    for strategy, nets in DAILY_NET.items():
        assert [D(str(r["net_pnl"])) for r in daily[strategy]] == nets, strategy
        assert [r["day_index"] for r in daily[strategy]] == list(range(1, len(nets) + 1))
    steady = daily["steady"]
    assert [r["pnl_date"] for r in steady] == [date(2026, 1, d) for d in (1, 2, 3, 4)]
    assert [r["pnl_date"] for r in daily["oneshot"]] == [date(2026, 1, 2)]  # exit at 23:59:59.999 UTC
    idle = steady[1]  # 2026-01-02: no fill, no funding
    assert (
        mismatches(
            idle,
            {"fill_count": 0, "realized_pnl": D(0), "fees": D(0), "cumulative_net_pnl": D("9.895"), "drawdown": D(0)},
        )
        == []
    )
    assert mismatches(steady[3], {"fill_count": 2, "positions_closed": 1, "breakevens": 1, "wins": 0}) == []
    a = daily["strat_a"]
    # A7's partial exit books its realized 4 on 01-04 next to A6's 2
    assert mismatches(a[3], {"realized_pnl": D(6), "positions_opened": 2, "positions_closed": 1, "wins": 1}) == []
    assert mismatches(a[1], {"fees": D(0), "other_fees": D("0.09135"), "realized_pnl": D(3)}) == []
    assert [D(str(r["drawdown"])) for r in a] == [D(0), D(0), D("4.0882"), D(0)]
    assert [D(str(r["peak_net_pnl"])) for r in a] == [D("2.9535"), D("5.86215"), D("5.86215"), D("7.64975")]
    holder = daily["holder"]
    assert mismatches(holder[3], {"funding_fees": D("-0.096"), "fees": D(0), "fill_count": 0}) == []
    assert [D(str(r["drawdown"])) for r in holder] == [D("0.15"), D("0.15"), D("0.46"), D("0.556")]


def test_symbol_performance(marts):
    rows = by_key(marts, "strategy_symbol_performance", "strategy_symbol_key")
    xrp = {
        "positions_total": 6,
        "positions_closed": 5,
        "positions_partial": 1,
        "long_positions": 6,
        "margin_asset": "USDT",
        "wins": 2,  # 4.95275, 1.9091
        "losses": 3,  # −2.0441, −3.04365, −1.04455
        "win_rate": D("0.4"),
        "profit_factor": D("1.118968413156564421"),  # 6.86185 / 6.1323
        "payoff_ratio": D("1.678452619734846632"),  # (6.86185/2) / (6.1323/3)
        "expectancy": D("0.14591"),  # (6.86185 − 6.1323) / 5
        "fees": D(0),
        "other_fees": D("0.30375"),
        "realized_pnl_net": D("4.69625"),  # 6.86185 − 6.1323 + 3.9667
        "long_open_quantity": D("60"),
        "short_open_quantity": D("0"),
        "unrealized_pnl": D("1.2"),
    }
    assert mismatches(rows["default:strat_a:XRPUSDT"], xrp) == []
    btc = {"positions_total": 1, "wins": 1, "realized_pnl": D(3), "fees": D("0.0465"), "profit_factor": None}
    assert mismatches(rows["default:strat_a:BTCUSDT"], btc) == []
    assert mismatches(rows["default:oneshot:SOLUSDT"], {"short_positions": 1, "long_positions": 0}) == []


def test_close_reasons(marts):
    rows = by_key(marts, "strategy_close_reasons", "strategy_close_reason_key")
    assert len([k for k in rows if k.startswith("default:holder:USDT:")]) == 5  # all five reasons, even with no trade
    tp = {
        "closes": 3,
        "positions_closed": 6,
        "close_rate": D("0.5"),
        "wins": 3,
        "win_rate": D("1"),
        "realized_pnl_net": D("9.81535"),
        "avg_realized_pnl_net": D("3.271783333333333333"),
        "avg_holding_seconds": D("2432.333333333333333333"),
    }
    assert mismatches(rows["default:strat_a:USDT:take_profit"], tp) == []
    sl = {"closes": 2, "close_rate": D("0.333333333333333333"), "losses": 2, "win_rate": D(0)}
    sl["realized_pnl_net"] = D("-5.08775")  # −2.0441 − 3.04365
    assert mismatches(rows["default:strat_a:USDT:stop_loss"], sl) == []
    # A3: −2 / (0.5·100)·100 = −4 %; A4: −6 %
    assert rows["default:strat_a:USDT:stop_loss"]["avg_realized_pnl_pct"] == D(-5)
    none = {"closes": 0, "close_rate": D(0), "win_rate": None, "avg_realized_pnl_net": None, "realized_pnl_net": D(0)}
    assert mismatches(rows["default:strat_a:USDT:liquidation"], none) == []
    assert rows["default:holder:USDT:take_profit"]["close_rate"] is None  # no closed trade at all


def test_trade_rankings(marts):
    rows = by_key(marts, "strategy_trade_rankings", "strategy_position_id")
    a = sorted((r for r in rows.values() if r["strategy_id"] == "strat_a"), key=lambda r: r["best_rank"])
    assert [r["strategy_position_id"] for r in a] == ["A2", "A1", "A6", "A5", "A3", "A4"]  # A7 is not closed
    assert [r["worst_rank"] for r in a] == [6, 5, 4, 3, 2, 1]
    assert {r["strategy_trades"] for r in a} == {6}
    st3 = rows["ST3"]
    assert (st3["outcome"], st3["close_reason"], st3["worst_rank"]) == ("breakeven", "manual", 1)
    assert (rows["OS1"]["outcome"], rows["OS1"]["close_reason"]) == ("loss", "stop_loss")
    assert "HO1" not in rows


def test_multi_strategy_positions(marts):
    rows = by_key(marts, "multi_strategy_positions", "multi_strategy_position_id")
    assert set(rows) == {"default:BTCUSDT_LONG:1:strat_a", "default:BTCUSDT_LONG:1:strat_b"}  # holder alone on BNB
    episode = {
        "strategy_count": 2,
        "contribution_count": 2,
        "episode_realized_pnl": D(9),  # Binance: 2.33333333 + 6.66666667
        "episode_attributed_pnl": D(9),  # 3 + 6
        "episode_exchange_realized_pnl": D(9),
        "episode_contributed_quantity": D("0.003"),
        "episode_status": "closed",
    }
    a = {
        **episode,
        "contribution_quantity": D("0.001"),
        "contribution_share": D("0.333333333333333333"),
        "first_sequence": 1,
        "attributed_pnl": D(3),
        "exchange_realized_pnl": D("2.33333333"),
        "averaging_effect": D("-0.66666667"),  # averaging moved 0.667 from A to B
    }
    b = {**a, "contribution_quantity": D("0.002"), "contribution_share": D("0.666666666666666667"), "first_sequence": 2}
    b |= {"attributed_pnl": D(6), "exchange_realized_pnl": D("6.66666667"), "averaging_effect": D("0.66666667")}
    assert mismatches(rows["default:BTCUSDT_LONG:1:strat_a"], a) == []
    assert mismatches(rows["default:BTCUSDT_LONG:1:strat_b"], b) == []


def test_contribution_timeline(marts):
    rows = by_key(marts, "contribution_timeline", "strategy_position_id")
    b1 = {
        "position_sequence": 2,
        "seconds_after_episode_open": D(10),  # A1 at 1 s, B1 at 11 s
        "seconds_after_previous_contribution": D(10),
        "cumulative_contribution_quantity": D("0.003"),
        "share_of_peak_quantity": D("0.666666666666666667"),
        "holding_seconds": D(189),
        "averaging_effect": D("0.66666667"),
        "status": "closed",
    }
    assert mismatches(rows["B1"], b1) == []
    assert rows["A1"]["seconds_after_previous_contribution"] is None
    # HO2 entered 2 days 4 h 1 s after the signal day's 10:00:00.250 entry of HO1
    ho2 = {"seconds_after_previous_contribution": D("151200.75"), "status": "active", "holding_seconds": None}
    assert mismatches(rows["HO2"], ho2) == []


def test_co_entries(marts):
    rows = mart_rows(marts, "strategy_co_entries")
    assert len(rows) == 1  # holder's HO1/HO2 are one strategy; nothing else shares a key within 300 s
    expected = {
        "strategy_a": "strat_a",
        "strategy_b": "strat_b",
        "exchange_position_key": "BTCUSDT_LONG",
        "window_seconds": 300,
        "co_entries": 1,
        "same_episode_co_entries": 1,
        "avg_seconds_apart": D(10),
        "examples": "A1+B1",
    }
    assert mismatches(rows[0], expected) == []


def test_execution_quality(marts):
    rows = by_key(marts, "execution_quality", "signal_id")
    short = {
        "side": "SHORT",
        "slippage_bps": D(-50),  # SHORT: (20 − 20.1) / 20 · 1e4, sold higher than seen: favourable
        "slippage_cost": D("-0.8"),  # −(20.1 − 20)·8
        "latency_ms": 1500,
        "fill_ratio": D("0.8"),  # 8 of 10
        "unfilled_quantity": D(2),
        "entry_fills": 1,
    }
    assert mismatches(rows["OS1"], short) == []
    # LONG: (300 − 299) / 299 · 1e4 = 33.4448160535117056856… bps adverse
    long = {"slippage_bps": D("33.444816053511705686"), "slippage_cost": D(1), "latency_ms": 250, "fill_ratio": D(1)}
    assert mismatches(rows["HO1"], long) == []
    assert mismatches(rows["HO2"], {"slippage_bps": D(0), "latency_ms": 1000}) == []
    unfilled = {
        "entry_quantity": D(0),
        "fill_ratio": D(0),
        "entry_fills": 0,
        "latency_ms": None,
        "slippage_bps": None,
        "position_status": None,
    }
    assert mismatches(rows["ST4"], unfilled) == []
    assert rows["A2"]["slippage_bps"] is None  # no signal price


def test_docs_describe_every_column(marts, tmp_path):
    """`dbt docs generate` ran offline after the build; every performance mart column is described."""
    import json

    from stratpos.transform import generate_docs

    target = generate_docs(marts, target_path=tmp_path)
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    assert (target / "static_index.html").exists()
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model" and "performance" in n["fqn"]]
    assert {n["name"] for n in models} == {
        "account_performance",
        "strategy_performance",
        "strategy_daily_pnl",
        "strategy_symbol_performance",
        "strategy_close_reasons",
        "multi_strategy_positions",
        "contribution_timeline",
        "strategy_trade_rankings",
        "strategy_co_entries",
        "execution_quality",
    }
    for node in models:
        assert node["description"].strip(), node["name"]
        documented = {c: v["description"].strip() for c, v in node["columns"].items()}
        built = {c.lower() for c in catalog["nodes"][node["unique_id"]]["columns"]}
        assert built == set(documented), node["name"]
        assert all(documented.values()), node["name"]
    exposed = {d for e in manifest["exposures"].values() for d in e["depends_on"]["nodes"]}
    assert {n["unique_id"] for n in models} <= exposed
