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
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from decimal import Decimal
from typing import TYPE_CHECKING

from ingestion.records import _DECODER, KINDS, Rejected, row_hash, to_row
from ingestion.schema import RAW_TABLES, Table

if TYPE_CHECKING:
    from ingestion.store import RawStore

log = logging.getLogger(__name__)

# table -> (version, record kind, SQL filter of the rows to derive again: {payload_commission} is replaced)
DERIVED = {
    "futures_algo_orders": ("2", "futures_algo_orders", None),
    "order_links": ("2", "order_links", None),
    "futures_trades": ("2", "futures_trades", "{payload_commission} like '-%'"),
}
REBUILD_SUFFIX = "__stratpos_rebuild"
LEGACY_SUFFIX = "__stratpos_legacy"
_TYPED = ("dec", "bigid", "int")


def upgrade(store: RawStore) -> list[str]:
    """Migrate every raw table that needs it; returns what was done (for logs and tests)."""
    done: list[str] = []
    for table in RAW_TABLES.values():
        done += _structure(store, table)
    for name, (version, kind, where) in DERIVED.items():
        marker = f"schema:{name}"
        if store.get_watermark(marker) == version:
            continue
        changed = rederive(store, RAW_TABLES[name], kind, where)
        store.set_watermark(marker, version, "migration")
        if changed:
            done.append(f"derived {changed} row(s) of raw.{name} again from their payload")
    for line in done:
        log.warning("raw layer migration: %s", line)
    return done


# ----------------------------------------------------------------------------- structure
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
            obj = _DECODER.decode(old["payload"])
            new = to_row(KINDS[kind], obj, old.get("account_id") or "default")
        except (Rejected, json.JSONDecodeError, ValueError) as exc:
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
