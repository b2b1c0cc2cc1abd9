"""Bad input (SPEC §3.5, §9): every malformed record lands in raw.quarantine with its own reason.

The catalogue is one signals file and one trades file of a replay directory, each bad
line next to valid ones. Every case is found in the quarantine by the hash of its exact
bytes, and its reason must contain a substring that no other case's reason contains.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest

from ingestion.batch import new_run_id
from ingestion.records import MAX_PAYLOAD_BYTES
from ingestion.replay import load_replay
from tests.ingestion.warehouse_dump import audit, count, quarantine, rows

T0 = 1767571322398  # 2026-01-05T00:02:02.398Z


def sig(**over) -> dict:
    base = {
        "signal_id": "ok_1",
        "strategy_id": "trend",
        "symbol": "BTCUSDT",
        "action": "buy",
        "quantity": "0.010",
        "price": "45000",
        "take_profit": "47000",
        "stop_loss": "44000",
        "timestamp": T0,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


def trade(**over) -> dict:
    base = {
        "symbol": "BTCUSDT",
        "id": 1,
        "orderId": 77,
        "side": "BUY",
        "positionSide": "LONG",
        "price": "45000.1",
        "qty": "0.010",
        "quoteQty": "450.001",
        "realizedPnl": "0",
        "commission": "-0.18",
        "commissionAsset": "USDT",
        "time": T0,
        "buyer": True,
        "maker": False,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


def line(obj: dict) -> bytes:
    return json.dumps(obj).encode()


# (case, exact bytes of the line, substring its quarantine reason must contain)
SIGNAL_CASES = [
    ("missing signal_id", line(sig(signal_id=..., strategy_id="a1")), "signal_id: Field required"),
    ("missing strategy_id", line(sig(signal_id="b1", strategy_id=...)), "strategy_id: Field required"),
    ("negative quantity", line(sig(signal_id="b2", quantity="-0.5")), "greater than 0 (got string '-0.5')"),
    ("zero quantity", line(sig(signal_id="b3", quantity=0)), "quantity: Input should be greater than 0 (got number 0)"),
    (
        "NaN quantity",
        b'{"signal_id":"b4","strategy_id":"t","symbol":"BTCUSDT","action":"buy","quantity":NaN,'
        b'"timestamp":1767571322398}',
        "quantity: Input should be a finite number",
    ),
    ("unknown action", line(sig(signal_id="b5", action="short")), "(got string 'short')"),
    (
        "unparseable timestamp",
        line(sig(signal_id="b6", timestamp="next tuesday")),
        "unparseable timestamp 'next tuesday'",
    ),
    ("naive timestamp", line(sig(signal_id="b7", timestamp="2026-01-05T10:00:00")), "has no UTC offset"),
    (
        "quantity as object",
        line(sig(signal_id="b8", quantity={"value": 1})),
        "quantity: Decimal input should be an integer, float, string or Decimal object (got object)",
    ),
    ("quantity as bool", line(sig(signal_id="b9", quantity=True)), "(got boolean true)"),
    (
        "strategy_id as number",
        line(sig(signal_id="b10", strategy_id=42)),
        "strategy_id: Input should be a valid string",
    ),
    ("non-UTF-8 line", b'{"signal_id":"b11","strategy_id":"caf\xe9","symbol":"BTCUSDT"}', "not valid UTF-8: byte 0xe9"),
    ("truncated JSON", b'{"signal_id":"b12","strategy_id":"t","symbol":"BTCUS', "invalid JSON (Unterminated string"),
    ("not a symbol", line(sig(signal_id="b13", symbol="BTC/USDT")), "symbol: String should match pattern"),
    (
        "take-profit on the wrong side",
        line(sig(signal_id="b14", take_profit="44500")),
        "take_profit 44500 is on the wrong side of price 45000 for a buy",
    ),
    (
        "stop-loss on the wrong side",
        line(sig(signal_id="b15", action="sell", take_profit="43000", stop_loss="44000")),
        "stop_loss 44000 is on the wrong side of price 45000 for a sell",
    ),
    ("oversized payload", line(sig(signal_id="b16", metadata="x" * 70_000)), "exceeds the 65536-byte limit"),
    ("reserved strategy", line(sig(signal_id="b17", strategy_id="unattributed")), "'unattributed' is reserved"),
    (
        "too many decimal places",
        line(sig(signal_id="b18", quantity="0.0000000000000000001")),
        "no more than 18 decimal places",
    ),
    ("not an object", b'["b19", "trend", "BTCUSDT"]', "expected a JSON object, got list"),
    (
        "percentage take-profit above 1",
        line(sig(signal_id="b20", take_profit=..., take_profit_pct="1.5")),
        "take_profit_pct: Input should be less than or equal to 1",
    ),
    ("buy without quantity", line(sig(signal_id="b21", quantity=...)), "quantity is required for a buy signal"),
    ("timestamp before 2009", line(sig(signal_id="b22", timestamp=86_400)), "is outside 2009..2100"),
    (
        "signal_id repeated in the file with other content",
        line(sig(signal_id="ok_2", quantity="0.02")),
        "key ok_2 repeated in this batch with different content",
    ),
    (
        "signal_id already loaded with other content",
        line(sig(signal_id="pre_1", quantity="9")),
        "key pre_1 was already loaded with different content",
    ),
]
TRADE_CASES = [
    ("side HOLD", line(trade(id=101, side="HOLD")), "side: Input should be 'BUY' or 'SELL' (got string 'HOLD')"),
    ("missing orderId", line(trade(id=102, orderId=...)), "orderId: Field required"),
    (
        "negative price",
        line(trade(id=103, price="-45000")),
        "price: Input should be greater than 0 (got string '-45000')",
    ),
    ("trade id as string", line(trade(id="104")), "id: Input should be a valid integer (got string '104')"),
    ("time in seconds", line(trade(id=105, time=1767571322)), "time: Input should be greater than or equal to"),
    ("unknown position side", line(trade(id=106, positionSide="NET")), "positionSide: Input should be 'LONG', 'SHORT'"),
    ("commission asset junk", line(trade(id=107, commissionAsset="usdt!")), "commissionAsset: String should match"),
]
VALID_SIGNALS = [
    line(sig(signal_id="ok_1")),
    line(sig(signal_id="ok_2")),
    line(
        sig(signal_id="ok_3", action="sell", take_profit="43000", stop_loss="46000", timestamp="2026-01-05T10:00:00Z")
    ),
    line(sig(signal_id="ok_4", action="close", quantity=..., price=..., take_profit=..., stop_loss=...)),
    # trailing zeros beyond 18 places are still an exact 18-place value (and must not trip MySQL's LOAD DATA)
    line(sig(signal_id="ok_5", quantity="1.50000000000000000000", timestamp=1767571322.5)),
    b'{"id":"ok_6","strategy_id":"mr","symbol":"ETHUSDT","action":"hold","timestamp":"1767571322398","x":1.10}',
]
VALID_TRADES = [line(trade(id=1)), line(trade(id=2, side="SELL", realizedPnl="1.5")), line(trade(id=3, qty=0.5))]


@pytest.fixture
def catalogue(tmp_path):
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "signals.jsonl").write_bytes(line(sig(signal_id="pre_1")) + b"\n")

    d = tmp_path / "catalogue"
    d.mkdir()
    signal_lines = [VALID_SIGNALS[0], VALID_SIGNALS[1]]
    for i, (_, raw, _) in enumerate(SIGNAL_CASES):
        signal_lines.append(raw)
        if i < len(VALID_SIGNALS) - 2:
            signal_lines.append(VALID_SIGNALS[i + 2])
    signal_lines.append(
        dict((c, raw) for c, raw, _ in SIGNAL_CASES)["truncated JSON"]
    )  # the same line again: one quarantine row, counted twice
    signal_lines.append(VALID_SIGNALS[0])  # an exact repeat: a duplicate
    (d / "signals.jsonl").write_bytes(b"\n".join(signal_lines) + b"\n\n")  # a blank line is not a record
    trade_lines = [VALID_TRADES[0], *(raw for _, raw, _ in TRADE_CASES), *VALID_TRADES[1:]]
    (d / "futures_trades.jsonl").write_bytes(b"\r\n".join(trade_lines) + b"\r\n")
    return pre, d, len(signal_lines), len(trade_lines)


def test_the_catalogue_of_bad_input(warehouse_settings, catalogue):
    pre, d, n_signals, n_trades = catalogue
    load_replay(pre, warehouse_settings)
    run_id = new_run_id()
    stats = {s.source: s for s in load_replay(d, warehouse_settings, run_id=run_id)}

    q = quarantine(warehouse_settings)
    by_hash = {(r["source"], r["record_hash"]): r for r in q}
    for r in rows(warehouse_settings, "select source, record_hash, payload_bytes from {raw}.quarantine"):
        by_hash[(r["source"], r["record_hash"])]["payload_bytes"] = r["payload_bytes"]
    cases = [("signals.jsonl", c) for c in SIGNAL_CASES] + [("futures_trades.jsonl", c) for c in TRADE_CASES]
    reasons = {}
    for file, (case, raw, expected) in cases:
        row = by_hash.get((f"replay:catalogue/{file}", hashlib.sha256(raw).hexdigest()))
        assert row is not None, f"{case}: not quarantined"
        assert expected in row["reason"], f"{case}: reason {row['reason']!r} lacks {expected!r}"
        assert row["run_id"] == run_id
        reasons[case] = row["reason"]
        assert row["payload_bytes"] == len(raw), case  # the full length, whatever part of the payload is kept
        if len(raw) > MAX_PAYLOAD_BYTES:  # only the first 64 KiB are kept, never the whole line
            assert row["payload"] == raw[:MAX_PAYLOAD_BYTES].decode() + "…", case
        elif b"\xe9" not in raw:
            assert row["payload"] == raw.decode(), case  # the original bytes, unchanged
    assert rows(
        warehouse_settings, "select payload from {raw}.quarantine where reason like ?", ["not valid UTF-8%"]
    ) == [{"payload": '{"signal_id":"b11","strategy_id":"caf\\xe9","symbol":"BTCUSDT"}'}]
    for case, _, expected in SIGNAL_CASES + TRADE_CASES:  # each reason is specific to its case
        others = [c for c, reason in reasons.items() if expected in reason and c != case]
        assert others == [], f"{expected!r} of {case!r} also explains {others}"
    assert len(q) == len(cases)  # the repeated truncated line is stored once

    # the valid neighbours loaded, exactly
    signals = rows(warehouse_settings, "select signal_id, quantity, signal_time_ms, attributes from {raw}.signals")
    assert sorted(r["signal_id"] for r in signals) == ["ok_1", "ok_2", "ok_3", "ok_4", "ok_5", "ok_6", "pre_1"]
    by_id = {r["signal_id"]: r for r in signals}
    assert str(by_id["ok_2"]["quantity"]).rstrip("0") == "0.01"  # the first ok_2 won, the repeat was quarantined
    assert str(by_id["ok_5"]["quantity"]).rstrip("0") == "1.5"
    assert by_id["ok_5"]["signal_time_ms"] == 1767571322500
    assert json.loads(by_id["ok_6"]["attributes"]) == {"x": 1.1}
    assert sorted(r["trade_id"] for r in rows(warehouse_settings, "select trade_id from {raw}.futures_trades")) == [
        1,
        2,
        3,
    ]
    # signed as sent: -0.18 is a maker rebate (SPEC §3.2). This used to assert > 0 when the old SPEC asked for abs()
    assert rows(warehouse_settings, "select commission from {raw}.futures_trades where trade_id = 1")[0][
        "commission"
    ] == Decimal("-0.18")

    # received = loaded + duplicates + quarantined, in the returned stats and in the audit rows
    sig_stats, trade_stats = stats["signals"], stats["futures_trades"]
    assert (sig_stats.received, sig_stats.loaded, sig_stats.duplicates, sig_stats.quarantined) == (
        n_signals,
        6,
        1,
        len(SIGNAL_CASES) + 1,
    )
    assert (trade_stats.received, trade_stats.loaded, trade_stats.duplicates, trade_stats.quarantined) == (
        n_trades,
        3,
        0,
        len(TRADE_CASES),
    )
    runs = {r["source"]: r for r in audit(warehouse_settings, run_id)}
    for file, s in (("signals.jsonl", sig_stats), ("futures_trades.jsonl", trade_stats)):
        r = runs[f"replay:catalogue/{file}"]
        assert r["status"] == "ok"
        assert (r["received"], r["loaded"], r["duplicates"], r["quarantined"]) == (
            s.received,
            s.loaded,
            s.duplicates,
            s.quarantined,
        )
        assert r["received"] == r["loaded"] + r["duplicates"] + r["quarantined"]

    # running the catalogue again adds no quarantine row and loads nothing, and still accounts for every line
    again = {s.source: s for s in load_replay(d, warehouse_settings)}
    assert len(quarantine(warehouse_settings)) == len(cases)
    assert (again["signals"].received, again["signals"].loaded, again["signals"].quarantined) == (
        n_signals,
        0,
        len(SIGNAL_CASES) + 1,
    )
    assert again["signals"].duplicates == 6 + 1
    assert again["futures_trades"].balanced and again["futures_trades"].loaded == 0
    assert count(warehouse_settings, "signals") == 7


def test_same_record_as_number_or_string_is_a_duplicate_not_a_conflict(duckdb_settings, tmp_path):
    d = tmp_path / "enc"
    d.mkdir()
    (d / "signals.jsonl").write_text(
        '{"signal_id":"n1","strategy_id":"t","symbol":"BTCUSDT","action":"buy","quantity":0.0100,"price":45053.0,'
        '"timestamp":1767571322398,"conf":0.50}\n'
        '{"signal_id":"n1","strategy_id":"t","symbol":"BTCUSDT","action":"buy","quantity":"0.01","price":"45053",'
        '"timestamp":"2026-01-05T00:02:02.398+00:00","conf":0.5}\n'
        '{"signal_id":"n1","strategy_id":"t","symbol":"BTCUSDT","action":"buy","quantity":"1E-2","price":"45053.000",'
        '"timestamp":1767571322.398,"conf":5E-1}\n'
    )
    (s,) = [x for x in load_replay(d, duckdb_settings) if x.source == "signals"]
    assert (s.loaded, s.duplicates, s.quarantined) == (1, 2, 0)
    assert rows(duckdb_settings, "select price, attributes from {raw}.signals") == [
        {"price": Decimal(45053), "attributes": '{"conf":0.5}'}
    ]


def test_an_order_version_is_immutable(duckdb_settings, tmp_path):
    """Newer versions replace older ones; the same version with other content is a conflict, not a silent drop."""
    order = {
        "symbol": "BTCUSDT",
        "orderId": 9,
        "clientOrderId": "s1-en",
        "status": "NEW",
        "type": "LIMIT",
        "side": "BUY",
        "positionSide": "LONG",
        "price": "45000",
        "origQty": "0.01",
        "executedQty": "0",
        "time": T0,
        "updateTime": T0,
    }
    d = tmp_path / "ord"
    d.mkdir()
    path = d / "futures_orders.jsonl"

    def load(*objs):
        path.write_text("".join(json.dumps(o) + "\n" for o in objs))
        (s,) = [x for x in load_replay(d, duckdb_settings) if x.source == "futures_orders"]
        return s.received, s.loaded, s.duplicates, s.quarantined

    canceled_in_place = {**order, "status": "CANCELED"}
    assert load(order, canceled_in_place) == (2, 1, 0, 1)
    (q,) = quarantine(duckdb_settings)
    assert q["reason"] == "key default:BTCUSDT:9 repeated in this batch with different content"
    assert load(canceled_in_place) == (1, 0, 0, 1)  # quarantined again, stored once (same bytes)
    assert len(quarantine(duckdb_settings)) == 1
    assert load({**order, "status": "EXPIRED"}) == (1, 0, 0, 1)
    reasons = {r["reason"] for r in quarantine(duckdb_settings)}
    assert reasons == {
        "key default:BTCUSDT:9 repeated in this batch with different content",
        f"key default:BTCUSDT:9 version {T0} was already loaded with different content",
    }
    filled = {**order, "status": "FILLED", "executedQty": "0.01", "updateTime": T0 + 5}
    assert load(filled, order) == (2, 1, 1, 0)  # the newer version replaces; the older one is a duplicate
    assert rows(duckdb_settings, "select status, executed_qty from {raw}.futures_orders") == [
        {"status": "FILLED", "executed_qty": Decimal("0.01")}
    ]
    assert load(order) == (1, 0, 1, 0)
