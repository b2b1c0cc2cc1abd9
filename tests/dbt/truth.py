"""Compare the dbt marts with the paper exchange's ground truth, decimal by decimal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from stratpos.config import Settings
from stratpos.warehouse import fetch_rows

DECIMAL_COLUMNS = (
    "entry_quantity",
    "entry_price",
    "take_profit_price",
    "stop_loss_price",
    "exit_quantity",
    "exit_price",
    "open_quantity",
    "realized_pnl",
    "realized_pnl_pct",
    "fees",
    "funding_fees",
    "realized_pnl_net",
    "mark_price",
    "unrealized_pnl",
    "holding_seconds",
)
TEXT_COLUMNS = (
    "strategy_id",
    "signal_id",
    "account_id",
    "symbol",
    "side",
    "exchange_position_key",
    "exchange_position_id",
    "status",
    "close_reason",
)
TIME_COLUMNS = ("entry_time", "exit_time")


def mart_rows(settings: Settings, table: str) -> list[dict]:
    return fetch_rows(settings, "marts", table)


def _ms(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return round(dt.timestamp() * 1000)
    return int(value)


def normalise(row: dict) -> dict:
    out = {"strategy_position_id": row["strategy_position_id"]}
    for c in DECIMAL_COLUMNS:
        v = row.get(c)
        out[c] = None if v is None else Decimal(str(v)).normalize()
    for c in TEXT_COLUMNS:
        out[c] = row.get(c)
    for c in TIME_COLUMNS:
        out[c] = _ms(row.get(c))
    out["is_unattributed"] = bool(row.get("is_unattributed"))
    return out


def expected_rows(replay: Path) -> dict[str, dict]:
    with open(replay / "expected_strategy_positions.jsonl", encoding="utf-8") as fh:
        return {r["strategy_position_id"]: normalise(r) for r in map(json.loads, fh)}


def diff_against_truth(settings: Settings, replay: Path, limit: int = 20) -> list[str]:
    """Human-readable differences between marts.strategy_positions and the ground truth (empty = equal)."""
    expected = expected_rows(replay)
    actual = {r["strategy_position_id"]: normalise(r) for r in mart_rows(settings, "strategy_positions")}
    problems = []
    for missing in sorted(set(expected) - set(actual))[:limit]:
        problems.append(f"missing position {missing}")
    for extra in sorted(set(actual) - set(expected))[:limit]:
        problems.append(f"unexpected position {extra}")
    for key in sorted(set(expected) & set(actual)):
        e, a = expected[key], actual[key]
        for col in e:
            if e[col] != a[col]:
                problems.append(f"{key}.{col}: expected {e[col]!r}, got {a[col]!r}")
        if len(problems) >= limit:
            break
    return problems
