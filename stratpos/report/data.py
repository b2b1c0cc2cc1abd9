"""What the report shows, read from the marts as they are: no metric is computed here.

Every figure comes from a column of a mart — strategy_performance (the leaderboard, Sharpe,
max drawdown, profit factor), account_performance (the unattributed buckets and the account
totals), strategy_daily_pnl (the equity curves), strategy_close_reasons (TP/SL/… outcomes),
multi_strategy_positions (attribution of shared episodes), account_pnl (income per asset) —
or of ``audit.dq_alerts``. Python only selects, orders and groups rows for display.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from stratpos.core.errors import StratposError
from stratpos.core.settings import Settings
from stratpos.report.format import asset_order, dec

BUCKET = "unattributed"
REASONS = ("take_profit", "stop_loss", "manual", "external", "liquidation")
# the marts the report needs; a warehouse without one of them is rebuilt with `stratpos transform`
REQUIRED_MARTS = ("strategy_performance", "account_performance", "strategy_daily_pnl", "strategy_close_reasons")


class ReportError(StratposError, RuntimeError):
    """The report cannot be built (no warehouse, unreadable marts); the message says why."""


class Reader:
    """Read-only queries on either target; identifiers quoted per dialect."""

    def __init__(self, settings: Settings, con) -> None:
        self.settings = settings
        self.con = con
        self.mysql = settings.target == "mysql"
        self._columns: dict[tuple[str, str], list[str]] = {}

    def name(self, layer: str, table: str) -> str:
        q = "`" if self.mysql else '"'
        return f"{q}{self.settings.schema(layer)}{q}.{q}{table}{q}"

    def ident(self, column: str) -> str:
        return f"`{column}`" if self.mysql else f'"{column}"'

    def rows(self, sql: str, params: Sequence = ()) -> list[dict]:
        if self.mysql:
            sql = sql.replace("?", "%s")
            with self.con.cursor() as cur:
                cur.execute(sql, tuple(params))
                names = [d[0] for d in cur.description]
                return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        cur = self.con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def columns(self, layer: str, table: str) -> list[str]:
        """Column names of ``layer.table`` in table order; empty when the table does not exist."""
        key = (layer, table)
        if key not in self._columns:
            found = self.rows(
                "select column_name as c from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                (self.settings.schema(layer), table),
            )
            self._columns[key] = [str(r.get("c", r.get("COLUMN_NAME"))) for r in found]
        return self._columns[key]

    def mart(self, table: str, where: str = "", order: str = "", params: Sequence = ()) -> list[dict]:
        sql = f"select * from {self.name('marts', table)}"
        sql += f" where {where}" if where else ""
        sql += f" order by {order}" if order else ""
        return self.rows(sql, params)


@contextmanager
def open_warehouse(settings: Settings) -> Iterator[Reader]:
    """A read-only connection (DuckDB) or a connection (MySQL/MariaDB) through stratpos.core."""
    from stratpos.core.warehouse import duckdb_connection, mysql_connection, warehouse_exists

    if not warehouse_exists(settings):
        raise ReportError(
            f"no DuckDB warehouse at {settings.duckdb_path}; build one with `stratpos ingest` and "
            "`stratpos transform` (or `make demo`), or point STRATPOS_DUCKDB_PATH at an existing one"
        )
    if settings.target == "duckdb":
        with duckdb_connection(settings, read_only=True) as con:
            yield Reader(settings, con)
    else:
        with mysql_connection(settings) as con:
            yield Reader(settings, con)


# --------------------------------------------------------------------------- the page's data
@dataclass
class Book:
    """One account's figures in one margin asset: its strategies (strategy_performance rows, best
    net first), its unattributed bucket and its total (account_performance rows)."""

    account_id: str
    asset: str
    strategies: list[dict] = field(default_factory=list)
    bucket: dict | None = None
    total: dict | None = None
    curves: dict[str, list[dict]] = field(default_factory=dict)  # strategy → strategy_daily_pnl rows
    outcomes: list[dict] = field(default_factory=list)  # per strategy: {"strategy_id", "closed", "reasons"}


@dataclass
class Episode:
    """A shared exchange position episode: its multi_strategy_positions rows (one per strategy)."""

    rows: list[dict]

    @property
    def head(self) -> dict:
        return self.rows[0]


@dataclass
class ReportData:
    built: bool  # the marts exist
    books: list[Book] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    episode_count: int | None = None
    income: list[dict] | None = None
    alerts: dict | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def accounts(self) -> list[str]:
        return sorted({b.account_id for b in self.books})

    @property
    def strategies(self) -> list[str]:
        return sorted({r["strategy_id"] for b in self.books for r in b.strategies})

    @property
    def first_entry(self):
        return min((t for b in self.books if b.total for t in [b.total.get("first_entry_at")] if t), default=None)

    @property
    def last_exit(self):
        return max((t for b in self.books if b.total for t in [b.total.get("last_exit_at")] if t), default=None)


def load(db: Reader, *, top_shared: int = 5, with_alerts: bool = True) -> ReportData:
    missing = [m for m in REQUIRED_MARTS if not db.columns("marts", m)]
    alerts = load_latest_alerts(db) if with_alerts else None
    if missing:
        return ReportData(built=False, missing=missing, alerts=alerts)
    books: dict[tuple[str, str], Book] = {}

    def book(r: dict) -> Book:
        key = (str(r["account_id"]), str(r["margin_asset"]))
        return books.setdefault(key, Book(*key))

    for r in db.mart("account_performance"):
        b = book(r)
        if r["scope"] == BUCKET:
            b.bucket = r
        else:
            b.total = r
    for r in db.mart("strategy_performance", order="realized_pnl_net desc, strategy_id"):
        book(r).strategies.append(r)
    for r in db.mart("strategy_daily_pnl", order="account_id, margin_asset, strategy_id, pnl_date"):
        book(r).curves.setdefault(str(r["strategy_id"]), []).append(r)
    outcomes: dict[tuple[str, str, str], dict] = {}
    for r in db.mart("strategy_close_reasons", where="positions_closed > 0", order="strategy_id, reason_order"):
        key = (str(r["account_id"]), str(r["margin_asset"]), str(r["strategy_id"]))
        if key not in outcomes:
            outcomes[key] = {"strategy_id": key[2], "closed": int(r["positions_closed"]), "reasons": {}}
            book(r).outcomes.append(outcomes[key])
        outcomes[key]["reasons"][str(r["close_reason"])] = {"closes": int(r["closes"]), "rate": r["close_rate"]}
    ordered = sorted(books.values(), key=lambda b: (b.account_id, asset_order(k[1] for k in books).index(b.asset)))
    data = ReportData(built=True, books=ordered, alerts=alerts)
    data.episodes, data.episode_count = load_shared_episodes(db, top_shared)
    data.income = load_account_income(db)
    return data


def load_shared_episodes(db: Reader, top: int) -> tuple[list[Episode], int | None]:
    """The ``top`` episodes two or more strategies entered, by contributions (then peak quantity),
    with the mart's row per strategy; and the number of episodes (exchange_positions)."""
    if not db.columns("marts", "multi_strategy_positions") or not db.columns("marts", "exchange_positions"):
        return [], None
    count = db.rows(f"select count(*) as n from {db.name('marts', 'exchange_positions')}")[0]["n"]
    table = db.name("marts", "multi_strategy_positions")
    ids = [
        r["exchange_position_id"]
        for r in db.rows(
            f"select distinct exchange_position_id, contribution_count, episode_peak_quantity from {table} "
            "order by contribution_count desc, episode_peak_quantity desc, exchange_position_id "
            f"limit {int(top)}"
        )
    ]
    if not ids:
        return [], int(count)
    marks = ", ".join("?" for _ in ids)
    grouped: dict[str, list[dict]] = {i: [] for i in ids}
    for r in db.rows(f"select * from {table} where exchange_position_id in ({marks}) order by strategy_id", ids):
        grouped[r["exchange_position_id"]].append(r)
    return [Episode(grouped[i]) for i in ids], int(count)


INCOME_COLUMNS = (
    ("total_income", "all income"),
    ("strategy_income", "in the strategy books"),
    ("account_level_income", "account level"),
    ("transfer", "of which transfers"),
    ("realized_pnl", "REALIZED_PNL"),
    ("commission", "COMMISSION"),
    ("funding_fee", "FUNDING_FEE"),
)


def load_account_income(db: Reader) -> list[dict] | None:
    """account_pnl per asset (SPEC §4.5: every income record lands somewhere); None when the mart
    does not exist. Each row is one asset: amounts of different assets are never added."""
    present = {c.lower() for c in db.columns("marts", "account_pnl")}
    if not present:
        return None
    wanted = [c for c, _ in INCOME_COLUMNS if c in present]
    sums = ", ".join(f"sum({c}) as {c}" for c in wanted)
    rows = db.rows(f"select asset, {sums} from {db.name('marts', 'account_pnl')} group by asset")
    order = asset_order(str(r["asset"]) for r in rows)
    return sorted(rows, key=lambda r: order.index(str(r["asset"])))


_ALERT_COLUMNS = {
    "check": ("check_id", "check", "rule"),
    "name": ("check_name",),
    "severity": ("severity", "level"),
    "key": ("check_key", "key", "mismatch_key", "alert_key"),
    "expected": ("expected",),
    "observed": ("observed", "actual"),
    "diff": ("diff", "difference", "delta"),
    "run_id": ("run_id", "validation_run_id", "run"),
    "time": ("created_at", "alerted_at", "time", "ts", "inserted_at"),
}


def load_latest_alerts(db: Reader, worst: int = 5) -> dict | None:
    """The latest run in ``audit.dq_alerts`` shaped like the ``validation`` argument; None when no table."""
    present = {c.lower(): c for c in db.columns("audit", "dq_alerts")}
    if not present:
        return None
    col = {k: next((present[c] for c in cands if c in present), None) for k, cands in _ALERT_COLUMNS.items()}
    table = db.name("audit", "dq_alerts")
    run_id = None
    if col["run_id"]:
        order = db.ident(col["time"]) if col["time"] else db.ident(col["run_id"])
        latest = db.rows(f"select {db.ident(col['run_id'])} as r from {table} order by {order} desc limit 1")
        if not latest:
            return {"run_id": None, "checks": [], "source": table, "empty": True}
        run_id = latest[0]["r"]
    wanted = [f"{db.ident(c)} as {db.ident(k)}" for k, c in col.items() if c]
    where = f" where {db.ident(col['run_id'])} = ?" if col["run_id"] else ""
    rows = db.rows(f"select {', '.join(wanted)} from {table}{where}", [run_id] if col["run_id"] else [])
    if not rows:
        return {"run_id": run_id, "checks": [], "source": table, "empty": True}
    checks: dict[str, dict] = {}
    for r in rows:
        name = str(r.get("check") or "?")
        severity = str(r.get("severity") or "").lower()
        c = checks.setdefault(
            name, {"check": name, "name": r.get("name"), "severity": severity or "—", "mismatches": 0, "rows": []}
        )
        c["mismatches"] += 1
        c["rows"].append({k: r.get(k) for k in ("key", "expected", "observed", "diff")})
    for c in checks.values():
        c["status"] = "failed" if c["severity"] == "fail" else "warned"
        c["worst"] = sorted(c.pop("rows"), key=lambda w: -abs(dec(w["diff"]) or 0))[:worst]
    times = [r.get("time") for r in rows if r.get("time") is not None]
    return {
        "run_id": run_id,
        "checks": sorted(checks.values(), key=lambda c: c["check"]),
        "source": table,
        "at": max(times) if times else None,
    }
