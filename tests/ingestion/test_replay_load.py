"""Replay directories into the raw layer (SPEC §3.4, §3.5): idempotence, atomic batches, late records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ingestion.batch import new_run_id
from ingestion.replay import REPLAY_SOURCES, ReplayError, load_replay
from ingestion.schema import RAW_TABLES
from ingestion.store import RawStore
from sandbox.generator import GenerateConfig, generate
from stratpos.core.settings import Settings
from stratpos.core.warehouse import drop_schemas
from tests.ingestion.warehouse_dump import LINEAGE_OF_A_RUN, audit, count, dump, rows

REPLAY_FILES = [f for _, f in REPLAY_SOURCES]
TABLE_OF = {"signals.jsonl": "signals", "order_links.jsonl": "order_links", "futures_trades.jsonl": "futures_trades"}


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "acct"
    generate(GenerateConfig(out=out, days=1, strategies=4, seed=7, account_id="acct_it"))
    return out


@pytest.fixture
def twin_settings(warehouse_settings, tmp_path):
    """A second, empty warehouse on the same target (for "same as a clean load" comparisons)."""
    if warehouse_settings.target == "duckdb":
        yield Settings(target="duckdb", duckdb_path=tmp_path / "twin.duckdb")
        return
    twin = warehouse_settings.with_overrides(schema_prefix=warehouse_settings.schema_prefix + "twin_")
    yield twin
    drop_schemas(twin)


def lines(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().splitlines(keepends=True) if ln.strip()]


def test_loading_the_same_replay_twice_changes_nothing(warehouse_settings, replay_dir):
    first = load_replay(replay_dir, warehouse_settings, batch_size=400)
    before = dump(warehouse_settings)

    # everything arrived, with the replay's account on every record (account.json, links and signals included)
    assert count(warehouse_settings, "futures_trades") == len(lines(replay_dir / "futures_trades.jsonl"))
    assert count(warehouse_settings, "signals") == len(lines(replay_dir / "signals.jsonl"))
    assert count(warehouse_settings, "order_links") == len(lines(replay_dir / "order_links.jsonl")) > 0
    assert count(warehouse_settings, "income") == len(lines(replay_dir / "income.jsonl"))
    assert rows(warehouse_settings, "select account_id, position_mode from {raw}.accounts") == [
        {"account_id": "acct_it", "position_mode": "hedge"}
    ]
    for table in ("signals", "order_links", "futures_trades", "futures_orders", "income", "position_snapshots"):
        accounts = rows(warehouse_settings, f"select distinct account_id from {{raw}}.{table}")
        assert accounts == [{"account_id": "acct_it"}], table
    assert before["quarantine"] == []
    assert all(s.balanced and s.quarantined == 0 for s in first)

    run_id = new_run_id()
    second = load_replay(replay_dir, warehouse_settings, batch_size=400, run_id=run_id)
    after = dump(warehouse_settings)
    for table in RAW_TABLES:
        assert after[table] == before[table], f"raw.{table} changed on the second load"

    assert all(s.loaded == 0 and s.quarantined == 0 and s.duplicates == s.received for s in second)
    runs = audit(warehouse_settings, run_id)
    sources = {r["source"] for r in runs}
    present = [f for f in REPLAY_FILES if (replay_dir / f).exists()]  # any file of §3.4 may be missing
    assert {f"replay:acct/{f}" for f in present} <= sources
    assert "replay:acct/account.json" in sources
    for r in runs:
        assert r["status"] == "ok"
        assert r["loaded"] == 0 and r["quarantined"] == 0
        assert r["duplicates"] == r["received"] > 0, r
    # the audit rows of the second run account for every line of every file
    by_source = {}
    for r in runs:
        by_source[r["source"]] = by_source.get(r["source"], 0) + r["received"]
    for f in present:
        assert by_source[f"replay:acct/{f}"] == len(lines(replay_dir / f)), f


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "worker-processes"])
def test_a_failure_mid_load_rolls_back_its_batch_and_a_rerun_completes(
    warehouse_settings, twin_settings, replay_dir, monkeypatch, workers
):
    real_merge = RawStore.merge
    calls = {"trades": 0}

    def failing_merge(self, table, rows_):
        result = real_merge(self, table, rows_)  # the rows are in the open transaction ...
        if table.name == "futures_trades":
            calls["trades"] += 1
            if calls["trades"] == 2:
                raise RuntimeError("injected failure in the second trades batch")  # ... and must disappear
        return result

    monkeypatch.setattr(RawStore, "merge", failing_merge)
    run_id = new_run_id()
    with pytest.raises(RuntimeError, match="injected failure"):
        load_replay(replay_dir, warehouse_settings, batch_size=200, run_id=run_id, workers=workers)
    monkeypatch.setattr(RawStore, "merge", real_merge)

    trades = lines(replay_dir / "futures_trades.jsonl")
    assert len(trades) > 400
    assert count(warehouse_settings, "futures_trades") == 200  # batch 0 committed, batch 1 rolled back
    stored_ids = {r["trade_id"] for r in rows(warehouse_settings, "select trade_id from {raw}.futures_trades")}
    assert stored_ids == {json.loads(t)["id"] for t in trades[:200]}
    runs = audit(warehouse_settings, run_id)
    failed = [r for r in runs if r["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["source"] == "replay:acct/futures_trades.jsonl" and failed[0]["batch_no"] == 1
    assert "injected failure" in failed[0]["message"]
    assert failed[0]["received"] == 200 and failed[0]["loaded"] == 0
    ok_trades = [r for r in runs if r["source"] == "replay:acct/futures_trades.jsonl" and r["status"] == "ok"]
    assert [r["batch_no"] for r in ok_trades] == [0]
    assert count(warehouse_settings, "position_snapshots") == 0  # later files were never reached

    rerun = load_replay(replay_dir, warehouse_settings, batch_size=200, workers=workers)
    trades_stats = next(s for s in rerun if s.source == "futures_trades")
    assert (trades_stats.loaded, trades_stats.duplicates) == (len(trades) - 200, 200)

    load_replay(replay_dir, twin_settings, batch_size=5000)
    assert dump(warehouse_settings, exclude=LINEAGE_OF_A_RUN) == dump(twin_settings, exclude=LINEAGE_OF_A_RUN)


def test_worker_processes_load_exactly_what_one_process_loads(warehouse_settings, twin_settings, replay_dir, tmp_path):
    # a copy with in-batch repeats, an older order version after a newer one, a conflict and bad lines, so the
    # counting rules are exercised on the worker side (in-batch) and on the merging side (across batches)
    work = tmp_path / "acct"
    shutil.copytree(replay_dir, work)
    trades = lines(work / "futures_trades.jsonl")
    orders = lines(work / "futures_orders.jsonl")
    changed = json.loads(trades[5])
    changed["commission"] = "123.45"
    (work / "futures_trades.jsonl").write_bytes(
        b"".join([*trades[:300], trades[3], b"{truncated\n", (json.dumps(changed) + "\n").encode(), *trades[300:]])
    )
    (work / "futures_orders.jsonl").write_bytes(b"".join([*orders, *reversed(orders[:50])]))

    single = load_replay(work, warehouse_settings, batch_size=97, workers=0)
    parallel = load_replay(work, twin_settings, batch_size=97, workers=2)

    as_counts = [(s.source, s.received, s.loaded, s.duplicates, s.quarantined) for s in single]
    assert as_counts == [(s.source, s.received, s.loaded, s.duplicates, s.quarantined) for s in parallel]
    trades_stats = next(s for s in parallel if s.source == "futures_trades")
    assert trades_stats.quarantined == 2 and trades_stats.duplicates == 1 and trades_stats.balanced
    assert dump(warehouse_settings, exclude=LINEAGE_OF_A_RUN) == dump(twin_settings, exclude=LINEAGE_OF_A_RUN)


def test_late_arriving_records_load_on_the_next_run(warehouse_settings, twin_settings, replay_dir, tmp_path):
    late_dir = tmp_path / "acct"
    late_dir.mkdir()
    shutil.copy(replay_dir / "account.json", late_dir)
    held_back = {}
    for f in REPLAY_FILES:
        if not (replay_dir / f).exists():
            continue
        all_lines = lines(replay_dir / f)
        cut = len(all_lines) * 2 // 3
        (late_dir / f).write_bytes(b"".join(all_lines[:cut]))
        held_back[f] = all_lines[cut:]

    load_replay(late_dir, warehouse_settings)
    assert count(warehouse_settings, "futures_trades") == len(lines(late_dir / "futures_trades.jsonl"))

    for f, extra in held_back.items():  # the exchange reports more trades, income, order versions …
        with open(late_dir / f, "ab") as fh:
            fh.write(b"".join(extra))
    second = {s.source: s for s in load_replay(late_dir, warehouse_settings)}

    for kind, f in (("futures_trades", "futures_trades.jsonl"), ("income", "income.jsonl")):
        assert second[kind].loaded == len(held_back[f]), kind
        assert second[kind].duplicates == len(lines(late_dir / f)) - len(held_back[f]), kind
        assert second[kind].quarantined == 0
    orders = second["futures_orders"]
    assert orders.loaded > 0 and orders.balanced  # new orders and newer versions of known ones

    # the two-step load ends exactly where one load of the complete files ends
    load_replay(replay_dir, twin_settings)
    assert dump(warehouse_settings, exclude=(*LINEAGE_OF_A_RUN, "source")) == dump(
        twin_settings, exclude=(*LINEAGE_OF_A_RUN, "source")
    )


def test_records_without_account_take_the_replay_account(duckdb_settings, tmp_path):
    d = tmp_path / "one"
    d.mkdir()
    (d / "account.json").write_text(json.dumps({"account_id": "acct9", "position_mode": "one_way"}))
    (d / "signals.jsonl").write_text(
        json.dumps(
            {"signal_id": "s1", "strategy_id": "a", "symbol": "BTCUSDT", "action": "hold", "timestamp": 1767571322398}
        )
        + "\n"
        + json.dumps(
            {
                "signal_id": "s2",
                "strategy_id": "a",
                "symbol": "BTCUSDT",
                "action": "hold",
                "timestamp": 1767571322398,
                "account_id": "other",
            }
        )
        + "\n"
    )
    (d / "order_links.jsonl").write_text(json.dumps({"order_id": 5, "signal_id": "s1", "role": "entry"}) + "\n")
    load_replay(d, duckdb_settings)
    assert rows(duckdb_settings, "select signal_id, account_id from {raw}.signals order by 1") == [
        {"signal_id": "s1", "account_id": "acct9"},
        {"signal_id": "s2", "account_id": "other"},
    ]
    assert rows(duckdb_settings, "select account_id, link_ref, role from {raw}.order_links") == [
        {"account_id": "acct9", "link_ref": "order:5#s1", "role": "entry"}
    ]
    assert rows(duckdb_settings, "select position_mode from {raw}.accounts") == [{"position_mode": "one_way"}]


def test_an_invalid_account_file_is_quarantined_and_stops_the_load(duckdb_settings, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "account.json").write_text(json.dumps({"account_id": "acct9", "position_mode": "cross"}))
    (d / "futures_trades.jsonl").write_text("")
    with pytest.raises(ReplayError, match="position_mode"):
        load_replay(d, duckdb_settings)
    q = rows(duckdb_settings, "select source, reason from {raw}.quarantine")
    assert len(q) == 1 and q[0]["source"] == "replay:bad/account.json" and "position_mode" in q[0]["reason"]
    assert count(duckdb_settings, "accounts") == 0

    # an account already stored with another position mode is a conflict: also a clear stop, not a guess
    (d / "account.json").write_text(json.dumps({"account_id": "acct9", "position_mode": "hedge"}))
    load_replay(d, duckdb_settings)
    (d / "account.json").write_text(json.dumps({"account_id": "acct9", "position_mode": "one_way"}))
    with pytest.raises(ReplayError, match="key acct9 was already loaded with different content"):
        load_replay(d, duckdb_settings)
    assert rows(duckdb_settings, "select position_mode from {raw}.accounts") == [{"position_mode": "hedge"}]


def test_mysql_without_local_infile_loads_the_same_rows(mysql_settings, replay_dir, tmp_path, monkeypatch):
    """The multi-row INSERT fallback (server with local_infile off) stages exactly what LOAD DATA stages."""
    twin = mysql_settings.with_overrides(schema_prefix=mysql_settings.schema_prefix + "noinfile_")
    try:
        load_replay(replay_dir, mysql_settings, batch_size=300)
        monkeypatch.setattr(RawStore, "_local_infile_enabled", lambda self: False)
        load_replay(replay_dir, twin, batch_size=300)
        assert dump(twin, exclude=LINEAGE_OF_A_RUN) == dump(mysql_settings, exclude=LINEAGE_OF_A_RUN)
    finally:
        drop_schemas(twin)


def test_the_ingest_connection_uses_the_configured_duckdb_memory(tmp_path):
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "m.duckdb", duckdb_ingest_memory="300MB")
    with RawStore(settings) as store:
        (limit,) = store.fetchall("select current_setting('memory_limit')")[0]
    assert limit in ("286.1 MiB", "300.0 MB"), limit  # DuckDB prints the limit in binary units
