"""Read back what the ingestion wrote: full table contents, audit rows, quarantine rows, state."""

from __future__ import annotations

from collections.abc import Iterable

from ingestion.schema import RAW_TABLES
from ingestion.store import RawStore
from stratpos.core.settings import Settings

LINEAGE_OF_A_RUN = ("run_id", "loaded_at", "quarantined_at")  # differ between two runs by design


def dump(settings: Settings, tables: Iterable[str] = tuple(RAW_TABLES), exclude: Iterable[str] = ()) -> dict:
    """Every row of every table (all columns but ``exclude``), sorted, keyed by table name."""
    exclude = set(exclude)
    out = {}
    with RawStore(settings) as st:
        for name in tables:
            t = RAW_TABLES[name]
            cols = [c for c in t.column_names if c not in exclude]
            rows = st.fetchall(f"select {', '.join(st.q(c) for c in cols)} from {t.qualified(settings)}")
            out[name] = sorted(rows, key=repr)
    return out


def rows(settings: Settings, sql: str, params: list | None = None) -> list[dict]:
    """Rows of a query as dicts; ``{raw}``/``{audit}`` in ``sql`` are replaced by the schema names."""
    with RawStore(settings) as st:
        q = st.q
        sql = sql.format(raw=q(settings.schema("raw")), audit=q(settings.schema("audit")))
        cur = st.execute(sql.replace("?", "%s") if settings.target == "mysql" else sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def audit(settings: Settings, run_id: str) -> list[dict]:
    return rows(
        settings,
        "select source, batch_no, status, received, loaded, duplicates, quarantined, message "
        "from {audit}.ingestion_runs where run_id = ? order by source, batch_no",
        [run_id],
    )


def quarantine(settings: Settings) -> list[dict]:
    return rows(settings, "select source, record_hash, record_key, reason, payload, run_id from {raw}.quarantine")


def count(settings: Settings, table: str) -> int:
    return rows(settings, f"select count(*) as n from {{raw}}.{table}")[0]["n"]


def state(settings: Settings, prefix: str = "") -> dict[str, str]:
    with RawStore(settings) as st:
        return st.watermarks(prefix)
