"""The report's marts on both warehouses, against values worked out by hand: account_performance
(the unattributed buckets and the account totals per margin asset), positions_holding, and the
bucket and averaging columns of multi_strategy_positions.

One hedge-mode account, fees Binance's taker 0.05 % of the notional in USDT:

- SPEC §4.4's worked example on BTCUSDT_LONG (strat_a A1 0.001 @45000 → 48000, net 2.9535;
  strat_b B1 0.002 @46000 → 49000, net 5.905), with a manual 0.001 @47000 bought into the same
  episode between the entries and the exits, sold @47500 last: Binance's average entry is
  (45 + 92 + 47) / 0.004 = 46000, so Binance books A1 2, B1 6 and the manual exit 1.5 (9.5 in all),
  while the strategies' own entries give 3 + 6 = 9 and the bucket's 0.5 (net 0.5 − 0.0235 − 0.02375
  = 0.45275);
- strat_a A2 ETHUSDT 1 @100 → 95 (stop-loss): realized −5, fees 0.05 + 0.0475, net −5.0975;
- strat_a A3 ETHUSDT 1 @100, open: fee 0.05, mark 102 → unrealized 2;
- manual DOGEUSDT 100 @0.1 → 0.12: a bucket of its own, realized 2, fees 0.011, net 1.989.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from sandbox.scenario import Scenario
from stratpos.core.settings import Settings
from tests.marts.test_performance_metrics import by_key, mismatches
from tests.marts.warehouses import build, module_warehouse

HOUR = 3_600


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("account-performance")
    s = Scenario(out, mode="hedge")
    # SPEC §4.4's worked example (sandbox.scenario.add_worked_example) with a manual entry between
    # the entries and the exits: the scenario books fills in the order they are added
    s.signal("A1", "strat_a", "BTCUSDT", "buy", "0.001", at=0, price="45000", take_profit="48000")
    s.trade("A1-en", "BTCUSDT", "BUY", ("0.001", "45000"), at=1)
    s.signal("B1", "strat_b", "BTCUSDT", "buy", "0.002", at=10, price="46000", take_profit="49000")
    s.trade("B1-en", "BTCUSDT", "BUY", ("0.002", "46000"), at=11)
    s.trade("web_b1", "BTCUSDT", "BUY", ("0.001", "47000"), at=50, position_side="LONG")
    s.trade("A1-tp", "BTCUSDT", "SELL", ("0.001", "48000"), at=100)
    s.trade("B1-tp", "BTCUSDT", "SELL", ("0.002", "49000"), at=200)
    s.trade("web_b2", "BTCUSDT", "SELL", ("0.001", "47500"), at=300, position_side="LONG")
    s.signal("A2", "strat_a", "ETHUSDT", "buy", "1", at=HOUR, price="100")
    s.trade("A2-en", "ETHUSDT", "BUY", ("1", "100"), at=HOUR + 1)
    s.trade("A2-sl", "ETHUSDT", "SELL", ("1", "95"), at=2 * HOUR)
    s.signal("A3", "strat_a", "ETHUSDT", "buy", "1", at=3 * HOUR, price="100")
    s.trade("A3-en", "ETHUSDT", "BUY", ("1", "100"), at=3 * HOUR + 1)
    s.trade("web_d1", "DOGEUSDT", "BUY", ("100", "0.1"), at=4 * HOUR, position_side="LONG")
    s.trade("web_d2", "DOGEUSDT", "SELL", ("100", "0.12"), at=5 * HOUR, position_side="LONG")
    s.finish({"BTCUSDT": "49000", "ETHUSDT": "102", "DOGEUSDT": "0.12"}, at=6 * HOUR)
    return out


@pytest.fixture(scope="module", params=["duckdb", "mysql"])
def marts(request, replay, tmp_path_factory) -> Settings:
    settings = module_warehouse(request, tmp_path_factory, "account-performance")
    build(settings, replay, target_path=tmp_path_factory.mktemp("dbt-target"))
    return settings


def q18(value: D) -> D:
    return value.quantize(D("1E-18"))


def test_account_performance_has_the_buckets_and_the_totals(marts):
    rows = by_key(marts, "account_performance", "account_performance_key")
    assert set(rows) == {"default:USDT:account", "default:USDT:unattributed"}
    bucket = {
        "positions_total": 2,
        "positions_closed": 2,
        "positions_holding": 0,
        "wins": 2,
        "losses": 0,
        "win_rate": D(1),
        "profit_factor": None,  # no losses
        "realized_pnl": D("2.5"),  # 2 + 0.5
        "fees": D("0.05825"),  # 0.011 + 0.0235 + 0.02375
        "realized_pnl_net": D("2.44175"),  # 1.989 + 0.45275
        "unrealized_pnl": D(0),
    }
    account = {
        "positions_total": 6,  # A1, B1, A2, A3 and two buckets
        "positions_open": 1,
        "positions_closed": 5,
        "positions_holding": 1,
        "wins": 4,
        "losses": 1,
        "win_rate": D("0.8"),
        "gross_profit": D("11.30025"),  # 2.9535 + 5.905 + 1.989 + 0.45275
        "gross_loss": D("-5.0975"),
        "profit_factor": q18(D("11.30025") / D("5.0975")),
        "fees": D("0.34725"),  # 0.0465 + 0.095 + 0.0975 + 0.05 + 0.05825
        "realized_pnl_net": D("6.15275"),  # 11.30025 − 5.0975 − 0.05 (A3's fee)
        "unrealized_pnl": D(2),
    }
    assert mismatches(rows["default:USDT:unattributed"], bucket) == []
    assert mismatches(rows["default:USDT:account"], account) == []
    assert rows["default:USDT:account"]["scope"] == "account"


def test_strategies_hold_what_they_did_not_close(marts):
    rows = by_key(marts, "strategy_performance", "strategy_key")
    assert rows["default:strat_a:USDT"]["positions_holding"] == 1  # A3
    assert rows["default:strat_b:USDT"]["positions_holding"] == 0
    # the strategies and the bucket add up to the account (every count and amount of the row)
    account = by_key(marts, "account_performance", "account_performance_key")
    for col in ("positions_total", "wins", "losses", "realized_pnl_net", "fees", "unrealized_pnl"):
        parts = [rows[k][col] for k in rows] + [account["default:USDT:unattributed"][col]]
        assert sum(D(str(p)) for p in parts) == D(str(account["default:USDT:account"][col])), col


def test_multi_strategy_positions_name_the_bucket_and_the_averaging(marts):
    rows = by_key(marts, "multi_strategy_positions", "multi_strategy_position_id")
    assert set(rows) == {"default:BTCUSDT_LONG:1:strat_a", "default:BTCUSDT_LONG:1:strat_b"}
    episode = {
        "episode_realized_pnl": D("9.5"),  # Binance: 2 + 6 + 1.5 at the 46000 average
        "episode_attributed_pnl": D(9),  # 3 + 6 by their own entries
        "episode_exchange_realized_pnl": D(8),  # 2 + 6
        "episode_averaging_effect": D(-1),  # 8 − 9: averaging gave the bucket's entry a share
        "episode_unattributed_exchange_pnl": D("1.5"),  # 9.5 − 8: the manual exit
        "episode_unattributed_pnl": D("0.5"),  # the bucket by its own entry (47500 − 47000)·0.001
    }
    a = {**episode, "attributed_pnl": D(3), "exchange_realized_pnl": D(2), "averaging_effect": D(-1)}
    b = {**episode, "attributed_pnl": D(6), "exchange_realized_pnl": D(6), "averaging_effect": D(0)}
    assert mismatches(rows["default:BTCUSDT_LONG:1:strat_a"], a) == []
    assert mismatches(rows["default:BTCUSDT_LONG:1:strat_b"], b) == []
