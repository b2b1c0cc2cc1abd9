"""Poison records (issue 16, SPEC §3.5, §9): no single record or file can stop a load.

A replay directory and a signals landing folder hold, between good records, every kind of record that
once aborted a whole load: JSON nested deeper than the parser's recursion limit, a lone ``\\ud800``
escape, integers beyond 64 bits in id and time fields, strings longer than their MariaDB column, a
50 MB line, duplicate keys in one object, an income ``symbol`` that is no symbol, and a whole signal
file that cannot be read. On DuckDB and MariaDB alike: every good record loads, every poison record is
quarantined with its own reason (the payload bounded, its full length and sha256 kept), received =
loaded + duplicates + quarantined per source, and a re-run changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ingestion.records import MAX_PAYLOAD_BYTES, QUARANTINE_PAYLOAD_BYTES
from ingestion.replay import load_replay
from ingestion.signals import ingest_signal_files
from tests.ingestion import documented as doc
from tests.ingestion.warehouse_dump import count, dump, rows

DEEP = 20_000  # 40 KB (under the line limit), far deeper than the json parser's recursion limit
BIG = 50 * 1024 * 1024


def _line(obj: dict) -> bytes:
    return json.dumps(obj).encode()


def _deep(prefix: bytes) -> bytes:
    return prefix + b'"x":' + b"[" * DEEP + b"]" * DEEP + b"}"


def _replace(obj: dict, key: str, raw: str) -> bytes:
    """``obj`` as JSON with the value of ``key`` written as the raw JSON text ``raw``."""
    marker = "__POISON__"
    return json.dumps({**obj, key: marker}).replace(json.dumps(marker), raw).encode()


TRADE = doc.trade("BTCUSDT", 900, 90, doc.T0 + 500_000, commission="0.01")
ORDER = doc.order("BTCUSDT", 90, doc.T0 + 500_000, "poison-ok")
INCOME = doc.income("BTCUSDT", "COMMISSION", "-0.01", "USDT", doc.T0 + 500_000, 7_000_000_001, "900")
RISK = {
    "symbol": "BTCUSDT",
    "positionSide": "LONG",
    "positionAmt": "0.002",
    "entryPrice": "7819.01",
    "markPrice": "7820",
    "unRealizedProfit": "0.002",
    "updateTime": doc.T0 + 30_000,
    "snapshotTime": doc.T0 + 600_000,
}
# a lone surrogate in a field nobody stores but the payload: the payload keeps the escape as sent (ASCII), loads
SURROGATE_EXTRA = _replace(doc.trade("BTCUSDT", 905, 90, doc.T0 + 500_001, commission="0.01"), "note", '"\\ud800"')
SIGNAL = {
    "signal_id": "sig_ok",
    "strategy_id": "trend",
    "symbol": "BTCUSDT",
    "action": "buy",
    "quantity": "0.002",
    "timestamp": doc.T0,
}


def sig(i: int, **over) -> dict:
    return {**SIGNAL, "signal_id": f"sig_{i}", **over}


# file -> [(case, exact bytes of the line, substring of its quarantine reason)]
REPLAY_POISON: dict[str, list[tuple[str, bytes, str]]] = {
    "futures_trades.jsonl": [
        ("deep nesting", _deep(b'{"symbol":"BTCUSDT","id":901,'), "JSON nested too deeply"),
        ("duplicate key", _line(TRADE)[:-1] + b',"id":902}', "duplicate key 'id' in one JSON object"),
        ("id beyond 64 bits", _line({**TRADE, "id": 2**64}), "id: Input should be less than or equal to"),
        ("50 MB line", _line({**TRADE, "id": 903, "pad": "x" * BIG}), f"bytes exceeds the {MAX_PAYLOAD_BYTES}"),
        ("marginAsset too long", _line({**TRADE, "id": 904, "marginAsset": "A" * 40}), "marginAsset: String should"),
    ],
    "futures_orders.jsonl": [
        ("timeInForce too long", _line({**ORDER, "orderId": 91, "timeInForce": "G" * 17}), "timeInForce: String"),
        ("workingType too long", _line({**ORDER, "orderId": 92, "workingType": "W" * 25}), "workingType: String"),
        (
            "lone surrogate",
            _replace({**ORDER, "orderId": 93}, "clientOrderId", '"a\\ud800"'),
            "clientOrderId: Input should be a valid string",
        ),
        ("time beyond 64 bits", _line({**ORDER, "orderId": 94, "updateTime": 2**70}), "updateTime: Input should"),
    ],
    "futures_algo_orders.jsonl": [
        (
            "triggerTime beyond 64 bits",
            _line({**doc.algo("BTCUSDT", 3001, "NEW", doc.T0), "triggerTime": 2**64}),
            "triggerTime: Input should be less than or equal to",
        ),
    ],
    "position_risk.jsonl": [
        ("updateTime beyond 64 bits", _line({**RISK, "updateTime": 2**63}), "updateTime: Input should be less"),
        ("lone surrogate symbol", _replace(RISK, "symbol", '"\\ud800"'), "symbol: Input should be a valid string"),
    ],
    "income.jsonl": [
        ("income symbol", _line({**INCOME, "tranId": 7_000_000_002, "symbol": "btc/usdt"}), "symbol: String should"),
        ("income tradeId too long", _line({**INCOME, "tranId": 7_000_000_003, "tradeId": "9" * 40}), "tradeId"),
        ("tranId beyond 64 bits", _line({**INCOME, "tranId": 2**70}), "tranId: more than 19 digits"),
    ],
    "symbols.jsonl": [
        (
            "symbol marginAsset too long",
            _line(doc.symbol_info("XRPUSDT", "XRPUSDT", "PERPETUAL", "XRP", "USDT", "U" * 40)),
            "marginAsset: String should match pattern",
        ),
    ],
    "signals.jsonl": [
        ("signal deep nesting", _deep(b'{"signal_id":"p1",'), "JSON nested too deeply"),
        ("signal lone surrogate", _replace(sig(2), "note", '"\\ud800"'), "attributes: not encodable as UTF-8"),
        ("signal duplicate key", _line(sig(3))[:-1] + b',"quantity":"5"}', "duplicate key 'quantity'"),
        ("signal time beyond 64 bits", _line(sig(4, timestamp=2**65)), "timestamp"),
    ],
}
GOOD_SIGNALS = [sig(10), sig(11, note="ok \u00e9"), sig(12)]


def _interleave(good: list[bytes], poison: list[bytes]) -> bytes:
    """good, poison, good, poison, ..., good: every poison line between good ones."""
    out = []
    for i, p in enumerate(poison):
        out += good[i :: len(poison)][:1] or [good[-1]]
        out.append(p)
    out += good
    return b"".join(line + b"\n" for line in dict.fromkeys(out))


@pytest.fixture
def poisoned_replay(tmp_path) -> tuple[Path, dict[str, int]]:
    d = doc.write(tmp_path / "poisoned")
    good = {
        "futures_trades.jsonl": [*doc.TRADES, TRADE, SURROGATE_EXTRA],
        "futures_orders.jsonl": [*doc.ORDERS, ORDER],
        "futures_algo_orders.jsonl": doc.ALGO_ORDERS,
        "position_risk.jsonl": [RISK],
        "income.jsonl": [*doc.INCOME, INCOME],
        "symbols.jsonl": doc.SYMBOLS,
        "signals.jsonl": GOOD_SIGNALS,
    }
    for name, records in good.items():
        poison = [raw for _, raw, _ in REPLAY_POISON[name]]
        lines = [r if isinstance(r, bytes) else _line(r) for r in records]
        (d / name).write_bytes(_interleave(lines, poison))
    expected = {
        "futures_trades": len(doc.TRADES) + 2,
        "futures_orders": len(doc.ORDERS) + 1,
        "futures_algo_orders": 2,  # algo 3000 on BTCUSDT (three versions) and on ETHUSDT
        "position_snapshots": 1,
        "income": len(doc.INCOME) + 1,
        "symbols": len(doc.SYMBOLS),
        "signals": len(GOOD_SIGNALS),
        "order_links": len(doc.LINKS),
        "balance_snapshots": len(doc.BALANCES),
        "klines": len(doc.KLINES),
    }
    return d, expected


def _quarantine(settings) -> dict[tuple[str, str], dict]:
    q = rows(settings, "select source, record_hash, reason, payload, payload_bytes from {raw}.quarantine")
    return {(r["source"], r["record_hash"]): r for r in q}


def _check_quarantined(q: dict, source: str, case: str, raw: bytes, expected: str) -> None:
    row = q.get((source, hashlib.sha256(raw).hexdigest()))
    assert row is not None, f"{case}: not quarantined under {source}"
    assert expected in row["reason"], f"{case}: reason {row['reason']!r} lacks {expected!r}"
    assert row["payload_bytes"] == len(raw), case
    assert len(row["payload"].encode("utf-8")) <= QUARANTINE_PAYLOAD_BYTES + len("…".encode()), case


def test_a_poisoned_replay_loads_every_good_record(warehouse_settings, poisoned_replay):
    d, expected = poisoned_replay
    stats = load_replay(d, warehouse_settings, batch_size=3)  # several batches per file: poison in each
    for s in stats:
        assert s.balanced, s.summary()
    by_kind = {s.source: s for s in stats}
    for name, cases in REPLAY_POISON.items():
        kind = name.removesuffix(".jsonl")
        assert by_kind[kind].quarantined == len(cases), by_kind[kind].summary()
    for table, n in expected.items():
        assert count(warehouse_settings, table) == n, table
    q = _quarantine(warehouse_settings)
    for name, cases in REPLAY_POISON.items():
        for case, raw, reason in cases:
            _check_quarantined(q, f"replay:poisoned/{name}", case, raw, reason)
    assert len(q) == sum(map(len, REPLAY_POISON.values()))
    big = next(r for r in q.values() if r["payload_bytes"] > BIG)
    assert big["payload"].endswith("…") and len(big["payload"]) <= MAX_PAYLOAD_BYTES + 1  # never stored whole
    # the signal with a non-ASCII attribute loaded with it intact
    (attrs,) = rows(warehouse_settings, "select attributes from {raw}.signals where signal_id = 'sig_11'")
    assert json.loads(attrs["attributes"]) == {"note": "ok \u00e9"}

    before = dump(warehouse_settings, exclude=("run_id", "loaded_at", "quarantined_at"))
    again = load_replay(d, warehouse_settings, batch_size=3)
    for s in again:
        assert s.balanced and s.loaded == 0, s.summary()
    assert sum(s.quarantined for s in again) == sum(map(len, REPLAY_POISON.values()))
    assert dump(warehouse_settings, exclude=("run_id", "loaded_at", "quarantined_at")) == before


# signals landing folder: (file name, content, [(case, line, reason)] for its poison lines)
LANDING_POISON = [
    ("signal deep nesting", _deep(b'{"signal_id":"f1",'), "JSON nested too deeply"),
    ("signal lone surrogate", _replace(sig(21), "note", '"\\ud800"'), "attributes: not encodable as UTF-8"),
    ("signal duplicate key", _line(sig(22))[:-1] + b',"signal_id":"f22b"}', "duplicate key 'signal_id'"),
    ("signal 50 MB line", _line({**sig(23), "pad": "y" * BIG}), f"bytes exceeds the {MAX_PAYLOAD_BYTES}"),
    ("signal id too long", _line(sig(24, strategy_id="s" * 65)), "strategy_id: String should match pattern"),
]


def test_a_poisoned_landing_folder_loads_every_good_file_and_record(warehouse_settings, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a_good.jsonl").write_bytes(b"".join(_line(sig(i)) + b"\n" for i in (1, 2)))
    good = [_line(sig(i)) for i in (30, 31, 32)]
    (landing / "b_poison.jsonl").write_bytes(_interleave(good, [raw for _, raw, _ in LANDING_POISON]))
    broken = b"PAR1" + b"\x00garbage" * 100  # not a Parquet file: the whole file is quarantined
    (landing / "c_broken.parquet").write_bytes(broken)
    (landing / "d_after.jsonl").write_bytes(_line(sig(40)) + b"\n")

    results = ingest_signal_files(warehouse_settings, landing, batch_size=2)
    by_file = {s.source.removeprefix("signals:file:"): s for s in results}
    for s in results:
        assert s.balanced, s.summary()
    assert by_file["b_poison.jsonl"].loaded == 3 and by_file["b_poison.jsonl"].quarantined == len(LANDING_POISON)
    assert by_file["c_broken.parquet"].quarantined == 1 and by_file["c_broken.parquet"].received == 1
    assert by_file["d_after.jsonl"].loaded == 1  # the files after the poison ones load
    loaded = {r["signal_id"] for r in rows(warehouse_settings, "select signal_id from {raw}.signals")}
    assert loaded == {"sig_1", "sig_2", "sig_30", "sig_31", "sig_32", "sig_40"}
    q = _quarantine(warehouse_settings)
    for case, raw, reason in LANDING_POISON:
        _check_quarantined(q, "signals:file:b_poison.jsonl", case, raw, reason)
    row = q[("signals:file:c_broken.parquet", hashlib.sha256(broken).hexdigest())]
    assert row["reason"].startswith("Parquet file c_broken.parquet cannot be read")

    before = dump(warehouse_settings, exclude=("run_id", "loaded_at", "quarantined_at"))
    again = ingest_signal_files(warehouse_settings, landing)
    assert list(again) == [] and len(again.skipped) == 4  # every file was fully processed once
    assert dump(warehouse_settings, exclude=("run_id", "loaded_at", "quarantined_at")) == before


def test_a_record_the_store_refuses_is_quarantined_and_its_batch_goes_on(warehouse_settings, monkeypatch):
    """The net behind the rules: with ``check_row`` switched off, a lone surrogate reaches the store, which
    refuses it on both targets; the batch finds that record by halving, quarantines it and loads the rest."""
    import ingestion.records as records
    from ingestion.batch import Batch, new_run_id
    from ingestion.store import RawStore

    monkeypatch.setattr(records, "check_row", lambda table, row: None)
    poison = _replace(sig(52), "note", '"\\ud800"')
    lines = [_line(sig(50)), _line(sig(51)), poison, _line(sig(53)), _line(sig(54))]
    batch = Batch("signals", "test:net", "default", new_run_id())
    for raw in lines:
        batch.add_line(raw)
    with RawStore(warehouse_settings) as st:
        stats = batch.commit(st)
    assert (stats.received, stats.loaded, stats.quarantined) == (5, 4, 1) and stats.balanced
    loaded = {r["signal_id"] for r in rows(warehouse_settings, "select signal_id from {raw}.signals")}
    assert loaded == {"sig_50", "sig_51", "sig_53", "sig_54"}
    (q,) = rows(warehouse_settings, "select record_key, reason, payload from {raw}.quarantine")
    assert q["record_key"] == "sig_52" and q["reason"].startswith("cannot be stored: UnicodeEncodeError")
    assert q["payload"] == poison.decode()
