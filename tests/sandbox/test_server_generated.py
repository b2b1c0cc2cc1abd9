"""The fake API over a replay written by the paper exchange's own generator: every record is served.

Through the real python-binance client, per symbol: paging trades by ``fromId``, orders by ``orderId`` and
algo orders by ``algoId`` returns exactly the latest version of every record in the files, and the
trades of each order are that symbol's trades of that order (ids are per symbol, SPEC §3.2). The
expected values are read from the files with plain ``json``, independently of the server's indexes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.generator import GenerateConfig, generate
from sandbox.server import SandboxServer, ServerConfig, make_client

KEY, SECRET = "gen-key", "gen-secret"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")

# allOrders / allAlgoOrders life cycles: among versions with the same updateTime the later status wins.
PROGRESS = {"NEW": 0, "PARTIALLY_FILLED": 1, "TRIGGERING": 1, "TRIGGERED": 2}


def _load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _latest(rows: list[dict[str, Any]], key: str, status: str) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    rank: dict[tuple[str, int], tuple[int, int]] = {}
    for row in rows:
        k = (row["symbol"], row[key])
        r = (row["updateTime"], PROGRESS.get(row[status], 3))
        if k not in out or r >= rank[k]:
            out[k], rank[k] = row, r
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(GenerateConfig(out=out, days=2, strategies=2, symbols=SYMBOLS, seed=7))
    return out


@pytest.fixture(scope="module")
def client(generated: Path) -> Iterator[Any]:
    config = ServerConfig(api_key=KEY, api_secret=SECRET, weight_limit_1m=10**9, weight_window="rolling")
    with SandboxServer(generated, config=config) as srv:
        yield make_client(srv.url, KEY, SECRET)


def test_every_trade_is_served_once_per_symbol(generated: Path, client) -> None:
    trades = _load(generated / "futures_trades.jsonl")
    by_symbol: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trades:
        by_symbol[t["symbol"]].append(t)
    assert by_symbol, "the generator wrote no trades"
    for symbol, rows in by_symbol.items():
        got: list[dict[str, Any]] = []
        from_id = 0
        while page := client.futures_account_trades(symbol=symbol, fromId=from_id, limit=1000):
            got += page
            from_id = page[-1]["id"] + 1
        assert got == sorted(rows, key=lambda t: t["id"]), symbol


def test_every_order_and_algo_order_is_served_in_its_latest_version(generated: Path, client) -> None:
    orders = _latest(_load(generated / "futures_orders.jsonl"), "orderId", "status")
    algos = _latest(_load(generated / "futures_algo_orders.jsonl"), "algoId", "algoStatus")
    for symbol in {s for s, _ in orders} | {s for s, _ in algos}:
        got: list[dict[str, Any]] = []
        order_id = 0
        while page := client.futures_get_all_orders(symbol=symbol, orderId=order_id, limit=1000):
            got += page
            order_id = page[-1]["orderId"] + 1
        assert got == [orders[k] for k in sorted(k for k in orders if k[0] == symbol)], symbol
        got = []
        page_no = 1
        while page := client.futures_get_all_orders(
            symbol=symbol, conditional=True, algoId=0, limit=1000, page=page_no
        ):
            got += page
            page_no += 1
        assert got == [algos[k] for k in sorted(k for k in algos if k[0] == symbol)], symbol


def test_trades_of_each_order_stay_on_their_symbol(generated: Path, client) -> None:
    expected: dict[tuple[str, int], list[int]] = defaultdict(list)
    for t in _load(generated / "futures_trades.jsonl"):
        expected[(t["symbol"], t["orderId"])].append(t["id"])
    # Every order number used on two symbols, plus a few others: a shared number must not mix them.
    numbers: dict[int, set[str]] = defaultdict(set)
    for symbol, order_id in expected:
        numbers[order_id].add(symbol)
    keys = sorted(expected)
    sample = [k for k in keys if len(numbers[k[1]]) > 1][:20] + keys[:: max(1, len(keys) // 10)]
    for symbol, order_id in sample:
        rows = client.futures_account_trades(symbol=symbol, orderId=order_id)
        assert [(r["symbol"], r["id"]) for r in rows] == [(symbol, i) for i in sorted(expected[(symbol, order_id)])], (
            symbol,
            order_id,
        )
