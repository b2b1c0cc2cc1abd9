"""Bring raw tables made by an older stratpos up to the current schema, idempotently, on DuckDB and MySQL.

``create table if not exists`` leaves an existing table as it is, so :func:`upgrade` (called by
:meth:`~ingestion.store.RawStore.ensure_tables` under a lock, on every open) compares each raw table with
its declaration:

* a different primary key or a different exact type of an id/decimal column (``raw.futures_algo_orders``
  keyed by (account, algoId) before algo ids were known to be per symbol; ``raw.income.tran_id`` as BIGINT
  before 19-digit tranIds) -> the table is rebuilt: a new table with the declared DDL, every row copied,
  the old table replaced (DuckDB: in one transaction; MySQL: an atomic ``RENAME TABLE`` swap);
* a missing column -> ``ALTER TABLE … ADD`` (nullable).

Then, once per table and version (a marker ``schema:{table}`` in ``audit.ingestion_state``), rows whose
typed columns depend on rules that changed are derived again from their stored payload (the original
record), so that the stored row and its ``payload_hash`` are what a load today would write — a later
re-read of the same record is then a duplicate, not a conflict:

* ``futures_algo_orders`` (new columns; ``actualOrderId`` ``""`` -> NULL) and ``order_links`` (``symbol``):
  every row;
* ``futures_trades``: the rows whose payload has a negative ``commission`` (stored as its absolute value
  before commission became signed, SPEC §3.2).

Last, once (marker ``schema:quarantine``), records that older rules quarantined and the current ones accept
are loaded from ``raw.quarantine`` (which keeps them as its history): quarterly and BTC-margined contracts
(``BTCUSDT_250627``, ``ETHBTC``) that the old symbol pattern refused, and the algo order / order link of a
second symbol that collided with the first one's under the old keys. A record still refused, or conflicting
with a stored row, stays where it is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from decimal import Decimal
from typing import TYPE_CHECKING

from ingestion.records import DECODER, KINDS, Rejected, row_hash, to_row
from ingestion.schema import RAW_TABLES, Table

if TYPE_CHECKING:
    from ingestion.store import RawStore

log = logging.getLogger(__name__)

# table -> (version, record kind, SQL filter of the rows to derive again: {payload_commission} is replaced)
DERIVED = {
    "futures_algo_orders": ("2", "futures_algo_orders", None),
    "order_links": ("3", "order_links", None),  # 3: symbol-less order-id links keyed with their signal
    "futures_trades": ("2", "futures_trades", "{payload_commission} like '-%'"),
}
QUARANTINE_VERSION = "2"
# quarantine sources (SPEC §3.5 keeps the source of every rejected record) -> record kind
_BINANCE_SOURCE = re.compile(r"^binance:(?P<account>.+):(?P<state>trades|orders|algo_orders):[^:]+$")
_BINANCE_KIND = {"trades": "futures_trades", "orders": "futures_orders", "algo_orders": "futures_algo_orders"}
_REPLAY_FILES = {
    "futures_trades.jsonl": "futures_trades",
    "futures_orders.jsonl": "futures_orders",
    "futures_algo_orders.jsonl": "futures_algo_orders",
    "order_links.jsonl": "order_links",
    "position_risk.jsonl": "position_risk",
    "income.jsonl": "income",
}
REBUILD_SUFFIX = "__stratpos_rebuild"
LEGACY_SUFFIX = "__stratpos_legacy"
_TYPED = ("dec", "bigid", "int")


def upgrade(store: RawStore) -> list[str]:
    """Migrate every raw table that needs it; returns what was done (for logs and tests)."""
    done: list[str] = []
    fingerprint = structure_fingerprint(store.target)
    if store.get_watermark("schema:structure") != fingerprint:  # checked once per declared structure
        for table in RAW_TABLES.values():
            done += _structure(store, table)
        store.set_watermark("schema:structure", fingerprint, "migration")
    for name, (version, kind, where) in DERIVED.items():
        marker = f"schema:{name}"
        if store.get_watermark(marker) == version:
            continue
        changed = rederive(store, RAW_TABLES[name], kind, where)
        store.set_watermark(marker, version, "migration")
        if changed:
            done.append(f"derived {changed} row(s) of raw.{name} again from their payload")
    if store.get_watermark("schema:quarantine") != QUARANTINE_VERSION:
        loaded = readmit_quarantined(store)
        store.set_watermark("schema:quarantine", QUARANTINE_VERSION, "migration")
        if loaded:
            done.append(f"loaded {loaded} quarantined record(s) that the current rules accept")
    for line in done:
        log.warning("raw layer migration: %s", line)
    return done


# ----------------------------------------------------------------------------- structure
def structure_fingerprint(target: str) -> str:
    """A short hash of the declared raw tables (names, keys, column types): a new declaration checks again."""
    text = repr(
        sorted((t.name, t.key, tuple((c.name, c.sql_type(target)) for c in t.columns)) for t in RAW_TABLES.values())
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _norm(sql_type: str) -> str:
    t = sql_type.lower().replace(" ", "")
    return re.sub(r"^(bigint|int|integer)\(\d+\)", r"\1", t)


def describe(store: RawStore, table: Table) -> tuple[dict[str, str], tuple[str, ...]] | None:
    """(column -> type, primary key) of the stored table, or None when it does not exist."""
    schema = store.settings.schema(table.layer)
    if store.target == "duckdb":
        cols = store.fetchall(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, table.name],
        )
        pk = store.fetchall(
            "select constraint_column_names from duckdb_constraints() "
            "where schema_name = ? and table_name = ? and constraint_type = 'PRIMARY KEY'",
            [schema, table.name],
        )
        key = tuple(pk[0][0]) if pk else ()
    else:
        cols = store.fetchall(
            "select column_name, column_type from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            [schema, table.name],
        )
        key = tuple(
            r[0]
            for r in store.fetchall(
                "select column_name from information_schema.key_column_usage where table_schema = %s "
                "and table_name = %s and constraint_name = 'PRIMARY' order by ordinal_position",
                [schema, table.name],
            )
        )
    if not cols:
        return None
    return {c: _norm(t) for c, t in cols}, key


def _structure(store: RawStore, table: Table) -> list[str]:
    found = describe(store, table)
    if found is None:
        return []
    columns, key = found
    differs = [
        c.name
        for c in table.columns
        if c.kind in _TYPED and c.name in columns and columns[c.name] != _norm(c.sql_type(store.target))
    ]
    if key != table.key or differs:
        why = f"primary key {key} -> {table.key}" if key != table.key else f"type of {', '.join(differs)}"
        _rebuild(store, table, [c for c in table.column_names if c in columns])
        return [f"rebuilt raw.{table.name} ({why})"]
    missing = [c for c in table.columns if c.name not in columns]
    for c in missing:
        q = store.q(c.name)
        store.execute(f"alter table {table.qualified(store.settings)} add column {q} {c.sql_type(store.target)}")
    return [f"added column(s) {', '.join(c.name for c in missing)} to raw.{table.name}"] if missing else []


def _rebuild(store: RawStore, table: Table, common: list[str]) -> None:
    settings = store.settings
    target = table.qualified(settings)
    fresh = dataclasses.replace(table, name=table.name + REBUILD_SUFFIX)
    legacy = dataclasses.replace(table, name=table.name + LEGACY_SUFFIX)
    cols = ", ".join(store.q(c) for c in common)
    select = ", ".join(
        f"cast({store.q(c)} as {table.column(c).sql_type(store.target)})"
        if table.column(c).kind in ("dec", "bigid")  # MySQL has no CAST(… AS BIGINT); integers convert as is
        else store.q(c)
        for c in common
    )
    if store.target == "duckdb":
        with store.transaction():
            store.execute(f"drop table if exists {fresh.qualified(settings)}")
            store.execute(fresh.ddl(settings))
            store.execute(f"insert into {fresh.qualified(settings)} ({cols}) select {select} from {target}")
            store.execute(f"drop table {target}")
            store.execute(f"alter table {fresh.qualified(settings)} rename to {store.q(table.name)}")
        return
    # MySQL: DDL commits implicitly; the old table stays in place until one atomic RENAME swaps both, and a
    # run interrupted before it simply starts over (the copy is dropped first)
    store.execute(f"drop table if exists {fresh.qualified(settings)}, {legacy.qualified(settings)}")
    store.execute(fresh.ddl(settings))
    store.execute(f"insert into {fresh.qualified(settings)} ({cols}) select {select} from {target}")
    store.execute(f"rename table {target} to {legacy.qualified(settings)}, {fresh.qualified(settings)} to {target}")
    store.execute(f"drop table {legacy.qualified(settings)}")


# ----------------------------------------------------------------------------- rows derived again
def _payload_field(store: RawStore, field: str) -> str:
    if store.target == "duckdb":
        return f"json_extract_string(payload, '$.{field}')"
    return f"json_unquote(json_extract(payload, '$.{field}'))"


def rederive(store: RawStore, table: Table, kind: str, where: str | None = None) -> int:
    """Derive rows of ``table`` again from their stored payload; returns how many changed.

    A row whose key changes (an order link whose record names its symbol) is replaced; a record that the
    current rules reject stays as it is, with a warning.
    """
    names = table.column_names
    sql = f"select {', '.join(store.q(c) for c in names)} from {table.qualified(store.settings)}"
    if where:
        sql += " where " + where.format(payload_commission=_payload_field(store, "commission"))
    changed: list[tuple[dict, dict]] = []
    for values in store.fetchall(sql):
        old = dict(zip(names, values, strict=True))
        try:
            obj = DECODER.decode(old["payload"])
            new = to_row(KINDS[kind], obj, old.get("account_id") or "default")
        except (Rejected, ValueError, RecursionError) as exc:
            log.warning("raw.%s: a stored record cannot be derived again (%s); left as it is", table.name, exc)
            continue
        new["payload_hash"] = row_hash(new)
        old_key = tuple(old[k] for k in table.key)
        if new["payload_hash"] == old["payload_hash"] and tuple(map(str, old_key)) == tuple(
            str(new[k]) for k in table.key
        ):
            continue
        for c in ("payload", "source", "run_id", "loaded_at"):
            new[c] = old[c]
        changed.append((old, new))
    if not changed:
        return 0
    ph = "?" if store.target == "duckdb" else "%s"
    delete = f"delete from {table.qualified(store.settings)} where " + " and ".join(
        f"{store.q(k)} = {ph}" for k in table.key
    )
    with store.transaction():
        for old, _ in changed:
            store.execute(delete, [old[k] for k in table.key])
        merged = store.merge(table, [new for _, new in changed])
        if merged.conflicts:  # a new key that another stored row already has: keep that row, and this one as it was
            clash = {id(r) for r in merged.conflicts}
            kept = [{k: str(v) if isinstance(v, Decimal) else v for k, v in old.items()} for old, new in changed]
            store.merge(table, [k for k, (_, new) in zip(kept, changed, strict=True) if id(new) in clash])
            log.warning(
                "raw.%s: %d row(s) would collide with stored rows once derived again; left as they were",
                table.name,
                len(merged.conflicts),
            )
    return len(changed)


# ----------------------------------------------------------------------------- quarantined records, again
def _origin(store: RawStore, source: str) -> tuple[str, str] | None:
    """(record kind, account) of a quarantine source, or None for sources this migration leaves alone."""
    m = _BINANCE_SOURCE.match(source)
    if m:
        return _BINANCE_KIND[m["state"]], m["account"]
    if source.startswith("binance:") and source.endswith((":income", ":position_risk")):
        account, _, kind = source.removeprefix("binance:").rpartition(":")
        return kind, account
    if source.startswith("replay:") and "/" in source:
        directory, _, name = source.removeprefix("replay:").rpartition("/")
        kind = _REPLAY_FILES.get(name)
        if kind is None:
            return None
        ph = "?" if store.target == "duckdb" else "%s"
        found = store.fetchall(
            f"select account_id from {store.table('accounts')} where source = {ph}",
            [f"replay:{directory}/account.json"],
        )
        return (kind, found[0][0]) if len(found) == 1 else None
    return None


def readmit_quarantined(store: RawStore) -> int:
    """Load the quarantined records that the current rules accept; returns how many were loaded."""
    origins: dict[str, tuple[str, str] | None] = {}
    groups: dict[str, dict[tuple, dict]] = {}
    quarantine = store.table("quarantine")
    for source, payload, run_id, at in store.fetchall(
        f"select source, payload, run_id, quarantined_at from {quarantine}"
    ):
        if source not in origins:
            origins[source] = _origin(store, source)
        if origins[source] is None:
            continue
        kind, account = origins[source]
        try:
            row = to_row(KINDS[kind], DECODER.decode(payload), account)
        except (Rejected, ValueError, RecursionError):
            continue  # still refused: it stays in the quarantine only
        table = RAW_TABLES[KINDS[kind].table]
        row["payload_hash"] = row_hash(row)
        row.update(payload=payload, source=source, run_id=run_id, loaded_at=at)
        key = tuple(str(row[k]) for k in table.key)
        rows = groups.setdefault(table.name, {})
        seen = rows.get(key)
        if seen is None or (table.version and row[table.version] > seen[table.version]):
            rows[key] = row
    loaded = 0
    for name, rows in groups.items():
        with store.transaction():
            loaded += store.merge(RAW_TABLES[name], list(rows.values())).loaded  # conflicts stay quarantined only
    return loaded
