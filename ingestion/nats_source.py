"""Signals and order links (SPEC §3.1, §3.3) straight from the trade engine's NATS JetStream bus.

One **durable pull consumer** per record kind on the configured stream: ``{durable}_signals``
filtered on the signals subject and ``{durable}_order_links`` on the order-link subject. Each
loop fetches a bounded batch (``batch_size`` messages, waiting at most ``wait`` seconds),
validates every message exactly like a JSONL line of a replay directory
(:class:`ingestion.batch.Batch`), commits the batch to the raw layer — rows, quarantine rows,
the audit row and the stream sequence watermark in one transaction — and **only then**
acknowledges the messages.

Delivery is at least once: a crash after the commit and before the acks makes JetStream
redeliver the batch after ``ack_wait`` seconds, and the idempotent merge by key (``signal_id``
for signals) counts the redelivered records as duplicates, so the effect is exactly once.
received = loaded + duplicates + quarantined holds for every batch (SPEC §3.5).

* A malformed message (not UTF-8, not JSON, not an object, failing §3.1/§3.3 validation, a key
  already loaded with other content) lands in ``raw.quarantine`` with its original payload;
  its ``record_key`` is ``{subject}#{stream sequence}:{record key}`` and its reason starts with
  the stream sequence and subject. A message delivered again (redelivery, replay) whose
  quarantine row is already stored counts as a duplicate.
* ``audit.ingestion_state`` keeps, under ``nats:{stream}:{consumer}``, the highest stream
  sequence committed by that consumer (``int:{seq}``). ``--from-sequence N`` recreates the
  consumer to replay from ``N`` (the merge makes the replay harmless), ``--reset`` recreates it
  right after the stored sequence, and a consumer that does not exist yet (or was deleted on
  the server) is created from the stored sequence when there is one, else from the stream's
  start. Resuming from the stored sequence assumes one consuming process at a time per
  consumer (the DAG task or the listener); two at once are safe as long as the consumer exists.
* Secrets (token, password, credentials file content) are never logged: only
  :meth:`NatsSettings.describe` — servers without user info — appears in logs and errors.

Modes: :func:`ingest_nats` drains what is pending and returns (``stratpos ingest nats``, the
DAG's ``ingest_nats`` task); :func:`listen_nats` runs until SIGTERM/SIGINT, finishing the batch
in flight (commit and acks) before it stops (``stratpos listen nats``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from ingestion.batch import Batch, BatchStats, new_run_id
from ingestion.records import raw_hash
from ingestion.store import RawStore
from stratpos.core.errors import ConfigError
from stratpos.core.settings import Settings, load_settings

log = logging.getLogger(__name__)

STATE_PREFIX = "nats:"
KINDS = ("signals", "order_links")


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True, repr=False)
class NatsSettings:
    """Where the bus is and what to consume (read by :func:`load_nats_settings`)."""

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    creds_file: Path | None = None
    token: SecretStr | None = field(default=None, repr=False)
    user: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    stream: str = "STRATPOS"
    signals_subject: str = "stratpos.signals.>"
    links_subject: str = "stratpos.order_links.>"
    durable: str = "stratpos"
    batch_size: int = 1000
    wait: float = 2.0
    ack_wait: float = 30.0
    account_id: str = "default"
    configured: bool = False  # True when the servers were set explicitly (env or Airflow connection)

    def subject(self, kind: str) -> str:
        return self.signals_subject if kind == "signals" else self.links_subject

    def consumer(self, kind: str) -> str:
        return f"{self.durable}_{kind}"

    def state_key(self, kind: str) -> str:
        return f"{STATE_PREFIX}{self.stream}:{self.consumer(kind)}"

    def source(self, kind: str) -> str:
        return f"nats:{self.stream}:{kind}"

    def describe(self) -> str:
        """Servers (user info removed), stream and subjects: safe to print."""
        auth = "creds file" if self.creds_file else "token" if self.token else "user/password" if self.user else "none"
        return (
            f"NATS {','.join(_safe_server(s) for s in self.servers)} (auth: {auth}), stream {self.stream}, "
            f"signals {self.signals_subject}, order links {self.links_subject}, consumers {self.durable}_*"
        )

    def with_overrides(self, **changes: Any) -> NatsSettings:
        return replace(self, **changes)

    def __repr__(self) -> str:  # server URLs may carry user:password
        return f"NatsSettings({self.describe()}, batch {self.batch_size}, wait {self.wait}s, ack wait {self.ack_wait}s)"


def _safe_server(url: str) -> str:
    try:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, "", "", ""))
    except ValueError:
        return "<unparseable server URL>"


_NAME = re.compile(r"^[A-Za-z0-9_-]{1,200}$")  # JetStream stream/consumer names: no spaces, dots, *, >


def _positive(name: str, raw: str, cast: Callable[[str], Any]) -> Any:
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a positive number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def nats_settings(settings: Settings, **overrides: Any) -> NatsSettings:
    """The NATS part of the settings object (``STRATPOS_NATS_*``, see the README's configuration table).

    Defaults: a local server, stream ``STRATPOS``. ``overrides`` (non-None values, e.g. command-line
    options) win over the settings.
    """
    servers = tuple(x.strip() for x in settings.nats_servers.split(",") if x.strip())
    values: dict[str, Any] = {
        "servers": servers or NatsSettings.servers,
        "configured": bool(servers),
        "creds_file": settings.nats_creds_file,
        "token": settings.nats_token,
        "user": settings.nats_user,
        "password": settings.nats_password,
        "stream": settings.nats_stream,
        "signals_subject": settings.nats_signals_subject,
        "links_subject": settings.nats_links_subject,
        "durable": settings.nats_durable,
        "batch_size": settings.nats_batch_size,
        "wait": settings.nats_wait_seconds,
        "ack_wait": settings.nats_ack_wait_seconds,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _checked(NatsSettings(**values))


def load_nats_settings(env: Mapping[str, str], **overrides: Any) -> NatsSettings:
    """:func:`nats_settings` of the settings read from ``env`` alone (tests, the DAG's environment)."""
    return nats_settings(load_settings(env), **overrides)


def nats_settings_from_connection(
    base: NatsSettings,
    *,
    host: str | None,
    port: int | None,
    login: str | None = None,
    password: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> NatsSettings:
    """Settings from an Airflow connection (``nats_default``): host/port are the server, a login
    with a password is user/password, a password alone is the token; ``extra`` may set
    ``servers`` (comma-separated), ``creds_file``, ``token``, ``stream``, ``signals_subject``,
    ``links_subject``, ``durable``, ``batch_size``, ``wait_seconds``, ``ack_wait_seconds``,
    ``account_id``."""
    extra = dict(extra or {})
    changes: dict[str, Any] = {"configured": True}
    if extra.get("servers"):
        changes["servers"] = tuple(s.strip() for s in str(extra["servers"]).split(",") if s.strip())
    elif host:
        changes["servers"] = (f"nats://{host}:{port or 4222}" if "://" not in host else host,)
    if login:
        changes["user"] = login
        if password:
            changes["password"] = SecretStr(password)
    elif password:
        changes["token"] = SecretStr(password)
    if extra.get("token"):
        changes["token"] = SecretStr(str(extra["token"]))
    if extra.get("creds_file"):
        changes["creds_file"] = Path(str(extra["creds_file"]))
    for key in ("stream", "signals_subject", "links_subject", "durable", "account_id"):
        if extra.get(key):
            changes[key] = str(extra[key])
    for key, attr, cast in (
        ("batch_size", "batch_size", int),
        ("wait_seconds", "wait", float),
        ("ack_wait_seconds", "ack_wait", float),
    ):
        if extra.get(key) not in (None, ""):
            changes[attr] = _positive(f"connection extra {key}", str(extra[key]), cast)
    return _checked(base.with_overrides(**changes))


def _checked(s: NatsSettings) -> NatsSettings:
    for label, name in (("stream", s.stream), ("durable", s.durable)):
        if not _NAME.match(name):
            raise ConfigError(f"NATS {label} name {name!r} may hold only letters, digits, _ and -")
    for label, subject in (("signals", s.signals_subject), ("order links", s.links_subject)):
        if not subject or " " in subject:
            raise ConfigError(f"NATS {label} subject {subject!r} is not a valid subject")
    if s.batch_size < 1 or s.wait <= 0 or s.ack_wait <= 0:
        raise ConfigError("NATS batch size, wait and ack wait must be positive")
    if s.signals_subject == s.links_subject:
        raise ConfigError("the NATS signals and order-link subjects must differ")
    if s.creds_file is not None and not s.creds_file.is_file():
        raise ConfigError(f"NATS credentials file {s.creds_file} does not exist")
    return s


class NatsSourceError(RuntimeError):
    """The bus cannot be used (server unreachable, stream missing, bad credentials); the message says why."""


async def connect(cfg: NatsSettings):
    """A connected ``nats.aio.client.Client`` (one attempt per server; errors name no secret)."""
    import nats

    options: dict[str, Any] = {
        "servers": list(cfg.servers),
        "connect_timeout": 5,
        "allow_reconnect": True,
        "max_reconnect_attempts": 5,
        "name": "stratpos",
    }
    if cfg.creds_file:
        options["user_credentials"] = str(cfg.creds_file)
    if cfg.token:
        options["token"] = cfg.token.get_secret_value()
    if cfg.user:
        options["user"] = cfg.user
        options["password"] = cfg.password.get_secret_value() if cfg.password else ""

    async def quiet(exc: Exception) -> None:  # nats-py's default callback prints the whole exception
        log.warning("NATS: %s", type(exc).__name__)

    try:
        return await nats.connect(**options, error_cb=quiet)
    except Exception as exc:
        raise NatsSourceError(f"cannot connect to {cfg.describe()}: {type(exc).__name__}") from None


# ----------------------------------------------------------------------------- batches
class _MessageBatch(Batch):
    """A :class:`Batch` of bus messages: quarantine rows name the subject and stream sequence."""

    def __init__(self, kind: str, cfg: NatsSettings, run_id: str, batch_no: int):
        super().__init__(kind, cfg.source(kind), cfg.account_id, run_id, batch_no)
        self.stream = cfg.stream
        self.current: tuple[str, int, int] = ("?", 0, 1)  # subject, stream sequence, deliveries
        self.origins: dict[str, tuple[str, int, int]] = {}  # payload -> message, for merge conflicts
        self.max_seq = 0
        self.seen_up_to = 0  # the committed stream sequence before this batch
        self.reject_seqs: list[int] = []  # stream sequence of each reject, in order
        self.committing = False

    def add_message(self, msg) -> None:
        meta = msg.metadata
        seq = meta.sequence.stream
        self.current = (msg.subject, seq, meta.num_delivered)
        self.max_seq = max(self.max_seq, seq)
        # a merge conflict is found at commit time by its payload: remember which message it was
        self.origins[msg.data.decode("utf-8", "backslashreplace").rstrip("\r\n")] = self.current
        self.add_line(msg.data)

    def _reject_row(self, payload, reason, key, raw=None, record_hash=None, *rest) -> dict:
        # raw bytes: rejected while the message is added; else a conflict found by its payload
        subject, seq, _ = self.current if raw is not None else self.origins.get(payload, self.current)
        data = raw if raw is not None else payload.encode("utf-8", "surrogateescape")
        where = f"stream {self.stream} sequence {seq}, subject {subject}"
        row = super()._reject_row(payload, f"{where}: {reason}", key, raw, None, *rest)
        row["record_key"] = f"{subject}#{seq}:{key or '?'}"[:255]
        row["record_hash"] = self._hash(seq, data)
        if not self.committing:  # rejected while added: one entry per reject, in order
            self.reject_seqs.append(seq)
        return row

    def _hash(self, seq: int, data: bytes) -> str:
        return raw_hash(f"{self.stream}:{seq}\x1f".encode() + data)

    def commit(self, store: RawStore, watermarks: dict[str, str] | None = None) -> BatchStats:
        """Commit; a message at or below the committed sequence (a redelivery or a replay) that was
        quarantined before — malformed, or conflicting with a loaded record — is a duplicate."""
        seen = {}  # quarantine hash -> reject index or row key, for messages delivered before
        for i, r in enumerate(self.rejects):
            if self.reject_seqs[i] <= self.seen_up_to:
                seen[r["record_hash"]] = ("reject", i)
        for key, row in self.rows.items():
            origin = self.origins.get(row["payload"])
            if origin and origin[1] <= self.seen_up_to:
                seen[self._hash(origin[1], row["payload"].encode("utf-8", "surrogateescape"))] = ("row", key)
        if seen:
            ph = store._ph()
            hashes = list(seen)
            stored = set()
            for i in range(0, len(hashes), 500):
                part = hashes[i : i + 500]
                stored |= {
                    h
                    for (h,) in store.fetchall(
                        f"select record_hash from {store.table('quarantine')} where source = {ph} "
                        f"and record_hash in ({', '.join([ph] * len(part))})",
                        [self.source, *part],
                    )
                }
            drop_rejects = {seen[h][1] for h in stored if seen[h][0] == "reject"}
            for h in stored:
                if seen[h][0] == "row":
                    del self.rows[seen[h][1]]
            self.rejects = [r for i, r in enumerate(self.rejects) if i not in drop_rejects]
            self.in_batch_duplicates += len(stored)
        self.committing = True
        return super().commit(store, watermarks)


@dataclass
class NatsStats:
    """Per kind, the summed :class:`BatchStats` of a run and the highest committed stream sequence."""

    stats: dict[str, BatchStats]
    last_sequence: dict[str, int]
    batches: int = 0

    def as_list(self) -> list[BatchStats]:
        return [s for s in self.stats.values()]


def _int_watermark(text: str | None) -> int:
    if not text:
        return 0
    tag, _, raw = text.partition(":")
    return int(raw) if tag == "int" and raw.isdigit() else 0


async def _ensure_consumer(js, cfg: NatsSettings, kind: str, store: RawStore, start: int | None, reset: bool):
    """The durable pull consumer of ``kind``: created when missing (from the stored sequence), or
    recreated from ``start`` / after the stored sequence when asked."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    name = cfg.consumer(kind)
    try:
        await js.stream_info(cfg.stream)
    except NotFoundError:
        raise NatsSourceError(f"stream {cfg.stream} does not exist on {cfg.describe()}") from None
    exists = True
    try:
        await js.consumer_info(cfg.stream, name)
    except NotFoundError:
        exists = False
    if exists and (start is not None or reset):
        await js.delete_consumer(cfg.stream, name)
        exists = False
    if exists:
        return
    if start is None:
        stored = _int_watermark(store.get_watermark(cfg.state_key(kind)))
        start = stored + 1 if stored else None
    config = ConsumerConfig(
        durable_name=name,
        filter_subject=cfg.subject(kind),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=cfg.ack_wait,
        max_ack_pending=max(10_000, cfg.batch_size * 4),
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start else DeliverPolicy.ALL,
        opt_start_seq=start or None,
        description=f"stratpos {kind} (raw.{kind})",
    )
    await js.add_consumer(cfg.stream, config)
    log.info("NATS: created consumer %s on %s (%s)", name, cfg.stream, f"from sequence {start}" if start else "all")


async def _consume_kind(
    nc,
    js,
    cfg: NatsSettings,
    kind: str,
    store: RawStore,
    result: NatsStats,
    run_id: str,
    *,
    follow: bool,
    stop: asyncio.Event,
    on_commit: Callable[[str, BatchStats, int], None] | None,
    max_messages: int | None,
) -> None:
    import nats.errors

    sub = await js.pull_subscribe(cfg.subject(kind), durable=cfg.consumer(kind), stream=cfg.stream)
    total = result.stats[kind]
    idle_since: float | None = None
    try:
        while not stop.is_set():
            want = cfg.batch_size if max_messages is None else min(cfg.batch_size, max_messages - total.received)
            if want <= 0:
                break
            try:
                msgs = await sub.fetch(want, timeout=cfg.wait)
            except (TimeoutError, nats.errors.TimeoutError):  # nats-py raises either when nothing came
                msgs = []
            if not msgs:
                if follow:
                    continue
                info = await sub.consumer_info()
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    break
                # messages delivered but not acked (a crashed run's batch) come back after ack_wait;
                # wait for them that long, then leave them to whoever holds them
                idle_since = idle_since or time.monotonic()
                if info.num_pending == 0 and time.monotonic() - idle_since > cfg.ack_wait + cfg.wait:
                    break
                continue
            idle_since = None
            batch = _MessageBatch(kind, cfg, run_id, result.batches)
            result.batches += 1
            stored = _int_watermark(store.get_watermark(cfg.state_key(kind)))
            batch.seen_up_to = stored
            for m in msgs:
                batch.add_message(m)
            last = max(stored, batch.max_seq)
            stats = batch.commit(store, {cfg.state_key(kind): f"int:{last}"})
            total.add(stats)
            result.last_sequence[kind] = last
            if on_commit:
                on_commit(kind, stats, last)  # committed, not yet acknowledged
            for m in msgs:
                await m.ack()
            await nc.flush()
    finally:
        await sub.unsubscribe()


async def _run(
    settings: Settings,
    cfg: NatsSettings,
    *,
    follow: bool,
    kinds: tuple[str, ...],
    start: int | None,
    reset: bool,
    run_id: str | None,
    on_commit,
    max_messages: int | None,
    stop: asyncio.Event | None,
) -> NatsStats:
    from nats.js.errors import NotFoundError

    run_id = run_id or new_run_id()
    stop = stop or asyncio.Event()
    result = NatsStats({k: BatchStats(cfg.source(k)) for k in kinds}, {})
    nc = await connect(cfg)
    store = RawStore(settings)
    try:
        store.open()
        _warm_up()
        js = nc.jetstream()
        waiting = False
        while follow and not stop.is_set():  # the listener may start before the trade engine creates the stream
            try:
                await js.stream_info(cfg.stream)
                break
            except NotFoundError:
                if not waiting:
                    log.warning("NATS: stream %s does not exist yet; waiting for it", cfg.stream)
                    waiting = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), cfg.wait)
        for kind in kinds:
            if stop.is_set():
                return result
            await _ensure_consumer(js, cfg, kind, store, start, reset)
        log.info("NATS: consuming %s from %s", ", ".join(kinds), cfg.describe())
        tasks = [
            asyncio.create_task(
                _consume_kind(
                    nc,
                    js,
                    cfg,
                    k,
                    store,
                    result,
                    run_id,
                    follow=follow,
                    stop=stop,
                    on_commit=on_commit,
                    max_messages=max_messages,
                )
            )
            for k in kinds
        ]
        try:
            await asyncio.gather(*tasks)
        except BaseException:  # one kind failed: stop the other before the store closes
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    finally:
        store.close()
        await nc.drain()
    for st in result.stats.values():
        log.info(st.summary())
    return result


def _warm_up() -> None:
    """Import what the first commit needs before the first fetch: on a busy machine these imports take
    seconds, and a first batch that outlives ``ack_wait`` would be redelivered (harmless, but wasted)."""
    import pyarrow  # noqa: F401

    with contextlib.suppress(ImportError):
        import pandas  # noqa: F401  (pyarrow converts timestamps through it)


def ingest_nats(
    settings: Settings,
    cfg: NatsSettings,
    *,
    kinds: tuple[str, ...] = KINDS,
    from_sequence: int | None = None,
    reset: bool = False,
    run_id: str | None = None,
    on_commit: Callable[[str, BatchStats, int], None] | None = None,
    max_messages: int | None = None,
) -> NatsStats:
    """Drain the consumers of ``kinds``: every pending message committed and acknowledged, then return.

    ``on_commit(kind, stats, last_sequence)`` is called after each committed batch, before its acks.
    ``max_messages`` bounds the messages read per kind (benchmarks).
    """
    if from_sequence is not None and from_sequence < 1:
        raise ConfigError(f"a stream sequence starts at 1, got {from_sequence}")
    return asyncio.run(
        _run(
            settings,
            cfg,
            follow=False,
            kinds=kinds,
            start=from_sequence,
            reset=reset,
            run_id=run_id,
            on_commit=on_commit,
            max_messages=max_messages,
            stop=None,
        )
    )


def listen_nats(
    settings: Settings,
    cfg: NatsSettings,
    *,
    kinds: tuple[str, ...] = KINDS,
    on_commit: Callable[[str, BatchStats, int], None] | None = None,
) -> NatsStats:
    """Consume until SIGTERM or SIGINT; the batch in flight is committed and acknowledged first."""

    async def main() -> NatsStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _stopping, stop, sig)
        return await _run(
            settings,
            cfg,
            follow=True,
            kinds=kinds,
            start=None,
            reset=False,
            run_id=None,
            on_commit=on_commit,
            max_messages=None,
            stop=stop,
        )

    return asyncio.run(main())


def _stopping(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("NATS listener: %s received, stopping after the batch in flight", sig.name)
    stop.set()


# ----------------------------------------------------------------------------- Airflow
AIRFLOW_CONN_ID = "nats_default"


def airflow_nats_settings(settings: Settings) -> NatsSettings | None:
    """The DAG's NATS settings: ``STRATPOS_NATS_*``, then the Airflow connection ``nats_default``
    over them when it exists; ``None`` when neither names a server (the task then reads nothing)."""
    base = nats_settings(settings)
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(AIRFLOW_CONN_ID)
    except AirflowNotFoundException:
        conn = None
    if conn is not None:
        return nats_settings_from_connection(
            base,
            host=conn.host,
            port=conn.port,
            login=conn.login,
            password=conn.password,
            extra=conn.extra_dejson,
        )
    return base if base.configured else None


def ingest_nats_summaries(settings: Settings, cfg: NatsSettings | None) -> list[dict]:
    """:func:`ingest_nats` for the DAG: one JSON-able summary per kind (what XCom carries)."""
    if cfg is None:
        log.info("NATS: no server configured (STRATPOS_NATS_SERVERS or connection %s): nothing read", AIRFLOW_CONN_ID)
        return []
    result = ingest_nats(settings, cfg)
    return [
        {
            "source": st.source,
            "received": st.received,
            "loaded": st.loaded,
            "duplicates": st.duplicates,
            "quarantined": st.quarantined,
            "last_sequence": result.last_sequence.get(kind),
        }
        for kind, st in result.stats.items()
    ]


# ----------------------------------------------------------------------------- publishing
_SUBJECT_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def subject_for(pattern: str, token: str) -> str:
    """The subject a record is published on: ``pattern`` itself, or with its trailing ``>``/``*``
    replaced by ``token`` (e.g. the strategy id) made subject-safe."""
    if pattern.endswith((".>", ".*")):
        return pattern[:-1] + (_SUBJECT_TOKEN.sub("_", token) or "_")
    return pattern


async def ensure_stream(js, cfg: NatsSettings) -> None:
    """Create the stream with both subjects when it is missing; check an existing one covers them."""
    from nats.js.api import StreamConfig
    from nats.js.errors import APIError, NotFoundError

    try:
        info = await js.stream_info(cfg.stream)
    except NotFoundError:
        try:
            await js.add_stream(StreamConfig(name=cfg.stream, subjects=[cfg.signals_subject, cfg.links_subject]))
        except APIError as exc:  # e.g. another stream already captures these subjects
            raise NatsSourceError(f"cannot create stream {cfg.stream}: {exc.description}") from None
        log.info("NATS: created stream %s (%s, %s)", cfg.stream, cfg.signals_subject, cfg.links_subject)
        return
    have = set(info.config.subjects or [])
    missing = [s for s in (cfg.signals_subject, cfg.links_subject) if s not in have]
    if missing:
        raise NatsSourceError(
            f"stream {cfg.stream} does not capture {', '.join(missing)} (its subjects: {', '.join(sorted(have))})"
        )


async def publish_records(js, cfg: NatsSettings, kind: str, records: list[tuple[str, bytes, str]]) -> int:
    """Publish ``(subject token, payload, message id)`` records on ``kind``'s subject, awaiting every
    stream acknowledgement; the ``Nats-Msg-Id`` header lets JetStream drop a re-published record
    inside its duplicate window. Returns how many the stream stored (not counted as duplicates)."""
    stored = 0
    chunk = 500
    for i in range(0, len(records), chunk):
        acks = await asyncio.gather(
            *(
                js.publish(subject_for(cfg.subject(kind), token), payload, headers={"Nats-Msg-Id": msg_id})
                for token, payload, msg_id in records[i : i + chunk]
            )
        )
        stored += sum(1 for a in acks if not a.duplicate)
    return stored


def message_id(kind: str, payload: bytes) -> str:
    """A stable id for a record: its kind and the hash of its bytes."""
    return f"{kind}:{raw_hash(payload)[:40]}"


def record_token(kind: str, payload: bytes) -> str:
    """The last subject token of a record: its strategy for a signal, its signal for an order link."""
    try:
        obj = json.loads(payload)
    except ValueError:
        return "_"
    if not isinstance(obj, dict):
        return "_"
    return str(obj.get("strategy_id" if kind == "signals" else "signal_id") or "_")[:64]
