"""A batch of one source: validate, dedupe, merge, quarantine, audit and watermark in one commit.

Counting rule (SPEC §3.5): every record a batch receives is exactly one of
loaded (inserted, or a newer version of a stored row), duplicate (already stored
or repeated in the batch, or an older version) or quarantined (rejected with a
reason, or conflicting with a stored record of the same key; for versioned records:
the same version with different content).

A failed commit rolls the whole batch back, records a ``failed`` audit row (best
effort: if even that fails, the original error is the one raised) and re-raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, NamedTuple

from ingestion.records import (
    KINDS,
    MAX_PAYLOAD_BYTES,
    Rejected,
    bounded_payload,
    parse_line_text,
    raw_hash,
    row_hash,
    safe_text,
    to_row,
)
from ingestion.schema import RAW_TABLES
from ingestion.store import RawStore, is_data_error, rows_to_arrow, utcnow
from stratpos.core.runid import new_run_id as new_run_id  # re-exported: run ids are core's

log = logging.getLogger(__name__)
MAX_SOURCE_CHARS = 255  # raw.quarantine / audit.ingestion_runs keep the source in a varchar(255) key column
_BOM = b"\xef\xbb\xbf"


class Oversized(NamedTuple):
    """A line longer than :data:`MAX_PAYLOAD_BYTES`, never held whole: its first bytes, length and sha256."""

    head: bytes
    size: int
    sha256: str


_READ_CHUNK = 1 << 20


def read_lines(fh: BinaryIO, limit: int = MAX_PAYLOAD_BYTES, hasher=None) -> Iterator[tuple[int, bytes | Oversized]]:
    """(bytes consumed, line) for each line of a binary file, in bounded memory.

    A line longer than ``limit`` bytes (without its line end) comes as :class:`Oversized`: its first
    ``limit`` bytes, its full length and the sha256 of its content; the rest is read in chunks and dropped.
    ``hasher`` (a hashlib object), when given, sees every byte read.
    """
    while True:
        line = fh.readline(limit + 2)  # + "\r\n"
        if not line:
            return
        if hasher is not None:
            hasher.update(line)
        if line.endswith(b"\n") or len(line) < limit + 2:
            yield len(line), line
            continue
        h, size, consumed = hashlib.sha256(line), len(line), len(line)
        head = line[:limit]
        while True:
            chunk = fh.readline(_READ_CHUNK)
            if not chunk:
                break
            consumed += len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            end = chunk.endswith(b"\n")
            body = chunk.rstrip(b"\r\n") if end else chunk
            h.update(body)
            size += len(body)
            if end:
                break
        yield consumed, Oversized(head, size, h.hexdigest())


def audit_row(
    run_id: str,
    source: str,
    target: str,
    started_at: datetime,
    status: str,
    message: str | None,
    *,
    batch_no: int = 0,
    duration_ms: int = 0,
    received: int = 0,
    loaded: int = 0,
    duplicates: int = 0,
    quarantined: int = 0,
) -> dict:
    """One ``audit.ingestion_runs`` row (finished now): a batch's, a failed batch's, or a run-level note."""
    return {
        "run_id": run_id,
        "source": source,
        "batch_no": batch_no,
        "target": target,
        "started_at": started_at,
        "finished_at": utcnow(),
        "duration_ms": duration_ms,
        "received": received,
        "loaded": loaded,
        "duplicates": duplicates,
        "quarantined": quarantined,
        "status": status,
        "message": message,
    }


def _key_getter(columns: tuple[str, ...]):
    """row -> key tuple (``itemgetter`` returns a bare value for one column)."""
    get = operator.itemgetter(*columns)
    return get if len(columns) > 1 else lambda row: (get(row),)


def _with_loaded_at(arrow, loaded_at: datetime):
    import pyarrow as pa

    i = arrow.schema.get_field_index("loaded_at")
    field = arrow.schema.field(i)
    return arrow.set_column(i, field, pa.array([loaded_at] * arrow.num_rows, field.type))


@dataclass
class BatchStats:
    source: str
    received: int = 0
    loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    seconds: float = 0.0

    def add(self, other: BatchStats) -> None:
        self.received += other.received
        self.loaded += other.loaded
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.seconds += other.seconds

    @property
    def balanced(self) -> bool:
        return self.received == self.loaded + self.duplicates + self.quarantined

    def summary(self) -> str:
        rate = f", {self.received / self.seconds:,.0f}/s" if self.seconds > 0 and self.received else ""
        return (
            f"{self.source}: received {self.received:,} = loaded {self.loaded:,} + duplicates "
            f"{self.duplicates:,} + quarantined {self.quarantined:,} ({self.seconds:.1f} s{rate})"
        )


class Batch:
    """Collects the records of one source for one commit."""

    def __init__(self, kind: str, source: str, account_id: str, run_id: str, batch_no: int = 0):
        if len(source) > MAX_SOURCE_CHARS:
            raise ValueError(f"source name longer than {MAX_SOURCE_CHARS} characters: {source[:80]!r}…")
        self.kind = KINDS[kind]
        self.table = RAW_TABLES[self.kind.table]
        self._key = _key_getter(self.table.key)
        self.source = source
        self.account_id = account_id
        self.run_id = run_id
        self.batch_no = batch_no
        self.started = time.perf_counter()
        self.started_at = utcnow()
        self.received = 0
        self.in_batch_duplicates = 0
        self.rows: dict[tuple, dict] = {}
        self.rejects: list[dict] = []
        self.quarantined_rows: list[dict] = []  # after a commit: every quarantined record, conflicts included
        self.arrow = None  # the rows once sealed

    def __len__(self) -> int:
        return self.received

    # a batch prepared in a worker process travels to the committing process pickled: its rows as
    # one Arrow table (see seal), its record kind and table by name
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["kind"] = self.kind.name
        del state["table"], state["_key"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.kind = KINDS[state["kind"]]
        self.table = RAW_TABLES[self.kind.table]
        self._key = _key_getter(self.table.key)

    def seal(self) -> Batch:
        """No more records: the rows become one Arrow table (cheap to pickle, staged as is by DuckDB)."""
        if self.arrow is None:
            rows = list(self.rows.values())
            for r in rows:
                r["source"] = self.source
                r["run_id"] = self.run_id
                r["loaded_at"] = None  # set when the batch commits
            self.arrow = rows_to_arrow(self.table, rows)
            self.rows = {}
        return self

    def reject(
        self,
        payload: str,
        reason: str,
        key: str | None = None,
        raw: bytes | None = None,
        *,
        record_hash: str | None = None,
    ) -> None:
        """Quarantine one record (already counted as received); identified by the hash of its original bytes."""
        self.rejects.append(self._reject_row(payload, reason, key, raw, record_hash))

    def add_rejected(self, payload: str, reason: str, key: str | None = None, *, record_hash: str | None = None):
        """A record the caller rejected itself (e.g. a whole unreadable file): received and quarantined."""
        self.received += 1
        self.reject(payload, reason, key, record_hash=record_hash)

    def _reject_row(self, payload, reason, key, raw=None, record_hash=None, size=None) -> dict:
        """A quarantine row: the payload bounded (:func:`bounded_payload`), its full length and hash kept."""
        text, full = bounded_payload(raw if raw is not None else payload)
        if size is not None and size > full and not text.endswith("…"):  # an Oversized line's head
            text += "…"
        return {
            "source": self.source,
            "record_hash": record_hash or raw_hash(raw if raw is not None else payload),
            "record_key": safe_text(key or "?")[:255],
            "reason": safe_text(reason),
            "payload": text,
            "run_id": self.run_id,
            "quarantined_at": utcnow(),
            "payload_bytes": full if size is None else size,
        }

    def add_line(self, raw: bytes | Oversized) -> None:
        """One JSONL line as bytes, exactly as read (or an :class:`Oversized` line from :func:`read_lines`)."""
        self.received += 1
        if isinstance(raw, Oversized):
            reason = f"payload of {raw.size} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit"
            self.rejects.append(self._reject_row("", reason, None, raw.head, raw.sha256, raw.size))
            return
        raw = raw.rstrip(b"\r\n")
        if raw.startswith(_BOM):
            raw = raw[3:]
        try:
            obj, text = parse_line_text(raw)
        except Rejected as exc:
            self.reject("", exc.reason, raw=raw)
            return
        except Exception as exc:  # whatever one record does, the batch goes on
            self.reject("", _unexpected(exc), raw=raw)
            return
        self._add(obj, text)

    def add_object(self, obj: dict, payload: str | None = None) -> None:
        """An already parsed record (API response, CSV/Parquet row)."""
        self.received += 1
        if payload is None:
            try:
                payload = json.dumps(obj, default=str, ensure_ascii=False, separators=(",", ":"))
            except Exception as exc:  # nested too deeply, circular, ...
                self.reject(repr(obj)[:MAX_PAYLOAD_BYTES], _unexpected(exc))
                return
        self._add(obj, payload)

    def _add(self, obj: dict, payload: str) -> None:
        if self.arrow is not None:
            raise RuntimeError("the batch is sealed: records cannot be added any more")
        try:
            row = to_row(self.kind, obj, self.account_id)
            row["payload_hash"] = row_hash(row)
        except Rejected as exc:
            self.reject(payload, exc.reason, exc.key)
            return
        except Exception as exc:  # a failure nobody foresaw is still one record's: quarantined, the batch goes on
            self.reject(payload, _unexpected(exc))
            return
        if not payload.isascii() and not _storable(payload):  # an API object's text with a lone surrogate
            self.reject(payload, "payload: not encodable as UTF-8 (a lone surrogate such as \\ud800)", None)
            return
        row["payload"] = payload
        key = self._key(row)
        seen = self.rows.get(key)
        if seen is None:
            self.rows[key] = row
            return
        if self.table.version and row[self.table.version] != seen[self.table.version]:
            v = self.table.version
            self.in_batch_duplicates += 1  # the older version counts as a duplicate
            if row[v] > seen[v]:
                self.rows[key] = row
        elif seen["payload_hash"] == row["payload_hash"]:
            self.in_batch_duplicates += 1
        elif self.table.replace:  # the latest load wins: the earlier record of the batch counts as a duplicate
            self.in_batch_duplicates += 1
            self.rows[key] = row
        else:
            self.reject(
                payload,
                f"key {':'.join(map(str, key))} repeated in this batch with different content",
                ":".join(map(str, key)),
            )

    def commit(self, store: RawStore, watermarks: dict[str, str] | None = None) -> BatchStats:
        """Merge, quarantine, watermark and audit in one transaction; a failure leaves nothing behind."""
        stats = BatchStats(self.source, received=self.received)
        loaded_at = utcnow()
        if self.arrow is not None:
            rows = _with_loaded_at(self.arrow, loaded_at)
        else:
            rows = list(self.rows.values())
            for r in rows:
                r["source"] = self.source
                r["run_id"] = self.run_id
                r["loaded_at"] = loaded_at
        try:
            try:
                self._write(store, rows, watermarks, stats)
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                rows = self._set_aside_unstorable(store, rows, exc)  # quarantined, the rest goes on
                self._write(store, rows, watermarks, stats)
        except Exception as exc:
            stats.seconds = time.perf_counter() - self.started
            failed = BatchStats(self.source, received=self.received, seconds=stats.seconds)
            try:
                store.record_run(self._audit(store, failed, "failed", f"{type(exc).__name__}: {exc}"[:2000]))
            except Exception as audit_exc:  # the warehouse is gone: the original error matters more
                log.error("could not record the failed batch of %s: %s", self.source, audit_exc)
            raise
        assert stats.balanced, stats
        return stats

    def _write(self, store: RawStore, rows, watermarks: dict[str, str] | None, stats: BatchStats) -> None:
        with store.commit_lock(), store.transaction():
            merged = store.merge(self.table, rows)
            rejects = list(self.rejects)  # a retried commit must not quarantine the conflicts twice
            for r in merged.conflicts:
                key = ":".join(str(r[k]) for k in self.table.key)
                version = f" version {r[self.table.version]}" if self.table.version else ""
                reason = f"key {key}{version} was already loaded with different content"
                rejects.append(self._reject_row(r["payload"], reason, key))
            store.quarantine(rejects)
            stats.loaded = merged.loaded
            stats.duplicates = merged.duplicates + self.in_batch_duplicates
            stats.quarantined = len(rejects)
            stats.seconds = time.perf_counter() - self.started
            for key, value in (watermarks or {}).items():
                store.set_watermark(key, value, self.run_id)
            store.write_run(self._audit(store, stats, "ok", None))
        self.quarantined_rows = rejects

    def _set_aside_unstorable(self, store: RawStore, rows, error: BaseException):
        """The rows the warehouse refuses, found by halving (each probe rolled back), become quarantine rows.

        The validation rules (:func:`ingestion.records.check_row`) keep such rows out; this is the net
        behind them, so that one record the rules did not foresee still cannot fail its batch. Returns the
        other rows; raises ``error`` again when no single row explains it.
        """
        arrow = not isinstance(rows, list)

        def part(indexes: list[int]):
            return rows.take(indexes) if arrow else [rows[i] for i in indexes]

        def refused(indexes: list[int]) -> BaseException | None:
            try:
                with store.commit_lock(), store.transaction():
                    store.merge(self.table, part(indexes))
                    raise _Probe
            except _Probe:
                return None
            except Exception as exc:
                if is_data_error(exc):
                    return exc
                raise

        bad: dict[int, BaseException] = {}

        def search(indexes: list[int], exc: BaseException | None) -> None:
            if exc is None:
                return
            if len(indexes) == 1:
                bad[indexes[0]] = exc
                return
            half = len(indexes) // 2
            for side in (indexes[:half], indexes[half:]):
                search(side, refused(side))

        search(list(range(len(rows))), error)
        if not bad:
            raise error
        for i, exc in sorted(bad.items()):
            row = part([i]).to_pylist()[0] if arrow else rows[i]
            key = ":".join(str(row[k]) for k in self.table.key)
            reason = f"cannot be stored: {type(exc).__name__}: {exc}"[:1000]
            self.rejects.append(self._reject_row(row["payload"], reason, key))
            log.warning("%s: record %s quarantined: %s", self.source, key, reason)
        return part([i for i in range(len(rows)) if i not in bad])

    def _audit(self, store: RawStore, stats: BatchStats, status: str, message: str | None) -> dict:
        return audit_row(
            self.run_id,
            self.source,
            store.target,
            self.started_at,
            status,
            message,
            batch_no=self.batch_no,
            duration_ms=int(stats.seconds * 1000),
            received=stats.received,
            loaded=stats.loaded,
            duplicates=stats.duplicates,
            quarantined=stats.quarantined,
        )


class _Probe(Exception):
    """Rolls back a probe merge that succeeded."""


def _unexpected(exc: BaseException) -> str:
    return f"record cannot be converted: {type(exc).__name__}: {exc}"[:500]


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
