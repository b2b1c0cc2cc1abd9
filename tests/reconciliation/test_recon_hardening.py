"""Reconciliation gaps found by the chaos run (issue 16), on DuckDB.

* SPEC §5 R3 compares against a positionRisk snapshot taken after the last ingested fill. A stale
  reference (a fill after the latest snapshot) or none at all (no snapshot of the account) used to make
  R3 pass silently. Both now fail R3 with their own measure, land in ``audit.dq_alerts`` and make
  ``validate`` exit non-zero.
* R8 names an explicit order link that points at a signal nobody sent (a dangling link).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion.replay import load_replay
from sandbox.generator import GenerateConfig, generate
from stratpos.core.settings import Settings
from stratpos.transform import run_dbt
from tests.reconciliation.helpers import (
    build,
    copy_duckdb,
    dq_alerts,
    failing_keys,
    late_records,
    query,
    replay_lines,
    validate,
)


def transform_r3(settings: Settings, model: str = "recon_r3_exchange_positions") -> None:
    """Rebuild only what the check under test reads (the other checks are not under test here)."""
    run_dbt(settings, "run", extra_args=["--quiet", "--select", f"+{model}"])


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("replay-r3")
    generate(GenerateConfig(out=out, days=1, strategies=2, mode="hedge", seed=11))
    return out


@pytest.fixture(scope="module")
def clean(replay, tmp_path_factory) -> Settings:
    settings = Settings(target="duckdb", duckdb_path=tmp_path_factory.mktemp("clean-r3") / "w.duckdb")
    build(settings, replay)
    return settings


def fill_keys(settings: Settings) -> set[str]:
    rows = query(settings, "select distinct account_id, symbol, position_side from {raw}.futures_trades")
    return {f"{r['account_id']}:{r['symbol']}_{r['position_side']}" for r in rows}


def r3_rows(settings: Settings, run_id: str) -> list[dict]:
    return [r for r in dq_alerts(settings, run_id) if r["check_id"] == "R3"]


def test_fresh_snapshots_pass_r3(clean, tmp_path):
    report = validate(clean, tmp_path)
    assert report.result("R3").status == "passed", report.render()


def test_no_snapshot_at_all_fails_r3_for_every_key_with_fills(clean, tmp_path):
    settings = copy_duckdb(clean, tmp_path / "w")
    query(settings, "delete from {raw}.position_snapshots")
    transform_r3(settings)
    report = validate(settings, tmp_path)
    assert report.result("R3").status == "failed" and report.exit_code == 1, report.render()
    rows = r3_rows(settings, report.run_id)
    missing = {r["check_key"] for r in rows if r["measure"] == "missing_snapshot"}
    assert missing == fill_keys(settings) and missing
    assert all(r["severity"] == "fail" and "no positionRisk snapshot" in r["detail"] for r in rows)


def test_a_fill_after_the_latest_snapshot_fails_r3_as_stale(clean, replay, tmp_path):
    settings = copy_duckdb(clean, tmp_path / "w")
    latest = query(settings, "select max(snapshot_time_ms) as t from {raw}.position_snapshots")[0]["t"]
    trades = replay_lines(replay, "futures_trades")
    fill = dict(trades[-1], id=max(t["id"] for t in trades) + 1000, time=int(latest) + 60_000)
    load_replay(
        late_records(tmp_path / "late", {"account_id": "default", "position_mode": "hedge"}, futures_trades=[fill]),
        settings,
    )
    transform_r3(settings)
    report = validate(settings, tmp_path)
    assert report.result("R3").status == "failed" and report.exit_code == 1, report.render()
    key = f"default:{fill['symbol']}_{fill['positionSide']}"
    stale = [r for r in r3_rows(settings, report.run_id) if r["measure"] == "stale_snapshot"]
    assert {r["check_key"] for r in stale} == {key}
    (row,) = stale
    assert int(row["expected"]) == fill["time"] and int(row["observed"]) == int(latest)
    assert "predates the last ingested fill" in row["detail"]
    assert key in failing_keys(settings, report.run_id, "R3")


def test_r8_names_a_dangling_explicit_link(clean, tmp_path):
    settings = copy_duckdb(clean, tmp_path / "w")
    links = [
        {"order_id": 987654321, "symbol": "BTCUSDT", "signal_id": "ghost_signal", "role": "entry"},
        {"client_order_id": "nobody-sent-this", "signal_id": "ghost_2", "role": "stop_loss"},
    ]
    account = {"account_id": "default", "position_mode": "hedge"}
    load_replay(late_records(tmp_path / "links", account, order_links=links), settings)
    transform_r3(settings, "recon_r8_linkage")
    report = validate(settings, tmp_path)
    dangling = {m.check_key: m for m in report.result("R8").mismatches if m.measure == "dangling_link"}
    assert set(dangling) == {"default:order:BTCUSDT:987654321", "default:client:nobody-sent-this"}
    assert "names signal ghost_signal" in dangling["default:order:BTCUSDT:987654321"].detail
    assert (
        "stop_loss link client:nobody-sent-this names signal ghost_2"
        in dangling["default:client:nobody-sent-this"].detail
    )
    rows = [r for r in dq_alerts(settings, report.run_id) if r["measure"] == "dangling_link"]
    assert {r["check_key"] for r in rows} == set(dangling) and {r["severity"] for r in rows} == {"warn"}
