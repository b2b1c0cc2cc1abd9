"""Compare the dbt marts with the paper exchange's ground truth, decimal by decimal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from stratpos.core.settings import Settings
from stratpos.core.warehouse import fetch_rows

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
    "other_fees",
    "funding_fees",
    "other_income",
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
JSON_COLUMNS = ("fees_by_asset",)  # {asset: native amount}, compared as exact decimals per asset


def mart_rows(settings: Settings, table: str) -> list[dict]:
    return fetch_rows(settings, "marts", table)


def _ms(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return round(dt.timestamp() * 1000)
    return int(value)


def _amounts(value) -> dict[str, Decimal] | None:
    """A JSON object of amounts (the mart's text, or the ground truth's object) as exact decimals."""
    if value is None:
        return None
    parsed = json.loads(value, parse_float=Decimal) if isinstance(value, str) else value
    return {asset: Decimal(str(amount)).normalize() for asset, amount in parsed.items()}


def normalise(row: dict, columns: set[str] | None = None) -> dict:
    """The comparable values of ``row``; only ``columns`` when given (what the ground truth has)."""

    def wanted(c: str) -> bool:
        return columns is None or c in columns

    out = {"strategy_position_id": row["strategy_position_id"]}
    for c in filter(wanted, DECIMAL_COLUMNS):
        v = row.get(c)
        out[c] = None if v is None else Decimal(str(v)).normalize()
    for c in filter(wanted, JSON_COLUMNS):
        out[c] = _amounts(row.get(c))
    for c in filter(wanted, TEXT_COLUMNS):
        out[c] = row.get(c)
    for c in filter(wanted, TIME_COLUMNS):
        out[c] = _ms(row.get(c))
    out["is_unattributed"] = bool(row.get("is_unattributed"))
    return out


def truth_columns(replay: Path) -> set[str]:
    """The columns the ground truth carries (older truth files lack the fee/income columns)."""
    with open(replay / "expected_strategy_positions.jsonl", encoding="utf-8") as fh:
        return set().union(*(json.loads(line).keys() for line in fh if line.strip()))


def expected_rows(replay: Path) -> dict[str, dict]:
    columns = truth_columns(replay)
    with open(replay / "expected_strategy_positions.jsonl", encoding="utf-8") as fh:
        return {r["strategy_position_id"]: normalise(r, columns) for r in map(json.loads, fh)}


def diff_against_truth(settings: Settings, replay: Path, limit: int = 20) -> list[str]:
    """Human-readable differences between marts.strategy_positions and the ground truth (empty = equal)."""
    columns = truth_columns(replay)
    expected = expected_rows(replay)
    actual = {r["strategy_position_id"]: normalise(r, columns) for r in mart_rows(settings, "strategy_positions")}
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
