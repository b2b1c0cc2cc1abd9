"""Signal sources (SPEC §3.1, §3.5): landing-folder files (JSONL, CSV, Parquet) and an incremental SQL table."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from ingestion.records import canonical_json
from ingestion.signals import (
    SignalSourceError,
    _decode_watermark,
    _encode_watermark,
    ingest_signal_files,
    ingest_signal_table,
)
from ingestion.store import RawStore
from stratpos.core.warehouse import mysql_connection
from tests.ingestion.warehouse_dump import audit, count, quarantine, rows, state

T0 = 1767571322398  # 2026-01-05T00:02:02.398Z
META_KEYS = ("regime", "v")

# the same four signals, written below as JSONL (JSON numbers), CSV (strings) and Parquet (typed columns)
SIGNALS = [
    {
        "signal_id": "f1",
        "strategy_id": "trend",
        "symbol": "BTCUSDT",
        "action": "buy",
        "quantity": Decimal("0.005"),
        "price": Decimal("45053.1"),
        "take_profit_pct": Decimal("0.0055"),
        "stop_loss": Decimal("44000"),
        "timestamp": T0,
        "confidence": 0.64,
        "strategy": "Trend Follow",
        "metadata": {"regime": "chop", "v": 2},
    },
    {
        "signal_id": "f2",
        "strategy_id": "mean_revert",
        "symbol": "ETHUSDT",
        "action": "sell",
        "quantity": Decimal("1.25"),
        "price": Decimal("3120.55"),
        "take_profit": Decimal("3050"),
        "stop_loss_pct": Decimal("0.01"),
        "timestamp": "2026-01-05T00:04:01.581+00:00",
        "confidence": 0.9,
        "metadata": {"regime": "trend", "v": 3},
    },
    {"signal_id": "f3", "strategy_id": "trend", "symbol": "BTCUSDT", "action": "close", "timestamp": T0 + 60_000},
    {
        "signal_id": "f4",
        "strategy_id": "scalper",
        "symbol": "SOLUSDT",
        "action": "hold",
        "timestamp": T0 + 120_000,
        "account_id": "acct2",
    },
]
COLUMNS = list(dict.fromkeys(k for s in SIGNALS for k in s))


def as_ms(ts) -> int:
    return ts if isinstance(ts, int) else int(datetime.fromisoformat(ts).timestamp() * 1000)


def write_jsonl(path: Path, signals=SIGNALS) -> Path:
    path.write_text("".join(canonical_json(s) + "\n" for s in signals))  # decimals as bare JSON numbers
    return path


def write_csv(path: Path, signals=SIGNALS) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for s in signals:
        w.writerow(["" if k not in s else json.dumps(s[k]) if isinstance(s[k], dict) else str(s[k]) for k in COLUMNS])
    path.write_text(buf.getvalue())
    return path


def write_parquet(path: Path, signals=SIGNALS) -> Path:
    def col(name):
        return [s.get(name) for s in signals]

    meta_type = pa.struct([("regime", pa.string()), ("v", pa.int64())])
    table = pa.table(
        {
            "signal_id": pa.array(col("signal_id"), pa.string()),
            "strategy_id": pa.array(col("strategy_id"), pa.string()),
            "symbol": pa.array(col("symbol"), pa.string()),
            "action": pa.array(col("action"), pa.string()),
            "quantity": pa.array(col("quantity"), pa.decimal128(20, 8)),
            "price": pa.array(col("price"), pa.decimal128(20, 8)),
            "take_profit": pa.array(col("take_profit"), pa.decimal128(20, 8)),
            "stop_loss": pa.array(col("stop_loss"), pa.decimal128(20, 8)),
            "take_profit_pct": pa.array(col("take_profit_pct"), pa.decimal128(10, 6)),
            "stop_loss_pct": pa.array(col("stop_loss_pct"), pa.decimal128(10, 6)),
            "timestamp": pa.array(
                [datetime.fromtimestamp(as_ms(t) / 1000, UTC) for t in col("timestamp")], pa.timestamp("ms", tz="UTC")
            ),
            "account_id": pa.array(col("account_id"), pa.string()),
            "confidence": pa.array(col("confidence"), pa.float64()),
            "strategy": pa.array(col("strategy"), pa.string()),
            "metadata": pa.array(col("metadata"), meta_type),
        }
    )
    pq.write_table(table, path)
    return path


# ----------------------------------------------------------------------------- files
def test_jsonl_csv_and_parquet_of_the_same_signals_give_the_same_rows(warehouse_settings, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    write_csv(landing / "a_signals.csv")
    write_jsonl(landing / "b_signals.jsonl")
    write_parquet(landing / "c_signals.parquet")
    (landing / "notes.txt").write_text("not a signal file")

    seen = []
    results = ingest_signal_files(warehouse_settings, landing, progress=lambda *a: seen.append(a))
    assert seen == [("a_signals.csv", 1, 3), ("b_signals.jsonl", 2, 3), ("c_signals.parquet", 3, 3)]
    got = {s.source: (s.received, s.loaded, s.duplicates, s.quarantined) for s in results}
    assert got == {
        "signals:file:a_signals.csv": (4, 4, 0, 0),
        # the same typed rows (and so the same row hash): duplicates, not conflicts
        "signals:file:b_signals.jsonl": (4, 0, 4, 0),
        "signals:file:c_signals.parquet": (4, 0, 4, 0),
    }
    assert quarantine(warehouse_settings) == []
    stored = {
        r["signal_id"]: r
        for r in rows(
            warehouse_settings,
            "select signal_id, account_id, strategy_id, action, quantity, price, take_profit, stop_loss, "
            "take_profit_pct, stop_loss_pct, signal_time_ms, attributes from {raw}.signals",
        )
    }
    f1, f2, f3, f4 = (stored[k] for k in ("f1", "f2", "f3", "f4"))
    assert (f1["quantity"], f1["price"], f1["take_profit_pct"], f1["stop_loss"]) == (
        Decimal("0.005"),
        Decimal("45053.1"),
        Decimal("0.0055"),
        Decimal("44000"),
    )
    assert f1["take_profit"] is None and f3["quantity"] is None
    assert json.loads(f1["attributes"]) == {
        "confidence": 0.64,
        "strategy": "Trend Follow",
        "metadata": {"regime": "chop", "v": 2},
    }
    assert f1["attributes"] == '{"confidence":0.64,"metadata":{"regime":"chop","v":2},"strategy":"Trend Follow"}'
    assert f2["signal_time_ms"] == 1767571441581 and f2["take_profit"] == Decimal("3050")
    assert f3["attributes"] == "{}" and f3["account_id"] == "default"
    assert f4["account_id"] == "acct2"


def test_a_rerun_skips_unchanged_files_and_a_modified_file_is_read_again(warehouse_settings, tmp_path, caplog):
    landing = tmp_path / "landing"
    landing.mkdir()
    jsonl = write_jsonl(landing / "signals.jsonl", SIGNALS[:3])
    write_csv(landing / "more.csv", SIGNALS[3:])
    write_parquet(landing / "copy.parquet", SIGNALS[:1])
    first = ingest_signal_files(warehouse_settings, landing)
    assert sorted(s.source for s in first) == [
        "signals:file:copy.parquet",
        "signals:file:more.csv",
        "signals:file:signals.jsonl",
    ]
    keys = state(warehouse_settings, "signals:file:")
    assert len(keys) == 3 and all(len(k) == len("signals:file:") + 64 for k in keys)
    assert sorted(keys.values()) == ["copy.parquet", "more.csv", "signals.jsonl"]

    caplog.set_level(logging.INFO, logger="ingestion.signals")
    run_id = "rerun-skips"
    second = ingest_signal_files(warehouse_settings, landing, run_id=run_id)
    assert list(second) == [] and sorted(p.name for p in second.skipped) == [
        "copy.parquet",
        "more.csv",
        "signals.jsonl",
    ]
    assert "skipped 3 unchanged files" in caplog.text
    (summary,) = audit(warehouse_settings, run_id)  # nothing was read; the run itself is on record
    assert summary["source"] == "signals:landing:landing" and summary["received"] == 0
    assert summary["message"] == "processed 0 files, skipped 3 unchanged files"

    with open(jsonl, "a") as fh:  # a late signal appended to a file already loaded
        fh.write(canonical_json({**SIGNALS[2], "signal_id": "f9", "timestamp": T0 + 999}) + "\n")
    third = ingest_signal_files(warehouse_settings, landing)
    assert [(s.source, s.received, s.loaded, s.duplicates) for s in third] == [("signals:file:signals.jsonl", 4, 1, 3)]
    assert [p.name for p in third.skipped] == ["copy.parquet", "more.csv"]
    assert count(warehouse_settings, "signals") == 5
    assert len(state(warehouse_settings, "signals:file:")) == 4


def test_a_crash_before_the_last_batch_commits_reprocesses_the_file(warehouse_settings, tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "signals.jsonl")  # 4 signals, 2 per batch
    real_merge = RawStore.merge
    calls = []

    def failing_merge(self, table, rows_):
        result = real_merge(self, table, rows_)
        if table.name == "signals":
            calls.append(len(rows_))
            if len(calls) == 2:
                raise OSError("disk full (injected)")
        return result

    monkeypatch.setattr(RawStore, "merge", failing_merge)
    with pytest.raises(OSError, match="injected"):
        ingest_signal_files(warehouse_settings, landing, batch_size=2)
    monkeypatch.setattr(RawStore, "merge", real_merge)
    assert count(warehouse_settings, "signals") == 2  # the first batch
    assert state(warehouse_settings, "signals:file:") == {}  # the file is not marked as done

    again = ingest_signal_files(warehouse_settings, landing, batch_size=2)
    assert [(s.received, s.loaded, s.duplicates) for s in again] == [(4, 2, 2)]
    assert len(state(warehouse_settings, "signals:file:")) == 1
    assert list(ingest_signal_files(warehouse_settings, landing)) == []


def test_unreadable_files_are_quarantined_whole_and_the_run_continues(warehouse_settings, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    good = write_parquet(landing / "good.parquet", SIGNALS[:2]).read_bytes()
    (landing / "corrupt.parquet").write_bytes(good[:100] + b"\x00" * 64 + good[164:])
    (landing / "garbage.parquet").write_bytes(b"this is not parquet at all")
    (landing / "latin1.csv").write_bytes(
        "signal_id,strategy_id,symbol,action,timestamp\nx1,café,BTCUSDT,hold,1\n".encode("latin-1")
    )
    (landing / "quoting.csv").write_text('signal_id,strategy_id\n"x2,"unterminated\n')
    (landing / "dupes.csv").write_text("signal_id,signal_id\nx3,x4\n")
    write_jsonl(landing / "zz.jsonl", SIGNALS[2:])

    results = {s.source.removeprefix("signals:file:"): s for s in ingest_signal_files(warehouse_settings, landing)}
    assert (results["good.parquet"].loaded, results["zz.jsonl"].loaded) == (2, 2)
    bad = ["corrupt.parquet", "garbage.parquet", "latin1.csv", "quoting.csv", "dupes.csv"]
    for name in bad:
        s = results[name]
        assert (s.received, s.loaded, s.duplicates, s.quarantined) == (1, 0, 0, 1), name
    q = {r["source"].removeprefix("signals:file:"): r for r in quarantine(warehouse_settings)}
    assert sorted(q) == sorted(bad)
    assert "Parquet file corrupt.parquet cannot be read" in q["corrupt.parquet"]["reason"]
    assert "Parquet file garbage.parquet cannot be read" in q["garbage.parquet"]["reason"]
    assert "CSV file latin1.csv is not UTF-8: byte 0xe9" in q["latin1.csv"]["reason"]
    assert "CSV file quoting.csv cannot be parsed at line" in q["quoting.csv"]["reason"]
    assert "CSV file dupes.csv has duplicate columns: signal_id" in q["dupes.csv"]["reason"]
    payload = json.loads(q["garbage.parquet"]["payload"])
    assert payload["file"] == "garbage.parquet" and payload["head"] == "this is not parquet at all"
    assert q["garbage.parquet"]["record_hash"] == payload["sha256"]
    assert count(warehouse_settings, "signals") == 4

    # the files are remembered by content: a re-run skips them all and adds no quarantine row
    again = ingest_signal_files(warehouse_settings, landing)
    assert list(again) == [] and len(again.skipped) == 7
    assert len(quarantine(warehouse_settings)) == len(bad)


def test_csv_row_problems_are_quarantined_row_by_row(duckdb_settings, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "rows.csv").write_text(
        "\ufeffid,strategy_id,symbol,action,quantity,timestamp,note\n"  # BOM, the `id` alias, an extra column
        "c1,trend,BTCUSDT,buy,0.50,2026-01-05T00:00:00Z,first\n"
        "c2,trend,BTCUSDT,buy,-1,2026-01-05T00:00:00Z,negative\n"
        "c3,trend,BTCUSDT,buy,1,2026-01-05T00:00:00Z,too,many\n"
        "\n"
        "c4,trend,BTCUSDT,close,,1767571322,\n"
        "c5,trend,BTCUSDT,buy,0.1,2026-01-05 00:00:00,naive\n"
    )
    (s,) = ingest_signal_files(duckdb_settings, landing)
    assert (s.received, s.loaded, s.duplicates, s.quarantined) == (5, 2, 0, 3)
    reasons = sorted(r["reason"] for r in quarantine(duckdb_settings))
    assert reasons == [
        "CSV row ending at line 4 has 8 cells, the header has 7",
        "quantity: Input should be greater than 0 (got string '-1')",
        "timestamp: timestamp '2026-01-05 00:00:00' has no UTC offset (got string '2026-01-05 00:00:00')",
    ]
    got = rows(duckdb_settings, "select signal_id, quantity, signal_time_ms, attributes from {raw}.signals order by 1")
    assert got == [
        {
            "signal_id": "c1",
            "quantity": Decimal("0.5"),
            "signal_time_ms": 1767571200000,
            "attributes": '{"note":"first"}',
        },
        {"signal_id": "c4", "quantity": None, "signal_time_ms": 1767571322000, "attributes": "{}"},
    ]


def test_parquet_floats_are_read_through_repr_and_naive_timestamps_as_utc(duckdb_settings, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    pq.write_table(
        pa.table(
            {
                "signal_id": ["p1", "p2"],
                "strategy_id": ["t", "t"],
                "symbol": ["BTCUSDT", "BTCUSDT"],
                "action": ["buy", "buy"],
                "quantity": pa.array([0.1, float("nan")], pa.float64()),
                "timestamp": pa.array([datetime(2026, 1, 5, 0, 0, 0, 123000)] * 2, pa.timestamp("ms")),
                "score": pa.array([0.1 + 0.2, 1.0], pa.float64()),
            }
        ),
        landing / "floats.parquet",
    )
    (s,) = ingest_signal_files(duckdb_settings, landing)
    assert (s.loaded, s.quarantined) == (1, 1)
    (r,) = rows(duckdb_settings, "select quantity, signal_time_ms, attributes from {raw}.signals")
    assert r == {
        "quantity": Decimal("0.1"),
        "signal_time_ms": 1767571200123,
        "attributes": '{"score":0.30000000000000004}',
    }
    (q,) = quarantine(duckdb_settings)
    assert "quantity: Input should be a finite number" in q["reason"]


def test_a_missing_landing_folder_is_a_clear_error(duckdb_settings, tmp_path):
    with pytest.raises(SignalSourceError, match="does not exist"):
        ingest_signal_files(duckdb_settings, tmp_path / "nope")


# ----------------------------------------------------------------------------- SQL table
def sql_signal(i: int, **over) -> dict:
    row = {
        "signal_id": f"q{i}",
        "strategy_id": "trend",
        "symbol": "BTCUSDT",
        "action": "buy",
        "quantity": "0.010",
        "price": "45000.5",
        "timestamp": T0 + i * 1000,
        "confidence": 0.75,
        "note": f"row {i}",
    }
    row.update(over)
    return row


def sqlite_source(path: Path):
    engine = sa.create_engine(f"sqlite:///{path}")
    md = sa.MetaData()
    table = sa.Table(
        "strategy_signals",
        md,
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("signal_id", sa.String(32)),
        sa.Column("strategy_id", sa.String(32)),
        sa.Column("symbol", sa.String(16)),
        sa.Column("action", sa.String(8)),
        sa.Column("quantity", sa.String(40)),  # decimal strings: SQLite has no exact decimal type
        sa.Column("price", sa.String(40)),
        sa.Column("timestamp", sa.BigInteger),
        sa.Column("confidence", sa.Float),
        sa.Column("note", sa.Text),
        sa.Column("updated_at", sa.DateTime),
    )
    md.create_all(engine)
    return engine, table


def insert(engine, table, rows_: list[dict]) -> None:
    with engine.begin() as conn:
        conn.execute(table.insert(), rows_)


def test_sqlite_table_by_an_integer_column(warehouse_settings, tmp_path):
    db = tmp_path / "src.sqlite"
    engine, table = sqlite_source(db)
    url = f"sqlite:///{db}"
    insert(
        engine, table, [{"seq": i, **sql_signal(i)} for i in range(1, 5)] + [{"seq": 5, **sql_signal(5, quantity="-1")}]
    )

    (s,) = ingest_signal_table(warehouse_settings, url, "strategy_signals", "seq")
    assert (s.source, s.received, s.loaded, s.duplicates, s.quarantined) == ("signals:sql:strategy_signals", 5, 4, 0, 1)
    assert state(warehouse_settings, "signals:sql:") == {"signals:sql:strategy_signals": "int:5"}
    q1 = rows(warehouse_settings, "select quantity, price, attributes from {raw}.signals where signal_id = 'q1'")
    assert q1 == [
        {"quantity": Decimal("0.01"), "price": Decimal("45000.5"), "attributes": '{"confidence":0.75,"note":"row 1"}'}
    ]

    insert(engine, table, [{"seq": i, **sql_signal(i)} for i in (6, 7)])
    (s,) = ingest_signal_table(warehouse_settings, url, "strategy_signals", "seq")
    assert (s.received, s.loaded, s.duplicates, s.quarantined) == (2, 2, 0, 0)
    assert state(warehouse_settings, "signals:sql:")["signals:sql:strategy_signals"] == "int:7"

    # a row re-sent under a new sequence number is a duplicate (the incremental column is not part of the signal)
    insert(engine, table, [{"seq": 8, **sql_signal(7)}])
    (s,) = ingest_signal_table(warehouse_settings, url, "strategy_signals", "seq")
    assert (s.received, s.loaded, s.duplicates) == (1, 0, 1)
    (s,) = ingest_signal_table(warehouse_settings, url, "strategy_signals", "seq")
    assert s.received == 0
    assert count(warehouse_settings, "signals") == 6
    engine.dispose()


def test_sqlite_table_by_a_timestamp_column_with_ties_and_a_crash(duckdb_settings, tmp_path, monkeypatch):
    db = tmp_path / "src.sqlite"
    engine, table = sqlite_source(db)
    url = f"sqlite:///{db}"
    t1 = datetime(2026, 1, 5, 10, 0, 0, 123000)
    t2, t3, t4, t5 = (t1 + timedelta(minutes=m) for m in (1, 2, 3, 4))
    times = [t1, t1, t1, t2, t3, None]
    insert(engine, table, [{"seq": i, **sql_signal(i), "updated_at": t} for i, t in enumerate(times, 1)])

    (s,) = ingest_signal_table(duckdb_settings, url, "strategy_signals", "updated_at", batch_size=2, run_id="ts-1")
    assert (s.received, s.loaded, s.quarantined) == (6, 5, 1)
    runs = audit(duckdb_settings, "ts-1")
    assert [(r["batch_no"], r["received"]) for r in runs] == [(0, 4), (1, 2)]  # never cut inside the three t1 rows
    assert state(duckdb_settings, "signals:sql:") == {"signals:sql:strategy_signals": f"datetime:{t3.isoformat()}"}
    (q,) = quarantine(duckdb_settings)
    assert q["reason"].startswith("incremental column updated_at is NULL") and q["record_key"] == "q6"

    insert(
        engine, table, [{"seq": 7, **sql_signal(7), "updated_at": t4}, {"seq": 8, **sql_signal(8), "updated_at": t4}]
    )
    insert(engine, table, [{"seq": 9, **sql_signal(9), "updated_at": t5}])
    real_merge = RawStore.merge
    calls = []

    def failing_merge(self, tbl, rows_):
        result = real_merge(self, tbl, rows_)
        if tbl.name == "signals":
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("warehouse went away (injected)")
        return result

    monkeypatch.setattr(RawStore, "merge", failing_merge)
    with pytest.raises(RuntimeError, match="injected"):
        ingest_signal_table(duckdb_settings, url, "strategy_signals", "updated_at", batch_size=2)
    monkeypatch.setattr(RawStore, "merge", real_merge)
    # the first batch (both t4 rows) committed with its watermark; the t5 batch did not, nor did its watermark
    assert state(duckdb_settings, "signals:sql:") == {"signals:sql:strategy_signals": f"datetime:{t4.isoformat()}"}
    assert count(duckdb_settings, "signals") == 7

    (s,) = ingest_signal_table(duckdb_settings, url, "strategy_signals", "updated_at", batch_size=2)
    assert (s.received, s.loaded, s.quarantined) == (2, 1, 1)  # the t5 row, and the NULL row again
    assert count(duckdb_settings, "signals") == 8 and len(quarantine(duckdb_settings)) == 1
    assert state(duckdb_settings, "signals:sql:") == {"signals:sql:strategy_signals": f"datetime:{t5.isoformat()}"}
    engine.dispose()


def test_more_null_rows_than_a_batch_holds(duckdb_settings, tmp_path):
    db = tmp_path / "src.sqlite"
    engine, table = sqlite_source(db)
    t1 = datetime(2026, 1, 5, 10, 0)
    insert(engine, table, [{"seq": i, **sql_signal(i), "updated_at": None} for i in range(1, 6)])
    insert(engine, table, [{"seq": 6, **sql_signal(6), "updated_at": t1}])
    (s,) = ingest_signal_table(duckdb_settings, f"sqlite:///{db}", "strategy_signals", "updated_at", batch_size=2)
    assert (s.received, s.loaded, s.quarantined) == (6, 1, 5)
    assert state(duckdb_settings, "signals:sql:") == {"signals:sql:strategy_signals": f"datetime:{t1.isoformat()}"}
    engine.dispose()


def test_mariadb_table_by_a_datetime_column(mysql_settings, tmp_path):
    src = f"{mysql_settings.schema_prefix}signal_src"
    with mysql_connection(mysql_settings) as con, con.cursor() as cur:
        cur.execute(f"create database `{src}`")
        cur.execute(
            f"create table `{src}`.`signals_out` (signal_id varchar(32) primary key, "
            "strategy_id varchar(32), symbol varchar(16), action varchar(8), quantity decimal(20,8), "
            "price decimal(20,8), `timestamp` bigint, confidence double, note text, created_at datetime(3))"
        )
    url = f"mysql+pymysql://{mysql_settings.mysql.user}@{mysql_settings.mysql.host}:{mysql_settings.mysql.port}/{src}"

    def add(*items):
        with mysql_connection(mysql_settings, database=src) as con, con.cursor() as cur:
            cur.executemany(
                "insert into signals_out (signal_id, strategy_id, symbol, action, quantity, price, `timestamp`, "
                "confidence, note, created_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (r["signal_id"], r["strategy_id"], r["symbol"], r["action"], r["quantity"], r["price"],
                     r["timestamp"], r["confidence"], r["note"], r["created_at"])
                    for r in items
                ],
            )  # fmt: skip

    t1 = datetime(2026, 1, 5, 10, 0, 0, 250000)
    try:
        add(*(sql_signal(i, created_at=t1 + timedelta(seconds=i)) for i in range(1, 4)))
        (s,) = ingest_signal_table(mysql_settings, url, "signals_out", "created_at")
        assert (s.received, s.loaded, s.quarantined) == (3, 3, 0)
        wm = state(mysql_settings, "signals:sql:")["signals:sql:signals_out"]
        assert wm == f"datetime:{(t1 + timedelta(seconds=3)).isoformat()}"

        add(sql_signal(4, created_at=t1 + timedelta(seconds=4)), sql_signal(5, created_at=t1 + timedelta(seconds=4)))
        (s,) = ingest_signal_table(mysql_settings, url, "signals_out", "created_at")
        assert (s.received, s.loaded) == (2, 2)
        (s,) = ingest_signal_table(mysql_settings, url, "signals_out", "created_at")
        assert s.received == 0
        q2 = rows(mysql_settings, "select quantity, price, attributes from {raw}.signals where signal_id = 'q2'")
        assert q2 == [
            {
                "quantity": Decimal("0.01"),
                "price": Decimal("45000.5"),
                "attributes": '{"confidence":0.75,"note":"row 2"}',
            }
        ]

        # the same signals as a JSONL file: typed MariaDB columns and JSON give the same rows
        landing = tmp_path / "landing"
        landing.mkdir()
        write_jsonl(landing / "same.jsonl", [sql_signal(i) for i in range(1, 6)])
        (f,) = ingest_signal_files(mysql_settings, landing)
        assert (f.received, f.loaded, f.duplicates, f.quarantined) == (5, 0, 5, 0)
    finally:
        with mysql_connection(mysql_settings) as con, con.cursor() as cur:
            cur.execute(f"drop database if exists `{src}`")


def test_sql_source_errors_are_clear_and_never_show_the_password(duckdb_settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SignalSourceError) as exc:
        ingest_signal_table(duckdb_settings, "mysql+pymysql://reader:topsecret@127.0.0.1:1/db", "signals", "seq")
    assert "topsecret" not in str(exc.value) and "reader:***@127.0.0.1:1/db" in str(exc.value)
    assert "topsecret" not in caplog.text

    db = tmp_path / "src.sqlite"
    engine, _ = sqlite_source(db)
    engine.dispose()
    with pytest.raises(SignalSourceError, match="signal table 'nope' does not exist"):
        ingest_signal_table(duckdb_settings, f"sqlite:///{db}", "nope", "seq")
    with pytest.raises(SignalSourceError, match="has no column 'version'"):
        ingest_signal_table(duckdb_settings, f"sqlite:///{db}", "strategy_signals", "version")
    with pytest.raises(SignalSourceError, match="cannot use signal source"):
        ingest_signal_table(duckdb_settings, "nosuchdialect://u:topsecret@h/db", "t", "c")


@pytest.mark.parametrize(
    "value",
    [
        42,
        -7,
        Decimal("12.500"),
        0.1,
        datetime(2026, 1, 5, 10, 0, 0, 123456),
        datetime(2026, 1, 5, 10, 0, tzinfo=UTC),
        date(2026, 1, 5),
        "2026-01-05 10:00:00",
    ],
)
def test_watermarks_keep_their_type_through_the_string(value):
    text = _encode_watermark(value)
    back = _decode_watermark(text)
    assert back == value and type(back) is type(value)
    assert text.split(":", 1)[0] in {"int", "decimal", "float", "datetime", "date", "str"}
