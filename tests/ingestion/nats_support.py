"""The machine's NATS server for tests: availability (skip, or fail under REQUIRE_NATS=1) and throw-away streams.

Every test gets its own stream ``T<hex>`` capturing its own subjects ``<stream>.signals.>`` and
``<stream>.links.>``, deleted afterwards, so tests never see each other's messages.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ingestion.nats_source import NatsSettings, load_nats_settings

SERVER = os.environ.get("STRATPOS_TEST_NATS", "nats://127.0.0.1:4222")


def require_nats() -> str:
    """The test server's URL; skips (or fails with REQUIRE_NATS=1) when no JetStream server answers."""

    async def probe() -> None:
        import nats

        nc = await nats.connect(SERVER, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        reason = f"no NATS server with JetStream at {SERVER} ({type(exc).__name__}: {exc})"
        if os.environ.get("REQUIRE_NATS") == "1":
            pytest.fail(f"REQUIRE_NATS=1 but {reason}")
        pytest.skip(f"{reason}; start `nats-server -js` or set REQUIRE_NATS=1 to make this fail")
    return SERVER


def stream_env(cfg: NatsSettings) -> dict[str, str]:
    """The STRATPOS_NATS_* variables pointing a process at ``cfg``."""
    return {
        "STRATPOS_NATS_SERVERS": ",".join(cfg.servers),
        "STRATPOS_NATS_STREAM": cfg.stream,
        "STRATPOS_NATS_SIGNALS_SUBJECT": cfg.signals_subject,
        "STRATPOS_NATS_LINKS_SUBJECT": cfg.links_subject,
        "STRATPOS_NATS_DURABLE": cfg.durable,
        "STRATPOS_NATS_BATCH_SIZE": str(cfg.batch_size),
        "STRATPOS_NATS_WAIT_SECONDS": str(cfg.wait),
        "STRATPOS_NATS_ACK_WAIT_SECONDS": str(cfg.ack_wait),
    }


@contextmanager
def throwaway_stream(**overrides) -> Iterator[NatsSettings]:
    """Settings for a unique stream on the test server (created by the first publish), deleted at the end."""
    server = require_nats()
    stream = f"T{uuid.uuid4().hex[:12]}"
    cfg = load_nats_settings(
        {},
        servers=(server,),
        stream=stream,
        signals_subject=f"{stream}.signals.>",
        links_subject=f"{stream}.links.>",
        durable="t",
        **overrides,
    )
    try:
        yield cfg
    finally:
        asyncio.run(_delete_stream(server, stream))


async def _delete_stream(server: str, stream: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(server)
    try:
        await nc.jetstream().delete_stream(stream)
    except NotFoundError:
        pass
    finally:
        await nc.close()


def publish_one_by_one(cfg: NatsSettings, subject: str, payloads: list[bytes]) -> list[int]:
    """Publish ``payloads`` on ``subject`` in order (no message id); returns their stream sequences."""

    async def main() -> list[int]:
        import nats

        from ingestion.nats_source import ensure_stream

        nc = await nats.connect(cfg.servers[0])
        try:
            js = nc.jetstream()
            await ensure_stream(js, cfg)
            return [(await js.publish(subject, p)).seq for p in payloads]
        finally:
            await nc.close()

    return asyncio.run(main())


async def consumer_state(cfg: NatsSettings, kind: str) -> tuple[int, int]:
    """(pending, ack pending) of ``kind``'s durable consumer."""
    import nats

    nc = await nats.connect(cfg.servers[0])
    try:
        info = await nc.jetstream().consumer_info(cfg.stream, cfg.consumer(kind))
        return info.num_pending, info.num_ack_pending
    finally:
        await nc.close()
