"""The paper exchange's trade engine on the bus: publish a replay directory's signals and order links to NATS.

``stratpos sandbox publish --nats nats://127.0.0.1:4222 REPLAY_DIR`` sends every line of
``signals.jsonl`` to the signals subject and every line of ``order_links.jsonl`` to the
order-link subject (SPEC §3.1, §3.3), exactly as the trade engine would: one JSON object per
message, the bytes of the line unchanged, a signal on ``{signals subject}.{strategy_id}`` and a
link on ``{links subject}.{signal_id}`` when the configured subject ends in ``>`` (or ``*``).
The stream is created with both subjects when it does not exist. Each message carries a
``Nats-Msg-Id`` (kind + hash of its bytes), so publishing the same directory twice within the
stream's duplicate window stores each record once; later re-publications are duplicates that
the ingestion's merge absorbs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from ingestion.nats_source import NatsSettings, connect, ensure_stream, message_id, publish_records, record_token

log = logging.getLogger(__name__)

FILES = {"signals": "signals.jsonl", "order_links": "order_links.jsonl"}


@dataclass
class PublishResult:
    published: dict[str, int]  # kind -> messages sent
    stored: dict[str, int]  # kind -> messages the stream stored (not dropped as duplicates)
    seconds: float

    def summary(self) -> str:
        parts = [f"{k}: {n:,} published, {self.stored[k]:,} stored" for k, n in self.published.items()]
        return "; ".join(parts) + f" ({self.seconds:.1f} s)"


def read_lines(path: Path) -> list[bytes]:
    """The non-blank lines of a JSONL file, bytes unchanged (without the line end)."""
    if not path.exists():
        return []
    with open(path, "rb") as fh:
        return [line.rstrip(b"\r\n") for line in fh if line.strip()]


def publish_messages(cfg: NatsSettings, messages: dict[str, list[bytes]]) -> PublishResult:
    """Publish raw payloads per kind (``signals``, ``order_links``); the stream is created when missing."""
    import time

    async def main() -> PublishResult:
        t0 = time.perf_counter()
        nc = await connect(cfg)
        try:
            js = nc.jetstream()
            await ensure_stream(js, cfg)
            published, stored = {}, {}
            for kind, payloads in messages.items():
                records = [(record_token(kind, p), p, message_id(kind, p)) for p in payloads]
                stored[kind] = await publish_records(js, cfg, kind, records)
                published[kind] = len(records)
        finally:
            await nc.drain()
        return PublishResult(published, stored, time.perf_counter() - t0)

    return asyncio.run(main())


def publish_replay(
    cfg: NatsSettings, replay: Path, kinds: tuple[str, ...] = ("signals", "order_links")
) -> PublishResult:
    """Publish ``replay``'s signals and order links; raises ``FileNotFoundError`` for a missing directory."""
    replay = Path(replay)
    if not replay.is_dir():
        raise FileNotFoundError(f"{replay} is not a replay directory")
    messages = {kind: read_lines(replay / FILES[kind]) for kind in kinds}
    result = publish_messages(cfg, messages)
    log.info("published %s to %s", result.summary(), cfg.describe())
    return result
