"""Column types and table DDL rendered for DuckDB and MySQL/MariaDB.

One column list per table renders to both targets with the same exact types: decimals are
DECIMAL(38,18), ids of up to 19 digits DECIMAL(20,0), times either epoch milliseconds (BIGINT)
or timestamps. Ingestion's raw tables and the audit tables of validation use these.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratpos.core.settings import Settings

DECIMAL = "decimal(38,18)"
BIG_ID = "decimal(20,0)"  # ids of up to 19 digits that may exceed a signed BIGINT (income tranId)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # str | text | dec | bigid | int | bool | ts
    nullable: bool = True
    size: int = 64

    def sql_type(self, target: str) -> str:
        if self.kind == "dec":
            return DECIMAL
        if self.kind == "bigid":
            return BIG_ID
        if self.kind == "int":
            return "bigint"
        if self.kind == "bool":
            return "boolean"
        if self.kind == "ts":
            return "timestamp" if target == "duckdb" else "datetime(3)"
        if self.kind == "text":
            return "varchar" if target == "duckdb" else "longtext"
        return "varchar" if target == "duckdb" else f"varchar({self.size})"


@dataclass(frozen=True)
class Table:
    name: str
    layer: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    version: str | None = None  # a newer value of this column replaces the stored row
    # no version, but the latest load wins: a row whose content changed replaces the stored one (reference
    # data such as exchangeInfo symbols) instead of being quarantined as a conflict
    replace: bool = False
    # secondary indexes (MySQL/MariaDB; DuckDB needs none): the joins dbt makes on raw tables
    indexes: tuple[tuple[str, ...], ...] = ()

    def index_name(self, columns: tuple[str, ...]) -> str:
        return "ix_" + "_".join(columns)[:56]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def qualified(self, settings: Settings) -> str:
        schema = settings.schema(self.layer)
        return f'"{schema}"."{self.name}"' if settings.target == "duckdb" else f"`{schema}`.`{self.name}`"

    def ddl(self, settings: Settings) -> str:
        q = '"' if settings.target == "duckdb" else "`"
        cols = []
        for c in self.columns:
            required = not c.nullable or c.name in self.key
            cols.append(f"{q}{c.name}{q} {c.sql_type(settings.target)}{' not null' if required else ''}")
        cols.append(f"primary key ({', '.join(q + k + q for k in self.key)})")
        tail = ""
        if settings.target == "mysql":
            tail = " engine=InnoDB default charset=utf8mb4 collate=utf8mb4_bin"
        body = ",\n  ".join(cols)
        return f"create table if not exists {self.qualified(settings)} (\n  {body}\n){tail}"


def C(name: str, kind: str = "str", nullable: bool = True, size: int = 64) -> Column:
    return Column(name, kind, nullable, size)
