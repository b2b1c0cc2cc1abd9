"""A small account written by hand from the records Binance documents (SPEC §3.2, §3.4).

Shapes and example values come from Binance's own documentation and OpenAPI examples; where a rule of the
issue needs a value the examples do not show (a 19-digit ``tranId``, a quarterly symbol, the same ids on
two symbols), the value is ours and the field list stays Binance's. Sources:

* userTrades: Binance's USD-M OpenAPI example ``GetUserTradesV1Resp``: ``{"buyer": false, "commission":
  "-0.07819010", "commissionAsset": "USDT", "id": 698759, "maker": false, "orderId": 25851813, "price":
  "7819.01", "qty": "0.002", "quoteQty": "15.63802", "realizedPnl": "-0.91539999", "side": "SELL",
  "positionSide": "SHORT", "symbol": "BTCUSDT", "time": 1569514978020}`` (a negative commission: a rebate);
  the COIN-M example of the same endpoint adds ``"pair"``, ``"marginAsset": "BTC"`` and ``"baseQty"``.
* income: "Get Income History (USER_DATA)", ``GET /fapi/v1/income``: ``{"symbol": "", "incomeType":
  "TRANSFER", "income": "-0.37500000", "asset": "USDT", "info": "TRANSFER", "time": 1570608000000,
  "tranId": 9689322392, "tradeId": ""}`` (COIN-M sends ``"tranId": "9689322392"`` as a string).
* algo orders: "Query All Current UM Open Algo Orders": ``{"algoId": 2148627, "clientAlgoId":
  "MRumok0dkhrP4kCm12AHaB", "algoType": "CONDITIONAL", "orderType": "TAKE_PROFIT", "symbol": "BNBUSDT",
  "side": "SELL", "positionSide": "BOTH", "timeInForce": "GTC", "quantity": "0.01", "algoStatus": "NEW",
  "actualOrderId": "", "actualPrice": "0.00000", "triggerPrice": "750.000", "price": "750.000", …,
  "createTime": 1750514941540, "updateTime": 1750514941540, "triggerTime": 0, "goodTillDate": 0}``;
  statuses from "Event: Algo Order Update": NEW, TRIGGERING, TRIGGERED, FINISHED, CANCELED, REJECTED,
  EXPIRED. The algo "Query Sub Orders" example shows a 19-digit order id: ``"orderId": 8389765519993908929``.
* balance: "Futures Account Balance V2/V3": ``{"accountAlias": "SgsR", "asset": "USDT", "balance":
  "122607.35137903", "crossWalletBalance": "23.72469206", "crossUnPnl": "0.00000000", "availableBalance":
  "23.72469206", "maxWithdrawAmount": "23.72469206", "marginAvailable": true, "updateTime": 1617939110373}``.
* klines: ``GET /fapi/v1/klines`` arrays ``[1616338800000, "57212.69", "57315.00", "57196.19", "57300.00",
  "496.263", 1616339099999, "28425514.78940", 7160, "273.108", "15642623.69718", "0"]`` (open time, open,
  high, low, close, volume, close time, quote volume, trades, taker buy base, taker buy quote, ignore).
* exchangeInfo ``symbols[]``: ``symbol, pair, contractType (PERPETUAL, CURRENT_QUARTER, NEXT_QUARTER),
  deliveryDate, onboardDate, status, baseAsset, quoteAsset, marginAsset, pricePrecision,
  quantityPrecision, …, filters``.
"""

from __future__ import annotations

import json
from pathlib import Path

T0 = 1_767_571_200_000  # 2026-01-05 00:00:00 UTC
ACCOUNT = "acct_doc"
TRAN_MAX_19 = 9_999_999_999_999_999_999  # the largest 19-digit tranId: more than a signed BIGINT holds
ORDER_19 = 8_389_765_519_993_908_929  # the 19-digit order id of Binance's sub-orders example


def symbol_info(symbol, pair, contract, base, quote, margin, delivery=4133404800000, status="TRADING"):
    return {
        "symbol": symbol,
        "pair": pair,
        "contractType": contract,
        "deliveryDate": delivery,
        "onboardDate": 1569398400000,
        "status": status,
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": margin,
        "pricePrecision": 2,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"}],
        "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


SYMBOLS = [
    symbol_info("BTCUSDT", "BTCUSDT", "PERPETUAL", "BTC", "USDT", "USDT"),
    symbol_info("ETHUSDT", "ETHUSDT", "PERPETUAL", "ETH", "USDT", "USDT"),
    symbol_info("BNBUSDT", "BNBUSDT", "PERPETUAL", "BNB", "USDT", "USDT"),
    symbol_info("BTCUSDC", "BTCUSDC", "PERPETUAL", "BTC", "USDC", "USDC"),
    symbol_info("1000PEPEUSDT", "1000PEPEUSDT", "PERPETUAL", "1000PEPE", "USDT", "USDT"),
    # a BTC-margined contract listed under USD-M: its margin asset is BTC (never read from the name)
    symbol_info("ETHBTC", "ETHBTC", "PERPETUAL", "ETH", "BTC", "BTC"),
    symbol_info("BTCUSDT_261225", "BTCUSDT", "CURRENT_QUARTER", "BTC", "USDT", "USDT", delivery=1798185600000),
]


def trade(symbol, id_, order_id, t, *, commission, asset="USDT", side="BUY", pos="LONG", price="7819.01", **extra):
    qty = "0.002"
    return {
        "buyer": side == "BUY",
        "commission": commission,
        "commissionAsset": asset,
        "id": id_,
        "maker": commission.startswith("-"),
        "orderId": order_id,
        "price": price,
        "qty": qty,
        "quoteQty": "15.63802",
        "realizedPnl": "0",
        "side": side,
        "positionSide": pos,
        "symbol": symbol,
        "time": t,
        **extra,
    }


TRADES = [
    # a BNB fee on BTCUSDT: converted at the BNBUSDT minute containing it (T0)
    trade("BTCUSDT", 100, 7, T0 + 30_000, commission="0.00001", asset="BNB"),
    # the same trade id and order id on ETHUSDT: another trade, another order; a maker rebate, extra fields
    trade(
        "ETHUSDT",
        100,
        7,
        T0 + 90_000,
        commission="-0.07819010",
        side="SELL",
        pos="SHORT",
        marginAsset="USDT",
        baseQty="0.002",
        pair="ETHUSDT",
    ),
    trade("BTCUSDT", 101, 8, T0 + 61_000, commission="0.0078", side="SELL"),  # placed by algo 3000
    trade("ETHBTC", 5, 9, T0 + 150_000, commission="0.0000012", asset="BTC", price="0.035", marginAsset="BTC"),
    # a BNB fee on ETHBTC: BNBBTC is not a USD-M contract, so no kline can convert it
    trade("ETHBTC", 6, 10, T0 + 200_000, commission="0.00002", asset="BNB", price="0.035"),
    trade("BTCUSDT_261225", 1, 1, T0 + 180_000, commission="0.05", price="98000.5"),
    trade("BTCUSDC", 100, 7, T0 + 240_000, commission="0.01", asset="USDC"),
]


def order(symbol, order_id, t, client, *, side="BUY", pos="LONG", status="FILLED", type_="MARKET"):
    return {
        "avgPrice": "7819.01",
        "clientOrderId": client,
        "cumQuote": "15.63802",
        "executedQty": "0.002",
        "orderId": order_id,
        "origQty": "0.002",
        "origType": type_,
        "price": "0",
        "reduceOnly": False,
        "side": side,
        "positionSide": pos,
        "status": status,
        "stopPrice": "0",
        "closePosition": False,
        "symbol": symbol,
        "time": t,
        "timeInForce": "GTC",
        "type": type_,
        "updateTime": t,
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
    }


ORDERS = [
    order("BTCUSDT", 7, T0 + 30_000, "sigA-en"),
    order("ETHUSDT", 7, T0 + 90_000, "sigB-en", side="SELL", pos="SHORT"),
    order("BTCUSDT", 8, T0 + 61_000, "", side="SELL", type_="TAKE_PROFIT_MARKET"),
    order("ETHBTC", 9, T0 + 150_000, "web_1"),
    order("ETHBTC", 10, T0 + 200_000, "web_2"),
    order("BTCUSDT_261225", 1, T0 + 180_000, "web_3"),
    order("BTCUSDC", 7, T0 + 240_000, "web_4"),
]


def algo(symbol, algo_id, status, t, *, actual="", client="MRumok0dkhrP4kCm12AHaB", created=None):
    return {
        "algoId": algo_id,
        "clientAlgoId": client,
        "algoType": "CONDITIONAL",
        "orderType": "TAKE_PROFIT",
        "symbol": symbol,
        "side": "SELL",
        "positionSide": "LONG",
        "timeInForce": "GTC",
        "quantity": "0.002",
        "algoStatus": status,
        "actualOrderId": actual,
        "actualPrice": "7819.01" if actual else "0.00000",
        "triggerPrice": "7800.000",
        "price": "0.000",
        "icebergQuantity": None,
        "tpTriggerPrice": "0.000",
        "tpPrice": "0.000",
        "slTriggerPrice": "0.000",
        "slPrice": "0.000",
        "tpOrderType": "",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": "CONTRACT_PRICE",
        "priceMatch": "NONE",
        "closePosition": False,
        "priceProtect": False,
        "reduceOnly": True,
        "createTime": created or t,
        "updateTime": t,
        "triggerTime": t if status in ("TRIGGERED", "FINISHED") else 0,
        "goodTillDate": 0,
    }


ALGO_ORDERS = [
    algo("BTCUSDT", 3000, "NEW", T0 + 10_000, client="sigA-tp"),
    algo("BTCUSDT", 3000, "TRIGGERED", T0 + 60_000, actual="8", client="sigA-tp", created=T0 + 10_000),
    algo("BTCUSDT", 3000, "FINISHED", T0 + 61_000, actual="8", client="sigA-tp", created=T0 + 10_000),
    # the same algoId on ETHUSDT: another conditional order, still waiting ("" until triggered)
    algo("ETHUSDT", 3000, "NEW", T0 + 20_000),
]


def income(symbol, type_, amount, asset, t, tran, trade_id=""):
    return {
        "symbol": symbol,
        "incomeType": type_,
        "income": amount,
        "asset": asset,
        "info": type_,
        "time": t,
        "tranId": tran,
        "tradeId": trade_id,
    }


INCOME = [
    income("BTCUSDT", "COMMISSION", "-0.00001", "BNB", T0 + 30_000, 9689322392, "100"),
    income("ETHUSDT", "COMMISSION", "0.07819010", "USDT", T0 + 90_000, TRAN_MAX_19, "100"),  # the rebate
    income("BTCUSDT", "COMMISSION", "-0.0078", "USDT", T0 + 61_000, 9_223_372_036_854_775_807, "101"),
    income("ETHBTC", "COMMISSION", "-0.0000012", "BTC", T0 + 150_000, 9689322393, "5"),
    income("ETHBTC", "COMMISSION", "-0.00002", "BNB", T0 + 200_000, 9689322394, "6"),
    income("BTCUSDT_261225", "COMMISSION", "-0.05", "USDT", T0 + 180_000, 9689322395, "1"),
    income("BTCUSDC", "COMMISSION", "-0.01", "USDC", T0 + 240_000, 9689322396, "100"),
    income("", "TRANSFER", "-0.37500000", "USDT", T0 + 300_000, 9689322397),
]


def balance(asset, amount, t, snapshot):
    return {
        "accountAlias": "SgsR",
        "asset": asset,
        "balance": amount,
        "crossWalletBalance": amount,
        "crossUnPnl": "0.00000000",
        "availableBalance": amount,
        "maxWithdrawAmount": amount,
        "marginAvailable": True,
        "updateTime": t,
        "snapshotTime": snapshot,
    }


BALANCES = [
    balance("USDT", "122607.35137903", T0 - 60_000, T0),
    balance("BNB", "1.50000000", T0 - 60_000, T0),
    balance("USDT", "122607.06", T0 + 300_000, T0 + 360_000),
    balance("BNB", "1.49999", T0 + 30_000, T0 + 360_000),
]


def kline(symbol, open_ms, close):
    return {
        "symbol": symbol,
        "interval": "1m",
        "kline": [
            open_ms,
            "612.10",
            "612.90",
            "611.80",
            close,
            "496.263",
            open_ms + 59_999,
            "303770.5",
            716,
            "273.108",
            "167178.3",
            "0",
        ],
    }


KLINES = [kline("BNBUSDT", T0, "612.40"), kline("BNBUSDT", T0 + 60_000, "612.55")]
LINKS = [
    {"order_id": 7, "symbol": "BTCUSDT", "signal_id": "sigA", "role": "entry"},
    {"order_id": 7, "symbol": "ETHUSDT", "signal_id": "sigB", "role": "entry"},
    {"order_id": 7, "signal_id": "sigC", "role": "entry"},  # no symbol: matched on its signal's symbol
    {"client_order_id": "sigA-tp", "signal_id": "sigA", "role": "take_profit"},
]


def write(directory: Path, *, with_market: bool = True) -> Path:
    """The account as a replay directory (SPEC §3.4); ``with_market``: also symbols/balances/klines files."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "account.json").write_text(json.dumps({"account_id": ACCOUNT, "position_mode": "hedge"}))
    files = {
        "futures_trades.jsonl": TRADES,
        "futures_orders.jsonl": ORDERS,
        "futures_algo_orders.jsonl": ALGO_ORDERS,
        "income.jsonl": INCOME,
        "order_links.jsonl": LINKS,
    }
    if with_market:
        files.update({"symbols.jsonl": SYMBOLS, "balances.jsonl": BALANCES, "klines.jsonl": KLINES})
    for name, records in files.items():
        (directory / name).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return directory
