"""Signals (SPEC §3.1) from a landing folder of files or from a SQL table into ``raw.signals``.

Both sources go through the same validation as the replay loader (:mod:`ingestion.records`),
the same batches (:class:`ingestion.batch.Batch`: merge + quarantine + audit row + state in
one transaction) and the same counting rule: received = loaded + duplicates + quarantined.

Landing folder (:func:`ingest_signal_files`)
    ``*.jsonl``, ``*.csv`` and ``*.parquet`` files directly in the folder (hidden files and
    other suffixes are ignored), in name order. Each file is processed once, tracked by the
    sha256 of its content under the state key ``signals:file:{sha256}``, which is written in
    the same transaction as the file's last batch: a crash re-processes the file (its
    records are then duplicates) and a re-run skips it; a modified file has a new hash and
    is processed again. Two files with the same content are one file.

    * JSONL: streamed, one signal per line, exactly as in a replay directory.
    * CSV: UTF-8 (a BOM is allowed), a header row naming the fields, one signal per row. An
      empty cell means the field is missing; decimal strings stay exact strings until the
      warehouse casts them. Cells of extra columns (which go to ``attributes``) are read as
      JSON when they parse as JSON (``5``, ``0.64``, ``{"a": 1}``, ``true``), else kept as
      text, so a CSV row gives the same row as the JSONL line it was written from.
    * Parquet (pyarrow): decimal columns are exact; float columns are converted through
      ``repr`` (the shortest decimal that round-trips the float, e.g. ``0.1`` and not
      ``0.1000000000000000055…``); timestamp columns without a time zone are read as UTC
      (typed timestamps; a *string* timestamp without an offset is still rejected); null
      means missing.

    A row that fails validation is quarantined with its reason. A file that cannot be read
    at all (not UTF-8, broken CSV quoting, corrupt Parquet, unreadable) becomes one
    quarantine row for the whole file, keyed by the file's hash, and the run continues.
    CSV and Parquet files are read whole (signal files are small); JSONL is streamed.

SQL table (:func:`ingest_signal_table`)
    Any SQLAlchemy URL whose driver is installed. Incremental by one column: each run reads
    the rows whose value is greater than the watermark (compared in SQL, bound parameter),
    in that column's order, and commits every batch with the largest value it holds as the
    new watermark (state key ``signals:sql:{table}``); batches are only cut between
    different values, so a crash never leaves half of a value's rows behind the
    watermark. The watermark is stored as a typed string (``int:42``,
    ``datetime:2026-01-05T10:00:00.123000``, ``decimal:…``, ``float:…``, ``date:…``,
    ``str:…``) and read back as the same Python type. Rows whose incremental value is NULL
    can never be picked up and are quarantined (again each run, stored once). The
    incremental column is transport metadata: unless it is itself a signal field (e.g.
    ``timestamp``) it is not copied into ``attributes``, so a re-sent signal with a new
    sequence number is a duplicate, not a conflict. Naive SQL datetimes are UTC. Only the
    URL with its password masked ever appears in logs, errors and the warehouse.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ingestion.batch import Batch, BatchStats, Oversized, audit_row, new_run_id, read_lines
from ingestion.records import MAX_PAYLOAD_BYTES, SignalIn, canonical_json, printable_payload
from ingestion.store import RawStore, utcnow
from stratpos.core.settings import Settings

log = logging.getLogger(__name__)

FILE_STATE_PREFIX = "signals:file:"
SQL_STATE_PREFIX = "signals:sql:"
FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
DEFAULT_FILE_BATCH = 10_000
SIGNAL_FIELDS = frozenset(SignalIn.model_fields) | {"id"}
_CHUNK = 1 << 20


class SignalSourceError(RuntimeError):
    """A signal source cannot be used at all (missing folder or table, bad URL …); the message says why."""


class SignalFileResults(list):
    """The :class:`BatchStats` of each processed file, plus the files skipped as unchanged."""

    def __init__(self, stats: Iterable[BatchStats] = (), skipped: Iterable[Path] = ()):
        super().__init__(stats)
        self.skipped: list[Path] = list(skipped)


# ----------------------------------------------------------------------------- values
def _cell(value: Any) -> Any:
    """A typed value (Parquet, SQL) in the form the validators take: exact decimals, aware datetimes."""
    if isinstance(value, float):
        return Decimal(repr(value))  # shortest round-tripping decimal; NaN/inf stay visible to the validator
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.hex()
    if isinstance(value, dict):
        return {str(k): _cell(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cell(v) for v in value]
    return value


def _record(row: dict[str, Any], drop: str | None = None) -> dict[str, Any]:
    """A typed row as a signal object: nulls are missing fields; ``drop`` is left out unless it is a signal field."""
    return {k: _cell(v) for k, v in row.items() if v is not None and not (k == drop and k not in SIGNAL_FIELDS)}


def _json_cell(text: str) -> Any:
    """An extra CSV cell: its JSON value when it is JSON (numbers exact), else the text itself."""
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=lambda name: name)
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to be a value worth keeping as one
        return text


def _payload_too_big(payload: str) -> str | None:
    size = len(payload.encode("utf-8", "surrogateescape"))
    if size > MAX_PAYLOAD_BYTES:
        return f"payload of {size} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit"
    return None


def _source(prefix: str, name: str) -> str:
    """A source label that fits the 255-character key columns (long names keep a hash of the full name)."""
    label = prefix + name
    if len(label) <= 255:
        return label
    return f"{prefix}{name[: 255 - len(prefix) - 17]}~{hashlib.sha256(name.encode()).hexdigest()[:16]}"


# ----------------------------------------------------------------------------- files
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _FileReadError(Exception):
    """The whole file is unusable; ``reason`` goes to the quarantine row."""


def _csv_records(data: bytes, name: str) -> Iterator[tuple[dict | None, str, str | None]]:
    """(object, payload, reject reason) per CSV row; raises :class:`_FileReadError` for an unreadable file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _FileReadError(
            f"CSV file {name} is not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = [(reader.line_num, cells) for cells in reader]
    except csv.Error as exc:
        raise _FileReadError(f"CSV file {name} cannot be parsed at line {reader.line_num}: {exc}") from None
    if not rows:
        return
    header = [h.strip() for h in rows[0][1]]
    if any(not h for h in header):
        raise _FileReadError(f"CSV file {name} has an empty column name in its header")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise _FileReadError(f"CSV file {name} has duplicate columns: {', '.join(dupes)}")
    for line_no, cells in rows[1:]:
        if not cells or (len(cells) == 1 and not cells[0].strip() and len(header) > 1):
            continue  # blank line
        if len(cells) != len(header):
            payload = json.dumps(cells, ensure_ascii=False)
            yield (
                None,
                payload,
                f"CSV row ending at line {line_no} has {len(cells)} cells, the header has {len(header)}",
            )
            continue
        original = dict(zip(header, cells, strict=True))
        payload = json.dumps(original, ensure_ascii=False, separators=(",", ":"))
        obj = {
            k: (v if k in SIGNAL_FIELDS else _json_cell(v))
            for k, v in original.items()
            if v != ""  # empty cell = missing field
        }
        yield obj, payload, _payload_too_big(payload)


def _parquet_records(data: bytes, name: str) -> Iterator[tuple[dict | None, str, str | None]]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(io.BytesIO(data)).read()
        names = table.column_names
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise _FileReadError(f"Parquet file {name} has duplicate columns: {', '.join(dupes)}")
        records = table.to_pylist()  # inside the guard: a type pyarrow cannot convert is a file problem too
    except _FileReadError:
        raise
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError (bad compression), … for corrupt files
        raise _FileReadError(f"Parquet file {name} cannot be read: {type(exc).__name__}: {exc}") from None
    for row in records:
        payload = canonical_json(_cell(row))
        yield _record(row), payload, _payload_too_big(payload)


def _file_entry(name: str, size: int, digest: str, head: bytes) -> str:
    """The quarantine payload of an unreadable file: what it is, and its first bytes (the file stays in place)."""
    return json.dumps(
        {"file": name, "size": size, "sha256": digest, "head": printable_payload(head[:1024])},
        ensure_ascii=False,
    )


def ingest_signal_files(
    settings: Settings,
    landing: Path,
    *,
    run_id: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    batch_size: int = DEFAULT_FILE_BATCH,
    account_id: str = "default",
    store: RawStore | None = None,
) -> SignalFileResults:
    """Load every new signal file of ``landing``; returns one :class:`BatchStats` per processed file.

    ``progress(file_name, files_done, files_total)`` is called after each file. The
    result's ``skipped`` lists the files skipped because their content was already loaded.
    Besides each file's own audit rows, the folder run gets one audit row
    (``signals:landing:{folder}``, counts 0) whose message says how many files were
    processed and skipped.
    """
    landing = Path(landing)
    if not landing.is_dir():
        raise SignalSourceError(f"signal landing folder {landing} does not exist or is not a directory")
    run_id = run_id or new_run_id()
    files = sorted(
        p for p in landing.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FORMATS
    )
    results = SignalFileResults()
    own = store is None
    store = store or RawStore(settings)
    started, t0 = utcnow(), time.perf_counter()
    try:
        store.open()
        done = {k.removeprefix(FILE_STATE_PREFIX) for k in store.watermarks(FILE_STATE_PREFIX)}
        for i, path in enumerate(files, 1):
            stats, digest = _ingest_file(store, path, done, run_id, batch_size, account_id)
            if stats is None:
                results.skipped.append(path)
            else:
                results.append(stats)
                log.info(stats.summary())
            if digest:
                done.add(digest)
            if progress:
                progress(path.name, i, len(files))
        _audit_landing(store, landing, run_id, started, time.perf_counter() - t0, results)
    finally:
        if own:
            store.close()
    if results.skipped:
        log.info("signals: skipped %d unchanged files", len(results.skipped))
    return results


def _audit_landing(store: RawStore, landing: Path, run_id: str, started, seconds: float, results) -> None:
    """One audit row for the folder run itself, so a run that only skipped files is on record too."""
    message = f"processed {len(results)} files, skipped {len(results.skipped)} unchanged files"
    row = audit_row(
        run_id,
        _source("signals:landing:", landing.name or str(landing)),
        store.target,
        started,
        "ok",
        message,
        duration_ms=int(seconds * 1000),
    )
    store.record_run(row)


def _ingest_file(
    store: RawStore, path: Path, done: set[str], run_id: str, batch_size: int, account_id: str
) -> tuple[BatchStats | None, str | None]:
    """One file, alone: a concurrent load of the same file name in this warehouse waits for it (see
    :meth:`RawStore.load_lock`), then finds its content loaded (the state key) and skips it."""
    source = _source("signals:file:", path.name)
    with store.load_lock(source):
        done.update(k.removeprefix(FILE_STATE_PREFIX) for k in store.watermarks(FILE_STATE_PREFIX))
        return _ingest_file_locked(store, path, source, done, run_id, batch_size, account_id)


def _ingest_file_locked(
    store: RawStore, path: Path, source: str, done: set[str], run_id: str, batch_size: int, account_id: str
) -> tuple[BatchStats | None, str | None]:
    fmt = FORMATS[path.suffix.lower()]
    try:
        if fmt == "jsonl":
            digest = _sha256(path)
            data = None
        else:
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
    except OSError as exc:  # unreadable (permissions, vanished): quarantined, retried next run
        batch = Batch("signals", source, account_id, run_id)
        reason = f"signal file {path.name} cannot be read: {exc.strerror or exc}"
        batch.add_rejected(json.dumps({"file": path.name}), reason, path.name[:255])
        return batch.commit(store), None
    if digest in done:
        return None, digest
    state = {FILE_STATE_PREFIX + digest: path.name[:255]}
    if fmt == "jsonl":
        return _ingest_jsonl(store, path, source, digest, state, run_id, batch_size, account_id), digest
    try:
        records = list(_csv_records(data, path.name) if fmt == "csv" else _parquet_records(data, path.name))
        problem = None
    except _FileReadError as exc:
        problem = str(exc)
    except Exception as exc:  # anything else reading one file is that file's problem: the folder goes on
        problem = f"signal file {path.name} cannot be read: {type(exc).__name__}: {exc}"[:1000]
    if problem is not None:
        batch = Batch("signals", source, account_id, run_id)
        batch.add_rejected(
            _file_entry(path.name, len(data), digest, data), problem, path.name[:255], record_hash=digest
        )
        stats = batch.commit(store, state)
        log.warning("signals: %s quarantined: %s", path.name, problem)
        return stats, digest
    total = BatchStats(source)
    batch_no = 0
    batch = Batch("signals", source, account_id, run_id, batch_no)
    for obj, payload, reason in records:
        if reason or obj is None:
            batch.add_rejected(payload, reason or "unreadable row", None if obj is None else _key(obj))
        else:
            batch.add_object(obj, payload)
        if len(batch) >= batch_size:
            total.add(batch.commit(store))
            batch_no += 1
            batch = Batch("signals", source, account_id, run_id, batch_no)
    total.add(batch.commit(store, state))
    return total, digest


def _key(obj: dict) -> str:
    return str(obj.get("signal_id", obj.get("id", "?")))[:64]


def _ingest_jsonl(store, path: Path, source, digest, state, run_id, batch_size, account_id) -> BatchStats:
    total = BatchStats(source)
    batch_no = 0
    batch = Batch("signals", source, account_id, run_id, batch_no)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for _, line in read_lines(fh, hasher=h):  # a line over the limit comes as Oversized, never whole
            if not isinstance(line, Oversized) and not line.strip():
                continue
            batch.add_line(line)
            if len(batch) >= batch_size:
                total.add(batch.commit(store))
                batch_no += 1
                batch = Batch("signals", source, account_id, run_id, batch_no)
    if h.hexdigest() != digest:  # appended to while we read it: load what we read, look again next run
        log.warning("signals: %s changed while it was read; it will be read again next run", path.name)
        state = {}
    total.add(batch.commit(store, state))
    return total


# ----------------------------------------------------------------------------- SQL table
def _encode_watermark(value: Any) -> str:
    if isinstance(value, bool):
        raise SignalSourceError("a boolean column cannot be an incremental column")
    if isinstance(value, int):
        out = f"int:{value}"
    elif isinstance(value, Decimal):
        out = f"decimal:{value}"
    elif isinstance(value, float):
        out = f"float:{value!r}"
    elif isinstance(value, datetime):
        out = f"datetime:{value.isoformat()}"
    elif isinstance(value, date):
        out = f"date:{value.isoformat()}"
    elif isinstance(value, str):
        out = f"str:{value}"
    else:
        raise SignalSourceError(f"unsupported incremental column type {type(value).__name__}")
    if len(out) > 255:
        raise SignalSourceError(f"incremental value too long to keep as a watermark ({len(out)} characters)")
    return out


def _decode_watermark(text: str) -> Any:
    tag, _, raw = text.partition(":")
    decoders: dict[str, Callable[[str], Any]] = {
        "int": int,
        "decimal": Decimal,
        "float": float,
        "datetime": datetime.fromisoformat,
        "date": date.fromisoformat,
        "str": str,
    }
    if tag not in decoders:
        raise SignalSourceError(f"stored watermark {text!r} has an unknown type tag")
    return decoders[tag](raw)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def _describe_error(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return f"{type(orig or exc).__name__}: {orig or exc}".splitlines()[0][:500]


def ingest_signal_table(
    settings: Settings,
    url: str,
    table: str,
    incremental_column: str,
    *,
    batch_size: int = 10_000,
    run_id: str | None = None,
    account_id: str = "default",
    store: RawStore | None = None,
) -> list[BatchStats]:
    """Load the signals of ``table`` (``name`` or ``schema.name``) newer than the stored watermark.

    Returns one summed :class:`BatchStats` (source ``signals:sql:{table}``).
    """
    import sqlalchemy as sa

    safe = _safe_url(url)
    run_id = run_id or new_run_id()
    try:
        engine = sa.create_engine(url)
    except Exception as exc:  # unknown dialect, missing driver, malformed URL
        raise SignalSourceError(f"cannot use signal source {safe}: {_describe_error(exc)}") from None
    schema, _, name = table.rpartition(".")
    try:
        tbl = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=engine)
    except sa.exc.NoSuchTableError:
        engine.dispose()
        raise SignalSourceError(f"signal table {table!r} does not exist at {safe}") from None
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise SignalSourceError(f"cannot read signal table {table!r} at {safe}: {_describe_error(exc)}") from None
    if incremental_column not in tbl.c:
        engine.dispose()
        raise SignalSourceError(
            f"signal table {table!r} has no column {incremental_column!r} (columns: {', '.join(tbl.c.keys())})"
        )
    col = tbl.c[incremental_column]
    state_key = _source(SQL_STATE_PREFIX, table)
    source = state_key
    own = store is None
    store = store or RawStore(settings)
    total = BatchStats(source)
    try:
        store.open()
        stored = store.get_watermark(state_key)
        watermark = _decode_watermark(stored) if stored is not None else None
        log.info("signals: reading %s from %s where %s > %r", table, safe, incremental_column, watermark)
        query = sa.select(tbl).where(col.is_not(None)).order_by(col)
        if watermark is not None:
            query = query.where(col > sa.bindparam("watermark", watermark, type_=col.type))
        batch_no = 0
        batch = Batch("signals", source, account_id, run_id, batch_no)
        try:
            with engine.connect() as conn:
                # rows that can never pass the watermark test are quarantined, not silently skipped
                for row in conn.execute(sa.select(tbl).where(col.is_(None))).mappings():
                    record = dict(row)
                    reason = f"incremental column {incremental_column} is NULL: the row can never be read incrementally"
                    batch.add_rejected(canonical_json(_cell(record)), reason, _key(record))
                last = None
                result = conn.execution_options(yield_per=batch_size).execute(query).mappings()
                for row in result:
                    value = row[incremental_column]
                    if len(batch) >= batch_size and value != last:  # cut only between two values
                        marks = {state_key: _encode_watermark(last)} if last is not None else None
                        total.add(batch.commit(store, marks))
                        batch_no += 1
                        batch = Batch("signals", source, account_id, run_id, batch_no)
                    record = dict(row)
                    payload = canonical_json(_cell(record))
                    reason = _payload_too_big(payload)
                    if reason:
                        batch.add_rejected(payload, reason, _key(record))
                    else:
                        batch.add_object(_record(record, drop=incremental_column), payload)
                    last = value
        except sa.exc.SQLAlchemyError as exc:
            raise SignalSourceError(
                f"reading signal table {table!r} at {safe} failed: {_describe_error(exc)}"
            ) from None
        total.add(batch.commit(store, {state_key: _encode_watermark(last)} if last is not None else None))
    finally:
        engine.dispose()
        if own:
            store.close()
    log.info(total.summary())
    return [total]
