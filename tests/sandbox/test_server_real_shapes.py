"""The fake Binance API serves a real account's shapes (issue 11), through the real python-binance Client.

A hand-written replay directory holds: per-symbol ids that overlap across symbols (orderId, algoId and
trade id), algo orders through NEW/TRIGGERING/TRIGGERED/FINISHED/CANCELED/REJECTED/EXPIRED, records
older than Binance's retention windows, balance snapshots, 1-minute klines and a ``symbols.jsonl`` with
a quarterly and a BTC-margined contract. Every expected value below is written out by hand from that
data, not recomputed by the code under test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from binance.exceptions import BinanceAPIException

from sandbox.server import SandboxServer, ServerConfig, make_client

KEY, SECRET = "shape-key", "shape-secret"
MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


# The latest account record (a BTCUSDT trade, a balance snapshot and an income row) is at CLOCK, which
# is therefore the default data clock.
CLOCK = ms(2026, 9, 15, 12)
# Binance's windows at CLOCK, by hand: 6 calendar months, 3 calendar months, 90 days, 3 days.
TRADES_FLOOR = ms(2026, 3, 15, 12)
INCOME_FLOOR = ms(2026, 6, 15, 12)
ORDERS_FLOOR = ms(2026, 6, 17, 12)  # Sep 15 - 90 days = Jun 17
UNFILLED_FLOOR = ms(2026, 9, 12, 12)

# BTCUSDT: one trade a day at 12:00 from Mar 1 (i = 0) to Sep 15 (i = 198), id i + 1, orderId 1000 + i // 2.
BTC_TRADES = 199
# ETHUSDT: 40 hourly trades from Sep 1 00:00, ids 1..40, orderId 1090 + k // 4 (1090..1099 also exist on BTC).
ETH_TRADES = 40
# BNBUSDT 1m klines: 2000 minutes, the last one opening at CLOCK.
N_KLINES = 2000
K0 = CLOCK - (N_KLINES - 1) * MIN


# -- the replay directory ----------------------------------------------------------------------------


def trade(symbol: str, trade_id: int, t: int, order_id: int, asset: str = "USDT") -> dict[str, Any]:
    return {
        "symbol": symbol,
        "id": trade_id,
        "orderId": order_id,
        "side": "BUY",
        "positionSide": "LONG",
        "price": "2400.10",
        "qty": "0.010",
        "quoteQty": "24.00100",
        "realizedPnl": "0",
        "commission": "-0.00240010",  # a maker rebate, signed as Binance sends it
        "commissionAsset": asset,
        "marginAsset": asset,
        "time": t,
        "buyer": True,
        "maker": True,
    }


def btc_trades() -> list[dict[str, Any]]:
    return [trade("BTCUSDT", i + 1, ms(2026, 3, 1, 12) + i * DAY, 1000 + i // 2) for i in range(BTC_TRADES)]


def eth_trades() -> list[dict[str, Any]]:
    return [trade("ETHUSDT", k + 1, ms(2026, 9, 1) + k * HOUR, 1090 + k // 4) for k in range(ETH_TRADES)]


def order(symbol: str, oid: int, created: int, update: int, status: str, executed: str = "0") -> dict[str, Any]:
    return {
        "orderId": oid,
        "symbol": symbol,
        "status": status,
        "clientOrderId": f"{symbol.lower()}-{oid}",
        "price": "0",
        "avgPrice": "0",
        "origQty": "0.010",
        "executedQty": executed,
        "cumQuote": "0",
        "timeInForce": "GTC",
        "type": "LIMIT",
        "reduceOnly": False,
        "closePosition": False,
        "side": "BUY",
        "positionSide": "LONG",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": "LIMIT",
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": created,
        "updateTime": update,
    }


def orders() -> list[dict[str, Any]]:
    c = CLOCK
    rows = [
        # BTCUSDT; ids do not follow creation time (7 is older than 2..6).
        order("BTCUSDT", 1, c - 91 * DAY, c - 91 * DAY, "NEW"),
        order("BTCUSDT", 1, c - 91 * DAY, c - 91 * DAY + MIN, "FILLED", "0.010"),  # past 90 days
        order("BTCUSDT", 2, c - 89 * DAY, c - 89 * DAY, "NEW"),
        order("BTCUSDT", 2, c - 89 * DAY, c - 89 * DAY + MIN, "FILLED", "0.010"),
        order("BTCUSDT", 3, c - 4 * DAY, c - 4 * DAY, "NEW"),
        order("BTCUSDT", 3, c - 4 * DAY, c - 4 * DAY + HOUR, "CANCELED"),  # unfilled, > 3 days: gone
        order("BTCUSDT", 4, c - 4 * DAY, c - 4 * DAY, "NEW"),
        order("BTCUSDT", 4, c - 4 * DAY, c - 4 * DAY + HOUR, "CANCELED", "0.004"),  # had a fill: kept
        order("BTCUSDT", 5, c - 4 * DAY, c - 4 * DAY, "NEW"),
        order("BTCUSDT", 5, c - 4 * DAY, c - 4 * DAY + HOUR, "EXPIRED"),  # unfilled, > 3 days: gone
        order("BTCUSDT", 6, c - 2 * DAY, c - 2 * DAY, "NEW"),
        order("BTCUSDT", 6, c - 2 * DAY, c - 2 * DAY + HOUR, "CANCELED"),  # unfilled, < 3 days: kept
        order("BTCUSDT", 7, c - 10 * DAY, c - 10 * DAY, "NEW"),
        order("BTCUSDT", 7, c - 10 * DAY, c - 10 * DAY + MIN, "FILLED", "0.010"),
        # ETHUSDT: the same numbers 1..7 are other orders.
        *[order("ETHUSDT", k, c - 6 * DAY + k * HOUR, c - 6 * DAY + k * HOUR, "FILLED", "0.010") for k in range(1, 7)],
        order("ETHUSDT", 7, c - 2 * DAY, c - 2 * DAY, "NEW"),
        order("ETHUSDT", 7, c - 2 * DAY, c - 2 * DAY + HOUR, "CANCELED"),
    ]
    random.Random(11).shuffle(rows)
    return rows


def algo(
    symbol: str, algo_id: int, created: int, update: int, status: str, actual: str = "", price: str = "0.00000"
) -> dict[str, Any]:
    return {
        "algoId": algo_id,
        "clientAlgoId": f"{symbol.lower()}-a{algo_id}",
        "algoType": "CONDITIONAL",
        "orderType": "TAKE_PROFIT_MARKET",
        "symbol": symbol,
        "side": "SELL",
        "positionSide": "LONG",
        "timeInForce": "GTC",
        "quantity": "0.010",
        "algoStatus": status,
        "actualOrderId": actual,
        "actualPrice": price,
        "triggerPrice": "2500.00",
        "price": "0.00",
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
        "createTime": created,
        "updateTime": update,
        "triggerTime": 0 if actual == "" else update,
        "goodTillDate": 0,
    }


A1 = CLOCK - 10 * DAY  # algo 1: NEW -> TRIGGERING (+1 min) -> TRIGGERED (+2 min) -> FINISHED (+3 min)
A2 = CLOCK - 5 * DAY  # algo 2: NEW -> CANCELED (+1 h), never triggered
A3 = CLOCK - DAY  # algo 3: NEW and REJECTED at the same updateTime
A4 = CLOCK - 2 * DAY  # algo 4: NEW -> EXPIRED (+1 day)
A5 = CLOCK - DAY + HOUR  # algo 5: NEW, then TRIGGERED and FINISHED at the same updateTime (+1 h)


def algos() -> list[dict[str, Any]]:
    rows = [
        algo("BTCUSDT", 1, A1, A1 + 3 * MIN, "FINISHED", "7", "2500.10"),
        algo("BTCUSDT", 1, A1, A1 + MIN, "TRIGGERING"),
        algo("BTCUSDT", 1, A1, A1, "NEW"),
        algo("BTCUSDT", 1, A1, A1 + 2 * MIN, "TRIGGERED", "7", "0.00000"),
        algo("BTCUSDT", 2, A2, A2, "NEW"),
        algo("BTCUSDT", 2, A2, A2 + HOUR, "CANCELED"),
        algo("BTCUSDT", 3, A3, A3, "REJECTED"),  # written before NEW: the status order decides the tie
        algo("BTCUSDT", 3, A3, A3, "NEW"),
        algo("BTCUSDT", 4, A4, A4, "NEW"),
        algo("BTCUSDT", 4, A4, A4 + DAY, "EXPIRED"),
        algo("BTCUSDT", 5, A5, A5 + HOUR, "FINISHED", "9", "2500.20"),  # same updateTime as TRIGGERED
        algo("BTCUSDT", 5, A5, A5, "NEW"),
        algo("BTCUSDT", 5, A5, A5 + HOUR, "TRIGGERED", "9", "0.00000"),
        algo("BTCUSDT", 6, CLOCK - 91 * DAY, CLOCK - 91 * DAY, "FINISHED", "1", "2500.00"),  # past 90 days
        # ETHUSDT algo ids 1..3 are other orders than BTCUSDT's 1..3.
        *[algo("ETHUSDT", k, CLOCK - DAY + k * MIN, CLOCK - DAY + k * MIN, "NEW") for k in (1, 2, 3)],
    ]
    return rows


INCOME_TYPES = ("REALIZED_PNL", "COMMISSION", "FUNDING_FEE", "TRANSFER", "COMMISSION_REBATE")


BNB_TRANSFER_AT = ms(2026, 9, 14, 6)


def income() -> list[dict[str, Any]]:
    """One USDT row a day at 12:00 from May 1 (j = 0) to Sep 15 (j = 137), amount j; one BNB transfer."""
    rows = []
    for j in range(138):
        typ = INCOME_TYPES[j % len(INCOME_TYPES)]
        rows.append(
            {
                "symbol": "" if typ == "TRANSFER" else "BTCUSDT",
                "incomeType": typ,
                "income": f"{j}.00000000",
                "asset": "USDT",
                "info": typ,
                "time": ms(2026, 5, 1, 12) + j * DAY,
                "tranId": 9_100_000_000_000_000_000 + j,  # 19 digits, as Binance's
                "tradeId": "",
            }
        )
    bnb = {"symbol": "", "incomeType": "TRANSFER", "income": "0.25000000", "asset": "BNB", "info": "TRANSFER"}
    rows.insert(136, {**bnb, "time": BNB_TRANSFER_AT, "tranId": 9_200_000_000_000_000_001, "tradeId": ""})
    return rows


S1, S2 = CLOCK - 2 * DAY, CLOCK


def balance(asset: str, wallet: str, snap: int) -> dict[str, Any]:
    return {
        "accountAlias": "SgsR",
        "asset": asset,
        "balance": wallet,
        "crossWalletBalance": wallet,
        "crossUnPnl": "0.00000000",
        "availableBalance": wallet,
        "maxWithdrawAmount": wallet,
        "marginAvailable": True,
        "updateTime": snap - 5_000,
        "snapshotTime": snap,
    }


def balances() -> list[dict[str, Any]]:
    """Consistent with the income: USDT gains 136 (Sep 14) and 137 (Sep 15 = S2) after S1."""
    return [
        balance("USDT", "1000.00000000", S1),
        balance("BNB", "0.50000000", S1),
        balance("USDT", "1273.00000000", S2),
        balance("BTC", "0.01000000", S2),
    ]


def kline_array(i: int) -> list[Any]:
    open_time = K0 + i * MIN
    o = f"{600 + i / 100:.2f}"
    c = f"{600 + (i + 1) / 100:.2f}"
    return [open_time, o, c, o, c, "12.340", open_time + MIN - 1, "7405.5000", 17, "6.100", "3660.6100", "0"]


def klines() -> list[dict[str, Any]]:
    return [{"symbol": "BNBUSDT", "interval": "1m", "kline": kline_array(i)} for i in range(N_KLINES)]


def symbol_info(symbol: str, pair: str, contract: str, delivery: int, base: str, quote: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "pair": pair,
        "contractType": contract,
        "deliveryDate": delivery,
        "onboardDate": ms(2026, 6, 26, 8),
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": 1,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": ["PoW"],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.1", "maxPrice": "4529764", "tickSize": "0.1"}],
        "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "permissionSets": ["GRID", "COPY"],
    }


PERPETUAL_END = 4133404800000
SYMBOL_INFOS = [
    symbol_info("BTCUSDT", "BTCUSDT", "PERPETUAL", PERPETUAL_END, "BTC", "USDT"),
    symbol_info("ETHUSDT", "ETHUSDT", "PERPETUAL", PERPETUAL_END, "ETH", "USDT"),
    symbol_info("BNBUSDT", "BNBUSDT", "PERPETUAL", PERPETUAL_END, "BNB", "USDT"),
    symbol_info("BTCUSDT_261225", "BTCUSDT", "CURRENT_QUARTER", ms(2026, 12, 25, 8), "BTC", "USDT"),
    symbol_info("ETHBTC", "ETHBTC", "PERPETUAL", PERPETUAL_END, "ETH", "BTC"),
]


def other_contract_trades() -> list[dict[str, Any]]:
    """A quarterly, a BTC-margined contract and a symbol symbols.jsonl does not list, all with id 1."""
    return [
        trade("BTCUSDT_261225", 1, CLOCK - HOUR, 1),
        trade("ETHBTC", 1, CLOCK - HOUR, 1, asset="BTC"),
        trade("1000PEPEUSDT", 1, CLOCK - HOUR, 1),
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("shapes")
    write_jsonl(d / "futures_trades.jsonl", btc_trades() + list(reversed(eth_trades())) + other_contract_trades())
    write_jsonl(d / "futures_orders.jsonl", orders())
    write_jsonl(d / "futures_algo_orders.jsonl", algos())
    write_jsonl(d / "income.jsonl", income())
    write_jsonl(d / "balances.jsonl", balances())
    write_jsonl(d / "klines.jsonl", klines())
    write_jsonl(d / "symbols.jsonl", SYMBOL_INFOS)
    return d


def _config(**kw: Any) -> ServerConfig:
    return ServerConfig(api_key=KEY, api_secret=SECRET, weight_limit_1m=1_000_000, weight_window="rolling", **kw)


@pytest.fixture(scope="module")
def server(replay_dir: Path) -> Iterator[SandboxServer]:
    with SandboxServer(replay_dir, config=_config()) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        srv: SandboxServer = request.getfixturevalue("server")
        srv.set_visible_until(None)


@pytest.fixture
def client(server: SandboxServer):
    return make_client(server.url, KEY, SECRET)


def _api_error(call, *args: Any, **kwargs: Any) -> BinanceAPIException:
    with pytest.raises(BinanceAPIException) as info:
        call(*args, **kwargs)
    return info.value


def _used(client) -> int:
    return int(client.response.headers["X-MBX-USED-WEIGHT-1M"])


def test_default_clock_is_the_latest_account_record(server: SandboxServer) -> None:
    assert server.visible_until == CLOCK  # klines (market data) do not move it


# -- ids per symbol ----------------------------------------------------------------------------------


def test_trade_ids_page_per_symbol(client) -> None:
    btc = client.futures_account_trades(symbol="BTCUSDT", fromId=181, limit=2)
    eth = client.futures_account_trades(symbol="ETHUSDT", fromId=181, limit=2)
    assert [(t["symbol"], t["id"]) for t in btc] == [("BTCUSDT", 181), ("BTCUSDT", 182)]
    assert eth == []  # ETHUSDT's ids end at 40
    eth = client.futures_account_trades(symbol="ETHUSDT", fromId=0, limit=1000)
    assert eth == eth_trades()  # every ETHUSDT trade, none of BTCUSDT's equal ids 1..40
    assert client.futures_account_trades(symbol="ETHBTC", fromId=0) == [other_contract_trades()[1]]


def test_trades_of_an_order_number_used_on_two_symbols(client) -> None:
    btc = client.futures_account_trades(symbol="BTCUSDT", orderId=1090)
    eth = client.futures_account_trades(symbol="ETHUSDT", orderId=1090)
    assert [(t["symbol"], t["id"], t["time"]) for t in btc] == [
        ("BTCUSDT", 181, ms(2026, 8, 28, 12)),
        ("BTCUSDT", 182, ms(2026, 8, 29, 12)),
    ]
    assert [(t["symbol"], t["id"]) for t in eth] == [("ETHUSDT", k) for k in (1, 2, 3, 4)]


def test_orders_with_equal_ids_on_two_symbols(client) -> None:
    btc = client.futures_get_all_orders(symbol="BTCUSDT", orderId=7)
    eth = client.futures_get_all_orders(symbol="ETHUSDT", orderId=7)
    assert [(o["symbol"], o["orderId"], o["status"], o["clientOrderId"]) for o in btc] == [
        ("BTCUSDT", 7, "FILLED", "btcusdt-7")
    ]
    assert [(o["symbol"], o["orderId"], o["status"], o["clientOrderId"]) for o in eth] == [
        ("ETHUSDT", 7, "CANCELED", "ethusdt-7")
    ]
    eth_all = client.futures_get_all_orders(symbol="ETHUSDT", orderId=0)
    assert [(o["orderId"], o["symbol"]) for o in eth_all] == [(k, "ETHUSDT") for k in range(1, 8)]


def test_algo_ids_page_per_symbol(client) -> None:
    page1 = client.futures_get_all_orders(symbol="ETHUSDT", conditional=True, algoId=1, limit=2, page=1)
    page2 = client.futures_get_all_orders(symbol="ETHUSDT", conditional=True, algoId=1, limit=2, page=2)
    assert [(a["symbol"], a["algoId"], a["clientAlgoId"]) for a in page1 + page2] == [
        ("ETHUSDT", 1, "ethusdt-a1"),
        ("ETHUSDT", 2, "ethusdt-a2"),
        ("ETHUSDT", 3, "ethusdt-a3"),
    ]
    btc = client.futures_get_all_orders(symbol="BTCUSDT", conditional=True, algoId=1, limit=1)
    assert [(a["symbol"], a["algoId"], a["clientAlgoId"]) for a in btc] == [("BTCUSDT", 1, "btcusdt-a1")]


# -- algo statuses under the data clock --------------------------------------------------------------


def test_algo_status_runs_new_triggering_triggered_finished(server: SandboxServer, client) -> None:
    def status_at(clock: int) -> tuple[str, str]:
        server.set_visible_until(clock)
        rows = client.futures_get_all_orders(symbol="BTCUSDT", conditional=True, algoId=1, limit=1)
        return rows[0]["algoStatus"], rows[0]["actualOrderId"]

    assert status_at(A1 + 30_000) == ("NEW", "")
    assert status_at(A1 + MIN) == ("TRIGGERING", "")
    assert status_at(A1 + 2 * MIN + 1) == ("TRIGGERED", "7")
    assert status_at(A1 + 3 * MIN) == ("FINISHED", "7")
    server.set_visible_until(A1 - 1)  # algo 1 does not exist yet; 6 (created 91 days before CLOCK) does
    assert [a["algoId"] for a in client.futures_get_all_orders(symbol="BTCUSDT", conditional=True, algoId=1)] == [6]


def test_final_algo_statuses_and_same_time_ties(server: SandboxServer, client) -> None:
    server.set_visible_until(A2 + 2 * HOUR)
    rows = client.futures_get_all_orders(symbol="BTCUSDT", conditional=True, algoId=2, limit=1)
    assert [(a["algoId"], a["algoStatus"]) for a in rows] == [(2, "CANCELED")]
    server.set_visible_until(None)
    rows = client.futures_get_all_orders(symbol="BTCUSDT", conditional=True, algoId=0)
    # 2 (canceled unfilled, created 5 days ago) and 6 (created 91 days ago) are past retention.
    assert [(a["algoId"], a["algoStatus"]) for a in rows] == [
        (1, "FINISHED"),
        (3, "REJECTED"),  # REJECTED and NEW share an updateTime: the final status is the later version
        (4, "EXPIRED"),  # expired 1 day ago but created 2 days ago: still served
        (5, "FINISHED"),  # TRIGGERED and FINISHED share an updateTime: FINISHED wins
    ]
    server.set_visible_until(A5 + HOUR - 1)
    rows = client.futures_get_all_orders(symbol="BTCUSDT", conditional=True, algoId=5)
    assert [(a["algoId"], a["algoStatus"]) for a in rows] == [(5, "NEW")]


# -- retention windows --------------------------------------------------------------------------------


def test_trades_older_than_six_months_are_not_served(server: SandboxServer, client) -> None:
    rows = client.futures_account_trades(symbol="BTCUSDT", fromId=0, limit=1000)
    assert rows[0]["id"] == 15 and rows[0]["time"] == TRADES_FLOOR  # Mar 15 12:00, exactly 6 months
    assert [r["id"] for r in rows] == list(range(15, 200))
    window = client.futures_account_trades(symbol="BTCUSDT", startTime=ms(2026, 3, 10), endTime=ms(2026, 3, 17))
    assert [r["id"] for r in window] == [15, 16]
    assert client.futures_account_trades(symbol="BTCUSDT", orderId=1000) == []  # its trades 1, 2 are gone
    assert [r["id"] for r in client.futures_account_trades(symbol="BTCUSDT", orderId=1007)] == [15, 16]
    # An earlier data clock moves the window back: on Apr 1 every trade up to then (i = 0..31) is served.
    server.set_visible_until(ms(2026, 4, 1, 12))
    rows = client.futures_account_trades(symbol="BTCUSDT", fromId=0, limit=1000)
    assert [r["id"] for r in rows] == list(range(1, 33))


def test_orders_older_than_90_days_and_unfilled_cancels_older_than_3_days(server: SandboxServer, client) -> None:
    rows = client.futures_get_all_orders(symbol="BTCUSDT", orderId=0)
    assert [(o["orderId"], o["status"]) for o in rows] == [
        (2, "FILLED"),  # created 89 days ago
        (4, "CANCELED"),  # canceled 4 days ago but had a fill
        (6, "CANCELED"),  # canceled unfilled, created 2 days ago
        (7, "FILLED"),
    ]
    window = client.futures_get_all_orders(symbol="BTCUSDT", startTime=CLOCK - 5 * DAY, endTime=CLOCK)
    assert [o["orderId"] for o in window] == [4, 6]
    # 30 minutes after order 3 was placed it is a live NEW order; an hour later, canceled; once its
    # creation is more than 3 days before the data clock, it is gone.
    created = CLOCK - 4 * DAY
    server.set_visible_until(created + 30 * MIN)
    first = client.futures_get_all_orders(symbol="BTCUSDT", orderId=3, limit=1)
    assert [(o["orderId"], o["status"]) for o in first] == [(3, "NEW")]
    server.set_visible_until(created + 3 * DAY)  # the last moment it is served
    assert client.futures_get_all_orders(symbol="BTCUSDT", orderId=3, limit=1)[0]["status"] == "CANCELED"
    server.set_visible_until(created + 3 * DAY + 1)
    assert client.futures_get_all_orders(symbol="BTCUSDT", orderId=3, limit=1)[0]["orderId"] == 4


def test_admin_state_reports_the_retention_floors(server: SandboxServer) -> None:
    state = requests.get(f"{server.url}/_sandbox/state", timeout=5).json()
    assert state["visible_until"] == CLOCK
    assert state["retention_floors"] == {
        "trades": TRADES_FLOOR,
        "orders": ORDERS_FLOOR,
        "unfilled_canceled_orders": UNFILLED_FLOOR,
        "income": INCOME_FLOOR,
    }
    assert state["counts"]["balance_snapshots"] == 4 and state["counts"]["klines"] == N_KLINES


def test_month_arithmetic_clamps_to_the_end_of_the_month(replay_dir: Path) -> None:
    with SandboxServer(replay_dir, config=_config()) as srv:
        srv.set_visible_until(ms(2026, 8, 31, 9, 30))
        floors = srv.retention_floors()
    # Aug 31 - 6 months = Feb 28 (2026 is no leap year); - 3 months = May 31; - 90 days = Jun 2.
    assert floors["trades"] == ms(2026, 2, 28, 9, 30)
    assert floors["income"] == ms(2026, 5, 31, 9, 30)
    assert floors["orders"] == ms(2026, 6, 2, 9, 30)


def test_income_tran_id_beyond_int64_is_served_intact(tmp_path: Path) -> None:
    big = 9_999_999_999_999_999_999  # 19 digits, more than a signed 64-bit integer holds
    row = {"symbol": "", "incomeType": "TRANSFER", "income": "5.00000000", "asset": "USDT", "info": "TRANSFER",
           "time": CLOCK, "tranId": big, "tradeId": ""}  # fmt: skip
    write_jsonl(tmp_path / "income.jsonl", [row, {**row, "tranId": 7, "income": "1.00000000"}])
    with SandboxServer(tmp_path, config=_config()) as srv:
        rows = make_client(srv.url, KEY, SECRET).futures_income_history()
    assert [r["tranId"] for r in rows] == [7, big]


def test_income_older_than_three_months_is_not_served(client) -> None:
    rows = client.futures_income_history(startTime=ms(2026, 5, 1), endTime=CLOCK, limit=1000)
    assert rows[0]["time"] == INCOME_FLOOR and rows[-1]["time"] == CLOCK
    assert len(rows) == 94  # USDT Jun 15 .. Sep 15 inclusive, and the BNB transfer
    assert rows[0]["tranId"] == 9_100_000_000_000_000_045  # j = 45 (Jun 15), 19 digits served intact
    assert client.futures_income_history(startTime=ms(2026, 5, 1), endTime=ms(2026, 6, 1)) == []


def test_shrunk_retention_windows_are_configurable(replay_dir: Path) -> None:
    config = _config(
        retention_trades="2d", retention_orders="5d", retention_unfilled_orders=HOUR, retention_income="1d"
    )
    with SandboxServer(replay_dir, config=config) as srv:
        client = make_client(srv.url, KEY, SECRET)
        trades = client.futures_account_trades(symbol="BTCUSDT", fromId=0)
        assert [t["id"] for t in trades] == [197, 198, 199]  # Sep 13, 14, 15 at 12:00
        rows = client.futures_get_all_orders(symbol="BTCUSDT", orderId=0)
        assert [(o["orderId"], o["status"]) for o in rows] == [(4, "CANCELED")]  # 6 is unfilled, > 1 h
        income_rows = client.futures_income_history(startTime=ms(2026, 9, 1), endTime=CLOCK)
        assert [r["time"] for r in income_rows] == [ms(2026, 9, 14, 12), CLOCK]
    with SandboxServer(replay_dir, config=_config(retention_trades=None, retention_income=None)) as srv:
        client = make_client(srv.url, KEY, SECRET)
        assert len(client.futures_account_trades(symbol="BTCUSDT", fromId=0, limit=1000)) == BTC_TRADES
    with pytest.raises(ValueError):
        ServerConfig(retention_trades="6 months")


# -- balances -----------------------------------------------------------------------------------------


def test_balance_latest_snapshot_per_asset(server: SandboxServer, client) -> None:
    client.futures_time()
    before = _used(client)
    rows = client.futures_account_balance()
    assert _used(client) - before == 5

    def served(asset: str, snap: int, snap_wallet: str, wallet: str, update: int) -> dict[str, Any]:
        """The snapshot without our snapshotTime, its wallet rolled forward to ``wallet``."""
        row = {k: v for k, v in balance(asset, snap_wallet, snap).items() if k != "snapshotTime"}
        return {**row, "balance": wallet, "crossWalletBalance": wallet, "updateTime": update}

    assert rows == [
        # BNB's only snapshot (S1, 0.5) plus the 0.25 transfer of Sep 14 06:00
        served("BNB", S1, "0.50000000", "0.75000000", BNB_TRANSFER_AT),
        served("BTC", S2, "0.01000000", "0.01000000", S2 - 5_000),
        served("USDT", S2, "1273.00000000", "1273.00000000", S2 - 5_000),
    ]
    # Between snapshots: S1's 1000 USDT plus Sep 14's income of 136; Binance answers with the wallet now.
    server.set_visible_until(S2 - 1)
    rows = client.futures_account_balance()
    assert [(r["asset"], r["balance"], r["crossWalletBalance"], r["updateTime"]) for r in rows] == [
        ("BNB", "0.75000000", "0.75000000", BNB_TRANSFER_AT),
        ("USDT", "1136.00000000", "1136.00000000", ms(2026, 9, 14, 12)),
    ]
    assert rows[1]["availableBalance"] == "1000.00000000"  # margin-dependent fields stay the snapshot's
    server.set_visible_until(BNB_TRANSFER_AT - 1)
    assert [(r["asset"], r["balance"]) for r in client.futures_account_balance()] == [
        ("BNB", "0.50000000"),
        ("USDT", "1000.00000000"),
    ]
    server.set_visible_until(S1 - 1)
    assert client.futures_account_balance() == []


def test_balance_v2_path_and_signature(server: SandboxServer) -> None:
    query = f"timestamp={int(time.time() * 1000)}"
    sig = hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    resp = requests.get(
        f"{server.url}/fapi/v2/balance?{query}&signature={sig}", headers={"X-MBX-APIKEY": KEY}, timeout=5
    )
    assert resp.status_code == 200 and resp.headers["X-MBX-USED-WEIGHT-1M"]
    assert [r["asset"] for r in resp.json()] == ["BNB", "BTC", "USDT"]
    resp = requests.get(f"{server.url}/fapi/v3/balance?{query}", headers={"X-MBX-APIKEY": KEY}, timeout=5)
    assert resp.status_code == 400 and resp.json()["code"] == -1102  # signature is mandatory


# -- klines -------------------------------------------------------------------------------------------


def test_klines_paging_rules(server: SandboxServer) -> None:
    public = make_client(server.url, None, None)  # market data: no key, no signature
    rows = public.futures_klines(symbol="BNBUSDT", interval="1m")
    assert rows == [kline_array(i) for i in range(1500, 2000)]  # default 500, the most recent
    assert len(public.futures_klines(symbol="BNBUSDT", interval="1m", limit=5000)) == 1500  # max 1500
    rows = public.futures_klines(symbol="BNBUSDT", interval="1m", startTime=K0 + 10 * MIN + 1, limit=3)
    assert rows == [kline_array(i) for i in (11, 12, 13)]
    rows = public.futures_klines(symbol="BNBUSDT", interval="1m", endTime=K0 + 100 * MIN, limit=5)
    assert rows == [kline_array(i) for i in range(96, 101)]
    rows = public.futures_klines(symbol="BNBUSDT", interval="1m", startTime=K0, endTime=K0 + 9 * MIN)
    assert [r[0] for r in rows] == [K0 + i * MIN for i in range(10)]
    # The exact array Binance returns: 12 fields, decimals as strings, times and trade count as ints.
    assert rows[0] == [K0, "600.00", "600.01", "600.00", "600.01", "12.340", K0 + MIN - 1, "7405.5000", 17,
                       "6.100", "3660.6100", "0"]  # fmt: skip
    assert public.futures_klines(symbol="BNBUSDT", interval="5m") == []  # valid, but not in the replay


def test_klines_under_the_data_clock(server: SandboxServer) -> None:
    public = make_client(server.url, None, None)
    server.set_visible_until(K0 + 50 * MIN + 30_000)
    rows = public.futures_klines(symbol="BNBUSDT", interval="1m", limit=1000)
    assert [r[0] for r in rows] == [K0 + i * MIN for i in range(51)]  # the kline opened at 50 min is forming


def test_klines_weight_by_limit_and_errors(server: SandboxServer) -> None:
    public = make_client(server.url, None, None)
    public.futures_ping()
    for limit, weight in ((99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10), (1500, 10)):
        before = _used(public)
        public.futures_klines(symbol="BNBUSDT", interval="1m", limit=limit)
        assert _used(public) - before == weight, limit
    before = _used(public)
    public.futures_klines(symbol="BNBUSDT", interval="1m")
    assert _used(public) - before == 5  # default limit 500
    assert _api_error(public.futures_klines, symbol="BNBUSDT", interval="2m").code == -1120
    assert _api_error(public.futures_klines, symbol="BNBUSDT").code == -1102
    assert _api_error(public.futures_klines, symbol="NOPEUSDT", interval="1m").code == -1121


def test_historical_klines_through_the_client(server: SandboxServer) -> None:
    public = make_client(server.url, None, None)
    rows = public.futures_historical_klines("BNBUSDT", "1m", start_str=K0, end_str=CLOCK + MIN)
    assert rows == [kline_array(i) for i in range(N_KLINES)]


# -- symbols: quarterlies, BTC-margined contracts, exchangeInfo from symbols.jsonl --------------------


def test_exchange_info_serves_symbols_jsonl(client) -> None:
    info = client.futures_exchange_info()
    symbols = {s["symbol"]: s for s in info["symbols"]}
    for expected in SYMBOL_INFOS:
        assert symbols[expected["symbol"]] == expected  # verbatim, extra fields included
    assert symbols["BTCUSDT_261225"]["contractType"] == "CURRENT_QUARTER"
    assert symbols["ETHBTC"]["marginAsset"] == "BTC"
    # A symbol with data but no symbols.jsonl line gets a generated entry; nothing else is listed.
    assert set(symbols) == {s["symbol"] for s in SYMBOL_INFOS} | {"1000PEPEUSDT"}
    assert symbols["1000PEPEUSDT"]["marginAsset"] == "USDT"
    assert [a["asset"] for a in info["assets"]] == ["BTC", "USDT"]


def test_quarterly_and_btc_margined_symbols_are_valid_everywhere(client) -> None:
    for symbol in ("BTCUSDT_261225", "ETHBTC", "1000PEPEUSDT"):
        rows = client.futures_account_trades(symbol=symbol, fromId=0)
        assert [(r["symbol"], r["id"]) for r in rows] == [(symbol, 1)]
        assert client.futures_get_all_orders(symbol=symbol) == []
        assert client.futures_get_all_orders(symbol=symbol, conditional=True) == []
        assert client.futures_income_history(symbol=symbol) == []
    # TRXUSDT is a paper-exchange instrument, but this exchange's symbols.jsonl does not list it.
    assert _api_error(client.futures_account_trades, symbol="TRXUSDT").code == -1121


def test_generated_exchange_info_without_symbols_jsonl(tmp_path: Path) -> None:
    unknown = [trade("ADAUSDC_270326", 1, CLOCK, 1, asset="USDC"), trade("SOLBTC", 1, CLOCK, 1, asset="BTC")]
    write_jsonl(tmp_path / "futures_trades.jsonl", other_contract_trades() + unknown)
    with SandboxServer(tmp_path, config=_config()) as srv:
        symbols = {s["symbol"]: s for s in make_client(srv.url, KEY, SECRET).futures_exchange_info()["symbols"]}
    quarterly = symbols["BTCUSDT_261225"]
    assert (quarterly["pair"], quarterly["contractType"], quarterly["deliveryDate"]) == (
        "BTCUSDT",
        "CURRENT_QUARTER",
        ms(2026, 12, 25, 8),
    )
    assert (quarterly["baseAsset"], quarterly["marginAsset"]) == ("BTC", "USDT")
    assert (symbols["ETHBTC"]["baseAsset"], symbols["ETHBTC"]["quoteAsset"], symbols["ETHBTC"]["marginAsset"]) == (
        "ETH",
        "BTC",
        "BTC",
    )
    assert symbols["BTCUSDT"]["contractType"] == "PERPETUAL"  # the paper exchange's instruments stay listed
    # Contracts the paper exchange does not know: read off the name.
    ada = symbols["ADAUSDC_270326"]
    assert (ada["pair"], ada["contractType"], ada["deliveryDate"], ada["baseAsset"], ada["marginAsset"]) == (
        "ADAUSDC",
        "CURRENT_QUARTER",
        ms(2027, 3, 26, 8),
        "ADA",
        "USDC",
    )
    assert (symbols["SOLBTC"]["baseAsset"], symbols["SOLBTC"]["marginAsset"]) == ("SOL", "BTC")
    assert (symbols["1000PEPEUSDT"]["baseAsset"], symbols["1000PEPEUSDT"]["marginAsset"]) == ("1000PEPE", "USDT")
