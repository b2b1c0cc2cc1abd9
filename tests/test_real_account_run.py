"""A real account's shape, end to end, as a user runs it: ``stratpos run`` on both warehouses.

The paper exchange's ``--real-account`` preset produces what a real Binance USD-M account looks
like and the old paper exchange never did (issue 11): served history that starts mid-position,
order/algo/trade ids that are per-symbol sequences overlapping across symbols, maker rebates,
commission paid in BNB, a quarterly contract delivered inside the run, a BTC-margined contract
(``ETHBTC``), transfers, rebate-programme payments, and a liquidation with its ``INSURANCE_CLEAR``.

``stratpos run`` (the console script, a real subprocess) must then pass R1–R7 and R9 (R8 only
warns), quarantine nothing that Binance would send, and build ``strategy_positions`` equal to the
paper exchange's ground truth. Once from the replay directory on DuckDB and MariaDB, once through
python-binance against the fake API (DuckDB).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.generator import GenerateConfig, generate
from sandbox.server import SandboxServer, ServerConfig
from stratpos.core.settings import Settings
from stratpos.core.warehouse import fetch_rows
from tests.dbt.truth import diff_against_truth

STRATPOS = shutil.which("stratpos", path=str(Path(sys.executable).parent))
REQUIRED = ("R1", "R2", "R3", "R4", "R5", "R6", "R7", "R9")


@pytest.fixture(scope="module")
def real_account(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real-account")
    generate(GenerateConfig(out=out, days=2, strategies=4, seed=7, real_account=True))
    return out


def _shapes(replay: Path) -> dict[str, int]:
    """Count the real-account shapes in the replay, so the test cannot pass on a plain account."""

    def rows(name: str) -> list[dict]:
        path = replay / name
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    trades = rows("futures_trades.jsonl")
    income = rows("income.jsonl")
    truth = rows("expected_strategy_positions.jsonl")
    ids: dict[int, set[str]] = {}
    for t in trades:
        ids.setdefault(t["orderId"], set()).add(t["symbol"])
    kinds = {i["incomeType"] for i in income}
    return {
        "shared_order_ids": sum(1 for s in ids.values() if len(s) > 1),
        "rebates": sum(1 for t in trades if t["commission"].startswith("-")),
        "bnb_fees": sum(1 for t in trades if t["commissionAsset"] == "BNB"),
        "quarterly_fills": sum(1 for t in trades if re.fullmatch(r"[A-Z]+_\d{6}", t["symbol"])),
        "btc_margined_fills": sum(1 for t in trades if t["symbol"] == "ETHBTC"),
        "opening_allocations": sum(1 for r in truth if r["is_unattributed"] and r["entry_time"] is not None),
        "insurance_clear": int("INSURANCE_CLEAR" in kinds),
        "transfers": int("TRANSFER" in kinds),
        "delivery": int("DELIVERED_SETTELMENT" in kinds),
        "rebate_programme": int(bool(kinds & {"COMMISSION_REBATE", "API_REBATE", "FEE_RETURN"})),
        "balances": len(rows("balances.jsonl")),
        "klines": len(rows("klines.jsonl")),
    }


def test_the_preset_has_every_real_account_shape(real_account):
    shapes = _shapes(real_account)
    missing = [name for name, n in shapes.items() if n == 0]
    assert not missing, f"the real-account preset lacks {missing}: {shapes}"
    # history starts mid-position: the first served snapshot already holds positions
    first = json.loads((real_account / "position_risk.jsonl").read_text().splitlines()[0])
    snapshots = [json.loads(line) for line in (real_account / "position_risk.jsonl").read_text().splitlines()]
    at_start = [s for s in snapshots if s["snapshotTime"] == first["snapshotTime"]]
    opening = [s for s in at_start if s["positionAmt"] not in ("0", "0.0")]
    assert opening, "the served history starts flat"


def _env(settings: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATPOS_", "BINANCE_"))}
    env.update({"STRATPOS_TARGET": settings.target, "STRATPOS_SCHEMA_PREFIX": settings.schema_prefix})
    env["DO_NOT_TRACK"] = "1"
    if settings.target == "duckdb":
        env["STRATPOS_DUCKDB_PATH"] = str(settings.duckdb_path)
    else:
        m = settings.mysql
        env.update(
            {
                "STRATPOS_MYSQL_HOST": m.host,
                "STRATPOS_MYSQL_PORT": str(m.port),
                "STRATPOS_MYSQL_USER": m.user,
                "STRATPOS_MYSQL_PASSWORD": m.password.get_secret_value(),
            }
        )
    env.update(extra)
    return env


def _run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([STRATPOS, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=900, check=False)


def _unmarked_closed(settings: Settings) -> set[str]:
    """Closed positions of symbols no positionRisk answer ever gave a mark for.

    Read through the API once, after the quarterly was delivered, positionRisk v3 no longer lists
    it: its mark is unknown (NULL, never 0). Such a position is closed, so its mark values nothing;
    the ground truth knows the paper exchange's last mark, the API never showed it."""
    return {
        r["strategy_position_id"]
        for r in fetch_rows(settings, "marts", "strategy_positions")
        if r["mark_price"] is None and r["status"] == "closed"
    }


def _assert_reconciles(
    proc: subprocess.CompletedProcess, settings: Settings, replay: Path, unmarked: set[str] = frozenset()
) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"stratpos run failed:\n{out[-6000:]}"
    for check in REQUIRED:
        pattern = re.compile(rf"\s*([A-Z]+)\s+{check}\s")
        status = next((m[1] for ln in proc.stdout.splitlines() if (m := pattern.match(ln))), None)
        assert status == "PASSED", f"{check}: {status}\n{proc.stdout[-4000:]}"
    quarantined = fetch_rows(settings, "raw", "quarantine")
    assert not quarantined, f"quarantined: {[(q['source'], q['reason']) for q in quarantined[:5]]}"
    problems = [
        p
        for p in diff_against_truth(settings, replay, limit=10_000)
        if not (p.split(".")[0] in unmarked and p.split(".")[1].startswith(("mark_price:", "unrealized_pnl:")))
    ]
    assert not problems, "\n".join(problems[:30])


def test_stratpos_run_reconciles_a_real_account_from_its_replay(warehouse_settings, real_account, tmp_path):
    env = _env(warehouse_settings, tmp_path, STRATPOS_ALERT_WEBHOOK_URL="")
    proc = _run(env, tmp_path, "run", "--replay", str(real_account))
    _assert_reconciles(proc, warehouse_settings, real_account)


def test_stratpos_run_reconciles_a_real_account_through_the_api(duckdb_settings, real_account, tmp_path):
    """python-binance against the fake API: exchangeInfo, balances and klines come from the endpoints."""
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copy(real_account / "signals.jsonl", landing)
    links = tmp_path / "links"
    links.mkdir()
    shutil.copy(real_account / "account.json", links)
    if (real_account / "order_links.jsonl").exists():
        shutil.copy(real_account / "order_links.jsonl", links)
    with SandboxServer(real_account, config=ServerConfig(weight_limit_1m=1_000_000)) as server:
        env = _env(
            duckdb_settings,
            tmp_path,
            STRATPOS_BINANCE_BASE_URL=server.url,
            STRATPOS_SIGNALS_LANDING=str(landing),
        )
        loaded = _run(env, tmp_path, "ingest", "replay", str(links), "--quiet")
        assert loaded.returncode == 0, loaded.stderr
        first_ms = min(
            json.loads(line)["time"] for line in (real_account / "futures_trades.jsonl").read_text().splitlines()
        )
        since = datetime.fromtimestamp((first_ms - 86_400_000) / 1000, tz=UTC).isoformat()
        proc = _run(env, tmp_path, "run", "--since", since)
    unmarked = _unmarked_closed(duckdb_settings)
    rows = fetch_rows(duckdb_settings, "marts", "strategy_positions")
    delivered = {
        s["symbol"]
        for s in map(json.loads, (real_account / "symbols.jsonl").read_text().splitlines())
        if s["status"] == "DELIVERED"
    }
    assert {r["symbol"] for r in rows if r["strategy_position_id"] in unmarked} <= delivered
    _assert_reconciles(proc, duckdb_settings, real_account, unmarked)
