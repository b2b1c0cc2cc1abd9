"""Formatting of warehouse values for the page and the console: nothing here computes a metric.

Money stays :class:`~decimal.Decimal` from the warehouse to the text; only formatting rounds,
to cents for USD stablecoins and to 8 places (a satoshi) for other assets.
"""

from __future__ import annotations

import decimal
import html
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

STABLE_ASSETS = frozenset({"USDT", "USDC", "BUSD", "FDUSD"})
DASH = "—"
_CENT = Decimal("0.01")
_SATOSHI = Decimal("0.00000001")


def dec(value) -> Decimal | None:
    """A warehouse value as Decimal (DECIMAL arrives as Decimal; be lenient with the rest)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    try:
        d = Decimal(str(value).strip())
    except decimal.InvalidOperation:
        return None
    return d if d.is_finite() else None


def ms(value) -> int | None:
    """A timestamp or date as epoch ms; naive values are UTC, a date is its midnight."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return round(value.timestamp() * 1000)
    return int(value)


def utc(when: int | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return DASH if when is None else datetime.fromtimestamp(when / 1000, UTC).strftime(fmt)


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def step(asset: str | None) -> Decimal:
    """Display precision of an amount: cents for USD stablecoins, 8 places (a satoshi) for other assets."""
    return _CENT if asset is None or asset in STABLE_ASSETS else _SATOSHI


def money(value, asset: str | None = None) -> str:
    d = dec(value)
    if d is None:
        return DASH
    s = step(asset)
    q = d.quantize(s, rounding=ROUND_HALF_UP)
    if q == 0:
        q = abs(q)  # never "-0.00"
    return f"{q:,.{-s.as_tuple().exponent}f}"


def number(value, asset: str) -> str:
    """An amount for the console: cents for stablecoins, up to 8 decimals (trailing zeros dropped) otherwise."""
    d = dec(value)
    if d is None:
        return DASH
    text = money(d, asset)
    if asset not in STABLE_ASSETS:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def num(value, places: int = 8) -> str:
    """A quantity or price: up to ``places`` decimals, trailing zeros dropped."""
    d = dec(value)
    if d is None:
        return DASH
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP).normalize()
    return "0" if q == 0 else f"{q:,f}"


def ratio(value, places: int = 2) -> str:
    """A ratio from a mart (profit factor, Sharpe): ``places`` decimals; NULL is a dash."""
    d = dec(value)
    if d is None:
        return DASH
    return f"{d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):,f}"


def pct(value, places: int = 1) -> str:
    """A rate from a mart (0.4681… → "46.8 %"); NULL (no denominator) is a dash."""
    d = dec(value)
    if d is None:
        return DASH
    return f"{(d * 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)} %"


def exact(value) -> str:
    """A check value as written (expected/observed/diff): exact, without exponent."""
    if value is None:
        return DASH
    if isinstance(value, str):
        return value
    d = dec(value)
    return str(value) if d is None else f"{d.normalize():f}"


def sign_class(value, asset: str | None = None) -> str:
    d = dec(value)
    if d is None:
        return ""
    q = d.quantize(step(asset), rounding=ROUND_HALF_UP)
    return "pos" if q > 0 else "neg" if q < 0 else ""


def money_td(value, asset: str | None = None) -> str:
    cls = sign_class(value, asset)
    text = money(value, asset)
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def count(value) -> str:
    return DASH if value is None else f"{int(value):,}"


def asset_order(assets: Iterable[str]) -> list[str]:
    """USDT first (the usual book), then the others alphabetically, unknown ones last."""
    return sorted(set(assets), key=lambda a: (a != "USDT", a.startswith("unknown:"), a))
