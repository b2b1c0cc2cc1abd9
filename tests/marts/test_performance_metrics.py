"""SPEC §6 performance marts on both warehouses against metrics worked out by hand.

One hedge-mode account over four UTC days (2026-01-01 … 01-04), five strategies chosen for
the edge cases:

- ``strat_a``: wins and losses (W W L L L W by exit time) and a partial position;
- ``strat_b``: a single winning trade (SPEC §4.4's worked example with ``strat_a``);
- ``oneshot``: a single losing SHORT trade, partly filled, one day only;
- ``steady``: no losses — two wins and a breakeven — with an idle day between trading days,
  and a signal that never filled;
- ``holder``: only open positions (fees and funding, no trade closed);
- plus manual UI trades (an unattributed bucket that must stay out of every strategy mart).

Fees are Binance's taker 0.05 % of the notional in USDT, except where the account pays them
in BNB (then a position's quote-asset fees are 0). Expected values are in the comments.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from sandbox.scenario import Scenario, add_worked_example
from stratpos.config import Settings
from tests.dbt.truth import mart_rows
from tests.marts.warehouses import build, module_warehouse

DAY = 86_400
HOUR = 3_600
STRATEGIES = {"strat_a", "strat_b", "oneshot", "steady", "holder"}


def _xrp_trade(s: Scenario, sid: str, at: float, qty: str, exit_code: str, exit_qty: str, exit_price: str) -> None:
    """strat_a on XRPUSDT_LONG: signal at ``at``, entry @0.5 one second later, exit one hour after the signal."""
    s.signal(sid, "strat_a", "XRPUSDT", "buy", qty, at=at)
    s.trade(f"{sid}-en", "XRPUSDT", "BUY", (qty, "0.5"), at=at + 1)
    s.trade(f"{sid}-{exit_code}", "XRPUSDT", "SELL", (exit_qty, exit_price), at=at + HOUR)


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

    # ---- day 1 (2026-01-02): steady and holder idle
    # OS1 (oneshot) SHORT: signal 10 @20, 8 filled @20.1 1.5 s later, stop-loss @21 at 23:59:59.999
    # realized (21 − 20.1)·8·−1 = −7.2, fees (160.8 + 168)·0.0005 = 0.1644, net −7.3644,
    # held 172799.999 − 93601.5 = 79198.499 s; all of it booked on 01-02, the last millisecond of the day
    s.signal("OS1", "oneshot", "SOLUSDT", "sell", "10", at=DAY + 2 * HOUR, price="20")
    s.trade("OS1-en", "SOLUSDT", "SELL", ("8", "20.1"), at=DAY + 2 * HOUR + 1.5)
    s.trade("OS1-sl", "SOLUSDT", "BUY", ("8", "21"), at=2 * DAY - 0.001)
    s.account.pay_fees_in_bnb = True  # strat_a's XRP trades: no quote-asset fees, net = realized
    _xrp_trade(s, "A2", DAY + 4 * HOUR, "100", "tp", "100", "0.55")  # +5, held 3599 s
    _xrp_trade(s, "A3", DAY + 6 * HOUR, "100", "sl", "100", "0.48")  # −2
    s.account.pay_fees_in_bnb = False

    # ---- day 2 (2026-01-03)
    # ST2 (steady) 2 @100 → 105: realized 10, fees 0.1 + 0.105 = 0.205, net 9.795, held 3600 s
    s.signal("ST2", "steady", "ETHUSDT", "buy", "2", at=2 * DAY + 2 * HOUR, price="100")
    s.trade("ST2-en", "ETHUSDT", "BUY", ("2", "100"), at=2 * DAY + 2 * HOUR + 1)
    s.trade("ST2-tp", "ETHUSDT", "SELL", ("2", "105"), at=2 * DAY + 3 * HOUR + 1)
    # HO2 (holder) 2 @310 at its signal price, 1 s later: fee 0.31, stays open
    s.signal("HO2", "holder", "BNBUSDT", "buy", "2", at=2 * DAY + 4 * HOUR, price="310")
    s.trade("HO2-en", "BNBUSDT", "BUY", ("2", "310"), at=2 * DAY + 4 * HOUR + 1)
    s.account.pay_fees_in_bnb = True
    _xrp_trade(s, "A4", 2 * DAY + 6 * HOUR, "100", "sl", "100", "0.47")  # −3
    _xrp_trade(s, "A5", 2 * DAY + 8 * HOUR, "100", "cl", "100", "0.49")  # −1, manual close

    # ---- day 3 (2026-01-04)
    # funding at 00:00 on BNBUSDT: −3·320·0.0001 = −0.096 → HO1 −0.032, HO2 −0.064
    s.funding("BNBUSDT", "0.0001", "320", at=3 * DAY)
    # ST3 (steady) 1 @100 → 100, fees in BNB: realized 0, net 0 — breakeven, manual close, held 600 s
    s.signal("ST3", "steady", "ETHUSDT", "buy", "1", at=3 * DAY + HOUR, price="100")
    s.trade("ST3-en", "ETHUSDT", "BUY", ("1", "100"), at=3 * DAY + HOUR + 1)
    s.trade("ST3-cl", "ETHUSDT", "SELL", ("1", "100"), at=3 * DAY + HOUR + 601)
    # ST4 (steady) never fills
    s.signal("ST4", "steady", "ETHUSDT", "buy", "1", at=3 * DAY + 2 * HOUR, price="100")
    _xrp_trade(s, "A6", 3 * DAY + 3 * HOUR, "200", "tp", "200", "0.51")  # +2
    _xrp_trade(s, "A7", 3 * DAY + 5 * HOUR, "100", "tp", "40", "0.6")  # partial: realized 4, 60 open
    s.account.pay_fees_in_bnb = False
    s.finish({"BNBUSDT": "320", "XRPUSDT": "0.52"}, at=3 * DAY + 20 * HOUR)
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
    "strat_a": [D("2.9535"), D("3"), D("-4"), D("6")],  # 3 − 0.0465 | 5 − 2 | −3 − 1 | 2 + 4 (A7's partial exit)
    "strat_b": [D("5.905")],
    "oneshot": [D("-7.3644")],
    "steady": [D("9.895"), D("0"), D("9.795"), D("0")],  # day 1 idle; day 3 the breakeven
    "holder": [D("-0.15"), D("0"), D("-0.31"), D("-0.096")],  # fees, idle, fee, funding
}


def test_strategy_performance_with_wins_and_losses(marts):
    row = by_key(marts, "strategy_performance", "strategy_key")["default:strat_a"]
    expected = {
        "positions_total": 7,
        "positions_open": 0,
        "positions_partial": 1,  # A7
        "positions_closed": 6,
        "wins": 3,  # A1 2.9535, A2 5, A6 2
        "losses": 3,  # A3 −2, A4 −3, A5 −1
        "breakevens": 0,
        "win_rate": D("0.5"),
        "gross_profit": D("9.9535"),
        "gross_loss": D("-6"),
        "avg_win": D("3.317833333333333333"),  # 9.9535 / 3
        "avg_loss": D("-2"),  # −6 / 3
        "payoff_ratio": D("1.658916666666666667"),  # 3.3178333… / 2
        "profit_factor": D("1.658916666666666667"),  # 9.9535 / 6
        "expectancy": D("0.658916666666666667"),  # (9.9535 − 6) / 6
        "best_trade_pnl": D("5"),
        "worst_trade_pnl": D("-3"),
        "realized_pnl": D("8"),  # 3 + 5 − 2 − 3 − 1 + 2 + 4 (A7's partial exit counts)
        "fees": D("0.0465"),
        "funding_fees": D("0"),
        "realized_pnl_net": D("7.9535"),
        "closed_realized_pnl_net": D("3.9535"),
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
        "avg_daily_net_pnl": D("1.988375"),  # 7.9535 / 4
        # cumulative 2.9535, 5.9535, 1.9535, 7.9535: peak 5.9535 → trough 1.9535
        "max_drawdown": D("4"),
        # mean 1.988375; downside √(4²/4) = 2 → 1.988375 / 2 · √365
        "sharpe_ratio": annualised_sharpe(DAILY_NET["strat_a"]),
        "sortino_ratio": 1.988375 / 2 * math.sqrt(365),
        "open_quantity": D("60"),
        "unrealized_pnl": D("1.2"),  # (0.52 − 0.5)·60
    }
    assert mismatches(row, expected) == []
    assert row["sortino_ratio"] == pytest.approx(annualised_sortino(DAILY_NET["strat_a"]), abs=1e-9)


def test_a_strategy_without_losses(marts):
    row = by_key(marts, "strategy_performance", "strategy_key")["default:steady"]
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
    assert mismatches(perf["default:oneshot"], loser) == []
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
    assert mismatches(perf["default:strat_b"], winner) == []


def test_a_strategy_with_only_open_positions(marts):
    row = by_key(marts, "strategy_performance", "strategy_key")["default:holder"]
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


def test_buckets_are_not_strategies(marts):
    assert {r["strategy_id"] for r in mart_rows(marts, "strategy_performance")} == STRATEGIES
    for table in ("strategy_daily_pnl", "strategy_symbol_performance", "strategy_close_reasons", "execution_quality"):
        assert "unattributed" not in {r["strategy_id"] for r in mart_rows(marts, table)}, table


def test_daily_pnl_on_a_date_spine(marts):
    daily: dict[str, list[dict]] = {}
    for r in sorted(mart_rows(marts, "strategy_daily_pnl"), key=lambda r: r["pnl_date"]):
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
    assert [D(str(r["drawdown"])) for r in a] == [D(0), D(0), D(4), D(0)]
    assert [D(str(r["peak_net_pnl"])) for r in a] == [D("2.9535"), D("5.9535"), D("5.9535"), D("7.9535")]
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
        "wins": 2,  # 5, 2
        "losses": 3,  # −2, −3, −1
        "win_rate": D("0.4"),
        "profit_factor": D("1.166666666666666667"),  # 7 / 6
        "payoff_ratio": D("1.75"),  # (7/2) / (6/3)
        "expectancy": D("0.2"),  # (7 − 6) / 5
        "realized_pnl_net": D("5"),  # 7 − 6 + 4
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
    assert len([k for k in rows if k.startswith("default:holder:")]) == 5  # all five reasons, even with no trade
    tp = {
        "closes": 3,
        "positions_closed": 6,
        "close_rate": D("0.5"),
        "wins": 3,
        "win_rate": D("1"),
        "realized_pnl_net": D("9.9535"),
        "avg_realized_pnl_net": D("3.317833333333333333"),
        "avg_holding_seconds": D("2432.333333333333333333"),
    }
    assert mismatches(rows["default:strat_a:take_profit"], tp) == []
    sl = {"closes": 2, "close_rate": D("0.333333333333333333"), "losses": 2, "win_rate": D(0)}
    sl["realized_pnl_net"] = D(-5)
    assert mismatches(rows["default:strat_a:stop_loss"], sl) == []
    # A3: −2 / (0.5·100)·100 = −4 %; A4: −6 %
    assert rows["default:strat_a:stop_loss"]["avg_realized_pnl_pct"] == D(-5)
    none = {"closes": 0, "close_rate": D(0), "win_rate": None, "avg_realized_pnl_net": None, "realized_pnl_net": D(0)}
    assert mismatches(rows["default:strat_a:liquidation"], none) == []
    assert rows["default:holder:take_profit"]["close_rate"] is None  # no closed trade at all


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
