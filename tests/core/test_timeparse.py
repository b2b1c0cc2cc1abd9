"""--since/--until: ISO dates and times, words, durations; anything else is one line naming the option."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stratpos.core.errors import StratposError
from stratpos.core.timeparse import TimeParseError, epoch_ms, parse_time

NOW = datetime(2026, 11, 30, 20, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T06:00", datetime(2026, 11, 1, 6, tzinfo=UTC)),
        ("2026-11-01 06:00:00Z", datetime(2026, 11, 1, 6, tzinfo=UTC)),
        ("2026-11-01T08:00+02:00", datetime(2026, 11, 1, 6, tzinfo=UTC)),
        ("now", NOW),
        ("NOW", NOW),
        ("today", datetime(2026, 11, 30, tzinfo=UTC)),
        ("yesterday", datetime(2026, 11, 29, tzinfo=UTC)),
        (" Yesterday ", datetime(2026, 11, 29, tzinfo=UTC)),
        ("2d", NOW - timedelta(days=2)),
        ("36h", NOW - timedelta(hours=36)),
        ("90m", NOW - timedelta(minutes=90)),
        ("1w", NOW - timedelta(weeks=1)),
        ("45s", NOW - timedelta(seconds=45)),
        ("1.5d", NOW - timedelta(hours=36)),
    ],
)
def test_accepted_forms(text, expected):
    got = parse_time(text, option="--since", now=NOW)
    assert got == expected and got.tzinfo is not None


def test_epoch_ms():
    assert epoch_ms(None) is None
    assert epoch_ms("1970-01-02") == 86_400_000
    assert epoch_ms("2d", now=NOW) == int((NOW - timedelta(days=2)).timestamp() * 1000)


@pytest.mark.parametrize("text", ["foo", "", "2 days", "-2d", "2026-13-01", "2x"])
def test_unreadable_is_one_line_naming_the_option(text):
    with pytest.raises(TimeParseError) as caught:
        parse_time(text, option="--since", now=NOW)
    assert str(caught.value) == (
        f"--since: cannot read {text.strip()!r} — use an ISO date (2026-11-01), 'yesterday', or a duration such as 2d"
    )
    assert isinstance(caught.value, StratposError) and caught.value.exit_code == 2
