"""Transition alias of :mod:`stratpos.core.warehouse` (import from there)."""

from stratpos.core.warehouse import (
    WarehouseUnavailable,
    drop_schemas,
    duckdb_connection,
    ensure_schemas,
    existing_schemas,
    fetch_rows,
    mysql_connection,
)

__all__ = [
    "WarehouseUnavailable",
    "drop_schemas",
    "duckdb_connection",
    "ensure_schemas",
    "existing_schemas",
    "fetch_rows",
    "mysql_connection",
]
