"""Data-quality alerts (SPEC §5): told on change, delivered through apprise.

**What a channel hears.** Every validation writes all its mismatches to ``audit.dq_alerts``
(the table is always a channel). The other channels hear only what changed since they last
heard, judged from ``audit.alert_state`` / ``audit.alert_keys`` (one row per channel and check,
and the failing keys that channel was told about):

- a check that **starts failing** (with its worst keys);
- a **new failing key** of a check that was already failing;
- a check that **recovers** (failing or warning → passed, or failing → warning);
- a check that **starts warning** (passed → warned);
- standing failures and warnings (R8 always warns on a real account) at most **once a day**
  (``STRATPOS_ALERT_DIGEST_HOURS``, default 24), together in one digest.

One message per validation and channel holds all of that; nothing changed → no message. The
state of a channel moves only when its message was delivered, so a channel that was down hears
the change on the next run. The same warning twice → one message.

**Channels** come from the settings (:mod:`stratpos.core.settings`, i.e. the environment or
``.env``) or, inside Airflow, from Airflow connections:

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

**Transport** is apprise (its JSON plugin for both webhooks, its e-mail plugin for SMTP): the
Slack webhook receives ``{"text": <mrkdwn>}``; the generic webhook apprise's JSON document
(``title`` = subject, ``message`` = plain text, ``type``) plus ``source``, ``event``,
``run_id``, ``status`` and ``target``, with the structured alert as the attachment
``<run_id>.json``; e-mail the plain text with the same attachment (one mail per recipient).

**Secrets** (webhook URLs, tokens, passwords) stay out of every log line at every level
(apprise and urllib3 log request URLs at DEBUG): :class:`SecretFilter` replaces them with
``***`` on every handler of the root logger and on the transport libraries' loggers. A
channel describes itself by kind and host only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from stratpos.core.errors import ConfigError

log = logging.getLogger(__name__)
SECURITIES = ("none", "starttls", "ssl")
MAX_KEYS_PER_CHECK = 10
DIGEST_EVERY = timedelta(days=1)  # the default of the setting alert_digest_hours (STRATPOS_ALERT_DIGEST_HOURS)
ATTEMPTS = 3  # a channel that fails is tried again after 0.5 s, then 1 s
TRANSPORT_LOGGERS = ("apprise", "urllib3", "requests")


class AlertConfigError(ConfigError):
    """An alert channel is configured with a value stratpos cannot use; names the setting, not the secret."""


# --------------------------------------------------------------------------------------------- secrets in logs
class SecretFilter(logging.Filter):
    """Replaces every registered secret in a log record (message, arguments, traceback) with ``***``."""

    def __init__(self) -> None:
        super().__init__("stratpos.secrets")
        self.secrets: set[str] = set()

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):  # a URL before the token inside it
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler to report
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        scrubbed = self.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


SECRET_FILTER = SecretFilter()


def protect_secrets(secrets: Iterable[str]) -> None:
    """Register ``secrets`` and make sure every root handler and transport logger scrubs them.

    Called whenever channels are loaded, so handlers configured since (e.g. ``-v``) get the filter too.
    """
    SECRET_FILTER.secrets.update(s for s in secrets if s and len(s) >= 4)
    for handler in logging.getLogger().handlers:
        if SECRET_FILTER not in handler.filters:
            handler.addFilter(SECRET_FILTER)
    for name in TRANSPORT_LOGGERS:
        logger = logging.getLogger(name)
        if SECRET_FILTER not in logger.filters:
            logger.addFilter(SECRET_FILTER)


def _url_secrets(url: str) -> list[str]:
    """A URL and the parts of it a library may log on their own (path, query, credentials)."""
    out = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    if len(parts.path) > 1:
        out += [parts.path, quote(parts.path)]
    out += [parts.query, parts.password or ""]
    return out


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
    event: str = "validation"


# what changed for one check, as a channel hears it
STARTED_FAILING, NEW_KEYS, RECOVERED, STARTED_WARNING, STANDING = (
    "started failing",
    "new failing keys",
    "recovered",
    "started warning",
    "still not passing",
)


@dataclass(frozen=True)
class CheckEvent:
    """One check in a message: what happened and which keys are new to this channel."""

    result: Any  # stratpos.validate.CheckResult
    event: str
    previous: str
    new_keys: frozenset[str] = frozenset()


def build_message(report, events: list[CheckEvent] | None = None) -> AlertMessage:
    """The alert of a validation report (``stratpos.validate.ValidationReport``): for each check in
    ``events`` (default: every check that did not pass, as news) what happened, its worst keys
    (new ones first), expected vs observed, and the run."""
    if events is None:
        events = [CheckEvent(r, STARTED_FAILING if r.status == "failed" else STARTED_WARNING, "passed")
                  for r in report.results if r.status != "passed"]  # fmt: skip
    names = ", ".join(f"{e.result.check.check_id} {e.event}" for e in events)
    status = report.status.upper()
    subject = f"[stratpos] validation {status} on {report.target}: {names} (run {report.run_id})"
    text_lines = [f"stratpos reconciliation {status} — run {report.run_id} on {report.target}", ""]
    icon = {"failed": ":rotating_light:", "warned": ":warning:"}.get(report.status, ":white_check_mark:")
    slack_lines = [f"{icon} *stratpos reconciliation {status}* — run `{report.run_id}` on {report.target}"]
    payload_checks = []
    for e in events:
        r = e.result
        head = (
            f"{r.check.check_id} {r.check.name}: {r.status.upper()} ({e.event}, was {e.previous}) — "
            f"{len(r.failures)} failing, {len(r.warnings)} warning mismatches ({r.check.title}; "
            f"tolerance {r.check.tolerance})"
        )
        if e.new_keys:
            head += f"; {len(e.new_keys)} new failing keys"
        text_lines.append(head)
        slack_lines.append(
            f"*{r.check.check_id} {r.check.name}* {r.status.upper()} ({e.event}): {len(r.mismatches)} mismatches"
        )
        if r.error:
            text_lines.append(f"  error: {r.error}")
            slack_lines.append(f"  error: {r.error}")
        worst = sorted(
            r.mismatches,
            key=lambda m: (m.check_key not in e.new_keys, m.severity != "fail", -abs(m.diff or 0), m.check_key),
        )[:MAX_KEYS_PER_CHECK]
        for m in worst:
            new = " (new)" if m.check_key in e.new_keys else ""
            text_lines.append(f"  [{m.severity}] {m.describe()}{new}")
            slack_lines.append(f"  • [{m.severity}] `{m.check_key}` {m.measure}: expected {_s(m.expected)}, "
                               f"observed {_s(m.observed)} (diff {_s(m.diff)}){new}")  # fmt: skip
        if len(r.mismatches) > len(worst):
            more = f"  … and {len(r.mismatches) - len(worst)} more in audit.dq_alerts (run_id {report.run_id})"
            text_lines.append(more)
            slack_lines.append(more)
        text_lines.append("")
        payload_checks.append(
            {
                "check_id": r.check.check_id,
                "check": r.check.name,
                "event": e.event,
                "previous_status": e.previous,
                "status": r.status,
                "severity": r.check.severity,
                "description": r.check.title,
                "tolerance": r.check.tolerance,
                "mismatches": len(r.mismatches),
                "failing": len(r.failures),
                "new_keys": sorted(e.new_keys),
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
        "event": "validation",
        "run_id": report.run_id,
        "target": report.target,
        "status": report.status,
        "validated_at": report.started_at.isoformat(),
        "checks": payload_checks,
    }
    return AlertMessage(report.run_id, report.status, subject, "\n".join(text_lines), "\n".join(slack_lines), payload)


def task_failure_message(context: Mapping[str, Any]) -> AlertMessage:
    """The alert for an Airflow task that failed (a failure callback's context)."""
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
    return AlertMessage(run_id, "failed", subject, text, f":x: {text}", payload, "task_failed")


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


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12]


def _apprise_json_url(url: str, params: dict[str, str]) -> str:
    """apprise's JSON plugin (``json://`` / ``jsons://``) posting to ``url`` with extra ``params``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AlertConfigError(f"a webhook URL must be http(s)://host/…, got a {parts.scheme or 'schemeless'} URL")
    scheme = "jsons" if parts.scheme == "https" else "json"
    query = "&".join(filter(None, [parts.query, urlencode(params, quote_via=quote)]))
    return urlunsplit((scheme, parts.netloc, parts.path or "/", query, ""))


@dataclass(frozen=True)
class SlackChannel:
    webhook_url: str = field(repr=False)
    kind = "slack"

    def describe(self) -> str:
        return f"slack ({_host(self.webhook_url)})"

    @property
    def state_id(self) -> str:
        return f"slack:{_digest(self.webhook_url)}"

    def secrets(self) -> list[str]:
        return _url_secrets(self.webhook_url)

    def apprise_url(self, message: AlertMessage) -> str:
        # an incoming webhook takes {"text": …}: apprise's JSON document with `message` renamed and the rest dropped
        drop = {":version": "", ":title": "", ":attachments": "", ":type": "", ":message": "text"}
        return _apprise_json_url(self.webhook_url, drop)

    def body(self, message: AlertMessage) -> tuple[str, str]:
        return "", message.slack_text


@dataclass(frozen=True)
class WebhookChannel:
    url: str = field(repr=False)
    token: str = field(default="", repr=False)
    kind = "webhook"

    def describe(self) -> str:
        return f"webhook ({_host(self.url)})"

    @property
    def state_id(self) -> str:
        return f"webhook:{_digest(self.url)}"

    def secrets(self) -> list[str]:
        return [*_url_secrets(self.url), self.token, quote(self.token)]

    def apprise_url(self, message: AlertMessage) -> str:
        fields = ("source", "event", "run_id", "status", "target", "dag_id", "task_id")
        params = {f":{k}": str(message.payload[k]) for k in fields if message.payload.get(k) is not None}
        if self.token:
            params["+Authorization"] = f"Bearer {self.token}"
        return _apprise_json_url(self.url, params)

    def body(self, message: AlertMessage) -> tuple[str, str]:
        return message.subject, message.text


@dataclass(frozen=True)
class SmtpChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str = ""
    password: str = field(default="", repr=False)
    security: str = "none"
    kind = "email"

    def describe(self) -> str:
        return f"smtp ({self.host}:{self.port})"

    @property
    def state_id(self) -> str:
        return f"email:{_digest(self.host, self.port, *sorted(self.recipients))}"

    def secrets(self) -> list[str]:
        return [self.password, quote(self.password, safe="")]

    def apprise_url(self, message: AlertMessage) -> str:
        creds = ""
        if self.user:
            creds = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "") + "@"
        mode = {"none": "insecure", "starttls": "starttls", "ssl": "ssl"}[self.security]
        query = urlencode(
            {"smtp": self.host, "from": self.sender, "to": ",".join(self.recipients), "mode": mode}, safe="@,"
        )
        scheme = "mailto" if self.security == "none" else "mailtos"
        return f"{scheme}://{creds}{self.host}:{self.port}/?{query}"

    def body(self, message: AlertMessage) -> tuple[str, str]:
        return message.subject, message.text


Channel = SlackChannel | WebhookChannel | SmtpChannel


def _deliver(channel: Channel, message: AlertMessage, attachment: Path | None) -> str:
    """Send through apprise, retrying; '' when delivered, else the reason (scrubbed)."""
    import apprise

    notify_type = {"failed": apprise.NotifyType.FAILURE, "warned": apprise.NotifyType.WARNING}.get(
        message.status, apprise.NotifyType.SUCCESS
    )
    title, body = channel.body(message)
    reason = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(0.5 * attempt)
        sender = apprise.Apprise()
        if not sender.add(channel.apprise_url(message)):
            return "apprise does not accept this channel's URL (check its settings)"
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = sender.notify(
                body=body,
                title=title,
                notify_type=notify_type,
                body_format=apprise.NotifyFormat.TEXT,
                attach=str(attachment) if attachment and channel.kind != "slack" else None,
            )
        if ok:
            return ""
        lines = [line.split(" - ", 2)[-1] for line in captured.getvalue().splitlines() if line.strip()]
        reason = SECRET_FILTER.scrub(lines[-1] if lines else "delivery failed")[:300]
    return reason


def send_alert(message: AlertMessage, channels: list[Channel]) -> list[Delivery]:
    """Send ``message`` to every channel; a channel that fails does not stop the others."""
    protect_secrets(s for c in channels for s in c.secrets())
    deliveries = []
    with tempfile.TemporaryDirectory(prefix="stratpos-alert-") as tmp:
        attachment = Path(tmp) / f"{message.run_id.replace('/', '_')}.json"
        attachment.write_text(json.dumps(message.payload, indent=2), encoding="utf-8")
        for channel in channels:
            name = channel.describe()
            error = _deliver(channel, message, attachment)
            deliveries.append(Delivery(name, not error, error))
            if error:
                log.error("alert of run %s via %s failed: %s", message.run_id, name, error)
            else:
                log.debug("alert of run %s sent via %s", message.run_id, name)
    return deliveries


# --------------------------------------------------------------------------------------------- alert state
def _tables():
    from stratpos.core.ddl import Column, Table

    state = Table(
        "alert_state",
        "audit",
        (
            Column("channel", "str", size=40),
            Column("check_id", "str", size=8),
            Column("status", "str", size=8, nullable=False),
            Column("keys_hash", "str", size=64, nullable=False),
            Column("key_count", "int", nullable=False),
            Column("since", "ts", nullable=False),  # when the check entered this status (for this channel)
            Column("last_sent", "ts"),  # when this channel last heard about the check
            Column("run_id", "str", size=64),
        ),
        ("channel", "check_id"),
    )
    keys = Table(
        "alert_keys",
        "audit",
        (
            Column("channel", "str", size=40),
            Column("check_id", "str", size=8),
            Column("check_key", "str", size=255),
            Column("first_seen", "ts", nullable=False),
        ),
        ("channel", "check_id", "check_key"),
    )
    return state, keys


@dataclass
class CheckState:
    status: str = "passed"
    keys_hash: str = ""
    key_count: int = 0
    since: datetime | None = None
    last_sent: datetime | None = None
    keys: dict[str, datetime] = field(default_factory=dict)  # failing key → first seen


class _Store:
    """``audit.alert_state`` / ``audit.alert_keys`` on the warehouse (DuckDB or MySQL/MariaDB)."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.state, self.keys = _tables()
        self.mark = "?" if settings.target == "duckdb" else "%s"

    def _run(self, statements: list[tuple[str, list | None, bool]]) -> list:
        """Execute (sql, params, many) in one transaction; returns the rows of each select."""
        from stratpos.core.warehouse import duckdb_connection, ensure_schemas, mysql_connection

        ensure_schemas(self.settings)
        out = []
        if self.settings.target == "duckdb":
            with duckdb_connection(self.settings) as con:
                for table in (self.state, self.keys):
                    con.execute(table.ddl(self.settings))
                con.execute("begin transaction")
                try:
                    for sql, params, many in statements:
                        if many:
                            if params:
                                con.executemany(sql, params)
                        else:
                            cur = con.execute(sql, params or [])
                            out.append(cur.fetchall() if cur.description else [])
                    con.execute("commit")
                except Exception:
                    con.execute("rollback")
                    raise
            return out
        with mysql_connection(self.settings) as con:
            with con.cursor() as cur:
                for table in (self.state, self.keys):
                    cur.execute(table.ddl(self.settings))
            con.begin()
            try:
                with con.cursor() as cur:
                    for sql, params, many in statements:
                        if many:
                            if params:
                                cur.executemany(sql, params)
                        else:
                            cur.execute(sql, params or None)
                            out.append(list(cur.fetchall()) if cur.description else [])
                con.commit()
            except Exception:
                con.rollback()
                raise
        return out

    def load(self, channel: str) -> dict[str, CheckState]:
        m = self.mark
        st, ks = self.state.qualified(self.settings), self.keys.qualified(self.settings)
        states, keys = self._run(
            [
                (f"select check_id, status, keys_hash, key_count, since, last_sent from {st} where channel = {m}",
                 [channel], False),
                (f"select check_id, check_key, first_seen from {ks} where channel = {m}", [channel], False),
            ]
        )  # fmt: skip
        out = {row[0]: CheckState(*row[1:]) for row in states}
        for check_id, key, first_seen in keys:
            out.setdefault(check_id, CheckState()).keys[key] = first_seen
        return out

    def save(self, channel: str, run_id: str, new: dict[str, CheckState]) -> None:
        m = self.mark
        st, ks = self.state.qualified(self.settings), self.keys.qualified(self.settings)
        state_rows = [
            [channel, cid, s.status, s.keys_hash, s.key_count, _naive(s.since), _naive(s.last_sent), run_id]
            for cid, s in new.items()
        ]
        key_rows = [[channel, cid, k[:255], _naive(t)] for cid, s in new.items() for k, t in s.keys.items()]
        self._run(
            [
                (f"delete from {st} where channel = {m}", [channel], False),
                (f"delete from {ks} where channel = {m}", [channel], False),
                (f"insert into {st} ({', '.join(self.state.column_names)}) values ({', '.join([m] * 8)})",
                 state_rows, True),
                (f"insert into {ks} ({', '.join(self.keys.column_names)}) values ({', '.join([m] * 4)})",
                 key_rows, True),
            ]
        )  # fmt: skip


def _naive(at: datetime | None) -> datetime | None:
    return None if at is None else at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


def _aware(at: datetime | None) -> datetime | None:
    return None if at is None else at if at.tzinfo else at.replace(tzinfo=UTC)


def changes(
    report, previous: dict[str, CheckState], now: datetime, digest_every: timedelta = DIGEST_EVERY
) -> tuple[list[CheckEvent], dict[str, CheckState]]:
    """What a channel whose state is ``previous`` should hear about ``report``, and its state once told.

    Failures and warnings that go on are told again together, once ``digest_every`` has passed. The
    state's ``last_sent`` moves only for the checks in the returned events.
    """
    news: list[CheckEvent] = []
    standing: list[CheckEvent] = []
    new_state: dict[str, CheckState] = {}
    for r in report.results:
        cid = r.check.check_id
        before = previous.get(cid, CheckState())
        failing = {m.check_key for m in r.failures} or ({"*"} if r.error else set())
        keys = {k: before.keys.get(k, now) for k in sorted(failing)}
        all_keys = sorted({m.check_key for m in r.mismatches})
        since = before.since if before.status == r.status and before.since else now
        new_state[cid] = CheckState(
            r.status, _digest(*all_keys) if all_keys else "", len(all_keys), since, before.last_sent, keys
        )
        new_keys = frozenset(failing - set(before.keys))
        if r.status == before.status == "passed":
            continue
        if r.status == "failed" and before.status != "failed":
            news.append(CheckEvent(r, STARTED_FAILING, before.status, new_keys))
        elif r.status == "failed" and new_keys:
            news.append(CheckEvent(r, NEW_KEYS, before.status, new_keys))
        elif r.status == "passed" or (r.status == "warned" and before.status == "failed"):
            news.append(CheckEvent(r, RECOVERED, before.status))
        elif r.status == "warned" and before.status == "passed":
            news.append(CheckEvent(r, STARTED_WARNING, before.status))
        else:  # the same failure or warning as before
            standing.append(CheckEvent(r, STANDING, before.status))
    # the standing ones go out together, once per digest interval: all of them when the oldest is due
    last = [_aware(previous[e.result.check.check_id].last_sent) for e in standing]
    due = any(t is None or now - t >= digest_every for t in last)
    events = news + (standing if due else [])
    for e in events:
        new_state[e.result.check.check_id].last_sent = now
    return events, new_state


def notify_changes(settings, report, channels: list[Channel], *, now: datetime | None = None) -> list[Delivery]:
    """Tell each channel what changed since it last heard (see the module's docstring); returns the
    deliveries of the messages sent (none when nothing changed)."""
    if not channels:
        return []
    now = now or datetime.now(UTC)
    store = _Store(settings)
    deliveries: list[Delivery] = []
    every = timedelta(hours=settings.alert_digest_hours)
    for channel in channels:
        events, new_state = changes(report, store.load(channel.state_id), now, every)
        if events:
            [delivery] = send_alert(build_message(report, events), [channel])
            deliveries.append(delivery)
            if not delivery.ok:
                continue  # the channel keeps its old state: it hears this change on the next run
        else:
            log.debug("nothing new for %s", channel.describe())
        store.save(channel.state_id, report.run_id, new_state)
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


def _secret(value) -> str:
    return (value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)).strip() if value else ""


def load_channels(source=None) -> list[Channel]:
    """The configured alert channels: the ``alert_*`` fields of the settings (``source``: a
    :class:`stratpos.core.settings.Settings`, an environment mapping, default the process's), then
    Airflow connections for the channels they leave unset. Their secrets are registered with
    :data:`SECRET_FILTER` at once."""
    from stratpos.core.settings import Settings, load_settings

    if isinstance(source, Settings):
        settings, env = source, os.environ
    else:
        env = os.environ if source is None else source
        settings = load_settings(None if source is None else source)
    channels: list[Channel] = []

    slack = _secret(settings.alert_slack_webhook)
    if not slack and (conn := _airflow_connection("stratpos_slack", env)) is not None:
        slack = _slack_url_from(conn)
    if slack:
        channels.append(SlackChannel(slack))

    url, token = _secret(settings.alert_webhook_url), _secret(settings.alert_webhook_token)
    if not url and (conn := _airflow_connection("stratpos_webhook", env)) is not None:
        url, token = _http_url_from(conn), conn.password or ""
    if url:
        channels.append(WebhookChannel(url, token))

    host = (settings.alert_smtp_host or "").strip()
    if host:
        channels.append(
            _smtp(
                host,
                settings.alert_smtp_port,
                (settings.alert_smtp_user or "").strip(),
                _secret(settings.alert_smtp_password),
                (settings.alert_smtp_from or "").strip(),
                settings.alert_smtp_to or "",
                settings.alert_smtp_security or "",
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
    protect_secrets(s for c in channels for s in c.secrets())
    return channels
