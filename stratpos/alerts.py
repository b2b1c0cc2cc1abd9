"""Data-quality alerts (SPEC §5): a Slack incoming webhook, a generic JSON webhook and SMTP e-mail.

Channels come from the environment or, inside Airflow, from Airflow connections:

- Slack incoming webhook: ``STRATPOS_ALERT_SLACK_WEBHOOK`` (the webhook URL), or the
  connection ``stratpos_slack`` (password = the webhook URL or its token, host defaults to
  ``https://hooks.slack.com/services``);
- generic JSON webhook: ``STRATPOS_ALERT_WEBHOOK_URL`` and optionally
  ``STRATPOS_ALERT_WEBHOOK_TOKEN`` (sent as a bearer token), or the HTTP connection
  ``stratpos_webhook`` (schema, host, port, extra ``endpoint`` or ``url``; password = token);
- e-mail: ``STRATPOS_ALERT_SMTP_HOST``, ``_PORT`` (25), ``_USER``, ``_PASSWORD``, ``_FROM``,
  ``_TO`` (comma-separated), ``_SECURITY`` (``none``, ``starttls`` or ``ssl``; by default
  ``ssl`` on port 465, ``starttls`` on 587, else ``none``), or the connection ``stratpos_smtp``
  (host, port, login, password, extra ``from_email``, ``to``, ``security``).

An environment variable wins over the connection of the same channel. Airflow is consulted
only inside an Airflow task (``AIRFLOW_CTX_DAG_ID`` set) or when an ``AIRFLOW_CONN_STRATPOS_*``
variable defines the connection, so the CLI never waits on an Airflow metadata database.

URLs, tokens and passwords stay out of every log line, error message and ``repr``: a channel
describes itself by kind and host only, and a failed delivery reports the error's type and
HTTP status, never the request URL.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)
TIMEOUT_S = 10
SECURITIES = ("none", "starttls", "ssl")
MAX_KEYS_PER_CHECK = 10


class AlertConfigError(ValueError):
    """An alert channel is configured with a value stratpos cannot use; names the setting, not the secret."""


# --------------------------------------------------------------------------------------------- the message
@dataclass(frozen=True)
class AlertMessage:
    """One alert: the same content for every channel (plain text, Slack mrkdwn and JSON)."""

    run_id: str
    status: str
    subject: str
    text: str
    slack_text: str
    payload: dict


def build_message(report) -> AlertMessage:
    """The alert of a validation report (``stratpos.validate.ValidationReport``): every check that
    failed or warned, with its worst keys, expected vs observed, and the run."""
    checks = [r for r in report.results if r.status != "passed"]
    names = ", ".join(f"{r.check.check_id} {r.status}" for r in checks)
    subject = f"[stratpos] validation {report.status.upper()} on {report.target}: {names} (run {report.run_id})"
    text_lines = [f"stratpos reconciliation {report.status.upper()} — run {report.run_id} on {report.target}", ""]
    slack_lines = [
        f":rotating_light: *stratpos reconciliation {report.status.upper()}* — run `{report.run_id}` on {report.target}"
    ]
    payload_checks = []
    for r in checks:
        head = (
            f"{r.check.check_id} {r.check.name}: {r.status.upper()} — {len(r.failures)} failing, "
            f"{len(r.warnings)} warning mismatches ({r.check.title}; tolerance {r.check.tolerance})"
        )
        text_lines.append(head)
        slack_lines.append(f"*{r.check.check_id} {r.check.name}* {r.status.upper()}: {len(r.mismatches)} mismatches")
        if r.error:
            text_lines.append(f"  error: {r.error}")
            slack_lines.append(f"  error: {r.error}")
        worst = r.worst(MAX_KEYS_PER_CHECK)
        for m in worst:
            text_lines.append(f"  [{m.severity}] {m.describe()}")
            slack_lines.append(f"  • [{m.severity}] `{m.check_key}` {m.measure}: expected {_s(m.expected)}, "
                               f"observed {_s(m.observed)} (diff {_s(m.diff)})")  # fmt: skip
        if len(r.mismatches) > len(worst):
            more = f"  … and {len(r.mismatches) - len(worst)} more in audit.dq_alerts (run_id {report.run_id})"
            text_lines.append(more)
            slack_lines.append(more)
        text_lines.append("")
        payload_checks.append(
            {
                "check_id": r.check.check_id,
                "check": r.check.name,
                "status": r.status,
                "severity": r.check.severity,
                "description": r.check.title,
                "tolerance": r.check.tolerance,
                "mismatches": len(r.mismatches),
                "failing": len(r.failures),
                "error": r.error,
                "keys": [
                    {
                        "key": m.check_key,
                        "measure": m.measure,
                        "severity": m.severity,
                        "expected": _s(m.expected),
                        "observed": _s(m.observed),
                        "diff": _s(m.diff),
                        "detail": m.detail,
                    }
                    for m in worst
                ],
            }
        )
    if report.docs_index:
        text_lines.append(f"GX data docs: {report.docs_index}")
    payload = {
        "source": "stratpos",
        "run_id": report.run_id,
        "target": report.target,
        "status": report.status,
        "validated_at": report.started_at.isoformat(),
        "checks": payload_checks,
    }
    return AlertMessage(report.run_id, report.status, subject, "\n".join(text_lines), "\n".join(slack_lines), payload)


def task_failure_message(context: Mapping[str, Any]) -> AlertMessage:
    """The alert for an Airflow task that failed (the DAG's ``on_failure_callback`` context)."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = getattr(ti, "run_id", None) or str(context.get("run_id", "?"))
    try_number = getattr(ti, "try_number", None)
    exc = context.get("exception")
    # the exception's type and first line only: a driver's message may quote a connection string
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}" if exc else "unknown"
    subject = f"[stratpos] task {dag_id}.{task_id} failed (run {run_id})"
    text = f"stratpos: task {task_id} of DAG {dag_id} failed in run {run_id} (try {try_number}): {reason}"
    payload = {
        "source": "stratpos",
        "event": "task_failed",
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "try_number": try_number,
        "error": reason,
    }
    return AlertMessage(run_id, "failed", subject, text, f":x: {text}", payload)


def send_task_failure(context: Mapping[str, Any], channels: list | None = None) -> list[Delivery]:
    """Airflow failure callback: tell every configured channel which task of which run failed."""
    return send_alert(task_failure_message(context), load_channels() if channels is None else channels)


def _s(value) -> str | None:
    from decimal import Decimal

    return None if value is None else format(Decimal(value).normalize(), "f")


# --------------------------------------------------------------------------------------------- channels
@dataclass(frozen=True)
class Delivery:
    channel: str
    ok: bool
    error: str = ""


def _retrying_post(url: str, body: dict, headers: dict[str, str]) -> None:
    """POST JSON, retrying connection errors, timeouts, 429 and 5xx a few times."""
    import requests
    from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

    class _Retryable(Exception):
        pass

    @retry(
        retry=retry_if_exception(lambda e: isinstance(e, _Retryable | requests.ConnectionError | requests.Timeout)),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.5, max=4),
        reraise=True,
    )
    def post() -> None:
        resp = requests.post(url, json=body, headers=headers, timeout=TIMEOUT_S)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Retryable(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise RuntimeError(f"HTTP {resp.status_code}")

    post()


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


@dataclass(frozen=True)
class SlackChannel:
    webhook_url: str = field(repr=False)

    def describe(self) -> str:
        return f"slack ({_host(self.webhook_url)})"

    def send(self, message: AlertMessage) -> None:
        _retrying_post(self.webhook_url, {"text": message.slack_text}, {})


@dataclass(frozen=True)
class WebhookChannel:
    url: str = field(repr=False)
    token: str = field(default="", repr=False)

    def describe(self) -> str:
        return f"webhook ({_host(self.url)})"

    def send(self, message: AlertMessage) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        _retrying_post(self.url, message.payload, headers)


@dataclass(frozen=True)
class SmtpChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str = ""
    password: str = field(default="", repr=False)
    security: str = "none"

    def describe(self) -> str:
        return f"smtp ({self.host}:{self.port})"

    def send(self, message: AlertMessage) -> None:
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail.set_content(message.text)
        mail.add_attachment(
            json.dumps(message.payload, indent=2).encode(),
            maintype="application",
            subtype="json",
            filename=f"{message.run_id}.json",
        )
        smtp_cls = smtplib.SMTP_SSL if self.security == "ssl" else smtplib.SMTP
        with smtp_cls(self.host, self.port, timeout=TIMEOUT_S) as smtp:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls()
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(mail)


Channel = SlackChannel | WebhookChannel | SmtpChannel


def send_alert(message: AlertMessage, channels: list[Channel]) -> list[Delivery]:
    """Send ``message`` to every channel; a channel that fails does not stop the others."""
    deliveries = []
    for channel in channels:
        name = channel.describe()
        try:
            channel.send(message)
        except smtplib.SMTPException as exc:
            deliveries.append(Delivery(name, False, f"{type(exc).__name__}: {exc}"[:300]))
        except Exception as exc:  # requests' messages carry the URL (a secret): report the type only
            reason = str(exc) if isinstance(exc, RuntimeError) and str(exc).startswith("HTTP ") else ""
            deliveries.append(Delivery(name, False, f"{type(exc).__name__}{': ' + reason if reason else ''}"))
        else:
            deliveries.append(Delivery(name, True))
            log.info("alert of run %s sent via %s", message.run_id, name)
            continue
        log.error("alert of run %s via %s failed: %s", message.run_id, name, deliveries[-1].error)
    return deliveries


# --------------------------------------------------------------------------------------------- configuration
def _default_security(port: int) -> str:
    return "ssl" if port == 465 else "starttls" if port == 587 else "none"


def _port(raw: Any, name: str, default: int) -> int:
    if raw in (None, ""):
        return default
    try:
        port = int(raw)
    except (TypeError, ValueError):
        raise AlertConfigError(f"{name} must be a TCP port, got {raw!r}") from None
    if not 0 < port < 65536:
        raise AlertConfigError(f"{name} must be a TCP port (1-65535), got {port}")
    return port


def _smtp(host: str, port: Any, user: str, password: str, sender: str, to: Any, security: str, where: str):
    port_no = _port(port, f"{where} port", 25)
    recipients = tuple(a.strip() for a in (to if isinstance(to, list) else str(to or "").split(",")) if a.strip())
    if not recipients:
        raise AlertConfigError(f"{where}: no recipient (to) configured")
    security = (security or _default_security(port_no)).lower()
    if security not in SECURITIES:
        raise AlertConfigError(f"{where}: security must be one of {', '.join(SECURITIES)}, got {security!r}")
    sender = sender or (user if "@" in user else f"stratpos@{host}")
    return SmtpChannel(host, port_no, sender, recipients, user, password, security)


def _airflow_connection(conn_id: str, env: Mapping[str, str]):
    """The Airflow connection ``conn_id``, when Airflow can be asked without side effects; else None."""
    if not (env.get("AIRFLOW_CTX_DAG_ID") or env.get(f"AIRFLOW_CONN_{conn_id.upper()}")):
        return None
    if importlib.util.find_spec("airflow") is None:
        return None
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow 2
        from airflow.hooks.base import BaseHook
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # not defined (or no metadata DB): the channel is simply not configured
        log.debug("Airflow connection %s unavailable: %s", conn_id, type(exc).__name__)
        return None


def _slack_url_from(conn) -> str:
    secret = conn.password or ""
    if secret.startswith(("http://", "https://")):
        return secret
    host = conn.host or "https://hooks.slack.com/services"
    if "://" not in host:
        host = f"https://{host}"
    return host.rstrip("/") + ("/" + secret.lstrip("/") if secret else "")


def _http_url_from(conn) -> str:
    extra = conn.extra_dejson or {}
    if extra.get("url"):
        return str(extra["url"])
    host = conn.host or ""
    if "://" not in host:
        host = f"{conn.schema or 'https'}://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc if not conn.port or parts.port else f"{parts.netloc}:{conn.port}"
    path = parts.path
    endpoint = str(extra.get("endpoint") or "")
    if endpoint:
        path = path.rstrip("/") + "/" + endpoint.lstrip("/")
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


def load_channels(env: Mapping[str, str] | None = None) -> list[Channel]:
    """The configured alert channels (environment first, then Airflow connections)."""
    env = os.environ if env is None else env
    channels: list[Channel] = []

    slack = env.get("STRATPOS_ALERT_SLACK_WEBHOOK", "").strip()
    if not slack and (conn := _airflow_connection("stratpos_slack", env)) is not None:
        slack = _slack_url_from(conn)
    if slack:
        channels.append(SlackChannel(slack))

    url = env.get("STRATPOS_ALERT_WEBHOOK_URL", "").strip()
    token = env.get("STRATPOS_ALERT_WEBHOOK_TOKEN", "")
    if not url and (conn := _airflow_connection("stratpos_webhook", env)) is not None:
        url, token = _http_url_from(conn), conn.password or ""
    if url:
        channels.append(WebhookChannel(url, token))

    host = env.get("STRATPOS_ALERT_SMTP_HOST", "").strip()
    if host:
        channels.append(
            _smtp(
                host,
                env.get("STRATPOS_ALERT_SMTP_PORT", "").strip(),
                env.get("STRATPOS_ALERT_SMTP_USER", "").strip(),
                env.get("STRATPOS_ALERT_SMTP_PASSWORD", ""),
                env.get("STRATPOS_ALERT_SMTP_FROM", "").strip(),
                env.get("STRATPOS_ALERT_SMTP_TO", ""),
                env.get("STRATPOS_ALERT_SMTP_SECURITY", "").strip(),
                "STRATPOS_ALERT_SMTP_*",
            )
        )
    elif (conn := _airflow_connection("stratpos_smtp", env)) is not None and conn.host:
        extra = conn.extra_dejson or {}
        channels.append(
            _smtp(
                conn.host,
                conn.port,
                conn.login or "",
                conn.password or "",
                str(extra.get("from_email") or ""),
                extra.get("to") or "",
                str(extra.get("security") or ""),
                "Airflow connection stratpos_smtp",
            )
        )
    return channels
