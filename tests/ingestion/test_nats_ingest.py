"""Signals and order links from NATS JetStream (SPEC §3.1, §3.3, §3.5) against the machine's NATS server.

Each test publishes to its own stream (tests/ingestion/nats_support.py) and drops it afterwards;
without a JetStream server on 127.0.0.1:4222 the tests skip, unless REQUIRE_NATS=1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from ingestion.nats_source import (
    NatsSettings,
    ingest_nats,
    load_nats_settings,
    nats_settings_from_connection,
)
from sandbox.publish import publish_messages, publish_replay
from stratpos.core.settings import PROJECT_ROOT, ConfigError, Settings
from tests.ingestion.nats_support import consumer_state, publish_one_by_one, stream_env, throwaway_stream
from tests.ingestion.warehouse_dump import count, quarantine, rows, state

T0 = 1767571322398  # 2026-01-05T00:02:02.398Z
STRATPOS = (
    [sys.executable, "-m", "stratpos.cli"]
    if not Path(sys.executable).with_name("stratpos").exists()
    else [str(Path(sys.executable).with_name("stratpos"))]
)
# malformed messages, each for a different reason (SPEC §3.1)
BAD = [
    b"not json {",
    b"[1, 2, 3]",
    b'{"signal_id": "b1", "symbol": "BTCUSDT", "action": "buy", "quantity": "1", "timestamp": 1767571322398}',
    b"\xff\xfe not utf-8",
    b'{"signal_id": "b2", "strategy_id": "s", "symbol": "BTCUSDT", "action": "buy", "quantity": "-1", '
    b'"timestamp": 1767571322398}',
]


def signal_msg(i: int, **over) -> bytes:
    obj = {
        "signal_id": f"n{i:05d}",
        "strategy_id": f"s{i % 7}",
        "symbol": "BTCUSDT" if i % 2 else "ETHUSDT",
        "action": "buy" if i % 3 else "sell",
        "quantity": "0.01",
        "price": 45000 + i,
        "timestamp": T0 + i,
        "confidence": 0.5,
    }
    obj.update(over)
    return json.dumps(obj).encode()


def link(i: int) -> bytes:
    return json.dumps({"order_id": 9000 + i, "signal_id": f"n{i:05d}", "role": "entry", "symbol": "ETHUSDT"}).encode()


def process_env(settings: Settings, cfg: NatsSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATPOS_")}
    env.update(
        STRATPOS_TARGET=settings.target,
        STRATPOS_DUCKDB_PATH=str(settings.duckdb_path),
        PYTHONPATH=str(PROJECT_ROOT),
        **stream_env(cfg),
    )
    return env


def audit_totals(settings: Settings, source: str) -> dict[str, int]:
    (row,) = rows(
        settings,
        "select count(*) as batches, coalesce(sum(received), 0) as received, coalesce(sum(loaded), 0) as loaded, "
        "coalesce(sum(duplicates), 0) as duplicates, coalesce(sum(quarantined), 0) as quarantined "
        "from {audit}.ingestion_runs where source = ? and status = 'ok'",
        [source],
    )
    return {k: int(v) for k, v in row.items()}


def signal_ids(settings: Settings) -> list[str]:
    return [r["signal_id"] for r in rows(settings, "select signal_id from {raw}.signals order by signal_id")]


def test_10k_signals_with_a_sigkill_in_the_middle_and_a_rerun_are_loaded_exactly_once(duckdb_settings):
    settings = duckdb_settings
    with throwaway_stream(batch_size=500, ack_wait=2.0, wait=0.5) as cfg:
        good = [signal_msg(i) for i in range(10_000)]
        publish_messages(cfg, {"signals": good[:5000]})  # the paper trade engine's publisher
        bad_seqs = publish_one_by_one(cfg, f"{cfg.stream}.signals.bad", BAD)
        publish_messages(cfg, {"signals": good[5000:]})
        assert bad_seqs == list(range(5001, 5006))

        proc = subprocess.Popen(
            [*STRATPOS, "ingest", "nats", "--only", "signals"],
            env=process_env(settings, cfg),
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        committed = 0
        for line in proc.stdout:
            if line.startswith("  committed signals"):
                committed += 1
                if committed == 4:  # the 4th batch is committed; its acks are on their way or not
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, "the ingestion must be killed in the middle, not finish"
        before = audit_totals(settings, cfg.source("signals"))
        assert 0 < before["loaded"] < 10_000

        again = ingest_nats(settings, cfg, kinds=("signals",))  # the re-run (the next scheduled run)

        assert signal_ids(settings) == sorted(f"n{i:05d}" for i in range(10_000))  # each exactly once
        total = audit_totals(settings, cfg.source("signals"))
        assert total["received"] == total["loaded"] + total["duplicates"] + total["quarantined"]
        assert total["loaded"] == 10_000
        assert total["quarantined"] == len(BAD)
        assert total["received"] == 10_000 + len(BAD) + total["duplicates"]
        st = again.stats["signals"]
        assert st.received == st.loaded + st.duplicates + st.quarantined
        # every malformed message is quarantined once, with its subject, stream sequence and payload
        q = sorted(quarantine(settings), key=lambda r: r["record_key"])
        assert [r["record_key"].split(":")[0] for r in q] == [f"{cfg.stream}.signals.bad#{s}" for s in bad_seqs]
        for r, seq, raw in zip(q, bad_seqs, BAD, strict=True):
            assert r["source"] == cfg.source("signals")
            assert r["reason"].startswith(f"stream {cfg.stream} sequence {seq}, subject {cfg.stream}.signals.bad: ")
            assert r["payload"] == raw.decode("utf-8", "backslashreplace")
        assert "strategy_id" in q[2]["reason"] and "quantity" in q[4]["reason"] and "UTF-8" in q[3]["reason"]
        # the last committed stream sequence is the consumer's watermark; nothing is left pending
        assert state(settings, "nats:") == {f"nats:{cfg.stream}:t_signals": "int:10005"}
        assert asyncio.run(consumer_state(cfg, "signals")) == (0, 0)


@pytest.mark.parametrize("target", ["duckdb", pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_committed_but_unacknowledged_batch_is_redelivered_and_counted_as_duplicates(target, request):
    settings = request.getfixturevalue(f"{target}_settings")

    class Crash(Exception):
        pass

    def crash_after_commit(kind, stats, last_sequence):
        raise Crash(f"killed after committing {kind} up to {last_sequence}")

    with throwaway_stream(batch_size=100, ack_wait=1.0, wait=0.3) as cfg:
        publish_messages(
            cfg, {"signals": [signal_msg(i) for i in range(30)], "order_links": [link(i) for i in range(10)]}
        )
        with pytest.raises(Crash):
            ingest_nats(settings, cfg, kinds=("signals",), on_commit=crash_after_commit)
        assert count(settings, "signals") == 30  # committed …
        assert asyncio.run(consumer_state(cfg, "signals")) == (0, 30)  # … but not acknowledged

        again = ingest_nats(settings, cfg)  # JetStream redelivers the batch after ack_wait

        s, links = again.stats["signals"], again.stats["order_links"]
        assert (s.received, s.loaded, s.duplicates, s.quarantined) == (30, 0, 30, 0)
        assert (links.received, links.loaded, links.duplicates, links.quarantined) == (10, 10, 0, 0)
        assert count(settings, "signals") == 30 and count(settings, "order_links") == 10
        assert asyncio.run(consumer_state(cfg, "signals")) == (0, 0)
        total = audit_totals(settings, cfg.source("signals"))
        assert (total["received"], total["loaded"], total["duplicates"]) == (60, 30, 30)


def test_replay_from_a_sequence_a_lost_consumer_and_a_conflicting_redefinition(duckdb_settings):
    settings = duckdb_settings
    with throwaway_stream(batch_size=7, ack_wait=5.0, wait=0.3) as cfg:
        publish_messages(cfg, {"signals": [signal_msg(i) for i in range(20)]})
        first = ingest_nats(settings, cfg, kinds=("signals",)).stats["signals"]
        assert (first.received, first.loaded) == (20, 20)

        replay = ingest_nats(settings, cfg, kinds=("signals",), from_sequence=11).stats["signals"]
        assert (replay.received, replay.loaded, replay.duplicates) == (10, 0, 10)

        # the consumer is lost on the server: it is recreated after the stored sequence, not from the start
        async def drop_consumer():
            import nats

            nc = await nats.connect(cfg.servers[0])
            await nc.jetstream().delete_consumer(cfg.stream, cfg.consumer("signals"))
            await nc.close()

        asyncio.run(drop_consumer())
        publish_messages(cfg, {"signals": [signal_msg(i) for i in range(20, 25)]})
        resumed = ingest_nats(settings, cfg, kinds=("signals",)).stats["signals"]
        assert (resumed.received, resumed.loaded, resumed.duplicates) == (5, 5, 0)

        # the same signal_id with other content is quarantined with its stream sequence; replaying it is a duplicate
        (seq,) = publish_one_by_one(cfg, f"{cfg.stream}.signals.s0", [signal_msg(0, quantity="0.02")])
        conflict = ingest_nats(settings, cfg, kinds=("signals",)).stats["signals"]
        assert (conflict.received, conflict.quarantined) == (1, 1)
        (q,) = quarantine(settings)
        assert q["record_key"].startswith(f"{cfg.stream}.signals.s0#{seq}:")
        assert f"sequence {seq}" in q["reason"] and "already loaded with different content" in q["reason"]
        again = ingest_nats(settings, cfg, kinds=("signals",), from_sequence=seq).stats["signals"]
        assert (again.received, again.duplicates, again.quarantined) == (1, 1, 0)
        assert len(quarantine(settings)) == 1
        assert state(settings, "nats:") == {f"nats:{cfg.stream}:t_signals": f"int:{seq}"}


def test_sandbox_publish_sends_a_replay_directory_and_the_listener_stops_cleanly_on_sigterm(duckdb_settings, tmp_path):
    from sandbox.generator import GenerateConfig, generate

    settings = duckdb_settings
    replay = tmp_path / "replay"
    generate(GenerateConfig(out=replay, days=1, strategies=2, symbols=("BTCUSDT",), seed=3))
    (replay / "order_links.jsonl").write_bytes(b"".join(link(i) + b"\n" for i in range(4)))
    signals = [line for line in (replay / "signals.jsonl").read_bytes().splitlines() if line.strip()]
    with throwaway_stream(batch_size=10, ack_wait=30.0, wait=0.3) as cfg:
        # started before the stream exists: the listener waits for the trade engine to create it
        proc = subprocess.Popen(
            [*STRATPOS, "listen", "nats"],
            env=process_env(settings, cfg),
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            published = publish_replay(cfg, replay)
            assert published.published == {"signals": len(signals), "order_links": 4}
            assert published.stored == published.published
            seen = {"signals": 0, "order_links": 0}
            output = []
            for line in proc.stdout:
                output.append(line)
                if line.startswith("  committed "):
                    kind = line.split()[1].rstrip(":")
                    seen[kind] += int(line.split("received ")[1].split(" ")[0].replace(",", ""))
                    if seen["signals"] >= len(signals) and seen["order_links"] >= 4:
                        proc.send_signal(signal.SIGTERM)
                        break
            rest, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        output.append(rest)
        assert proc.returncode == 0, "".join(output)
        assert "stopped" in rest
        assert count(settings, "signals") == len(signals) and count(settings, "order_links") == 4
        loaded = {json.loads(s)["signal_id"] for s in signals}
        assert set(signal_ids(settings)) == loaded
        assert asyncio.run(consumer_state(cfg, "signals")) == (0, 0)
        # published again within the duplicate window: JetStream stores nothing new
        assert publish_replay(cfg, replay).stored == {"signals": 0, "order_links": 0}


def test_settings_from_the_environment_and_an_airflow_connection_never_show_secrets(tmp_path):
    creds = tmp_path / "user.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\nsecret-jwt\n------END NATS USER JWT------\n")
    env = {
        "STRATPOS_NATS_SERVERS": "nats://alice:pw-in-url@bus1:4222, nats://bus2:4223",
        "STRATPOS_NATS_TOKEN": "tok-secret",
        "STRATPOS_NATS_CREDS_FILE": str(creds),
        "STRATPOS_NATS_STREAM": "ENGINE",
        "STRATPOS_NATS_SIGNALS_SUBJECT": "engine.signals.>",
        "STRATPOS_NATS_LINKS_SUBJECT": "engine.links.>",
        "STRATPOS_NATS_DURABLE": "books",
        "STRATPOS_NATS_BATCH_SIZE": "250",
        "STRATPOS_NATS_WAIT_SECONDS": "0.5",
        "STRATPOS_NATS_ACK_WAIT_SECONDS": "60",
    }
    cfg = load_nats_settings(env)
    assert cfg.servers == ("nats://alice:pw-in-url@bus1:4222", "nats://bus2:4223") and cfg.configured
    assert cfg.token.get_secret_value() == "tok-secret" and cfg.creds_file == creds
    assert (cfg.stream, cfg.durable, cfg.batch_size, cfg.wait, cfg.ack_wait) == ("ENGINE", "books", 250, 0.5, 60.0)
    assert (
        cfg.consumer("signals") == "books_signals" and cfg.state_key("order_links") == "nats:ENGINE:books_order_links"
    )
    for shown in (cfg.describe(), repr(cfg), str(cfg)):
        assert "tok-secret" not in shown and "pw-in-url" not in shown and "secret-jwt" not in shown
    assert "nats://bus1:4222,nats://bus2:4223" in cfg.describe()
    assert not load_nats_settings({}).configured

    # Airflow connection nats_default: host/port, password alone = token, login + password = user/password
    conn = nats_settings_from_connection(
        load_nats_settings({}),
        host="bus.internal",
        port=4333,
        password="conn-token",
        extra={"stream": "ENGINE", "signals_subject": "e.s.>", "links_subject": "e.l.>", "batch_size": "50"},
    )
    assert conn.servers == ("nats://bus.internal:4333",) and conn.configured
    assert conn.token == SecretStr("conn-token") and conn.user is None
    assert (conn.stream, conn.signals_subject, conn.links_subject, conn.batch_size) == ("ENGINE", "e.s.>", "e.l.>", 50)
    user = nats_settings_from_connection(load_nats_settings({}), host="h", port=None, login="bob", password="pw")
    assert user.servers == ("nats://h:4222",) and user.user == "bob" and user.password.get_secret_value() == "pw"
    assert "pw" not in repr(user) and "bob" not in user.describe()

    for bad, message in (
        ({"STRATPOS_NATS_BATCH_SIZE": "0"}, "STRATPOS_NATS_BATCH_SIZE .*greater than or equal to 1"),
        ({"STRATPOS_NATS_WAIT_SECONDS": "soon"}, "STRATPOS_NATS_WAIT_SECONDS .*valid number"),
        ({"STRATPOS_NATS_STREAM": "a.b"}, "stream name 'a.b'"),
        ({"STRATPOS_NATS_CREDS_FILE": str(tmp_path / "absent.creds")}, "credentials file"),
        ({"STRATPOS_NATS_LINKS_SUBJECT": "stratpos.signals.>"}, "must differ"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_nats_settings(bad)


def test_an_unreachable_server_and_a_missing_stream_are_one_clear_line(duckdb_settings):
    env = process_env(duckdb_settings, load_nats_settings({}, servers=("nats://user:hunter2@127.0.0.1:9",)))
    done = subprocess.run([*STRATPOS, "ingest", "nats"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("stratpos: cannot connect to NATS nats://127.0.0.1:9")
    assert "hunter2" not in done.stdout + done.stderr
    with throwaway_stream() as cfg:
        done = subprocess.run(
            [*STRATPOS, "ingest", "nats"], env=process_env(duckdb_settings, cfg), capture_output=True, text=True
        )
        assert done.returncode == 1
        assert (
            done.stderr.strip().splitlines()[-1] == f"stratpos: stream {cfg.stream} does not exist on {cfg.describe()}"
        )
