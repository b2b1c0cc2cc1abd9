"""The fake Binance USD-M REST API (sandbox/server.py) driven by the real python-binance Client.

No mocks: every test talks HTTP to a server on loopback, through python-binance where a client call
exists and through ``requests`` for hand-made or admin requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from binance.exceptions import BinanceAPIException, BinanceRequestException

from sandbox.instruments import INSTRUMENTS
from sandbox.server import SandboxServer, ServerConfig, WeightMeter, make_client

KEY, SECRET = "test-key", "test-secret"
DAY = 86_400_000
HOUR = 3_600_000
BASE = 1_700_000_000_000
N_TRADES = 2500
STEP = 10 * DAY // N_TRADES  # 2500 BTCUSDT trades spread over 10 days
FIRST_ID = 100_001
T_END = BASE + (N_TRADES - 1) * STEP  # the latest record of the replay dir = the default data clock
N_ORDERS = 20
SNAPSHOTS = (BASE + DAY, BASE + 5 * DAY, BASE + 9 * DAY)


# -- replay directory ---------------------------------------------------------------------------------


def _trade(symbol: str, trade_id: int, t: int, order_id: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "id": trade_id,
        "orderId": order_id,
        "side": "BUY",
        "positionSide": "LONG",
        "price": "45000.10",
        "qty": "0.001",
        "quoteQty": "45.00010",
        "realizedPnl": "0",
        "commission": "0.01800004",
        "commissionAsset": "USDT",
        "marginAsset": "USDT",
        "time": t,
        "buyer": True,
        "maker": False,
    }


def _order(order_id: int, t: int, update: int, status: str) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "symbol": "BTCUSDT",
        "clientOrderId": f"sig{order_id}-en",
        "status": status,
        "type": "MARKET",
        "origType": "MARKET",
        "side": "BUY",
        "positionSide": "LONG",
        "price": "0",
        "avgPrice": "45000.10" if status == "FILLED" else "0",
        "origQty": "0.003",
        "executedQty": "0.003" if status == "FILLED" else "0",
        "cumQuote": "135.0003" if status == "FILLED" else "0",
        "stopPrice": "0",
        "reduceOnly": False,
        "closePosition": False,
        "timeInForce": "GTC",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "time": t,
        "updateTime": update,
    }


def order_versions() -> dict[int, list[tuple[int, str]]]:
    """orderId -> [(updateTime, status)] of every version written to the replay dir."""
    out: dict[int, list[tuple[int, str]]] = {}
    for k in range(N_ORDERS):
        oid, t = 9001 + k, BASE + k * 12 * HOUR
        versions = [(t, "NEW")]
        if k % 3 == 0:
            versions.append((t + 30_000, "PARTIALLY_FILLED"))
        if k == 18:
            versions.append((t + HOUR, "CANCELED"))
        elif k % 2 == 0:
            versions.append((t + 60_000, "FILLED"))
        out[oid] = versions
    return out


def _algo(algo_id: int, t: int, update: int, status: str) -> dict[str, Any]:
    return {
        "algoId": algo_id,
        "clientAlgoId": f"sig{algo_id}-tp",
        "algoType": "CONDITIONAL",
        "orderType": "TAKE_PROFIT_MARKET",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "positionSide": "LONG",
        "quantity": "0.003",
        "algoStatus": status,
        "triggerPrice": "48000.0",
        "price": "0",
        "workingType": "CONTRACT_PRICE",
        "closePosition": False,
        "reduceOnly": False,
        "priceProtect": False,
        "createTime": t,
        "updateTime": update,
        "triggerTime": update if status == "TRIGGERED" else 0,
        "actualOrderId": "9999" if status == "TRIGGERED" else "",
        "executedQty": "0",
        "avgPrice": "0",
    }


def income_rows() -> list[dict[str, Any]]:
    rows = []
    types = ("REALIZED_PNL", "COMMISSION", "FUNDING_FEE")
    for j in range(250):
        t = BASE + j * (10 * DAY // 250)
        rows.append(
            {
                "symbol": "ETHUSDT" if j % 5 == 0 else "BTCUSDT",
                "incomeType": types[j % 3],
                "income": f"-0.{j:04d}",
                "asset": "USDT",
                "info": types[j % 3],
                "time": t,
                "tranId": 7_000_000 + j,
                "tradeId": str(FIRST_ID + j),
            }
        )
    # Two rows at the same time: (time, tranId) decides, whatever the file order.
    rows[11]["time"] = rows[10]["time"]
    return rows


def _position(symbol: str, side: str, amt: str, snap: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "positionSide": side,
        "positionAmt": amt,
        "entryPrice": "45000.1" if amt not in ("0", "0.000") else "0.0",
        "breakEvenPrice": "0.0",
        "markPrice": "45100.00000000",
        "unRealizedProfit": "0.00000000",
        "liquidationPrice": "0",
        "isolatedMargin": "0",
        "notional": "0",
        "marginAsset": "USDT",
        "isolatedWallet": "0",
        "initialMargin": "0",
        "maintMargin": "0",
        "positionInitialMargin": "0",
        "openOrderInitialMargin": "0",
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": snap,
        "snapshotTime": snap,
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("replay")
    trades = [_trade("BTCUSDT", FIRST_ID + i, BASE + i * STEP, 9001 + i // 200) for i in range(N_TRADES)]
    # ETHUSDT lines are written newest first: the server must sort them by id.
    trades += [_trade("ETHUSDT", 1 + k, BASE + k * HOUR, 1) for k in reversed(range(40))]
    _write_jsonl(d / "futures_trades.jsonl", trades)

    orders = [
        _order(oid, BASE + (oid - 9001) * 12 * HOUR, upd, status)
        for oid, versions in order_versions().items()
        for upd, status in versions
    ]
    random.Random(1).shuffle(orders)  # versions arrive in any order; updateTime decides
    _write_jsonl(d / "futures_orders.jsonl", orders)

    algos = [
        _algo(501, BASE, BASE + HOUR, "TRIGGERED"),
        _algo(501, BASE, BASE, "NEW"),
        # algoId order differs from createTime order (502 was created after 503).
        _algo(502, BASE + 2 * DAY, BASE + 2 * DAY, "NEW"),
        _algo(502, BASE + 2 * DAY, BASE + 2 * DAY + HOUR, "TRIGGERED"),
        _algo(503, BASE + DAY, BASE + DAY, "NEW"),
    ]
    _write_jsonl(d / "futures_algo_orders.jsonl", algos)

    income = income_rows()
    income[10], income[11] = income[11], income[10]
    _write_jsonl(d / "income.jsonl", income)

    s1, s2, s3 = SNAPSHOTS
    positions = [
        _position("BTCUSDT", "LONG", "0.010", s1),
        _position("BTCUSDT", "SHORT", "0", s1),
        _position("ETHUSDT", "LONG", "0.500", s1),
        _position("ETHUSDT", "SHORT", "0", s1),
        _position("BTCUSDT", "LONG", "0.020", s2),
        _position("BTCUSDT", "SHORT", "-0.005", s2),
        _position("ETHUSDT", "LONG", "0", s2),
        _position("ETHUSDT", "SHORT", "0", s2),
        _position("BTCUSDT", "LONG", "0.015", s3),
        _position("BTCUSDT", "SHORT", "0", s3),
        _position("SOLUSDT", "LONG", "0", s3),
        _position("SOLUSDT", "SHORT", "0", s3),
    ]
    _write_jsonl(d / "position_risk.jsonl", positions)
    (d / "account.json").write_text(json.dumps({"account_id": "acc1", "position_mode": "hedge"}))
    return d


@pytest.fixture(scope="module")
def server(replay_dir: Path) -> Iterator[SandboxServer]:
    config = ServerConfig(api_key=KEY, api_secret=SECRET, weight_limit_1m=1_000_000, weight_window="rolling")
    with SandboxServer(replay_dir, config=config) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        srv: SandboxServer = request.getfixturevalue("server")
        srv.clear_faults()
        srv.set_visible_until(None)
        srv.reset_weight()


@pytest.fixture
def client(server: SandboxServer):
    return make_client(server.url, KEY, SECRET)


def _api_error(call, *args: Any, **kwargs: Any) -> BinanceAPIException:
    with pytest.raises(BinanceAPIException) as info:
        call(*args, **kwargs)
    return info.value


def _signed_get(server: SandboxServer, path: str, query: str, secret: str = SECRET) -> requests.Response:
    """A hand-signed request: the signature covers ``query`` exactly as sent."""
    sig = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return requests.get(f"{server.url}{path}?{query}&signature={sig}", headers={"X-MBX-APIKEY": KEY}, timeout=5)


def _now() -> int:
    return int(time.time() * 1000)


# -- paging, limits and windows ----------------------------------------------------------------------


def test_fromid_paging_returns_every_trade_once_in_order(client) -> None:
    seen: list[int] = []
    from_id, pages = 0, 0
    while True:
        page = client.futures_account_trades(symbol="BTCUSDT", fromId=from_id, limit=1000)
        pages += 1
        seen += [t["id"] for t in page]
        if len(page) < 1000:
            break
        from_id = page[-1]["id"] + 1
    assert seen == list(range(FIRST_ID, FIRST_ID + N_TRADES))
    assert pages == 3
    # Records come back verbatim: decimal strings keep their trailing zeros.
    first = client.futures_account_trades(symbol="BTCUSDT", fromId=FIRST_ID, limit=1)[0]
    assert first == _trade("BTCUSDT", FIRST_ID, BASE, 9001)


def test_limit_default_and_cap(client) -> None:
    assert len(client.futures_account_trades(symbol="BTCUSDT", fromId=0)) == 500
    assert len(client.futures_account_trades(symbol="BTCUSDT", fromId=0, limit=5000)) == 1000
    assert _api_error(client.futures_account_trades, symbol="BTCUSDT", fromId=0, limit=0).code == -1130
    assert _api_error(client.futures_account_trades, symbol="BTCUSDT", limit="ten").code == -1100


def test_window_longer_than_7_days_is_rejected(client) -> None:
    err = _api_error(client.futures_account_trades, symbol="BTCUSDT", startTime=BASE, endTime=BASE + 7 * DAY + 1)
    assert (err.status_code, err.code) == (400, -1127)
    ok = client.futures_account_trades(symbol="BTCUSDT", startTime=BASE, endTime=BASE + 7 * DAY, limit=1000)
    assert len(ok) == 1000
    err = _api_error(client.futures_get_all_orders, symbol="BTCUSDT", startTime=BASE, endTime=BASE + 8 * DAY)
    assert err.code == -1127
    err = _api_error(client.futures_account_trades, symbol="BTCUSDT", startTime=BASE + DAY, endTime=BASE)
    assert err.code == -1023


def test_fromid_cannot_be_combined_with_a_time_window(client) -> None:
    err = _api_error(client.futures_account_trades, symbol="BTCUSDT", fromId=FIRST_ID, startTime=BASE)
    assert (err.status_code, err.code) == (400, -1106)
    err = _api_error(client.futures_account_trades, symbol="BTCUSDT", fromId=FIRST_ID, endTime=BASE + DAY)
    assert err.code == -1106


def test_one_sided_and_default_windows(client) -> None:
    # Only startTime: [startTime, startTime + 7d], earliest first.
    rows = client.futures_account_trades(symbol="BTCUSDT", startTime=BASE + DAY, limit=1000)
    assert rows[0]["time"] >= BASE + DAY and rows[0]["time"] - BASE - DAY < STEP
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    # Only endTime: [endTime - 7d, endTime]; everything up to day 3 fits in one page.
    rows = client.futures_account_trades(symbol="BTCUSDT", endTime=BASE + 3 * DAY, limit=1000)
    assert rows[0]["id"] == FIRST_ID and rows[-1]["time"] <= BASE + 3 * DAY
    assert len(rows) == 3 * DAY // STEP + 1
    # Neither: the most recent trades of the 7 days before the data clock, ascending.
    rows = client.futures_account_trades(symbol="BTCUSDT")
    assert len(rows) == 500 and rows[-1]["id"] == FIRST_ID + N_TRADES - 1
    assert all(T_END - 7 * DAY <= r["time"] <= T_END for r in rows)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)


def test_trades_of_one_order(client) -> None:
    rows = client.futures_account_trades(symbol="BTCUSDT", orderId=9003)
    assert [r["id"] for r in rows] == list(range(FIRST_ID + 400, FIRST_ID + 600))


def test_parameter_errors_are_binance_errors(client, server: SandboxServer) -> None:
    assert _api_error(client.futures_account_trades).code == -1102  # symbol is mandatory
    assert _api_error(client.futures_account_trades, symbol="btcusdt").code == -1100
    assert _api_error(client.futures_account_trades, symbol="FOOUSDT").code == -1121
    assert _api_error(client.futures_account_trades, symbol="BTCUSDT", startTime="1e5").code == -1100
    assert _api_error(client.futures_income_history, page=0).code == -1130
    resp = requests.get(f"{server.url}/fapi/v1/nothingHere", timeout=5)
    assert resp.status_code == 404 and resp.json()["code"] == -1099
    assert "X-MBX-USED-WEIGHT-1M" in resp.headers
    resp = requests.post(f"{server.url}/fapi/v1/userTrades", timeout=5)
    assert resp.status_code == 404 and resp.json()["code"] == -1099


# -- authentication ----------------------------------------------------------------------------------


def test_bad_signature_and_bad_key(server: SandboxServer) -> None:
    err = _api_error(make_client(server.url, KEY, "wrong-secret").futures_account_trades, symbol="BTCUSDT")
    assert (err.status_code, err.code) == (400, -1022)
    err = _api_error(make_client(server.url, "wrong-key", SECRET).futures_account_trades, symbol="BTCUSDT")
    assert (err.status_code, err.code) == (401, -2015)
    err = _api_error(make_client(server.url, None, SECRET).futures_account_trades, symbol="BTCUSDT")
    assert (err.status_code, err.code) == (401, -2015)


def test_signature_covers_the_query_string_exactly_as_sent(server: SandboxServer) -> None:
    query = f"timestamp={_now()}&symbol=BTCUSDT&limit=5&fromId=0"  # unsorted: Binance signs what is sent
    resp = _signed_get(server, "/fapi/v1/userTrades", query)
    assert resp.status_code == 200 and len(resp.json()) == 5
    sig = hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    tampered = query.replace("limit=5", "limit=6")
    resp = requests.get(
        f"{server.url}/fapi/v1/userTrades?{tampered}&signature={sig}",
        headers={"X-MBX-APIKEY": KEY},
        timeout=5,
    )
    assert resp.status_code == 400 and resp.json()["code"] == -1022
    resp = _signed_get(server, "/fapi/v1/userTrades", "symbol=BTCUSDT")
    assert resp.json()["code"] == -1102  # timestamp is mandatory


def test_timestamp_outside_recv_window(server: SandboxServer) -> None:
    client = make_client(server.url, KEY, SECRET)
    client.timestamp_offset = -(client.REQUEST_RECVWINDOW + 2000)  # too old
    err = _api_error(client.futures_account_trades, symbol="BTCUSDT")
    assert (err.status_code, err.code) == (400, -1021)
    client.timestamp_offset = 3000  # more than 1000 ms ahead of the server
    assert _api_error(client.futures_account_trades, symbol="BTCUSDT").code == -1021
    client.timestamp_offset = 0
    assert client.futures_account_trades(symbol="BTCUSDT", limit=1)
    query = urlencode({"symbol": "BTCUSDT", "recvWindow": 70_000, "timestamp": _now()})
    assert _signed_get(server, "/fapi/v1/userTrades", query).json()["code"] == -1131


# -- request weight ----------------------------------------------------------------------------------


def test_weight_header_and_429_with_retry_after(replay_dir: Path) -> None:
    config = ServerConfig(
        api_key=KEY, api_secret=SECRET, weight_limit_1m=12, retry_after_seconds=7, weight_window="rolling"
    )
    with SandboxServer(replay_dir, config=config) as srv:
        client = make_client(srv.url, KEY, SECRET)
        client.futures_time()
        assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == "1"
        client.futures_account_trades(symbol="BTCUSDT", limit=1)
        assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == "6"
        client.futures_account_trades(symbol="BTCUSDT", limit=1)
        assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == "11"
        err = _api_error(client.futures_account_trades, symbol="BTCUSDT", limit=1)
        assert (err.status_code, err.code) == (429, -1003)
        assert err.response.headers["Retry-After"] == "7"
        assert err.response.headers["X-MBX-USED-WEIGHT-1M"] == "11"
        client.futures_ping()  # weight 1 still fits the budget
        assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == "12"
        assert requests.post(f"{srv.url}/_sandbox/reset-weight", timeout=5).ok
        client.futures_account_trades(symbol="BTCUSDT", limit=1)
        assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == "5"
        err = _api_error(client.futures_income_history)  # weight 30 alone exceeds a budget of 12
        assert err.status_code == 429


def test_weights_per_endpoint(client) -> None:
    def used() -> int:
        return int(client.response.headers["X-MBX-USED-WEIGHT-1M"])

    calls = [
        (client.futures_ping, {}, 1),
        (client.futures_exchange_info, {}, 1),
        (client.futures_account_trades, {"symbol": "BTCUSDT"}, 5),
        (client.futures_get_all_orders, {"symbol": "BTCUSDT"}, 5),
        (client.futures_get_all_orders, {"symbol": "BTCUSDT", "conditional": True}, 5),
        (client.futures_position_information, {}, 5),
        (client.futures_income_history, {}, 30),
    ]
    client.futures_time()
    before = used()
    for call, kwargs, weight in calls:
        call(**kwargs)
        assert used() - before == weight, call.__name__
        before = used()


def test_rolling_weight_window_frees_budget() -> None:
    meter = WeightMeter(10, "rolling", period_s=0.2)
    assert meter.consume(10) == (True, 10)
    assert meter.consume(1) == (False, 10)
    time.sleep(0.25)
    assert meter.consume(1) == (True, 1)


# -- faults ------------------------------------------------------------------------------------------


def test_5xx_fault_for_next_n_requests_on_one_path(server: SandboxServer, client) -> None:
    server.set_faults(kind="http_5xx", count=2, path="/fapi/v1/userTrades")
    client.futures_ping()  # other paths are not affected
    for _ in range(2):
        err = _api_error(client.futures_account_trades, symbol="BTCUSDT", limit=1)
        assert (err.status_code, err.code) == (503, -1001)
    assert client.futures_account_trades(symbol="BTCUSDT", limit=1)
    assert server.faults()[0]["fired"] == 2


def test_timeout_fault_exceeds_the_client_timeout(server: SandboxServer) -> None:
    client = make_client(server.url, KEY, SECRET, requests_params={"timeout": 0.3})
    server.set_faults(kind="timeout", count=1, delay_seconds=1.0)
    with pytest.raises(requests.exceptions.Timeout):
        client.futures_account_trades(symbol="BTCUSDT", limit=1)
    assert client.futures_account_trades(symbol="BTCUSDT", limit=1)


def test_malformed_body_fault(server: SandboxServer, client) -> None:
    server.set_faults(kind="malformed", count=1)
    with pytest.raises(BinanceRequestException):
        client.futures_account_trades(symbol="BTCUSDT", limit=3)
    assert len(client.futures_account_trades(symbol="BTCUSDT", limit=3)) == 3


def test_burst_of_1021(server: SandboxServer, client) -> None:
    server.set_faults(kind="timestamp", count=3)
    for _ in range(3):
        assert _api_error(client.futures_account_trades, symbol="BTCUSDT", limit=1).code == -1021
    assert client.futures_account_trades(symbol="BTCUSDT", limit=1)


def test_probabilistic_fault_is_seeded(server: SandboxServer, client) -> None:
    def pattern() -> list[bool]:
        server.set_faults(kind="http_5xx", probability=0.5, seed=42, path="/fapi/v1/ping")
        out = []
        for _ in range(20):
            try:
                client.futures_ping()
                out.append(False)
            except BinanceAPIException:
                out.append(True)
        return out

    first = pattern()
    assert first == pattern()
    assert 0 < sum(first) < 20


def test_admin_endpoints_drive_a_running_server(server: SandboxServer, client) -> None:
    resp = requests.post(
        f"{server.url}/_sandbox/faults", json={"kind": "http_5xx", "count": 1, "status": 504}, timeout=5
    )
    assert resp.ok
    err = _api_error(client.futures_account_trades, symbol="BTCUSDT", limit=1)
    assert (err.status_code, err.code) == (504, -1007)
    state = requests.get(f"{server.url}/_sandbox/state", timeout=5).json()
    assert state["faults"][0]["fired"] == 1 and state["visible_until"] == T_END
    assert requests.delete(f"{server.url}/_sandbox/faults", timeout=5).json() == []
    bad = requests.post(f"{server.url}/_sandbox/faults", json={"kind": "explode"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["code"] == -1130

    resp = requests.post(f"{server.url}/_sandbox/clock", json={"visible_until": BASE + DAY}, timeout=5)
    assert resp.json() == {"visible_until": BASE + DAY}
    rows = client.futures_account_trades(symbol="BTCUSDT", fromId=0, limit=1000)
    assert rows[-1]["time"] <= BASE + DAY
    requests.post(f"{server.url}/_sandbox/clock", json={"visible_until": None}, timeout=5)
    assert server.visible_until == T_END


# -- the data clock and record versions --------------------------------------------------------------


def test_data_clock_hides_late_records(server: SandboxServer, client) -> None:
    def all_ids() -> list[int]:
        ids, from_id = [], 0
        while page := client.futures_account_trades(symbol="BTCUSDT", fromId=from_id, limit=1000):
            ids += [t["id"] for t in page]
            from_id = ids[-1] + 1
        return ids

    server.set_visible_until(BASE + 5 * DAY)
    early = all_ids()
    assert early == list(range(FIRST_ID, FIRST_ID + 5 * DAY // STEP + 1))
    latest = client.futures_account_trades(symbol="BTCUSDT")  # "last 7 days" ends at the data clock
    assert latest[-1]["id"] == early[-1]
    server.set_visible_until(None)  # the late trades arrive
    assert all_ids() == list(range(FIRST_ID, FIRST_ID + N_TRADES))


def test_orders_latest_update_time_wins(client) -> None:
    rows = client.futures_get_all_orders(symbol="BTCUSDT", orderId=0, limit=1000)
    versions = order_versions()
    assert [r["orderId"] for r in rows] == sorted(versions)
    for row in rows:
        upd, status = max(versions[row["orderId"]])
        assert (row["updateTime"], row["status"]) == (upd, status)
    statuses = {r["orderId"]: r["status"] for r in rows}
    assert statuses[9001] == "FILLED" and statuses[9002] == "NEW" and statuses[9019] == "CANCELED"


def test_order_version_visible_at_the_data_clock(server: SandboxServer, client) -> None:
    t18 = BASE + 18 * 12 * HOUR  # order 9019: NEW at t18, PARTIALLY_FILLED at +30 s, CANCELED at +1 h
    server.set_visible_until(t18 + 10_000)
    rows = client.futures_get_all_orders(symbol="BTCUSDT", orderId=9019)
    assert [(r["orderId"], r["status"]) for r in rows] == [(9019, "NEW")]  # 9020 does not exist yet
    server.set_visible_until(t18 + HOUR // 2)
    assert client.futures_get_all_orders(symbol="BTCUSDT", orderId=9019)[0]["status"] == "PARTIALLY_FILLED"
    server.set_visible_until(t18 + HOUR)
    assert client.futures_get_all_orders(symbol="BTCUSDT", orderId=9019)[0]["status"] == "CANCELED"
    server.set_visible_until(t18 - 1)
    assert client.futures_get_all_orders(symbol="BTCUSDT", orderId=9019) == []


def test_orders_time_window(client) -> None:
    rows = client.futures_get_all_orders(symbol="BTCUSDT", startTime=BASE + DAY, endTime=BASE + 3 * DAY)
    assert [r["orderId"] for r in rows] == [9003, 9004, 9005, 9006, 9007]
    rows = client.futures_get_all_orders(symbol="BTCUSDT", orderId=9010, limit=3)
    assert [r["orderId"] for r in rows] == [9010, 9011, 9012]


def test_algo_orders(client) -> None:
    rows = client.futures_get_all_orders(symbol="BTCUSDT", conditional=True, algoId=0)
    assert [(r["algoId"], r["algoStatus"]) for r in rows] == [
        (501, "TRIGGERED"),
        (502, "TRIGGERED"),
        (503, "NEW"),
    ]
    rows = client.futures_get_all_orders(symbol="BTCUSDT", conditional=True, algoId=0, limit=1, page=2)
    assert [r["algoId"] for r in rows] == [502]
    window = {"startTime": BASE + DAY // 2, "endTime": BASE + 3 * DAY}
    rows = client.futures_get_all_orders(symbol="BTCUSDT", conditional=True, **window)
    assert [r["algoId"] for r in rows] == [502, 503]  # ascending by algoId, whatever the createTime order
    rows = client.futures_get_all_orders(symbol="BTCUSDT", conditional=True, startTime=BASE + 2 * DAY)
    assert [r["algoId"] for r in rows] == [502]


def test_out_of_order_file_is_served_in_id_order(client) -> None:
    rows = client.futures_account_trades(symbol="ETHUSDT", fromId=0, limit=1000)
    assert [r["id"] for r in rows] == list(range(1, 41))
    rows = client.futures_account_trades(symbol="ETHUSDT", startTime=BASE + 10 * HOUR, limit=5)
    assert [r["id"] for r in rows] == [11, 12, 13, 14, 15]


# -- positions, income, exchange info ----------------------------------------------------------------


def test_position_risk_v3_vs_v2(server: SandboxServer, client) -> None:
    v3 = client.futures_position_information()
    assert [(r["symbol"], r["positionSide"], r["positionAmt"]) for r in v3] == [
        ("BTCUSDT", "LONG", "0.015"),
        ("BTCUSDT", "SHORT", "0"),
    ]
    assert all("snapshotTime" not in r for r in v3)
    v2 = client.futures_position_information(version=2)
    assert {(r["symbol"], r["positionSide"]) for r in v2} == {
        (s, side) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT") for side in ("LONG", "SHORT")
    }
    assert len(client.futures_position_information(symbol="ETHUSDT", version=2)) == 2
    assert client.futures_position_information(symbol="ETHUSDT") == []

    server.set_visible_until(SNAPSHOTS[0] + 1)
    v3 = client.futures_position_information()
    assert {(r["symbol"], r["positionAmt"]) for r in v3} == {
        ("BTCUSDT", "0.010"),
        ("BTCUSDT", "0"),
        ("ETHUSDT", "0.500"),
        ("ETHUSDT", "0"),
    }
    assert len(client.futures_position_information(version=2)) == 4  # SOLUSDT's first snapshot is later


def test_income_paging_and_filters(client) -> None:
    expected = sorted(income_rows(), key=lambda r: (r["time"], r["tranId"]))
    got = []
    for page in range(1, 5):
        rows = client.futures_income_history(startTime=BASE, endTime=T_END, limit=100, page=page)
        assert len(rows) == [100, 100, 50, 0][page - 1]
        got += rows
    assert got == expected

    btc = []
    for page in range(1, 6):
        btc += client.futures_income_history(symbol="BTCUSDT", startTime=BASE, endTime=T_END, limit=50, page=page)
    assert btc == [r for r in expected if r["symbol"] == "BTCUSDT"]

    funding_eth = client.futures_income_history(
        symbol="ETHUSDT", incomeType="FUNDING_FEE", startTime=BASE, endTime=T_END, limit=1000
    )
    assert funding_eth == [r for r in expected if r["symbol"] == "ETHUSDT" and r["incomeType"] == "FUNDING_FEE"]

    recent = client.futures_income_history(limit=1000)  # neither bound: the 7 days before the data clock
    assert recent == [r for r in expected if T_END - 7 * DAY <= r["time"] <= T_END]
    assert len(client.futures_income_history()) == 100  # default limit


def test_exchange_info(client) -> None:
    info = client.futures_exchange_info()
    symbols = {s["symbol"]: s for s in info["symbols"]}
    assert set(INSTRUMENTS) <= set(symbols)
    btc = symbols["BTCUSDT"]
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.1"
    assert filters["LOT_SIZE"]["stepSize"] == "0.001"
    assert (btc["pricePrecision"], btc["quantityPrecision"]) == (1, 3)
    assert (btc["status"], btc["contractType"], btc["quoteAsset"]) == ("TRADING", "PERPETUAL", "USDT")
    assert abs(client.futures_time()["serverTime"] - _now()) < 5000


def test_position_mode(client) -> None:
    assert client.futures_get_position_mode() == {"dualSidePosition": True}


# -- logging and the blocking entry point ------------------------------------------------------------


def test_request_log_has_no_secret_or_signature(client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="sandbox.server")
    client.futures_account_trades(symbol="BTCUSDT", limit=1)
    deadline = time.time() + 2
    while "GET /fapi/v1/userTrades 200 5" not in caplog.messages and time.time() < deadline:
        time.sleep(0.02)  # the handler thread logs right after it answered
    assert "GET /fapi/v1/userTrades 200 5" in caplog.messages
    assert not any(SECRET in m or "signature" in m for m in caplog.messages)


def test_serve_forever_runs_until_interrupted(replay_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import sys; from sandbox.server import serve_forever, ServerConfig; "
        f"cfg = ServerConfig(api_key={KEY!r}, api_secret={SECRET!r}); "
        f"serve_forever(sys.argv[1], '127.0.0.1', {port}, cfg)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(replay_dir)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 15
        while True:
            try:
                requests.get(f"{url}/fapi/v1/ping", timeout=1)
                break
            except requests.ConnectionError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert make_client(url, KEY, SECRET).futures_account_trades(symbol="BTCUSDT", limit=2)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "GET /fapi/v1/userTrades 200 5" in err
    assert SECRET not in err and "signature" not in err
