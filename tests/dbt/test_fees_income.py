"""SPEC §4.3 fees, §4.5 income attribution, account_pnl and §5 R6/R7/R9 on both warehouses.

One hedge-mode account written by hand as Binance documents its records (userTrades with
``marginAsset``, allOrders, income with 19-digit ``tranId`` and ``tradeId`` strings, positionRisk
v3, ``/fapi/v3/balance`` per asset with ``snapshotTime``, klines as the raw array, exchangeInfo
``symbols[]``). Order ids and trade ids are per symbol and overlap across symbols, as on Binance.
Every expected number is worked out by hand in the comments; the code under test computes none.

T0 = 2026-01-01 00:00:00 UTC. Day 1 (2026-01-01):
  BTCUSDT  A1 strat_a LONG 0.002: entry @45000 at 00:00:11 as maker with a rebate
           (commission −0.009 = −0.0001·90), take-profit @46000 at 00:03:20 (taker, 0.0368 =
           0.0004·92, realizedPnl 2). A2 strat_b SHORT 0.001 @45500 at 00:00:21 (0.0182), open.
           FUNDING_FEE +0.0045 USDT at 08:00, only A2 holds the symbol then.
  SOLUSDT  B1 strat_b LONG 10: entry @100 at 00:01:00.500, commission 0.0006 BNB; take-profit
           @101 at 00:02:05, commission 0.00033 BNB, realizedPnl 10. SOLUSDT is not in
           exchangeInfo here: its margin asset comes from the fills' marginAsset (USDT).
           BNBUSDT 1m closes: 00:00 → 590, 00:01 → 600.5, 00:02 → 610.
  ETHBTC   (margin asset BTC) C1 strat_a LONG 1 @0.035 (commission 0.000014 BTC), C2 strat_b
           LONG 3 @0.036 (0.0000432 BTC); at 00:06:40 a liquidation autoclose SELL 4 @0.033
           (avg (0.035 + 0.108)/4 = 0.03575, realizedPnl (0.033 − 0.03575)·4 = −0.011,
           commission 0.0000528 BTC) and INSURANCE_CLEAR −0.0005 BTC.
  COMMISSION_REBATE +0.01 USDT at 01:00.
Day 2: TRANSFER +50 USDT, COMMISSION_REBATE +0.002 USDT (no commission that day: account-level).
Day 3: XRPUSDT D1 strat_a LONG 100 @0.5 and take-profit @0.52, both as maker with rebates
  (−0.005 = −0.0001·50 and −0.0052 = −0.0001·52), realizedPnl 2.
2026-03-27 08:00 (delivery of BTCUSDT_260327): Q1 strat_a LONG 0.01 @50000 (commission 0.2),
  Q2 strat_b LONG 0.02 @50100 (0.4008) a day before; settlement_autoclose SELL 0.03 @50500
  (avg 1502/0.03, realizedPnl 1515 − 1502 = 13, no commission) and DELIVERED_SETTELMENT −0.0303.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from decimal import Decimal as D
from pathlib import Path

import pytest

from ingestion.replay import load_replay
from stratpos.core.settings import Settings
from stratpos.core.warehouse import drop_schemas
from stratpos.transform import TransformError, run_dbt
from tests.dbt.truth import mart_rows
from tests.ingestion.documented import symbol_info as exchange_info
from tests.reconciliation.helpers import copy_duckdb, failing_keys, query, validate

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000
DELIVERY = 1_774_598_400_000  # 2026-03-27T08:00:00Z, BTCUSDT_260327's deliveryDate
ACCOUNT = {"account_id": "default", "position_mode": "hedge"}


class Tape:
    """Binance-shaped records of one account, written in the order they happen."""

    def __init__(self) -> None:
        self.files: dict[str, list[dict]] = defaultdict(list)
        self.tran = 8_100_000_000_000_000_000  # 19-digit tranIds

    def _tran_id(self) -> int:
        self.tran += 17
        return self.tran

    def income(self, kind: str, amount: str, asset: str, at: int, symbol: str = "", trade_id: str = "") -> None:
        self.files["income"].append(
            {
                "symbol": symbol,
                "incomeType": kind,
                "income": amount,
                "asset": asset,
                "info": kind if not trade_id else "",
                "time": at,
                "tranId": self._tran_id(),
                "tradeId": trade_id,
            }
        )

    def signal(self, sid: str, strategy: str, symbol: str, action: str, qty: str, at: int) -> None:
        self.files["signals"].append(
            {
                "signal_id": sid,
                "strategy_id": strategy,
                "symbol": symbol,
                "action": action,
                "quantity": qty,
                "timestamp": at,
            }
        )

    def order(self, symbol, order_id, client_id, side, position_side, at, fills, margin="USDT", kind="MARKET"):
        """An order and its fills: (trade id, qty, price, commission, commission asset, realizedPnl, maker)."""
        qty = sum(D(f[1]) for f in fills)
        quote = sum(D(f[1]) * D(f[2]) for f in fills)
        self.files["futures_orders"].append(
            {
                "avgPrice": str(quote / qty),
                "clientOrderId": client_id,
                "cumQuote": str(quote),
                "executedQty": str(qty),
                "orderId": order_id,
                "origQty": str(qty),
                "origType": kind,
                "price": "0" if kind == "MARKET" else fills[0][2],
                "reduceOnly": False,
                "side": side,
                "positionSide": position_side,
                "status": "FILLED",
                "stopPrice": "0",
                "closePosition": False,
                "symbol": symbol,
                "time": at,
                "timeInForce": "GTC" if kind == "MARKET" else "IOC",
                "type": kind,
                "updateTime": at + len(fills),
                "workingType": "CONTRACT_PRICE",
                "priceProtect": False,
                "priceMatch": "NONE",
                "selfTradePreventionMode": "NONE",
                "goodTillDate": 0,
            }
        )
        for i, (trade_id, q, p, commission, asset, realized, maker) in enumerate(fills):
            t = at + i
            self.files["futures_trades"].append(
                {
                    "buyer": side == "BUY",
                    "commission": commission,
                    "commissionAsset": asset,
                    "id": trade_id,
                    "maker": maker,
                    "orderId": order_id,
                    "price": p,
                    "qty": q,
                    "quoteQty": str(D(q) * D(p)),
                    "realizedPnl": realized,
                    "side": side,
                    "positionSide": position_side,
                    "symbol": symbol,
                    "time": t,
                    "marginAsset": margin,
                }
            )
            if D(realized) != 0:
                self.income("REALIZED_PNL", realized, margin, t, symbol, str(trade_id))
            if D(commission) != 0:  # Binance books the commission as income of the opposite sign
                self.income("COMMISSION", str(-D(commission)), asset, t, symbol, str(trade_id))

    def kline(self, symbol: str, open_time: int, close: str) -> None:
        self.files["klines"].append(
            {
                "symbol": symbol,
                "interval": "1m",
                "kline": [
                    open_time,
                    close,
                    close,
                    close,
                    close,
                    "12.5",
                    open_time + 59_999,
                    "7500",
                    42,
                    "6",
                    "3600",
                    "0",
                ],
            }
        )

    def balances(self, at: int, **wallet: str) -> None:
        for asset, balance in wallet.items():
            self.files["balances"].append(
                {
                    "accountAlias": "SgsR",
                    "asset": asset,
                    "balance": balance,
                    "crossWalletBalance": balance,
                    "crossUnPnl": "0.00000000",
                    "availableBalance": balance,
                    "maxWithdrawAmount": balance,
                    "marginAvailable": True,
                    "updateTime": at - 5,
                    "snapshotTime": at,
                }
            )

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "account.json").write_text(json.dumps(ACCOUNT))
        for name, records in self.files.items():
            with open(directory / f"{name}.jsonl", "w", encoding="utf-8") as fh:
                for r in records:
                    fh.write(json.dumps(r) + "\n")
        return directory


def account_tape() -> Tape:
    s = Tape()
    s.files["symbols"] = [
        exchange_info("BTCUSDT", "BTCUSDT", "PERPETUAL", "BTC", "USDT", "USDT"),
        exchange_info("ETHBTC", "ETHBTC", "PERPETUAL", "ETH", "BTC", "BTC"),
        exchange_info("BTCUSDT_260327", "BTCUSDT", "CURRENT_QUARTER", "BTC", "USDT", "USDT", delivery=DELIVERY),
        exchange_info("BNBUSDT", "BNBUSDT", "PERPETUAL", "BNB", "USDT", "USDT"),
    ]
    s.balances(T0 - 60_000, USDT="1000.00000000", BNB="0.50000000", BTC="0.20000000")
    # BTCUSDT: order and trade ids start at the same numbers on every symbol
    s.signal("A1", "strat_a", "BTCUSDT", "buy", "0.002", T0 + 10_000)
    s.order(
        "BTCUSDT",
        5001,
        "A1-en",
        "BUY",
        "LONG",
        T0 + 11_000,
        [(1001, "0.002", "45000", "-0.00900000", "USDT", "0", True)],
        kind="LIMIT",
    )
    s.signal("A2", "strat_b", "BTCUSDT", "sell", "0.001", T0 + 20_000)
    s.order(
        "BTCUSDT",
        5002,
        "A2-en",
        "SELL",
        "SHORT",
        T0 + 21_000,
        [(1002, "0.001", "45500", "0.01820000", "USDT", "0", False)],
    )
    # SOLUSDT: commission in BNB, margin asset from the fills (not in exchangeInfo here)
    s.kline("BNBUSDT", T0, "590.0")
    s.kline("BNBUSDT", T0 + 60_000, "600.5")
    s.kline("BNBUSDT", T0 + 120_000, "610")
    s.signal("B1", "strat_b", "SOLUSDT", "buy", "10", T0 + 60_000)
    s.order(
        "SOLUSDT", 5001, "B1-en", "BUY", "LONG", T0 + 60_500, [(1001, "10", "100", "0.00060000", "BNB", "0", False)]
    )
    s.order(
        "SOLUSDT",
        5002,
        "B1-tp",
        "SELL",
        "LONG",
        T0 + 125_000,
        [(1002, "10", "101", "0.00033000", "BNB", "10.00000000", False)],
    )
    s.order(
        "BTCUSDT",
        5003,
        "A1-tp",
        "SELL",
        "LONG",
        T0 + 200_000,
        [(1003, "0.002", "46000", "0.03680000", "USDT", "2.00000000", False)],
    )
    # ETHBTC: BTC-margined; a liquidation with its clearance fee
    s.signal("C1", "strat_a", "ETHBTC", "buy", "1", T0 + 300_000)
    s.order(
        "ETHBTC",
        5001,
        "C1-en",
        "BUY",
        "LONG",
        T0 + 301_000,
        [(1001, "1", "0.035", "0.00001400", "BTC", "0", False)],
        margin="BTC",
    )
    s.signal("C2", "strat_b", "ETHBTC", "buy", "3", T0 + 310_000)
    s.order(
        "ETHBTC",
        5002,
        "C2-en",
        "BUY",
        "LONG",
        T0 + 311_000,
        [(1002, "3", "0.036", "0.00004320", "BTC", "0", False)],
        margin="BTC",
    )
    s.order(
        "ETHBTC",
        5003,
        "autoclose-1767226000000123456",
        "SELL",
        "LONG",
        T0 + 400_000,
        [(1003, "4", "0.033", "0.00005280", "BTC", "-0.01100000", False)],
        margin="BTC",
        kind="LIMIT",
    )
    s.income("INSURANCE_CLEAR", "-0.00050000", "BTC", T0 + 400_000, "ETHBTC")
    s.income("COMMISSION_REBATE", "0.01000000", "USDT", T0 + 3_600_000)
    s.income("FUNDING_FEE", "0.00450000", "USDT", T0 + 8 * 3_600_000, "BTCUSDT")
    # day 2: account-level income
    s.income("TRANSFER", "50.00000000", "USDT", T0 + DAY + 3_600_000)
    s.income("COMMISSION_REBATE", "0.00200000", "USDT", T0 + DAY + 3_700_000)
    # day 3: XRPUSDT, only maker fills with rebates
    s.signal("D1", "strat_a", "XRPUSDT", "buy", "100", T0 + 2 * DAY)
    s.order(
        "XRPUSDT",
        5001,
        "D1-en",
        "BUY",
        "LONG",
        T0 + 2 * DAY + 10_000,
        [(1001, "100", "0.5", "-0.00500000", "USDT", "0", True)],
        kind="LIMIT",
    )
    s.order(
        "XRPUSDT",
        5002,
        "D1-tp",
        "SELL",
        "LONG",
        T0 + 2 * DAY + 600_000,
        [(1002, "100", "0.52", "-0.00520000", "USDT", "2.00000000", True)],
        kind="LIMIT",
    )
    # USDT 1000 + 0.009 − 0.0182 − 0.0368 + 2 + 10 + 0.0045 + 0.01 + 50 + 0.002 = 1061.9705
    # BNB 0.5 − 0.0006 − 0.00033 = 0.49907; BTC 0.2 − 0.000014 − 0.0000432 − 0.0000528 − 0.011 − 0.0005 = 0.18839
    s.balances(T0 + DAY + 7_200_000, USDT="1061.97050000", BNB="0.49907000", BTC="0.18839000")
    # BTCUSDT_260327: delivered
    s.signal("Q1", "strat_a", "BTCUSDT_260327", "buy", "0.01", DELIVERY - DAY)
    s.order(
        "BTCUSDT_260327",
        5001,
        "Q1-en",
        "BUY",
        "LONG",
        DELIVERY - DAY + 1_000,
        [(1001, "0.01", "50000", "0.20000000", "USDT", "0", False)],
    )
    s.signal("Q2", "strat_b", "BTCUSDT_260327", "buy", "0.02", DELIVERY - DAY + 5_000)
    s.order(
        "BTCUSDT_260327",
        5002,
        "Q2-en",
        "BUY",
        "LONG",
        DELIVERY - DAY + 6_000,
        [(1002, "0.02", "50100", "0.40080000", "USDT", "0", False)],
    )
    s.order(
        "BTCUSDT_260327",
        5003,
        "settlement_autoclose-1774598400000",
        "SELL",
        "LONG",
        DELIVERY,
        [(1003, "0.03", "50500", "0", "USDT", "13.00000000", False)],
    )
    s.income("DELIVERED_SETTELMENT", "-0.03030000", "USDT", DELIVERY, "BTCUSDT_260327")
    # USDT 1061.9705 + 0.005 + 0.0052 + 2 (day 3) − 0.2 − 0.4008 + 13 − 0.0303 = 1076.3496
    s.balances(DELIVERY + 60_000, USDT="1076.34960000", BNB="0.49907000", BTC="0.18839000")
    s.files["position_risk"] = [
        {
            "symbol": "BTCUSDT",
            "positionSide": "SHORT",
            "positionAmt": "-0.001",
            "entryPrice": "45500",
            "breakEvenPrice": "45518.2",
            "markPrice": "45600.00000000",
            "unRealizedProfit": "-0.10000000",
            "liquidationPrice": "0",
            "isolatedMargin": "0",
            "notional": "-45.60000000",
            "marginAsset": "USDT",
            "isolatedWallet": "0",
            "initialMargin": "2.28",
            "maintMargin": "0.18",
            "positionInitialMargin": "2.28",
            "openOrderInitialMargin": "0",
            "adl": 1,
            "bidNotional": "0",
            "askNotional": "0",
            "updateTime": T0 + 21_000,
            "snapshotTime": DELIVERY + 60_000,
        }
    ]
    return s


# --------------------------------------------------------------------------------------------- fixtures
# the §6 performance marts and their tests are tests/marts' subject, not this module's
NOT_HERE = ["--exclude", "path:models/marts/performance path:tests/performance"]


def _load_and_build(settings: Settings, replay: Path) -> None:
    logging.getLogger("ingestion").setLevel(logging.WARNING)
    load_replay(replay, settings)
    run_dbt(settings, "build", extra_args=["--quiet", *NOT_HERE], docs=False)


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> Path:
    return account_tape().write(tmp_path_factory.mktemp("fees-income"))


@pytest.fixture(scope="module", params=["duckdb", "mysql"])
def built(request, replay, tmp_path_factory) -> Settings:
    """The account built with ``dbt build`` (models and their tests, the account_pnl identity included)."""
    if request.param == "duckdb":
        settings = Settings(target="duckdb", duckdb_path=tmp_path_factory.mktemp("wh") / "fees.duckdb")
    else:
        mysql = request.getfixturevalue("mysql_available")
        settings = Settings(target="mysql", mysql=mysql, schema_prefix=f"t{uuid.uuid4().hex[:8]}_")
        request.addfinalizer(lambda: drop_schemas(settings))
    _load_and_build(settings, replay)
    return settings


def positions(settings: Settings) -> dict[str, dict]:
    return {r["strategy_position_id"]: r for r in mart_rows(settings, "strategy_positions")}


def dec(value) -> D | None:
    return None if value is None else D(str(value)).normalize()


def fees_json(value: str) -> dict[str, D]:
    return {k: D(v).normalize() for k, v in json.loads(value).items()}


# --------------------------------------------------------------------------------------------- fees
def test_margin_assets_come_from_exchange_info_else_from_the_fills(built):
    p = positions(built)
    assert {k: p[k]["margin_asset"] for k in ("A1", "B1", "C1", "Q1")} == {
        "A1": "USDT",  # exchangeInfo
        "B1": "USDT",  # SOLUSDT is not in exchangeInfo: the fills' marginAsset
        "C1": "BTC",  # ETHBTC settles in BTC, whatever its name ends with
        "Q1": "USDT",  # the quarterly
    }


def test_a_maker_rebate_is_a_negative_fee(built, tmp_path):
    p = positions(built)["A1"]
    # entry as maker: −0.009 (rebate); take-profit: +0.0368 → 0.0278
    assert dec(p["fees"]) == D("0.0278") and dec(p["other_fees"]) == 0
    assert fees_json(p["fees_by_asset"]) == {"USDT": D("0.0278")}
    [fill] = query(built, "select commission from {raw}.futures_trades where symbol = 'BTCUSDT' and trade_id = 1001")
    assert dec(fill["commission"]) == D("-0.009")  # stored signed, as Binance sent it
    # D1 only ever received rebates: −0.005 − 0.0052 = −0.0102; net = 2 + 0.0102 = 2.0102
    d1 = positions(built)["D1"]
    assert dec(d1["fees"]) == D("-0.0102") and dec(d1["realized_pnl_net"]) == D("2.0102")
    assert fees_json(d1["fees_by_asset"]) == {"USDT": D("-0.0102")}
    report = validate(built, tmp_path)
    assert report.result("R6").status == "passed" and report.result("R7").status == "passed", report.render()


def test_a_bnb_fee_is_converted_at_the_close_of_its_minute(built):
    p = positions(built)["B1"]
    # 0.0006 BNB at 00:01:00.500 → 00:01 close 600.5: 0.3603; 0.00033 BNB at 00:02:05 → 610: 0.2013
    assert dec(p["fees"]) == 0 and dec(p["other_fees"]) == D("0.5616")
    assert fees_json(p["fees_by_asset"]) == {"BNB": D("0.00093")}
    # realized (101 − 100)·10 = 10; net = 10 − 0 − 0.5616 = 9.4384
    assert dec(p["realized_pnl"]) == 10 and dec(p["realized_pnl_net"]) == D("9.4384")
    assert p["fees_by_asset"] == '{"BNB": "0.00093"}'  # the same text on both warehouses


# --------------------------------------------------------------------------------------------- income
def test_insurance_clear_goes_to_the_liquidated_positions(built):
    p = positions(built)
    # the liquidation's 4 ETHBTC are re-allocated 1 to C1 and 3 to C2 at the episode end:
    # −0.0005·1/4 = −0.000125 to C1; C2 (last by id) takes the rest, −0.000375
    assert dec(p["C1"]["other_income"]) == D("-0.000125") and dec(p["C2"]["other_income"]) == D("-0.000375")
    # C1: realized (0.033 − 0.035)·1 = −0.002; fees 0.000014 + 0.0000528/4 = 0.0000272 (BTC)
    # net −0.002 − 0.0000272 − 0.000125 = −0.0021522
    assert dec(p["C1"]["fees"]) == D("0.0000272") and dec(p["C1"]["realized_pnl_net"]) == D("-0.0021522")
    # C2: realized (0.033 − 0.036)·3 = −0.009; fees 0.0000432 + 0.0000396 = 0.0000828
    # net −0.009 − 0.0000828 − 0.000375 = −0.0094578
    assert dec(p["C2"]["fees"]) == D("0.0000828") and dec(p["C2"]["realized_pnl_net"]) == D("-0.0094578")
    assert p["C1"]["close_reason"] == p["C2"]["close_reason"] == "liquidation"


def test_a_rebate_program_payment_goes_pro_rata_to_the_days_commission(built):
    p = positions(built)
    # day-1 USDT commission: A1 −0.009 + 0.0368 = 0.0278, A2 0.0182; total 0.046
    # A1: 0.01·0.0278/0.046 = 0.00604347826086956521… → 0.006043478260869565
    # A2 (last by id): 0.01 − 0.006043478260869565 = 0.003956521739130435
    assert dec(p["A1"]["other_income"]) == D("0.006043478260869565")
    assert dec(p["A2"]["other_income"]) == D("0.003956521739130435")
    # A1 net: 2 − 0.0278 + 0.006043478260869565 = 1.978243478260869565
    assert dec(p["A1"]["realized_pnl_net"]) == D("1.978243478260869565")
    # A2 net: 0 − 0.0182 + funding 0.0045 + 0.003956521739130435 = −0.009743478260869565
    assert dec(p["A2"]["funding_fees"]) == D("0.0045")
    assert dec(p["A2"]["realized_pnl_net"]) == D("-0.009743478260869565")


def test_a_delivery_settlement_goes_to_the_positions_open_on_the_contract(built):
    p = positions(built)
    # −0.0303 by open quantity 0.01 : 0.02 → Q1 −0.0101, Q2 (last) −0.0202
    assert dec(p["Q1"]["other_income"]) == D("-0.0101") and dec(p["Q2"]["other_income"]) == D("-0.0202")
    # Q1: (50500 − 50000)·0.01 = 5 − 0.2 − 0.0101 = 4.7899; Q2: (50500 − 50100)·0.02 = 8 − 0.4008 − 0.0202 = 7.579
    assert dec(p["Q1"]["realized_pnl_net"]) == D("4.7899") and dec(p["Q2"]["realized_pnl_net"]) == D("7.579")
    # the episode's fees: 0.2 + 0.4008, in USDT although the symbol's name does not end with it
    [episode] = [e for e in mart_rows(built, "exchange_positions") if e["symbol"] == "BTCUSDT_260327"]
    assert episode["margin_asset"] == "USDT" and dec(episode["fees"]) == D("0.6008")


def test_account_pnl_splits_every_income_record(built):
    rows = {(r["asset"], str(r["income_date"])): r for r in mart_rows(built, "account_pnl")}
    day1 = rows[("USDT", "2026-01-01")]
    # 0.009 − 0.0182 − 0.0368 (commission) + 2 + 10 (realized) + 0.0045 (funding) + 0.01 (rebate)
    assert dec(day1["commission"]) == D("-0.046") and dec(day1["realized_pnl"]) == 12
    assert dec(day1["total_income"]) == D("11.9685") == dec(day1["strategy_income"])
    assert dec(day1["account_level_income"]) == 0
    day2 = rows[("USDT", "2026-01-02")]
    assert dec(day2["transfer"]) == 50 and dec(day2["commission_rebate"]) == D("0.002")
    assert dec(day2["account_level_income"]) == D("50.002") and dec(day2["strategy_income"]) == 0
    day3 = rows[("USDT", "2026-01-03")]  # rebates are positive COMMISSION income: +0.005 + 0.0052
    assert dec(day3["commission"]) == D("0.0102") and dec(day3["total_income"]) == D("2.0102")
    assert dec(day3["strategy_income"]) == D("2.0102")
    btc = rows[("BTC", "2026-01-01")]
    assert dec(btc["insurance_clear"]) == D("-0.0005")
    assert dec(btc["total_income"]) == D("-0.01161") == dec(btc["strategy_income"])
    bnb = rows[("BNB", "2026-01-01")]
    assert dec(bnb["strategy_income"]) == dec(bnb["total_income"]) == D("-0.00093")
    delivery = rows[("USDT", "2026-03-27")]
    assert dec(delivery["delivered_settlement"]) == D("-0.0303") and dec(delivery["strategy_income"]) == D("12.9697")
    # the strategy books in their margin asset: Σ net + converted BNB fees = native strategy income (all closed but
    # A2, which has no exit). USDT: 1.9685 + 9.4384 + 2.0102 + 4.7899 + 7.579 = 25.786; + 0.5616 = 26.3476
    p = positions(built)
    usdt_net = sum(dec(r["realized_pnl_net"]) for r in p.values() if r["margin_asset"] == "USDT")
    usdt_other_fees = sum(dec(r["other_fees"]) for r in p.values() if r["margin_asset"] == "USDT")
    usdt_books = sum(dec(r["strategy_income"]) for (asset, _), r in rows.items() if asset == "USDT")
    assert usdt_net == D("25.786") and usdt_net + usdt_other_fees == usdt_books == D("26.3476")
    btc_net = sum(dec(r["realized_pnl_net"]) for r in p.values() if r["margin_asset"] == "BTC")
    assert btc_net == D("-0.01161")


def test_wallet_balances_reconcile_with_income(built, tmp_path):
    report = validate(built, tmp_path)
    assert report.result("R9").status == "passed", report.render()
    assert {r.check.check_id for r in report.failed} == set(), report.render()


# --------------------------------------------------------------------------------------------- failures
def _corruptible(built: Settings, tmp_path: Path, replay: Path, request, rebuilt: bool) -> Settings:
    """A warehouse to corrupt: a copy on DuckDB; on MariaDB a fresh one when the test rebuilds the
    books (``rebuilt``), else the module's own, which the test restores."""
    if built.target == "duckdb":
        return copy_duckdb(built, tmp_path / "copy")
    if not rebuilt:
        return built
    settings = built.with_overrides(schema_prefix=f"t{uuid.uuid4().hex[:8]}_")
    request.addfinalizer(lambda: drop_schemas(settings))
    _load_and_build(settings, replay)
    return settings


def test_a_corrupted_balance_snapshot_fails_r9(built, tmp_path, replay, request):
    settings = _corruptible(built, tmp_path, replay, request, rebuilt=False)
    # the day-2 USDT snapshot 2e-8 above what the income explains
    where = f"where asset = 'USDT' and snapshot_time_ms = {T0 + DAY + 7_200_000}"
    query(settings, "update {raw}.balance_snapshots set balance = balance + 0.00000002 " + where)
    try:
        report = validate(settings, tmp_path)
        assert {r.check.check_id for r in report.failed} == {"R9"}, report.render()
        keys = {m.check_key: m for m in report.result("R9").failures}
        # both intervals around the snapshot break: into it (+2e-8) and out of it (−2e-8)
        into, out_of = f"default:USDT:{T0 + DAY + 7_200_000}", f"default:USDT:{DELIVERY + 60_000}"
        assert set(keys) == {into, out_of}
        assert keys[into].diff == D("-0.00000002") and keys[out_of].diff == D("0.00000002")  # income − Δ balance
        assert failing_keys(settings, report.run_id, "R9") == {into, out_of}  # written to audit.dq_alerts
    finally:
        query(settings, "update {raw}.balance_snapshots set balance = balance - 0.00000002 " + where)


def test_realized_pnl_income_in_the_wrong_asset_fails_r7(built, tmp_path, replay, request):
    """ETHBTC settles in BTC: its REALIZED_PNL booked as USDT does not reconcile (nor does the wallet)."""
    settings = _corruptible(built, tmp_path, replay, request, rebuilt=False)
    where = "where income_type = 'REALIZED_PNL' and symbol = 'ETHBTC'"
    query(settings, "update {raw}.income set asset = 'USDT' " + where)
    try:
        report = validate(settings, tmp_path)
        assert {r.check.check_id for r in report.failed} == {"R7", "R9"}, report.render()
        r7 = {m.check_key: (m.expected, m.observed) for m in report.result("R7").failures}
        # fills: −0.011 in BTC, income: −0.011 in USDT
        assert r7 == {
            "default:ETHBTC:BTC:2026-01-01": (0, D("-0.011")),
            "default:ETHBTC:USDT:2026-01-01": (D("-0.011"), 0),
        }
    finally:
        query(settings, "update {raw}.income set asset = 'BTC' " + where)


def test_a_missing_conversion_price_leaves_other_fees_null_with_a_warning(built, tmp_path, replay, request):
    settings = _corruptible(built, tmp_path, replay, request, rebuilt=True)
    query(settings, f"delete from {{raw}}.klines where symbol = 'BNBUSDT' and open_time_ms = {T0 + 120_000}")
    run_dbt(settings, "run", extra_args=["--quiet"], docs=False)
    p = positions(settings)["B1"]
    assert p["other_fees"] is None and p["realized_pnl_net"] is None
    assert fees_json(p["fees_by_asset"]) == {"BNB": D("0.00093")}
    report = validate(settings, tmp_path)
    assert report.result("R6").status == "warned", report.render()
    [warning] = report.result("R6").mismatches
    assert warning.check_key == "default:SOLUSDT:1002" and warning.measure == "other_fee_unconverted"


def test_the_account_pnl_identity_fails_when_a_share_goes_missing(built, tmp_path, replay, request):
    """The dbt test is not a tautology: a fill's realizedPnl that its ledger line does not carry breaks it."""
    settings = _corruptible(built, tmp_path, replay, request, rebuilt=True)
    query(settings, "update {raw}.futures_trades set realized_pnl = 2.5 where symbol = 'BTCUSDT' and trade_id = 1003")
    with pytest.raises(TransformError):
        run_dbt(
            settings,
            "build",
            select="account_pnl assert_account_pnl_reconciles_income",
            extra_args=["--quiet"],
            docs=False,
        )
    [row] = query(
        settings,
        "select sum(strategy_income) + sum(account_level_income) - sum(total_income) as gap "
        "from {marts}.account_pnl where asset = 'USDT'",
    )
    assert dec(row["gap"]) == D("0.5")
