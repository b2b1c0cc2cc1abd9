"""Deterministic JSON-lines output with exact decimals.

Binance sends decimals as strings; signal sources sometimes send JSON numbers. This
writer can emit either without ever passing a value through a float, and always the
same bytes for the same input (stable key order, no whitespace variations).
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Context, Decimal
from pathlib import Path
from typing import Any

# Arithmetic context for all sandbox money maths: wide enough that no product or sum of
# 18-decimal values is rounded before we round it on purpose.
EXACT = Context(prec=80, rounding=ROUND_HALF_UP)
Q18 = Decimal("1e-18")
Q8 = Decimal("1e-8")


class Number(str):
    """A decimal rendered as a bare JSON number (not a quoted string)."""


def dec(value: Decimal | int | str) -> str:
    """Canonical plain string of a decimal: no exponent, no trailing zeros ("0.00100" -> "0.001")."""
    d = value if isinstance(value, Decimal) else Decimal(value)
    if d == 0:
        return "0"
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def q18(value: Decimal) -> Decimal:
    """Round half away from zero to 18 decimal places (the warehouse scale of SPEC §2)."""
    return value.quantize(Q18, rounding=ROUND_HALF_UP)


def q8(value: Decimal) -> Decimal:
    """Round half away from zero to 8 decimal places (Binance's money precision)."""
    return value.quantize(Q8, rounding=ROUND_HALF_UP)


def _encode(value: Any) -> str:
    if isinstance(value, Number):
        return str(value)
    if isinstance(value, Decimal):
        return json.dumps(dec(value))
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def dumps(record: dict[str, Any]) -> str:
    """One JSON object on one line; Decimals become strings, Numbers bare numbers."""
    return _encode(record)


class JsonlWriter:
    """Appends records to a .jsonl file, counting them; opened lazily so unused files are not created."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self._fh = None

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            self._fh = open(self.path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed in close()
        self._fh.write(dumps(record))
        self._fh.write("\n")
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_jsonl(path: Path):
    """Yield the objects of a .jsonl file (decimal strings stay strings; JSON numbers become Decimal)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line, parse_float=Decimal)
