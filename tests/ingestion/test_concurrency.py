"""Concurrent loads and killed loads (issue 16, SPEC §3.5).

* Two ``stratpos ingest replay`` processes loading one replay into one warehouse/prefix at once both
  succeed and the audit tells the truth: per source, the rows both runs count as loaded are the rows
  stored (MariaDB: named locks; DuckDB: the second process waits for the file lock).
* A DuckDB warehouse held by another process for longer than the configured wait gives a clear error.
* Killing ``stratpos ingest replay`` (SIGKILL or SIGTERM) leaves no worker process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ingestion.store import RawStore, WarehouseBusy
from tests.ingestion import documented as doc
from tests.ingestion.warehouse_dump import count, rows

STRATPOS = shutil.which("stratpos", path=str(Path(sys.executable).parent))


def write_replay(directory: Path, trades: int) -> Path:
    doc.write(directory)
    with open(directory / "futures_trades.jsonl", "w", encoding="utf-8") as fh:
        for i in range(trades):
            t = doc.trade("BTCUSDT", 10_000 + i, 20_000 + i // 3, doc.T0 + i * 1000, commission="0.01")
            fh.write(json.dumps(t) + "\n")
    return directory


def cli_env(settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATPOS_")}
    return {**env, **settings.to_env(), **extra}


def test_two_concurrent_loads_serialize_and_count_true(warehouse_settings, tmp_path):
    replay = write_replay(tmp_path / "conc", 3000)
    RawStore(warehouse_settings).__enter__().close()  # tables exist: the race is the loads', not the DDL's
    env = cli_env(warehouse_settings)
    cmd = [STRATPOS, "ingest", "replay", str(replay), "--batch-size", "100", "--quiet"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    audit = rows(
        warehouse_settings,
        "select source, status, received, loaded, duplicates, quarantined, run_id from {audit}.ingestion_runs",
    )
    assert len({r["run_id"] for r in audit}) == 2 and {r["status"] for r in audit} == {"ok"}
    sources = {
        "futures_trades.jsonl": ("futures_trades", 3000),
        "futures_orders.jsonl": ("futures_orders", len(doc.ORDERS)),
        "income.jsonl": ("income", len(doc.INCOME)),
        "order_links.jsonl": ("order_links", len(doc.LINKS)),
    }
    for name, (table, lines) in sources.items():
        mine = [r for r in audit if r["source"] == f"replay:conc/{name}"]
        received = sum(r["received"] for r in mine)
        loaded = sum(r["loaded"] for r in mine)
        assert received == 2 * lines, name
        assert received == loaded + sum(r["duplicates"] for r in mine) + sum(r["quarantined"] for r in mine)
        assert loaded == count(warehouse_settings, table) == lines, name  # each row counted loaded once


def test_two_concurrent_signal_folder_loads_count_each_signal_once(warehouse_settings, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    for f in range(3):
        lines = [
            json.dumps({"signal_id": f"s{f}_{i}", "strategy_id": "trend", "symbol": "BTCUSDT", "action": "hold",
                        "timestamp": doc.T0 + i})
            for i in range(1000)
        ]  # fmt: skip
        (landing / f"f{f}.jsonl").write_text("\n".join(lines) + "\n")
    RawStore(warehouse_settings).__enter__().close()
    cmd = [STRATPOS, "ingest", "signals", str(landing)]
    env = cli_env(warehouse_settings)
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    audit = rows(warehouse_settings, "select source, received, loaded, status from {audit}.ingestion_runs")
    files = [r for r in audit if r["source"].startswith("signals:file:")]
    assert {r["status"] for r in audit} == {"ok"}
    # each file processed once (the second run waited, then found it loaded), each signal counted loaded once
    assert sum(r["received"] for r in files) == sum(r["loaded"] for r in files) == 3000
    assert count(warehouse_settings, "signals") == 3000


def test_a_busy_duckdb_file_gives_a_clear_error(duckdb_settings, tmp_path):
    RawStore(duckdb_settings).__enter__().close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(600)", str(duckdb_settings.duckdb_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        settings = duckdb_settings.with_overrides(load_lock_wait_seconds=1)
        with pytest.raises(WarehouseBusy, match=r"is in use by another process .*waited 1 s"):
            RawStore(settings).open()
    finally:
        holder.kill()
        holder.wait()
    with RawStore(duckdb_settings) as st:  # free again: the load goes on
        assert st.count("futures_trades") == 0


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_replay_leaves_no_worker_behind(duckdb_settings, tmp_path, sig):
    replay = write_replay(tmp_path / "big", 150_000)
    cmd = [STRATPOS, "ingest", "replay", str(replay), "--workers", "2", "--batch-size", "500", "--quiet"]
    proc = subprocess.Popen(cmd, env=cli_env(duckdb_settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        for p in _descendants(parent):
            seen.setdefault(p.pid, p)
        # the forkserver, the resource tracker and at least one worker (a child of the forkserver)
        if any(p.ppid() in seen for p in seen.values() if p.is_running()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the load ended before its workers were seen: make the replay bigger"
    for p in _descendants(parent):
        seen.setdefault(p.pid, p)
    assert len(seen) >= 3, seen
    os.kill(proc.pid, sig)
    proc.wait(timeout=120)
    _, alive = psutil.wait_procs(list(seen.values()), timeout=60)
    assert alive == [], [(p.pid, p.cmdline()) for p in alive]
