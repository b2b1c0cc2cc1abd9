"""Alert channels (SPEC §5): configuration from the environment or Airflow connections, delivery to a
local webhook receiver and SMTP sink, and secrets that never reach a log line, an error or a repr."""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, datetime
from decimal import Decimal as D
from types import SimpleNamespace

import pytest

from expectations import check_by_id
from stratpos.alerts import (
    TRANSPORT_LOGGERS,
    SlackChannel,
    SmtpChannel,
    WebhookChannel,
    build_message,
    load_channels,
    send_alert,
    send_task_failure,
)
from stratpos.core.errors import ConfigError
from stratpos.validate import CheckResult, Mismatch, ValidationReport
from tests.reconciliation.helpers import alert_env, alert_payload
from tests.reconciliation.receivers import SmtpSink, WebhookReceiver

SECRETS = ("secret-slack-token", "secret-webhook-token", "secret-smtp-password")


@pytest.fixture
def receivers():
    with WebhookReceiver() as webhook, SmtpSink() as smtp:
        yield webhook, smtp


def mismatch(check_id: str, key: str, expected: str, observed: str, severity: str = "fail") -> Mismatch:
    check = check_by_id(check_id)
    e, o = D(expected), D(observed)
    return Mismatch(check_id, check.name, severity, key, "position_amount", e, o, o - e, D("1e-9"), "detail")


def report_with(*results: CheckResult) -> ValidationReport:
    return ValidationReport("validate-test-1", "duckdb", datetime(2026, 1, 7, tzinfo=UTC), list(results))


def failing_report() -> ValidationReport:
    r3 = CheckResult(
        check_by_id("R3"),
        "failed",
        [
            mismatch("R3", "default:BTCUSDT_LONG", "0.014", "0.013"),
            mismatch("R3", "default:ETHUSDT_SHORT", "-1", "-1.5"),
        ],
    )
    r8 = CheckResult(
        check_by_id("R8"),
        "warned",
        [mismatch("R8", f"unattributed:default:SOLUSDT_LONG:{i}", "0", "1", "warn") for i in range(12)],
    )
    return report_with(r3, r8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------- configuration
def test_no_configuration_means_no_channels():
    assert load_channels({}) == []


def test_channels_from_the_environment(receivers):
    env = alert_env(*receivers)
    slack, hook, mail = load_channels(env)
    assert isinstance(slack, SlackChannel) and slack.webhook_url.endswith("/slack/T000/B000/secret-slack-token")
    assert isinstance(hook, WebhookChannel) and hook.token == "secret-webhook-token"
    assert isinstance(mail, SmtpChannel)
    assert (mail.host, mail.user, mail.sender, mail.security) == (
        "127.0.0.1",
        "alerts",
        "stratpos@example.test",
        "none",
    )
    assert mail.recipients == ("desk@example.test", "risk@example.test")
    for channel in (slack, hook, mail):
        assert not any(secret in repr(channel) or secret in channel.describe() for secret in SECRETS)


@pytest.mark.parametrize(("port", "security"), [("465", "ssl"), ("587", "starttls"), ("25", "none"), ("", "none")])
def test_smtp_security_defaults_by_port(port, security):
    [mail] = load_channels(
        {"STRATPOS_ALERT_SMTP_HOST": "mx", "STRATPOS_ALERT_SMTP_PORT": port, "STRATPOS_ALERT_SMTP_TO": "a@b"}
    )
    assert mail.security == security and mail.port == int(port or 25)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STRATPOS_ALERT_SMTP_PORT": "smtp"}, "STRATPOS_ALERT_SMTP_PORT must be an integer"),
        ({"STRATPOS_ALERT_SMTP_PORT": "70000"}, "STRATPOS_ALERT_SMTP_PORT must be a TCP port"),
        ({"STRATPOS_ALERT_SMTP_TO": ""}, "recipient"),
        ({"STRATPOS_ALERT_SMTP_SECURITY": "tls13"}, "STRATPOS_ALERT_SMTP_SECURITY must be one of"),
    ],
)
def test_bad_smtp_settings_are_named_without_the_secret(env, message):
    base = {
        "STRATPOS_ALERT_SMTP_HOST": "mx",
        "STRATPOS_ALERT_SMTP_TO": "a@b",
        "STRATPOS_ALERT_SMTP_PASSWORD": "secret-smtp-password",
    }
    with pytest.raises(ConfigError, match=message) as err:  # AlertConfigError is one
        load_channels({**base, **env})
    assert "secret-smtp-password" not in str(err.value)


def test_channels_from_airflow_connections(receivers, monkeypatch):
    webhook, smtp = receivers
    env = {
        "AIRFLOW_CONN_STRATPOS_SLACK": json.dumps(
            {"conn_type": "slackwebhook", "host": webhook.url("/slack"), "password": "T1/B1/secret-slack-token"}
        ),
        "AIRFLOW_CONN_STRATPOS_WEBHOOK": json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": webhook.port,
                "schema": "http",
                "password": "secret-webhook-token",
                "extra": {"endpoint": "/airflow-hook"},
            }
        ),
        "AIRFLOW_CONN_STRATPOS_SMTP": json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp.port,
                "login": "alerts",
                "password": "secret-smtp-password",
                "extra": {"from_email": "airflow@example.test", "to": "desk@example.test"},
            }
        ),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # Airflow reads AIRFLOW_CONN_* from the process environment
    slack, hook, mail = load_channels(env)
    assert slack.webhook_url == webhook.url("/slack/T1/B1/secret-slack-token")
    assert (hook.url, hook.token) == (webhook.url("/airflow-hook"), "secret-webhook-token")
    assert (mail.port, mail.sender, mail.recipients, mail.password) == (
        smtp.port,
        "airflow@example.test",
        ("desk@example.test",),
        "secret-smtp-password",
    )
    # an environment variable of the same channel wins over the connection
    [first, *_] = load_channels({**env, "STRATPOS_ALERT_SLACK_WEBHOOK": webhook.url("/from-env")})
    assert first.webhook_url == webhook.url("/from-env")


# --------------------------------------------------------------------------------------------- delivery
def test_an_alert_names_the_check_keys_expected_observed_and_run(receivers):
    webhook, smtp = receivers
    deliveries = send_alert(build_message(failing_report()), load_channels(alert_env(webhook, smtp)))
    assert [d.ok for d in deliveries] == [True, True, True]

    [hook] = webhook.on("/hook")
    assert hook.headers["Authorization"] == "Bearer secret-webhook-token"
    assert {k: hook.body[k] for k in ("source", "event", "run_id", "status", "target", "type")} == {
        "source": "stratpos",
        "event": "validation",
        "run_id": "validate-test-1",
        "status": "failed",
        "target": "duckdb",
        "type": "failure",
    }
    body = alert_payload(hook)
    assert (body["run_id"], body["status"], body["target"]) == ("validate-test-1", "failed", "duckdb")
    r3 = body["checks"][0]
    assert (r3["check_id"], r3["status"], r3["failing"], r3["event"]) == ("R3", "failed", 2, "started failing")
    assert r3["keys"][0] == {
        "key": "default:ETHUSDT_SHORT",  # the worst first: |diff| 0.5 before 0.001
        "measure": "position_amount",
        "severity": "fail",
        "expected": "-1",
        "observed": "-1.5",
        "diff": "-0.5",
        "detail": "detail",
    }
    r8 = body["checks"][1]
    assert (r8["status"], r8["mismatches"], len(r8["keys"])) == ("warned", 12, 10)
    assert (
        hook.body["title"].startswith("[stratpos] validation FAILED")
        and "R3 exchange_positions" in hook.body["message"]
    )

    [slack] = webhook.on("/slack/T000/B000/secret-slack-token")
    assert list(slack.body) == ["text"]  # a Slack incoming webhook takes {"text": …}
    assert "validate-test-1" in slack.body["text"] and "`default:BTCUSDT_LONG`" in slack.body["text"]

    assert sorted(r for m in smtp.mails for r in m.recipients) == ["desk@example.test", "risk@example.test"]
    mail = smtp.mails[0]
    assert mail.subject == (
        "[stratpos] validation FAILED on duckdb: R3 started failing, R8 started warning (run validate-test-1)"
    )
    assert "default:BTCUSDT_LONG position_amount: expected 0.014, observed 0.013 (diff -0.001)" in mail.text
    assert "… and 2 more in audit.dq_alerts (run_id validate-test-1)" in mail.text
    attachment = next(p for p in mail.message.iter_attachments())
    assert json.loads(attachment.get_content())["run_id"] == "validate-test-1"
    assert mail.auth is not None and mail.sender == "stratpos@example.test"


def test_a_failing_channel_does_not_stop_the_others_and_leaks_no_secret(receivers, caplog):
    webhook, smtp = receivers
    env = alert_env(webhook, smtp)
    env["STRATPOS_ALERT_SLACK_WEBHOOK"] = f"http://127.0.0.1:{free_port()}/services/secret-slack-token"  # refused
    webhook.status = 403  # the JSON webhook rejects
    caplog.set_level(logging.DEBUG)
    # an earlier CLI test in this process may have run configure_logging, which raises these loggers' levels
    for name in TRANSPORT_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    deliveries = send_alert(build_message(failing_report()), load_channels(env))
    assert [(d.channel, d.ok) for d in deliveries] == [
        ("slack (127.0.0.1)", False),
        ("webhook (127.0.0.1)", False),
        (f"smtp (127.0.0.1:{smtp.port})", True),
    ]
    assert deliveries[0].error and "403" in deliveries[1].error
    assert len(webhook.on("/hook")) == 3  # tried three times
    assert len(smtp.mails) == 2  # one per recipient
    text = caplog.text + " ".join(d.error for d in deliveries)
    assert "alert of run validate-test-1 via webhook (127.0.0.1) failed" in caplog.text
    assert not any(secret in text for secret in SECRETS)
    # apprise logs each request's URL at DEBUG: there, the secret part is scrubbed
    assert "JSON POST URL: *** " in caplog.text and "Bearer%20***" in caplog.text


def test_airflow_task_failure_callback_alerts(receivers):
    webhook, smtp = receivers
    ti = SimpleNamespace(dag_id="stratpos_hourly", task_id="ingest_signals", run_id="manual__2026-01-07", try_number=1)
    context = {"task_instance": ti, "exception": RuntimeError("cannot read the landing folder\ntraceback …")}
    deliveries = send_task_failure(context, load_channels(alert_env(webhook, smtp)))
    assert all(d.ok for d in deliveries)
    [hook] = webhook.on("/hook")
    assert alert_payload(hook) == {
        "source": "stratpos",
        "event": "task_failed",
        "dag_id": "stratpos_hourly",
        "task_id": "ingest_signals",
        "run_id": "manual__2026-01-07",
        "try_number": 1,
        "error": "RuntimeError: cannot read the landing folder",
    }
    assert (hook.body["event"], hook.body["task_id"]) == ("task_failed", "ingest_signals")
    assert smtp.mails[0].subject == "[stratpos] task stratpos_hourly.ingest_signals failed (run manual__2026-01-07)"
