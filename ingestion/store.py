"""The raw layer on DuckDB or MySQL/MariaDB: bulk, idempotent loads in one transaction each.

A batch of validated rows is staged in bulk (DuckDB: from an Arrow table; MySQL:
LOAD DATA LOCAL INFILE into a temporary table, multi-row inserts when the server
disables local_infile), compared with what is stored by primary key, and merged: new
keys are inserted, newer versions of versioned rows (orders) replace older ones,
identical rows and older versions count as duplicates, and rows whose key exists with
different content (for versioned rows: the same version with different content) come
back as conflicts for the quarantine. The batch, its
quarantine rows, its audit row and its watermarks commit together or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import operator
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingestion.schema import ALL_TABLES, AUDIT_TABLES, RAW_TABLES, Table
from stratpos.core.settings import Settings
from stratpos.core.warehouse import connect_duckdb, connect_mysql, ensure_schemas

log = logging.getLogger(__name__)
MYSQL_CHUNK = 2000


class UnstorableRows(RuntimeError):
    """The warehouse took a bulk load only with warnings (a value cut or mangled): the batch is refused."""


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` is about the values of the rows being stored (one bad record), not the warehouse.

    Such an error lets :meth:`ingestion.batch.Batch.commit` find the records that cannot be stored and
    quarantine them; anything else (connection lost, disk full, a bug) fails the batch as before.
    """
    if isinstance(exc, UnstorableRows | UnicodeError | OverflowError):
        return True
    try:
        import pyarrow as pa

        if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError):
            return True
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        pass
    try:
        import pymysql

        if isinstance(exc, pymysql.err.DataError | pymysql.err.IntegrityError):
            return True
        if isinstance(exc, pymysql.err.MySQLError) and exc.args and exc.args[0] in (1292, 1300, 1365, 1367):
            return True  # incorrect datetime/value, invalid character string, division by zero, illegal value
    except ImportError:  # pragma: no cover
        pass
    import duckdb

    return isinstance(
        exc,
        duckdb.ConversionException
        | duckdb.ConstraintException
        | duckdb.OutOfRangeException
        | duckdb.InvalidInputException,
    )


class WarehouseBusy(RuntimeError):
    """Another load holds the warehouse (DuckDB file) or the source (MySQL named lock) for too long."""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class MergeResult:
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    conflicts: list[dict] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return self.inserted + self.updated


Rows = list[dict] | Any  # row dicts, or a pyarrow.Table with the table's columns in order (see rows_to_arrow)


def rows_to_arrow(table: Table, rows: list[dict]):
    """Row dicts -> a pyarrow Table with ``table``'s columns in order (decimals as exact strings)."""
    import pyarrow as pa

    types = {"int": pa.int64(), "bool": pa.bool_(), "ts": pa.timestamp("ms")}
    schema = pa.schema([(c.name, types.get(c.kind, pa.string())) for c in table.columns])
    get = operator.itemgetter(*schema.names)
    columns = zip(*map(get, rows), strict=True) if rows else [[] for _ in schema]
    return pa.Table.from_arrays([pa.array(col, f.type) for col, f in zip(columns, schema, strict=True)], schema=schema)


def _is_arrow(rows: Rows) -> bool:
    return not isinstance(rows, list)


def _row_tuples(table: Table, rows: Rows):
    """The rows as tuples in ``table``'s column order."""
    if _is_arrow(rows):
        return zip(*(col.to_pylist() for col in rows.columns), strict=True)
    return map(operator.itemgetter(*table.column_names), rows)


class RawStore:
    """One connection to the configured warehouse, with the raw and audit tables."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.target = settings.target
        self._con = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> RawStore:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        if self._con is not None:
            return
        if self.target == "duckdb":
            self._con = self._connect_duckdb()  # creates the schemas too, once the file is free
        else:
            ensure_schemas(self.settings)
            self._con = connect_mysql(self.settings, connect_timeout=10, bulk=True)
            self._load_data = self._local_infile_enabled()
        self.ensure_tables()

    def _connect_duckdb(self):
        """Open the DuckDB file; while another process holds its write lock, wait (up to the setting) and retry.

        DuckDB lets one process write a database file: a second concurrent load used to fail with DuckDB's
        lock error. It now waits its turn, so concurrent loads serialize, and says clearly why it gave up.
        """
        wait = self.settings.load_lock_wait_seconds
        deadline = time.monotonic() + wait
        while True:
            try:
                ensure_schemas(self.settings)
                return connect_duckdb(self.settings, memory_limit=self.settings.duckdb_ingest_memory)
            except Exception as exc:  # DuckDB's IOException, or the error a connection helper makes of it
                if "could not set lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    holder = str(exc).split("Conflicting lock is held in", 1)[-1].strip().rstrip(".")[:200]
                    raise WarehouseBusy(
                        f"the DuckDB warehouse {self.settings.duckdb_path} is in use by another process "
                        f"({holder}); waited {wait} s (STRATPOS_LOAD_LOCK_WAIT_SECONDS)"
                    ) from None
                log.info("the DuckDB warehouse is in use by another process: waiting")
                time.sleep(0.5)

    @contextlib.contextmanager
    def load_lock(self, source: str):
        """One load of ``source`` at a time in this warehouse/prefix (MySQL: a named lock on this connection).

        Two concurrent loads of one source then never merge the same keys at once: the second sees the
        first's rows as stored and counts them as duplicates. DuckDB needs none: its file lock (see
        :meth:`_connect_duckdb`) already serializes the processes that load into one file.
        """
        if self.target == "duckdb":
            yield
            return
        digest = hashlib.sha256(f"{self.settings.schema('raw')}\x1f{source}".encode()).hexdigest()[:40]
        with self._named_lock(f"stratpos_load_{digest}", f"load of {source}"):
            yield

    @contextlib.contextmanager
    def commit_lock(self):
        """One batch commit at a time per prefix (MySQL): merges into shared tables (raw tables, quarantine,
        audit) never interleave, so no deadlock and counts that are true. Re-entrant."""
        if self.target == "duckdb":
            yield
            return
        with self._named_lock(f"stratpos_commit_{self.settings.schema('raw')}"[:64], "batch commit"):
            yield

    @contextlib.contextmanager
    def _named_lock(self, name: str, what: str):
        wait = self.settings.load_lock_wait_seconds
        got = self.fetchall("select get_lock(%s, %s)", [name, wait])[0][0]
        if got != 1:
            raise WarehouseBusy(
                f"another {what} in {self.settings.schema('raw')} held the lock {name} for over {wait} s "
                "(STRATPOS_LOAD_LOCK_WAIT_SECONDS)"
            )
        try:
            yield
        finally:
            if self._con is not None:
                self.fetchall("select release_lock(%s)", [name])

    def _local_infile_enabled(self) -> bool:
        rows = self.fetchall("select @@global.local_infile")
        enabled = bool(rows and int(rows[0][0]))
        if not enabled:
            log.warning("MySQL local_infile is off: bulk loads fall back to multi-row INSERTs (slower)")
        return enabled

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    @property
    def con(self):
        if self._con is None:
            raise RuntimeError("store is not open")
        return self._con

    def q(self, name: str) -> str:
        return f'"{name}"' if self.target == "duckdb" else f"`{name}`"

    def table(self, name: str) -> str:
        return ALL_TABLES[name].qualified(self.settings)

    def execute(self, sql: str, params: tuple | list | None = None):
        if self.target == "duckdb":
            return self.con.execute(sql, params or [])
        cur = self.con.cursor()
        cur.execute(sql, params)
        return cur

    def fetchall(self, sql: str, params: tuple | list | None = None) -> list[tuple]:
        return [tuple(r) for r in self.execute(sql, params).fetchall()]

    def ensure_tables(self) -> None:
        """Create missing tables, bring tables made by an older version up to date, add missing indexes."""
        from ingestion.migrate import upgrade

        with self._migration_lock():
            for t in ALL_TABLES.values():
                self.execute(t.ddl(self.settings))
            upgrade(self)
            if self.target == "mysql":
                self._ensure_indexes()

    @contextlib.contextmanager
    def _migration_lock(self):
        """One process at a time creates or migrates tables (Airflow runs ingestion tasks in parallel on MySQL).

        DuckDB needs none: a database file has one writing process.
        """
        if self.target == "duckdb":
            yield
            return
        name = f"stratpos_ddl_{self.settings.schema('raw')}"[:64]
        got = self.fetchall("select get_lock(%s, 600)", [name])[0][0]
        if got != 1:
            raise RuntimeError(f"could not take the MySQL lock {name} to create or migrate the raw tables")
        try:
            yield
        finally:
            self.fetchall("select release_lock(%s)", [name])

    def _ensure_indexes(self) -> None:
        """Create the secondary indexes a table lacks (also on tables made by an older version)."""
        for t in ALL_TABLES.values():
            if not t.indexes:
                continue
            schema = self.settings.schema(t.layer)
            have = {
                r[0]
                for r in self.fetchall(
                    "select distinct index_name from information_schema.statistics "
                    "where table_schema = %s and table_name = %s",
                    [schema, t.name],
                )
            }
            for cols in t.indexes:
                if t.index_name(cols) not in have:
                    self.execute(
                        f"create index `{t.index_name(cols)}` on {t.qualified(self.settings)} "
                        f"({', '.join(self.q(c) for c in cols)})"
                    )

    @contextlib.contextmanager
    def transaction(self):
        """Everything inside commits together; an exception rolls all of it back."""
        self.execute("begin" if self.target == "duckdb" else "start transaction")
        try:
            yield self
        except BaseException:
            self.execute("rollback")
            raise
        self.execute("commit")

    # ------------------------------------------------------------------ merge
    def merge(self, table: Table, rows: Rows) -> MergeResult:
        """Insert new keys, apply newer versions, count duplicates, return conflicts (not stored, as dicts).

        ``rows``: row dicts, or a pyarrow Table made by :func:`rows_to_arrow` (a batch prepared in a worker).
        """
        if not len(rows):
            return MergeResult()
        if self.target == "duckdb":
            return self._merge_duckdb(table, rows)
        return self._merge_mysql(table, rows)

    def _casts(self, table: Table, prefix: str = "") -> str:
        out = []
        for c in table.columns:
            col = f"{prefix}{self.q(c.name)}"
            if c.kind in ("dec", "bigid"):
                out.append(f"cast({col} as {c.sql_type(self.target)}) as {self.q(c.name)}")
            else:
                out.append(col)
        return ", ".join(out)

    def _classify_sql(self, table: Table, staged: str) -> str:
        target = table.qualified(self.settings)
        keys = " and ".join(f"b.{self.q(k)} = t.{self.q(k)}" for k in table.key)
        if table.version:
            v = self.q(table.version)
            flag = (
                f"case when b.{v} > t.{v} then 'update' "
                f"when b.{v} = t.{v} and b.payload_hash <> t.payload_hash then 'conflict' else 'duplicate' end"
            )
        elif "payload_hash" not in table.column_names:
            flag = "'duplicate'"
        elif table.replace:
            flag = "case when b.payload_hash = t.payload_hash then 'duplicate' else 'update' end"
        else:
            flag = "case when b.payload_hash = t.payload_hash then 'duplicate' else 'conflict' end"
        key_cols = ", ".join(f"b.{self.q(k)}" for k in table.key)
        return f"select {key_cols}, {flag} from {staged} b join {target} t on {keys}"

    def _merge_duckdb(self, table: Table, rows: Rows) -> MergeResult:
        con = self.con
        con.register("_stratpos_batch", rows if _is_arrow(rows) else rows_to_arrow(table, rows))
        try:
            # a view, not a copy: the classify and insert statements scan the Arrow table directly
            con.execute(f"create or replace temp view _stratpos_b as select {self._casts(table)} from _stratpos_batch")
            result = self._apply(table, "_stratpos_b", rows)
            con.execute("drop view if exists _stratpos_b")
        finally:
            con.unregister("_stratpos_batch")
        return result

    def _merge_mysql(self, table: Table, rows: Rows) -> MergeResult:
        target = table.qualified(self.settings)
        staged = f"`{self.settings.schema(table.layer)}`.`_stratpos_b`"
        self.execute(f"drop temporary table if exists {staged}")
        self.execute(f"create temporary table {staged} like {target}")
        cols = table.column_names
        if self._load_data:
            self._load_data_infile(staged, table, rows)
        else:
            sql = (
                f"insert into {staged} ({', '.join(self.q(c) for c in cols)}) values ({', '.join(['%s'] * len(cols))})"
            )
            cur = self.con.cursor()
            tuples = _row_tuples(table, rows)
            while chunk := list(itertools.islice(tuples, MYSQL_CHUNK)):
                cur.executemany(sql, chunk)
        result = self._apply(table, staged, rows)
        self.execute(f"drop temporary table if exists {staged}")
        return result

    def _load_data_infile(self, staged: str, table: Table, rows: Rows) -> None:
        """Stage rows with LOAD DATA LOCAL INFILE: no per-value escaping round trip through Python SQL."""
        import tempfile

        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".tsv", newline="\n") as fh:
            write = fh.write
            for r in _row_tuples(table, rows):
                write("\t".join([_tsv(v) for v in r]))
                write("\n")
            fh.flush()
            self.execute(
                f"load data local infile %s into table {staged} character set utf8mb4 "
                f"fields terminated by '\\t' escaped by '\\\\' lines terminated by '\\n' "
                f"({', '.join(self.q(c) for c in table.column_names)})",
                [fh.name],
            )
        # LOCAL implies IGNORE: a truncated or mangled value would only be a warning, so fail loudly
        warnings = self.fetchall("show warnings limit 5")
        if warnings:
            raise UnstorableRows(f"bulk load into {staged} produced warnings: {warnings}")

    def _apply(self, table: Table, staged: str, rows: Rows) -> MergeResult:
        target = table.qualified(self.settings)
        matched = self.fetchall(self._classify_sql(table, staged))
        result = MergeResult()
        conflict_keys = set()
        for *key, flag in matched:
            if flag == "duplicate":
                result.duplicates += 1
            elif flag == "update":
                result.updated += 1
            else:
                conflict_keys.add(tuple(key))
        if conflict_keys:
            # keys as text: the warehouse gives DECIMAL(20,0) ids back as Decimal, the rows hold them as strings
            conflict_keys = {tuple(map(str, k)) for k in conflict_keys}
            dicts = rows.to_pylist() if _is_arrow(rows) else rows
            result.conflicts = [r for r in dicts if tuple(str(r[k]) for k in table.key) in conflict_keys]
        keys_on = " and ".join(f"b.{self.q(k)} = t.{self.q(k)}" for k in table.key)
        cols = ", ".join(self.q(c) for c in table.column_names)
        bcols = ", ".join(f"b.{self.q(c)}" for c in table.column_names)
        first_key = self.q(table.key[0])
        self.execute(
            f"insert into {target} ({cols}) select {bcols} from {staged} b "
            f"left join {target} t on {keys_on} where t.{first_key} is null"
        )
        result.inserted = len(rows) - len(matched)
        if (table.version or table.replace) and result.updated:
            non_key = [c for c in table.column_names if c not in table.key]
            if table.version:
                v = self.q(table.version)
                newer = "b.{v} > {t}.{v}".replace("{v}", v)
            else:
                newer = "b.payload_hash <> {t}.payload_hash"
            if self.target == "duckdb":
                sets = ", ".join(f"{self.q(c)} = b.{self.q(c)}" for c in non_key)
                keys_where = " and ".join(f"b.{self.q(k)} = {target}.{self.q(k)}" for k in table.key)
                where = newer.replace("{t}", target)
                self.execute(f"update {target} set {sets} from {staged} b where {keys_where} and {where}")
            else:
                sets = ", ".join(f"t.{self.q(c)} = b.{self.q(c)}" for c in non_key)
                where = newer.replace("{t}", "t")
                self.execute(f"update {target} t join {staged} b on {keys_on} set {sets} where {where}")
        return result

    # ------------------------------------------------------------------ quarantine, audit, state
    def quarantine(self, entries: list[dict]) -> int:
        """Store rejected records (idempotent by source + hash of the original bytes); returns new rows."""
        if not entries:
            return 0
        table = RAW_TABLES["quarantine"]
        for e in entries:
            e.setdefault("payload_bytes", len(e["payload"].encode("utf-8", "surrogatepass")))
        unique = {tuple(e[k] for k in table.key): e for e in entries}  # the same bad record twice in one batch
        return self.merge(table, list(unique.values())).inserted

    def record_run(self, row: dict) -> None:
        """:meth:`write_run` in a transaction of its own, under the commit lock: an audit row written outside
        a batch (a failed batch, a folder run, a retention note) never interleaves with another process's
        commit on MariaDB, where a delete of a missing key and an insert in two sessions deadlock."""
        with self.commit_lock(), self.transaction():
            self.write_run(row)

    def write_run(self, row: dict) -> None:
        """Store an audit row; a retry of the same (run, source, batch) replaces the earlier row."""
        table = AUDIT_TABLES["ingestion_runs"]
        where = " and ".join(f"{self.q(k)} = {self._ph()}" for k in table.key)
        self.execute(f"delete from {table.qualified(self.settings)} where {where}", [row[k] for k in table.key])
        self.merge(table, [row])

    def get_watermark(self, key: str) -> str | None:
        rows = self.fetchall(
            f"select watermark from {self.table('ingestion_state')} where state_key = {self._ph()}", [key]
        )
        return rows[0][0] if rows else None

    def watermarks(self, prefix: str) -> dict[str, str]:
        rows = self.fetchall(
            f"select state_key, watermark from {self.table('ingestion_state')} where state_key like {self._ph()}",
            [prefix + "%"],
        )
        return dict(rows)

    def set_watermark(self, key: str, value: str, run_id: str) -> None:
        t = self.table("ingestion_state")
        self.execute(f"delete from {t} where state_key = {self._ph()}", [key])
        self.execute(
            f"insert into {t} (state_key, watermark, updated_at, run_id) values ({', '.join([self._ph()] * 4)})",
            [key, value, utcnow(), run_id],
        )

    def _ph(self) -> str:
        return "?" if self.target == "duckdb" else "%s"

    def count(self, name: str) -> int:
        return self.fetchall(f"select count(*) from {self.table(name)}")[0][0]


def _tsv(v) -> str:
    """One value in LOAD DATA's default text format (\\N is NULL; backslash, tab, newline escaped)."""
    if v is None:
        return "\\N"
    if v is True:
        return "1"
    if v is False:
        return "0"
    if isinstance(v, datetime):
        return v.isoformat(sep=" ", timespec="milliseconds")
    s = v if isinstance(v, str) else str(v)
    if "\\" in s or "\t" in s or "\n" in s or "\r" in s:
        s = s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return s
