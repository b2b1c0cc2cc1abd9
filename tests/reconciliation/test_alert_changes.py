"""Alerts on change (SPEC §5): what a channel hears over a sequence of validations, with the state
in the warehouse's audit schema on DuckDB and on MariaDB, delivered to a local webhook receiver.

The reports are built by hand (the checks' statuses come from GX in real runs; here only the
alerting is under test); the hours are passed as ``now``, so a day passes without waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from expectations import check_by_id
from stratpos.alerts import WebhookChannel, notify_changes
from stratpos.validate import CheckResult, ValidationReport
from tests.reconciliation.helpers import alert_payload, query
from tests.reconciliation.receivers import WebhookReceiver
from tests.reconciliation.test_alerts import mismatch

T0 = datetime(2026, 1, 7, 9, 0, tzinfo=UTC)


def report(hour: float, r3_keys: list[str], r8_keys: list[str]) -> ValidationReport:
    r3 = CheckResult(
        check_by_id("R3"), "failed" if r3_keys else "passed", [mismatch("R3", k, "1", "2") for k in r3_keys]
    )
    r8 = CheckResult(
        check_by_id("R8"), "warned" if r8_keys else "passed", [mismatch("R8", k, "0", "1", "warn") for k in r8_keys]
    )
    return ValidationReport(f"validate-h{hour}", "duckdb", T0 + timedelta(hours=hour), [r3, r8])


@pytest.fixture(params=["duckdb", pytest.param("mysql", marks=pytest.mark.mysql)])
def settings(request):
    return request.getfixturevalue(f"{request.param}_settings")


def test_a_channel_hears_changes_and_a_daily_digest_not_every_run(settings):
    with WebhookReceiver() as webhook:
        channel = WebhookChannel(webhook.url("/hook"))

        def run(hour: float, r3: list[str], r8: list[str]) -> list[dict]:
            """One validation; the (check, event, new keys) of each message the channel received."""
            seen = len(webhook.requests)
            rep = report(hour, r3, r8)
            notify_changes(settings, rep, [channel], now=rep.started_at)
            got = [alert_payload(r) for r in webhook.requests[seen:] if webhook.status == 200]
            return [[(c["check_id"], c["event"], c["new_keys"]) for c in p["checks"]] for p in got]

        standing = ["unattributed:default:SOLUSDT_LONG"]
        # a warning that starts: told once; the same warning again: nothing
        assert run(0, [], standing) == [[("R8", "started warning", [])]]
        assert run(1, [], standing) == []
        # R3 starts failing while the channel is down: the delivery fails, the channel keeps its state ...
        webhook.status = 500
        assert run(2, ["default:BTCUSDT_LONG"], standing) == []
        assert len(webhook.requests) == 1 + 3  # three attempts
        webhook.status = 200
        # ... and hears it on the next run; the standing R8 warning is not repeated
        assert run(3, ["default:BTCUSDT_LONG"], standing) == [[("R3", "started failing", ["default:BTCUSDT_LONG"])]]
        assert run(4, ["default:BTCUSDT_LONG"], standing) == []
        # a new failing key: told, with only that key as new
        assert run(5, ["default:BTCUSDT_LONG", "default:ETHUSDT_SHORT"], standing) == [
            [("R3", "new failing keys", ["default:ETHUSDT_SHORT"])]
        ]
        # a key that disappears while the check still fails: nothing to tell
        assert run(6, ["default:ETHUSDT_SHORT"], standing) == []
        # recovery: told once
        assert run(7, [], standing) == [[("R3", "recovered", [])]]
        assert run(8, [], standing) == []
        # a day after R8 was last told: one digest of what still does not pass, then quiet again
        assert run(24, [], standing) == [[("R8", "still not passing", [])]]
        assert run(25, [], standing) == []
        # the warning clears: told once
        assert run(26, [], []) == [[("R8", "recovered", [])]]
        assert run(27, [], []) == []

    [state] = query(settings, "select check_id, status, last_sent from {audit}.alert_state where check_id = 'R8'")
    assert state["status"] == "passed" and state["last_sent"] == datetime(2026, 1, 8, 11, 0)


def test_each_channel_keeps_its_own_state(settings):
    with WebhookReceiver() as webhook:
        first, second = WebhookChannel(webhook.url("/first")), WebhookChannel(webhook.url("/second"))
        failing = report(0, ["default:BTCUSDT_LONG"], [])
        notify_changes(settings, failing, [first], now=failing.started_at)
        again = report(1, ["default:BTCUSDT_LONG"], [])
        # the first channel was told already; the second, configured since, hears the failure now
        notify_changes(settings, again, [first, second], now=again.started_at)
        assert [r.body["run_id"] for r in webhook.on("/first")] == ["validate-h0"]
        assert [r.body["run_id"] for r in webhook.on("/second")] == ["validate-h1"]


def test_the_digest_interval_is_a_setting(duckdb_settings):
    """STRATPOS_ALERT_DIGEST_HOURS: a standing warning is told again after that many hours, not after a day."""
    settings = duckdb_settings.with_overrides(alert_digest_hours=6)
    standing = ["unattributed:default:SOLUSDT_LONG"]
    with WebhookReceiver() as webhook:
        channel = WebhookChannel(webhook.url("/hook"))
        told = []
        for hour in (0, 5, 6, 11, 12):
            seen = len(webhook.requests)
            rep = report(hour, [], standing)
            notify_changes(settings, rep, [channel], now=rep.started_at)
            told += [(hour, c["event"]) for r in webhook.requests[seen:] for c in alert_payload(r)["checks"]]
    assert told == [(0, "started warning"), (6, "still not passing"), (12, "still not passing")]
