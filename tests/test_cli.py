"""The console script as users run it: installed entry point, real subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from sandbox.generator import GenerateConfig, generate
from sandbox.server import SandboxServer, ServerConfig, make_client
from stratpos.demo import fetch_all

STRATPOS = shutil.which("stratpos", path=str(Path(sys.executable).parent))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([STRATPOS, *args], capture_output=True, text=True, timeout=300, check=False)


def test_sandbox_generate_writes_a_replay_directory(tmp_path):
    out = tmp_path / "replay"
    proc = run("sandbox", "generate", "--out", str(out), "--days", "1", "--strategies", "3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "fills" in proc.stdout
    account = json.loads((out / "account.json").read_text())
    assert account == {"account_id": "default", "position_mode": "hedge"}
    for name in ("signals.jsonl", "futures_trades.jsonl", "futures_orders.jsonl", "position_risk.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "expected_strategy_positions.jsonl").stat().st_size > 0


def test_bad_arguments_give_one_clear_line(tmp_path):
    proc = run("sandbox", "generate", "--out", str(tmp_path), "--symbols", "NOPEUSDT", "--quiet")
    assert proc.returncode == 2
    assert "unknown symbol 'NOPEUSDT'" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("sandbox", "serve", "--data", str(tmp_path / "missing"))
    assert proc.returncode != 0 and "not a replay directory" in proc.stderr


def test_config_command_shows_settings_without_secrets():
    proc = subprocess.run(
        [STRATPOS, "config"],
        capture_output=True,
        text=True,
        check=False,
        env={
            "STRATPOS_TARGET": "mysql",
            "STRATPOS_MYSQL_PASSWORD": "hunter2",
            "STRATPOS_SCHEMA_PREFIX": "acme_",
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert "acme_marts" in proc.stdout and "hunter2" not in proc.stdout + proc.stderr


def test_generated_account_round_trips_through_python_binance(tmp_path):
    """Everything the generator wrote comes back once through the fake API and the real client."""
    out = tmp_path / "replay"
    cfg = GenerateConfig(out=out, days=9, strategies=4, symbols=("BTCUSDT", "ETHUSDT"), seed=5)
    summary = generate(cfg)
    start = int(cfg.start.timestamp() * 1000)
    # Everything comes back only without Binance's retention: at the end of a 9-day run, orders canceled
    # unfilled more than 3 days earlier are no longer served (sandbox/server.py ServerConfig).
    no_retention = {f"retention_{k}": None for k in ("trades", "orders", "unfilled_orders", "income")}
    with SandboxServer(out, config=ServerConfig(weight_limit_1m=1_000_000, **no_retention)) as server:
        client = make_client(server.url, "sandbox-api-key", "sandbox-api-secret")
        got = fetch_all(client, ["BTCUSDT", "ETHUSDT"], start, start + 9 * 86_400_000)
    assert summary.fills > 1000
    assert got["trades"] == summary.fills
    assert got["income"] == summary.income
    with open(out / "futures_orders.jsonl", encoding="utf-8") as fh:
        # order ids are per symbol (SPEC §3.2): the same number on two symbols is two orders
        assert got["orders"] == len({(o["symbol"], o["orderId"]) for o in map(json.loads, fh)})
