"""Times given on the command line and in DAG parameters: ISO dates/times, words, durations.

``2026-11-01``, ``2026-11-01T06:00``, ``2026-11-01 06:00:00+02:00`` (no zone = UTC), ``now``,
``today`` (00:00 UTC), ``yesterday`` (00:00 UTC the day before), and a duration back from now:
``90m``, ``36h``, ``2d``, ``1w`` (also ``30s``). Anything else is one line naming the option.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from stratpos.core.errors import StratposError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class TimeParseError(StratposError, ValueError):
    """A time option that cannot be read; the message names the option and the accepted forms."""

    exit_code = 2


def parse_time(value: str | datetime, *, option: str = "time", now: datetime | None = None) -> datetime:
    """``value`` as an aware UTC datetime; :class:`TimeParseError` names ``option`` when it cannot."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    text = str(value).strip()
    word = text.lower()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if word == "now":
        return now
    if word == "today":
        return midnight
    if word == "yesterday":
        return midnight - timedelta(days=1)
    if match := _DURATION.match(word):
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        dt = datetime.fromisoformat(text)  # 3.11: any ISO 8601 form, Z included
    except ValueError:
        raise TimeParseError(
            f"{option}: cannot read {text!r} — use an ISO date (2026-11-01), 'yesterday', or a duration such as 2d"
        ) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def epoch_ms(value: str | datetime | None, *, option: str = "time", now: datetime | None = None) -> int | None:
    """``value`` (see :func:`parse_time`) as epoch milliseconds; None stays None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return int(parse_time(value, option=option, now=now).timestamp() * 1000)
