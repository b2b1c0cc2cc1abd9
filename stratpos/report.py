"""``stratpos report``: one self-contained HTML page of the marts (SPEC §4, §5, §6).

The page has no external resources (no CDN, fonts, scripts or stylesheets): CSS is
inline and every chart is an inline SVG built here, so the file can be mailed, archived
or opened offline. Sections: KPIs, the strategy leaderboard, equity curves, TP/SL/…
outcomes, attribution of the largest shared positions and the latest reconciliation.

Money is per margin asset (SPEC §4.3: a position's amounts are in its contract's margin asset,
USDT for BTCUSDT, BTC for ETHBTC): every amount on the page is labelled with its asset, KPIs,
leaderboards and equity curves are drawn once per asset, and nothing adds two assets. Counts
(positions, wins, close reasons) are asset-free and stay per strategy.

Money stays :class:`~decimal.Decimal` from the warehouse to the page: totals are Decimal
sums (under a wide context, so they are exact) and only formatting rounds them, to two
decimals. Floats appear only as pixel coordinates of chart marks.
"""

from __future__ import annotations

import decimal
import html
import math
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from stratpos.config import PROJECT_ROOT, Settings

BUCKET = "unattributed"
REASONS = ("take_profit", "stop_loss", "manual", "external", "liquidation")
REASON_LABELS = {
    "take_profit": "take-profit",
    "stop_loss": "stop-loss",
    "manual": "manual close",
    "external": "external",
    "liquidation": "liquidation",
}
REASON_COLOURS = {
    "take_profit": "#2e9e5b",
    "stop_loss": "#d64545",
    "manual": "#4c78a8",
    "external": "#e8a33d",
    "liquidation": "#6b3fa0",
}
# Strategies get colours in sorted-id order, so a strategy keeps its colour in every chart.
STRATEGY_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#d62728",
    "#393b79",
    "#637939",
    "#843c39",
)
BUCKET_COLOUR = "#8a8f98"
DEFAULT_OUT = PROJECT_ROOT / "warehouse" / "report.html"
_CENT = Decimal("0.01")
_SATOSHI = Decimal("0.00000001")
ZERO = Decimal(0)


class ReportError(RuntimeError):
    """The report cannot be built (no warehouse, unreadable marts); the message says why."""


# --------------------------------------------------------------------------- warehouse access
class _Reader:
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


@contextmanager
def _open(settings: Settings) -> Iterator[_Reader]:
    if settings.target == "duckdb":
        if not settings.duckdb_path.exists():
            raise ReportError(f"no DuckDB warehouse at {settings.duckdb_path}; run `stratpos transform` first")
        import duckdb

        from stratpos.warehouse import duckdb_connection

        try:
            with duckdb_connection(settings, read_only=True) as con:
                yield _Reader(settings, con)
        except duckdb.IOException as exc:
            raise ReportError(f"cannot open {settings.duckdb_path} read-only: {exc}") from None
    else:
        from stratpos.warehouse import mysql_connection

        with mysql_connection(settings) as con:
            yield _Reader(settings, con)


# --------------------------------------------------------------------------- values and formatting
def _dec(value) -> Decimal | None:
    """A warehouse value as Decimal (DECIMAL arrives as Decimal; be lenient with the rest)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        d = Decimal(str(value).strip())
    except decimal.InvalidOperation:
        return None
    return d if d.is_finite() else None


def _dsum(values: Iterable) -> Decimal:
    total = ZERO
    for v in values:
        d = _dec(v)
        if d is not None:
            total += d
    return total


def _ms(value) -> int | None:
    """A timestamp as epoch ms; naive values are UTC (SPEC §2)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return round(value.timestamp() * 1000)
    return int(value)


def _utc(ms: int | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "—" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime(fmt)


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


STABLE_ASSETS = frozenset({"USDT", "USDC", "BUSD", "FDUSD"})


def _step(asset: str | None) -> Decimal:
    """Display precision of an amount: cents for USD stablecoins, 8 places (a satoshi) for other assets."""
    return _CENT if asset is None or asset in STABLE_ASSETS else _SATOSHI


def _money(value, asset: str | None = None) -> str:
    d = _dec(value)
    if d is None:
        return "—"
    step = _step(asset)
    q = d.quantize(step, rounding=ROUND_HALF_UP)
    if q == 0:
        q = abs(q)  # never "-0.00"
    return f"{q:,.{-step.as_tuple().exponent}f}"


def _num(value, places: int = 8) -> str:
    """A quantity or price: up to ``places`` decimals, trailing zeros dropped."""
    d = _dec(value)
    if d is None:
        return "—"
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP).normalize()
    if q == 0:
        return "0"
    text = f"{q:,f}"
    return text


def _exact(value) -> str:
    """A check value as written (expected/observed/diff): exact, without exponent."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    d = _dec(value)
    return str(value) if d is None else f"{d.normalize():f}"


def _sign_class(value, asset: str | None = None) -> str:
    d = _dec(value)
    if d is None:
        return ""
    q = d.quantize(_step(asset), rounding=ROUND_HALF_UP)
    return "pos" if q > 0 else "neg" if q < 0 else ""


def _money_td(value, asset: str | None = None) -> str:
    cls = _sign_class(value, asset)
    text = _money(value, asset)
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def _pct(num: int, den: int) -> str:
    return "—" if den == 0 else f"{Decimal(num * 100) / Decimal(den):.1f} %"


def _colours(strategies: Iterable[str]) -> dict[str, str]:
    names = sorted({s for s in strategies if s != BUCKET})
    out = {s: STRATEGY_PALETTE[i % len(STRATEGY_PALETTE)] for i, s in enumerate(names)}
    out[BUCKET] = BUCKET_COLOUR
    return out


def _asset_label(margin_asset, symbol: str) -> str:
    """The margin asset a position's amounts are in; a symbol no source names stays apart."""
    return str(margin_asset) if margin_asset else f"unknown:{symbol}"


def _asset_order(assets: Iterable[str]) -> list[str]:
    """USDT first (the usual book), then the others alphabetically, unknown ones last."""
    return sorted(set(assets), key=lambda a: (a != "USDT", a.startswith("unknown:"), a))


# --------------------------------------------------------------------------- data
@dataclass
class _Position:
    strategy_position_id: str
    strategy_id: str
    symbol: str
    margin_asset: str
    status: str
    close_reason: str | None
    exit_ms: int | None
    entry_ms: int | None
    realized_pnl: Decimal
    realized_pnl_net: Decimal | None  # None: an other-asset fee or income had no conversion price
    fees: Decimal
    other_fees: Decimal | None
    funding_fees: Decimal
    other_income: Decimal | None
    open_quantity: Decimal
    unrealized_pnl: Decimal


@dataclass
class _LeaderRow:
    """One strategy's (or the bucket's, or the total's) figures in one margin asset.

    With ``asset`` None the row counts positions of every asset and adds no amounts (the
    money fields stay 0): close reasons and win rates are asset-free.
    """

    strategy_id: str
    asset: str | None = None
    positions: int = 0
    closed: int = 0
    wins: int = 0
    losses: int = 0
    unpriced: int = 0
    net: Decimal = ZERO
    fees: Decimal = ZERO
    other_fees: Decimal = ZERO
    funding: Decimal = ZERO
    other_income: Decimal = ZERO
    open_positions: int = 0
    unrealized: Decimal = ZERO
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, p: _Position) -> None:
        self.positions += 1
        if p.realized_pnl_net is None:
            self.unpriced += 1  # its net is unknown: counted, but added to no sum
        if self.asset is not None:
            if p.margin_asset != self.asset:
                raise ValueError(f"a {p.margin_asset} position added to a {self.asset} row")
            self.net += p.realized_pnl_net or ZERO
            self.fees += p.fees
            self.other_fees += p.other_fees or ZERO
            self.funding += p.funding_fees
            self.other_income += p.other_income or ZERO
            self.unrealized += p.unrealized_pnl
        if p.open_quantity != 0:
            self.open_positions += 1
        if p.status == "closed":
            self.closed += 1
            if p.realized_pnl_net is not None and p.realized_pnl_net > 0:
                self.wins += 1
            elif p.realized_pnl_net is not None and p.realized_pnl_net < 0:
                self.losses += 1
            if p.close_reason:
                self.reasons[p.close_reason] = self.reasons.get(p.close_reason, 0) + 1


def _load_positions(db: _Reader) -> list[_Position] | None:
    """Every strategy position (buckets included); None when the mart does not exist."""
    present = {c.lower() for c in db.columns("marts", "strategy_positions")}
    if not present:
        return None
    # columns a warehouse built before margin assets lacks read as NULL (rebuild it to get them)
    optional = ", ".join(c if c in present else f"null as {c}" for c in ("margin_asset", "other_fees", "other_income"))
    rows = db.rows(
        f"select strategy_position_id, strategy_id, symbol, {optional}, status, close_reason, entry_time, "
        "exit_time, realized_pnl, realized_pnl_net, fees, funding_fees, open_quantity, "
        f"unrealized_pnl from {db.name('marts', 'strategy_positions')}"
    )
    return [
        _Position(
            strategy_position_id=str(r["strategy_position_id"]),
            strategy_id=str(r["strategy_id"]),
            symbol=str(r["symbol"]),
            margin_asset=_asset_label(r["margin_asset"], str(r["symbol"])),
            status=str(r["status"]),
            close_reason=r["close_reason"],
            exit_ms=_ms(r["exit_time"]),
            entry_ms=_ms(r["entry_time"]),
            realized_pnl=_dec(r["realized_pnl"]) or ZERO,
            realized_pnl_net=_dec(r["realized_pnl_net"]),
            fees=_dec(r["fees"]) or ZERO,
            other_fees=_dec(r["other_fees"]),
            funding_fees=_dec(r["funding_fees"]) or ZERO,
            other_income=_dec(r["other_income"]),
            open_quantity=_dec(r["open_quantity"]) or ZERO,
            unrealized_pnl=_dec(r["unrealized_pnl"]) or ZERO,
        )
        for r in rows
    ]


def _leaderboard(positions: list[_Position], asset: str | None) -> tuple[list[_LeaderRow], _LeaderRow | None]:
    """Strategies by net realized PnL (best first), and the bucket row apart.

    ``positions`` are those of margin ``asset``; with ``asset`` None the rows are counts only
    (positions of every asset, no amounts), ordered by strategy id.
    """
    by_strategy: dict[str, _LeaderRow] = {}
    for p in positions:
        by_strategy.setdefault(p.strategy_id, _LeaderRow(p.strategy_id, asset)).add(p)
    bucket = by_strategy.pop(BUCKET, None)
    rows = sorted(by_strategy.values(), key=lambda r: (-r.net, r.strategy_id))
    return rows, bucket


def _by_asset(positions: list[_Position]) -> dict[str, list[_Position]]:
    """Positions per margin asset, USDT first."""
    out: dict[str, list[_Position]] = {a: [] for a in _asset_order(p.margin_asset for p in positions)}
    for p in positions:
        out[p.margin_asset].append(p)
    return out


def _equity_series(positions: list[_Position]) -> dict[str, list[tuple[int, Decimal]]]:
    """Cumulative realized_pnl_net per strategy at each exit_time (positions of one margin asset with
    exits and a known net)."""
    exits = sorted(
        (p for p in positions if p.exit_ms is not None and p.realized_pnl_net is not None),
        key=lambda p: (p.exit_ms, p.strategy_position_id),
    )
    series: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
    running: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for p in exits:
        running[p.strategy_id] += p.realized_pnl_net
        series[p.strategy_id].append((p.exit_ms, running[p.strategy_id]))
    return dict(series)


@dataclass
class _Episode:
    row: dict
    strategies: list[dict]  # per strategy: positions, quantity, entry VWAP, attributed and Binance PnL
    bucket_pnl: Decimal | None
    rest_binance: Decimal


def _load_shared_episodes(db: _Reader, top: int) -> list[_Episode] | None:
    """The ``top`` episodes with the most contributions (≥ 2), with their contributions per strategy."""
    if not db.columns("marts", "exchange_positions") or not db.columns("marts", "position_contributions"):
        return None
    limit = int(top)
    episodes = db.rows(
        "select exchange_position_id, exchange_position_key, symbol, side, episode_no, status, opened_at, "
        "closed_at, peak_quantity, current_quantity, weighted_avg_price, realized_pnl, fees, total_contributions "
        f"from {db.name('marts', 'exchange_positions')} where total_contributions >= 2 "
        f"order by total_contributions desc, peak_quantity desc, exchange_position_id limit {limit}"
    )
    if not episodes:
        return []
    ids = [e["exchange_position_id"] for e in episodes]
    marks = ", ".join("?" for _ in ids)
    contributions = db.rows(
        "select exchange_position_id, strategy_id, strategy_position_id, contribution_quantity, "
        "contribution_entry_price, contribution_pnl, exchange_realized_pnl "
        f"from {db.name('marts', 'position_contributions')} where exchange_position_id in ({marks}) "
        "order by exchange_position_id, position_sequence",
        ids,
    )
    buckets = {
        r["strategy_position_id"]: _dec(r["realized_pnl"]) or ZERO
        for r in db.rows(
            f"select strategy_position_id, realized_pnl from {db.name('marts', 'strategy_positions')} "
            f"where strategy_position_id in ({marks})",
            [f"{BUCKET}:{i}" for i in ids],
        )
    }
    grouped: dict[str, dict[str, dict]] = defaultdict(dict)
    for c in contributions:
        agg = grouped[c["exchange_position_id"]].setdefault(
            c["strategy_id"],
            {"strategy_id": c["strategy_id"], "positions": 0, "quantity": ZERO, "notional": ZERO, "pnl": ZERO},
        )
        qty = _dec(c["contribution_quantity"]) or ZERO
        agg["positions"] += 1
        agg["quantity"] += qty
        agg["notional"] += qty * (_dec(c["contribution_entry_price"]) or ZERO)
        agg["pnl"] += _dec(c["contribution_pnl"]) or ZERO
        agg["binance"] = agg.get("binance", ZERO) + (_dec(c["exchange_realized_pnl"]) or ZERO)
    out = []
    for e in episodes:
        strategies = sorted(grouped[e["exchange_position_id"]].values(), key=lambda a: a["strategy_id"])
        for a in strategies:
            a["entry_price"] = a["notional"] / a["quantity"] if a["quantity"] else None
        binance_total = _dec(e["realized_pnl"]) or ZERO
        # Binance PnL of fills no strategy holds (the bucket's exits): the episode total minus the strategies'
        rest = binance_total - _dsum(a["binance"] for a in strategies)
        out.append(_Episode(e, strategies, buckets.get(f"{BUCKET}:{e['exchange_position_id']}"), rest))
    return out


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


_INCOME_COLUMNS = (
    ("total_income", "all income"),
    ("strategy_income", "in the strategy books"),
    ("account_level_income", "account level"),
    ("transfer", "of which transfers"),
    ("realized_pnl", "REALIZED_PNL"),
    ("commission", "COMMISSION"),
    ("funding_fee", "FUNDING_FEE"),
)


def _load_account_income(db: _Reader) -> list[dict] | None:
    """Σ of the mart account_pnl per asset (SPEC §4.5: every income record lands somewhere); None
    when the mart does not exist. Each row is one asset: amounts of different assets are never added."""
    present = {c.lower() for c in db.columns("marts", "account_pnl")}
    if not present:
        return None
    wanted = [c for c, _ in _INCOME_COLUMNS if c in present]
    sums = ", ".join(f"sum({c}) as {c}" for c in wanted)
    rows = db.rows(f"select asset, {sums} from {db.name('marts', 'account_pnl')} group by asset")
    order = _asset_order(str(r["asset"]) for r in rows)
    return sorted(rows, key=lambda r: order.index(str(r["asset"])))


def _load_latest_alerts(db: _Reader, worst: int = 5) -> dict | None:
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
        c["worst"] = sorted(c.pop("rows"), key=lambda w: -abs(_dec(w["diff"]) or ZERO))[:worst]
    times = [r.get("time") for r in rows if r.get("time") is not None]
    return {
        "run_id": run_id,
        "checks": sorted(checks.values(), key=lambda c: c["check"]),
        "source": table,
        "at": max(times) if times else None,
    }


# --------------------------------------------------------------------------- chart helpers
def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values covering [lo, hi] (the axis domain is the first to the last tick)."""
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    step = _nice_step(hi - lo, target)
    start, end = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(start, end + 1)]


def _tick_label(value: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    places = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if step == 2.5 * 10 ** math.floor(math.log10(step)) and step < 10:
        places += 1
    text = f"{value:,.{places}f}"
    return "0" if text.strip("-0.,") == "" else text.replace("-", "−")


_DAY_MS = 86_400_000
_TIME_STEPS_MS = [m * 60_000 for m in (1, 5, 15, 30, 60, 120, 180, 360, 720)] + [
    d * _DAY_MS for d in (1, 2, 7, 14, 28, 91, 182, 364)
]


def _time_ticks(t0: int, t1: int, target: int = 8) -> tuple[list[int], str]:
    step = next((s for s in _TIME_STEPS_MS if (t1 - t0) / s <= target), _TIME_STEPS_MS[-1])
    first = -(-t0 // step) * step
    ticks = list(range(first, t1 + 1, step))
    fmt = "%Y-%m-%d" if step >= 28 * _DAY_MS else "%b %d" if step >= _DAY_MS else "%b %d %H:%M"
    return ticks, fmt


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def _svg_open(kind: str, width: int, height: int, label: str, asset: str | None = None) -> str:
    tag = f' data-asset="{_e(asset)}"' if asset else ""
    return (
        f'<svg class="chart" data-chart="{kind}"{tag} viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{_e(label)}">'
    )


def _step_path(points: list[tuple[float, float]], x_end: float) -> str:
    """A step line through ``points`` (pixels), decimated to at most a few vertices per half pixel."""
    if not points:
        return ""
    parts = [f"M{_f(points[0][0])},{_f(points[0][1])}"]
    last_y = points[0][1]
    i = 1
    while i < len(points):
        x = points[i][0]
        bucket = round(x * 2)
        ys = []
        while i < len(points) and round(points[i][0] * 2) == bucket:
            ys.append(points[i][1])
            i += 1
        parts.append(f"H{_f(x)}")
        for y in dict.fromkeys((min(ys), max(ys), ys[-1]) if len(ys) > 2 else tuple(ys)):
            if y != last_y:
                parts.append(f"V{_f(y)}")
                last_y = y
    parts.append(f"H{_f(x_end)}")
    return "".join(parts)


# --------------------------------------------------------------------------- charts
def _equity_svg(series: dict[str, list[tuple[int, Decimal]]], colours: dict[str, str], asset: str) -> str:
    width, height = 1120, 420
    left, right, top, bottom = 84, 230, 18, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    t0 = min(s[0][0] for s in series.values())
    t1 = max(s[-1][0] for s in series.values())
    if t1 - t0 < 60_000:
        t0, t1 = t0 - 1_800_000, t1 + 1_800_000
    values = [float(v) for s in series.values() for _, v in s] + [0.0]
    yt = _nice_ticks(min(values), max(values))
    y_lo, y_hi = yt[0], yt[-1]

    def x(t: int) -> float:
        return left + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return top + (y_hi - v) / (y_hi - y_lo) * plot_h

    out = [_svg_open("equity", width, height, f"cumulative net realized PnL per strategy in {asset}", asset)]
    out.append(f'<rect class="plot-bg" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}"/>')
    for v in yt:
        cls = "zero" if abs(v) < 1e-12 else "grid"
        out.append(f'<line class="{cls}" x1="{left}" x2="{left + plot_w}" y1="{_f(y(v))}" y2="{_f(y(v))}"/>')
        out.append(
            f'<text class="tick" x="{left - 8}" y="{_f(y(v) + 4)}" text-anchor="end">{_e(_tick_label(v, yt))}</text>'
        )
    ticks, fmt = _time_ticks(t0, t1)
    for t in ticks:
        out.append(f'<line class="grid" x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{top}" y2="{top + plot_h}"/>')
        out.append(f'<line class="axis" x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{top + plot_h}" y2="{top + plot_h + 5}"/>')
        out.append(
            f'<text class="tick" x="{_f(x(t))}" y="{top + plot_h + 20}" text-anchor="middle">{_e(_utc(t, fmt))}</text>'
        )
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    out.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>')
    out.append(
        f'<text class="axis-title" x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">'
        "exit time (UTC)</text>"
    )
    out.append(
        f'<text class="axis-title" transform="translate(18 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">'
        f"cumulative net realized PnL ({_e(asset)})</text>"
    )
    order = sorted(series, key=lambda s: (s == BUCKET, -series[s][-1][1], s))
    for name in order:
        pts = [(x(t0), y(0.0))] + [(x(t), y(float(v))) for t, v in series[name]]
        dash = ' stroke-dasharray="6 4"' if name == BUCKET else ""
        final = series[name][-1][1]
        out.append(
            f'<path class="line" d="{_step_path(pts, x(t1))}" stroke="{colours[name]}"{dash}>'
            f"<title>{_e(name)}: {_money(final, asset)} {_e(asset)} after {len(series[name])} exits</title></path>"
        )
    lx, ly = left + plot_w + 24, top + 8
    out.append(f'<text class="legend-title" x="{lx}" y="{ly}">strategy · final</text>')
    for i, name in enumerate(order):
        yy = ly + 24 + i * 24
        dash = ' stroke-dasharray="6 4"' if name == BUCKET else ""
        out.append(
            f'<path class="legend-line" d="M{lx},{yy - 4}h22" stroke="{colours[name]}"{dash}/>'
            f'<text class="legend" x="{lx + 30}" y="{yy}">{_e(name)}</text>'
            f'<text class="legend-value {_sign_class(series[name][-1][1], asset)}" x="{width - 8}" y="{yy}" '
            f'text-anchor="end">{_money(series[name][-1][1], asset)} {_e(asset)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _outcomes_svg(rows: list[_LeaderRow], colours: dict[str, str]) -> str:
    rows = [r for r in rows if r.reasons]
    width, row_h, bar_h = 1120, 34, 22
    left, right, top = 170, 150, 44
    height = top + row_h * len(rows) + 44
    plot_w = width - left - right
    most = max(sum(r.reasons.values()) for r in rows)
    ticks = _nice_ticks(0, most, 8)
    ticks = [t for t in ticks if t >= 0 and t == int(t)] or [0, 1]
    x_max = ticks[-1] or 1

    def x(n: float) -> float:
        return left + n / x_max * plot_w

    out = [_svg_open("outcomes", width, height, "close reasons of closed positions per strategy")]
    lx = left
    for reason in REASONS:
        label = REASON_LABELS[reason]
        out.append(
            f'<rect class="key" x="{lx}" y="8" width="12" height="12" rx="2" fill="{REASON_COLOURS[reason]}"/>'
            f'<text class="legend" x="{lx + 18}" y="18">{_e(label)}</text>'
        )
        lx += 30 + 7.5 * len(label) + 20
    axis_y = top + row_h * len(rows)
    for t in ticks:
        out.append(f'<line class="grid" x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{top - 4}" y2="{axis_y}"/>')
        out.append(f'<text class="tick" x="{_f(x(t))}" y="{axis_y + 18}" text-anchor="middle">{int(t)}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}"/>')
    out.append(
        f'<text class="axis-title" x="{left + plot_w / 2}" y="{axis_y + 38}" text-anchor="middle">'
        "closed positions</text>"
    )
    for i, r in enumerate(rows):
        y0 = top + i * row_h + (row_h - bar_h) / 2
        total = sum(r.reasons.values())
        out.append(
            f'<rect class="key" x="{left - 150}" y="{_f(y0 + 6)}" width="10" height="10" rx="2" '
            f'fill="{colours[r.strategy_id]}"/>'
            f'<text class="label" x="{left - 134}" y="{_f(y0 + bar_h / 2 + 4.5)}">{_e(r.strategy_id)}</text>'
        )
        acc = 0
        for reason in [*REASONS, *sorted(set(r.reasons) - set(REASONS))]:
            n = r.reasons.get(reason, 0)
            if not n:
                continue
            x0, w = x(acc), x(acc + n) - x(acc)
            fill = REASON_COLOURS.get(reason, BUCKET_COLOUR)
            out.append(
                f'<rect class="bar" x="{_f(x0)}" y="{_f(y0)}" width="{_f(max(w, 0.5))}" height="{bar_h}" '
                f'fill="{fill}"><title>{_e(r.strategy_id)} · {_e(REASON_LABELS.get(reason, reason))}: {n} '
                f"of {total} ({_pct(n, total)})</title></rect>"
            )
            if w >= 26:
                out.append(
                    f'<text class="in-bar" x="{_f(x0 + w / 2)}" y="{_f(y0 + bar_h / 2 + 4.5)}" '
                    f'text-anchor="middle">{n}</text>'
                )
            acc += n
        tp, sl = r.reasons.get("take_profit", 0), r.reasons.get("stop_loss", 0)
        out.append(
            f'<text class="bar-total" x="{_f(x(total) + 8)}" y="{_f(y0 + bar_h / 2 + 4.5)}">{total} · TP '
            f"{_pct(tp, total)}</text>"
            if sl or tp
            else f'<text class="bar-total" x="{_f(x(total) + 8)}" y="{_f(y0 + bar_h / 2 + 4.5)}">{total}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _attribution_svg(episode: _Episode, colours: dict[str, str], asset: str) -> str:
    items = [(a["strategy_id"], a["pnl"], a["binance"]) for a in episode.strategies]
    if episode.bucket_pnl is not None or episode.rest_binance != 0:
        items.append((BUCKET, episode.bucket_pnl or ZERO, episode.rest_binance))
    width, left, right, top = 460, 112, 20, 34
    group_h, bar_h = 40, 13
    height = top + group_h * len(items) + 44
    plot_w = width - left - right
    values = [float(v) for _, a, b in items for v in (a, b)] + [0.0]
    ticks = _nice_ticks(min(values), max(values), 5)
    lo, hi = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    out = [
        _svg_open("attribution", width, height, f"attributed vs Binance realized PnL per strategy in {asset}", asset)
    ]
    out.append(
        f'<rect class="key" x="{left}" y="8" width="12" height="12" rx="2" fill="#5b6474"/>'
        f'<text class="legend" x="{left + 18}" y="18">attributed (own entry)</text>'
        f'<rect class="key pale" x="{left + 168}" y="8" width="12" height="12" rx="2" fill="#5b6474" '
        f'fill-opacity="0.3" stroke="#5b6474"/>'
        f'<text class="legend" x="{left + 186}" y="18">Binance (average entry)</text>'
    )
    axis_y = top + group_h * len(items)
    for t in ticks:
        cls = "zero" if abs(t) < 1e-12 else "grid"
        out.append(f'<line class="{cls}" x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{top - 4}" y2="{axis_y}"/>')
        out.append(
            f'<text class="tick" x="{_f(x(t))}" y="{axis_y + 16}" text-anchor="middle">'
            f"{_e(_tick_label(t, ticks))}</text>"
        )
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}"/>')
    out.append(
        f'<text class="axis-title" x="{left + plot_w / 2}" y="{axis_y + 36}" text-anchor="middle">'
        f"realized PnL ({_e(asset)})</text>"
    )
    for i, (name, attributed, binance) in enumerate(items):
        gy = top + i * group_h + 6
        out.append(f'<text class="label" x="{left - 10}" y="{_f(gy + bar_h + 4)}" text-anchor="end">{_e(name)}</text>')
        colour = colours.get(name, BUCKET_COLOUR)
        for j, (kind, value) in enumerate((("attributed", attributed), ("Binance", binance))):
            v = float(value)
            x0, x1 = sorted((x(0.0), x(v)))
            pale = ' fill-opacity="0.3" stroke-width="1"' if j else ""
            out.append(
                f'<rect class="bar" x="{_f(x0)}" y="{_f(gy + j * (bar_h + 2))}" width="{_f(max(x1 - x0, 1))}" '
                f'height="{bar_h}" fill="{colour}" stroke="{colour}"{pale}>'
                f"<title>{_e(name)} · {kind}: {_money(value, asset)} {_e(asset)}</title></rect>"
            )
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------- sections
def _kpi_grid(cards: list[tuple[str, str, str]], asset: str | None = None) -> str:
    body = "".join(
        f'<div class="kpi"><div class="label">{_e(label)}</div><div class="value {cls}">{value}</div></div>'
        for label, value, cls in cards
    )
    tag = f' data-asset="{_e(asset)}"' if asset else ""
    return f'<div class="kpis"{tag} style="grid-template-columns:repeat({len(cards)},1fr)">{body}</div>'


def _kpis(totals: dict[str, _LeaderRow], counts: _LeaderRow, strategy_positions: int, episodes: int | None) -> str:
    """Asset-free counts once, then one line of money cards per margin asset (never added across assets)."""
    cards = [
        ("strategy positions", f"{strategy_positions:,}", ""),
        ("win rate", _pct(counts.wins, counts.wins + counts.losses), ""),
        ("margin assets", _e(", ".join(totals)), ""),
    ]
    if episodes is not None:
        cards.insert(1, ("exchange episodes", f"{episodes:,}", ""))
    out = [_kpi_grid(cards)]
    for asset, t in totals.items():
        amounts = (
            ("net realized PnL", t.net, True),
            ("unrealized PnL", t.unrealized, True),
            ("fees", t.fees, False),
            ("other fees", t.other_fees, False),
            ("funding", t.funding, True),
            ("other income", t.other_income, True),
        )
        cards = [
            (f"{label} · {asset}", f"{_money(v, asset)} {_e(asset)}", _sign_class(v, asset) if signed else "")
            for label, v, signed in amounts
        ]
        out.append(_kpi_grid(cards, asset))
    unpriced = sum(t.unpriced for t in totals.values())
    note = (
        '<p class="note">Account totals (the unattributed bucket included), one line per margin asset: '
        "amounts in different assets are never added. Other fees = commission paid in another asset (BNB …) "
        "converted to the margin asset at the fill minute's close; other income = insurance clearance, rebates, "
        "fee returns and delivery settlements attributed to positions. Win rate = wins / (wins + losses) of "
        "closed positions by net realized PnL, over all assets (a count).</p>"
    )
    if unpriced:
        note += (
            f'<p class="note">{unpriced:,} position(s) have no net PnL yet: a fee or income in another asset '
            "had no conversion price (see R8). They are counted, but left out of the amounts.</p>"
        )
    return "".join(out) + note


def _leader_cells(r: _LeaderRow, colour: str | None) -> str:
    a = r.asset
    swatch = f'<span class="swatch" style="background:{colour}"></span>' if colour else ""
    return (
        f'<td class="name">{swatch}{_e(r.strategy_id)}</td>'
        f"<td>{r.positions:,}</td><td>{r.closed:,}</td><td>{_pct(r.wins, r.wins + r.losses)}</td>"
        f"{_money_td(r.net, a)}<td>{_money(r.fees, a)}</td><td>{_money(r.other_fees, a)}</td>"
        f"{_money_td(r.funding, a)}{_money_td(r.other_income, a)}<td>{r.open_positions:,}</td>"
        f"{_money_td(r.unrealized, a)}"
    )


def _leaderboard_section(
    rows: list[_LeaderRow], bucket: _LeaderRow | None, total: _LeaderRow, colours: dict[str, str], asset: str
) -> str:
    """The leaderboard of one margin asset: every amount column is in ``asset``."""
    a = _e(asset)
    head = (
        '<thead><tr><th class="name">strategy</th><th>positions</th><th>closed</th><th>win rate</th>'
        f"<th>net realized PnL ({a})</th><th>fees ({a})</th><th>other fees ({a})</th><th>funding ({a})</th>"
        f"<th>other income ({a})</th><th>open positions</th><th>unrealized PnL ({a})</th></tr></thead>"
    )
    body = "".join(
        f'<tr data-strategy="{_e(r.strategy_id)}" data-asset="{a}">{_leader_cells(r, colours[r.strategy_id])}</tr>'
        for r in rows
    )
    parts = [
        f'<h3 class="asset">{a}-margined</h3><div class="chart-wrap">'
        f'<table class="leaderboard" data-asset="{a}">{head}<tbody>{body}</tbody>'
    ]
    if bucket is not None:
        parts.append(
            f'<tbody class="bucket"><tr data-strategy="{BUCKET}" data-asset="{a}">'
            f"{_leader_cells(bucket, BUCKET_COLOUR)}</tr></tbody>"
        )
    parts.append(f'<tfoot><tr class="total">{_leader_cells(total, None)}</tr></tfoot></table></div>')
    return "".join(parts)


def _equity_section(by_asset: dict[str, list[_Position]], colours: dict[str, str]) -> str:
    charts = []
    for asset, positions in by_asset.items():
        series = _equity_series(positions)
        if series:
            charts.append(
                f'<h3 class="asset">{_e(asset)}-margined</h3>'
                f'<div class="chart-wrap">{_equity_svg(series, colours, asset)}</div>'
            )
    if not charts:
        return '<p class="empty">No exits yet: the curves start with the first closed or partly closed position.</p>'
    return "".join(charts) + (
        '<p class="note">One chart per margin asset. Each step is one position\'s net realized PnL (realized − fees '
        "− other fees + funding + other income) at its last exit; partly closed positions count with what they "
        "realized so far. The dashed line is the unattributed bucket. Fees and funding of positions without exits "
        "are in the leaderboard, not on the curves.</p>"
    )


def _outcomes_section(rows: list[_LeaderRow], bucket: _LeaderRow | None, colours: dict[str, str]) -> str:
    everything = [*rows, *([bucket] if bucket else [])]
    if not any(r.reasons for r in everything):
        return '<p class="empty">No closed positions yet.</p>'
    head = "".join(f"<th>{_e(REASON_LABELS[r])}</th>" for r in REASONS)
    body = "".join(
        f'<tr><td class="name"><span class="swatch" style="background:{colours[r.strategy_id]}"></span>'
        f"{_e(r.strategy_id)}</td>"
        + "".join(
            f"<td>{r.reasons.get(k, 0)}<span class='muted'> · {_pct(r.reasons.get(k, 0), sum(r.reasons.values()))}"
            "</span></td>"
            for k in REASONS
        )
        + f"<td>{sum(r.reasons.values())}</td></tr>"
        for r in everything
        if r.reasons
    )
    return (
        f'<div class="chart-wrap">{_outcomes_svg(everything, colours)}</div>'
        f'<details><summary>counts and hit rates</summary><table class="compact"><thead><tr>'
        f'<th class="name">strategy</th>{head}<th>closed</th></tr></thead><tbody>{body}</tbody></table></details>'
    )


def _episode_block(ep: _Episode, colours: dict[str, str], asset: str) -> str:
    """One shared episode; it trades one symbol, so every amount is in that symbol's margin ``asset``."""
    e = ep.row
    status = str(e["status"])
    opened = _utc(_ms(e["opened_at"]))
    when = (
        f"{opened} → {_utc(_ms(e['closed_at']))} UTC"
        if e.get("closed_at") is not None
        else f"opened {opened} UTC, still open"
    )
    meta = (
        f"{when} · peak quantity {_num(e['peak_quantity'])} · "
        f"average entry {_num(e['weighted_avg_price'], 4)} · {int(e['total_contributions'])} contributions · "
        f"fees {_money(e['fees'], asset)} {asset}"
    )
    rows = []
    for a in ep.strategies:
        gap = a["pnl"] - a["binance"]
        colour = colours.get(a["strategy_id"], BUCKET_COLOUR)
        rows.append(
            f'<tr><td class="name"><span class="swatch" style="background:{colour}">'
            f"</span>{_e(a['strategy_id'])}</td><td>{a['positions']}</td><td>{_num(a['quantity'])}</td>"
            f"<td>{_num(a['entry_price'], 4)}</td>{_money_td(a['pnl'], asset)}"
            f"{_money_td(a['binance'], asset)}{_money_td(gap, asset)}</tr>"
        )
    attributed_total = _dsum(a["pnl"] for a in ep.strategies)
    if ep.bucket_pnl is not None or ep.rest_binance != 0:
        bucket_pnl = ep.bucket_pnl or ZERO
        attributed_total += bucket_pnl
        rows.append(
            f'<tr class="bucket"><td class="name"><span class="swatch" style="background:{BUCKET_COLOUR}"></span>'
            f"{BUCKET}</td><td></td><td></td><td></td>{_money_td(bucket_pnl, asset)}"
            f"{_money_td(ep.rest_binance, asset)}{_money_td(bucket_pnl - ep.rest_binance, asset)}</tr>"
        )
    binance_total = _dec(e["realized_pnl"]) or ZERO
    foot = (
        f'<tfoot><tr><td class="name">episode</td><td></td><td></td><td></td>{_money_td(attributed_total, asset)}'
        f"{_money_td(binance_total, asset)}{_money_td(attributed_total - binance_total, asset)}</tr></tfoot>"
    )
    table = (
        '<table class="compact"><thead><tr><th class="name">strategy</th><th>positions</th><th>quantity</th>'
        f"<th>entry VWAP</th><th>attributed PnL ({_e(asset)})</th><th>Binance PnL ({_e(asset)})</th>"
        f"<th>gap ({_e(asset)})</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody>{foot}</table>"
    )
    title = f"{e['symbol']} {e['side']} · episode {e['episode_no']} · {asset}"
    return (
        f'<div class="episode" data-episode="{_e(e["exchange_position_id"])}">'
        f'<h3>{_e(title)} <span class="badge {"passed" if status == "closed" else "open"}">{_e(status)}</span></h3>'
        f'<p class="meta">{_e(meta)}</p><div class="episode-grid"><div>{table}</div>'
        f'<div class="chart-wrap">{_attribution_svg(ep, colours, asset)}</div></div></div>'
    )


def _attribution_section(
    episodes: list[_Episode] | None, colours: dict[str, str], assets: dict[str, str], top: int
) -> str:
    """``assets``: symbol → margin asset (the label of each episode's amounts)."""
    if not episodes:
        return '<p class="empty">No exchange position has been shared by two or more strategy positions yet.</p>'
    intro = (
        f'<p class="note">The {len(episodes)} exchange position episodes entered by the most strategy positions '
        f"(top {top}, two or more each). "
        "Attributed PnL is measured from each strategy's own entry price; Binance books every exit against the "
        "position's average entry. The gap is what averaging moved between strategies; once an episode is closed "
        "the two totals agree.</p>"
    )
    return intro + "".join(
        _episode_block(ep, colours, assets.get(str(ep.row["symbol"]), f"unknown:{ep.row['symbol']}")) for ep in episodes
    )


def _income_section(income: list[dict]) -> str:
    columns = [(c, label) for c, label in _INCOME_COLUMNS if c in income[0]]
    head = "".join(f"<th>{_e(label)}</th>" for _, label in columns)
    body = "".join(
        f'<tr data-income-asset="{_e(r["asset"])}"><td class="name">{_e(r["asset"])}</td>'
        + "".join(_money_td(r[c], str(r["asset"])) for c, _ in columns)
        + "</tr>"
        for r in income
    )
    return (
        f'<div class="chart-wrap"><table class="compact income"><thead><tr><th class="name">asset</th>{head}</tr>'
        f"</thead><tbody>{body}</tbody></table></div>"
        '<p class="note">Binance\'s income history per asset, natively (nothing converted): what the strategy '
        "books hold of it (their fills' realizedPnl and commission, funding and the §4.5 income attributed to "
        "positions) and the account-level rest (transfers, bonuses, income no position could be given). The "
        "two add up to all income (mart account_pnl).</p>"
    )


def _reconciliation_section(validation: dict | None, source: str) -> str:
    if validation is None:
        return f'<p class="empty">No validation run recorded (no table {_e(source)}).</p>'
    checks = validation.get("checks") or []
    run = validation.get("run_id")
    where = _e(validation.get("source") or "the validation run")
    if not checks:
        if validation.get("empty"):
            return f'<p class="empty">No validation run recorded: {where} holds no alerts.</p>'
        return f'<p class="empty">Run {_e(run)}: no checks reported.</p>'
    counts = {s: sum(1 for c in checks if str(c.get("status")) == s) for s in ("passed", "warned", "failed")}
    when = f" at {_e(validation['at'])}" if validation.get("at") is not None else ""
    summary = (
        f'<p class="summary">Run <code>{_e(run)}</code>{when}: '
        + " · ".join(f'<span class="badge {s}">{n} {s}</span>' for s, n in counts.items())
        + "</p>"
    )
    if validation.get("source") and not validation.get("from_argument"):
        summary += f'<p class="note">Read from {where}, which records mismatches only: checks not listed passed.</p>'
    rows = []
    for c in checks:
        status = str(c.get("status") or "")
        worst = c.get("worst") or []
        detail = "".join(
            f"<tr><td class='name'>{_e(w.get('key'))}</td><td>{_e(_exact(w.get('expected')))}</td>"
            f"<td>{_e(_exact(w.get('observed')))}</td><td>{_e(_exact(w.get('diff')))}</td></tr>"
            for w in worst
        )
        detail_html = (
            '<table class="worst"><thead><tr><th class="name">key</th><th>expected</th><th>observed</th>'
            f"<th>diff</th></tr></thead><tbody>{detail}</tbody></table>"
            if detail
            else '<span class="muted">—</span>'
        )
        status_cls = status if status in ("passed", "warned", "failed") else "open"
        rows.append(
            f'<tr data-check="{_e(c.get("check"))}"><td class="name"><strong>{_e(c.get("check"))}</strong>'
            + (f' <span class="muted">{_e(c["name"])}</span>' if c.get("name") else "")
            + "</td>"
            f"<td class='name'>{_e(c.get('severity'))}</td>"
            f"<td class='name'><span class='badge {status_cls}'>{_e(status)}</span></td>"
            f"<td>{_e(c.get('mismatches', 0))}</td><td class='name'>{detail_html}</td></tr>"
        )
    return (
        summary + '<table class="checks"><thead><tr><th class="name">check</th><th class="name">severity</th>'
        '<th class="name">status</th>'
        f'<th>mismatches</th><th class="name">worst mismatches</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


_CSS = """
:root{--ink:#1d2433;--muted:#5b6474;--line:#e2e6ed;--bg:#f4f6f9;--card:#fff;--pos:#17804a;--neg:#c0392b}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 "Segoe UI",system-ui,-apple-system,"Helvetica Neue",Arial,"Liberation Sans","DejaVu Sans",sans-serif}
main{max-width:1240px;margin:0 auto;padding:28px 32px 56px}
header h1{font-size:26px;margin:0 0 2px;letter-spacing:-.01em}
header .sub{color:var(--muted);margin:0}
.kpis{display:grid;gap:12px;margin:18px 0 6px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:11px 14px}
.kpi .label{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.kpi .value{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums;margin-top:2px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:18px 0}
section>h2{font-size:17px;margin:0 0 10px}
h3{font-size:15px;margin:0 0 2px}
h3.asset{margin:14px 0 6px;color:var(--muted)}
.kpis[data-asset] .kpi .value{font-size:17px}
table.leaderboard th{white-space:normal;vertical-align:bottom}
table.leaderboard td,table.leaderboard th{padding:6px 8px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600;text-align:right;
border-bottom:2px solid var(--line);padding:6px 10px;white-space:nowrap}
td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th.name,td.name{text-align:left}
table.compact td,table.compact th{padding:4px 8px}
tbody.bucket td,tr.bucket td{color:var(--muted);font-style:italic;background:#fafbfc}
tfoot td{font-weight:600;border-top:2px solid var(--line);border-bottom:none}
.pos{color:var(--pos)} .neg{color:var(--neg)} .muted{color:var(--muted)}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:8px}
.note{color:var(--muted);font-size:12.5px;margin:8px 0 0}
.empty{color:var(--muted);font-style:italic;margin:6px 0}
.chart-wrap{overflow-x:auto}
svg.chart{display:block;max-width:100%;height:auto;font-family:inherit}
svg .plot-bg{fill:#fcfdfe}
svg .grid{stroke:#e8ebf0;stroke-width:1}
svg .zero{stroke:#9aa3b2;stroke-width:1.2}
svg .axis{stroke:#9aa3b2;stroke-width:1}
svg .tick{font-size:11.5px;fill:var(--muted)}
svg .axis-title{font-size:12.5px;fill:var(--ink);font-weight:600}
svg .line{fill:none;stroke-width:2;stroke-linejoin:round}
svg .legend-line{fill:none;stroke-width:3}
svg .legend,svg .label{font-size:12.5px;fill:var(--ink)}
svg .legend-title{font-size:11px;fill:var(--muted);text-transform:uppercase;letter-spacing:.05em}
svg .legend-value{font-size:12.5px;fill:var(--ink);font-variant-numeric:tabular-nums}
svg .legend-value.pos{fill:var(--pos)} svg .legend-value.neg{fill:var(--neg)}
svg .in-bar{font-size:11px;fill:#fff;font-weight:600}
svg .bar-total{font-size:12px;fill:var(--muted)}
.episode{border-top:1px solid var(--line);padding:14px 0 4px}
.episode .meta{color:var(--muted);font-size:12.5px;margin:0 0 8px}
.episode-grid{display:grid;grid-template-columns:minmax(0,1fr) 460px;gap:24px;align-items:start}
table.compact th{white-space:normal;vertical-align:bottom}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:11.5px;font-weight:600;vertical-align:1px}
.badge.passed{background:#e2f3e9;color:#17804a} .badge.warned{background:#fff3d3;color:#8a6100}
.badge.failed{background:#fde3df;color:#b3261e} .badge.open{background:#e6eefb;color:#2d5aa8}
table.checks td{vertical-align:top}
table.worst{width:auto;font-size:12px} table.worst td,table.worst th{padding:2px 8px}
details{margin-top:10px} summary{cursor:pointer;color:var(--muted);font-size:12.5px}
code{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:24px}
@media print{body{background:#fff}section{break-inside:avoid;border:none;padding:8px 0}}
"""

# A layout self-check: counts the chart marks that got a non-empty box once the page is laid out
# (a headless-browser test reads `data-drawn`); the page works without it.
_SCRIPT = """
document.querySelectorAll('svg[data-chart]').forEach(function (svg) {
  var n = 0;
  svg.querySelectorAll('path, rect').forEach(function (el) {
    var b = el.getBBox();
    if (b.width > 0 || b.height > 0) n += 1;
  });
  svg.setAttribute('data-drawn', String(n));
});
"""


def build_report(
    settings: Settings,
    out_path: Path,
    *,
    title: str = "stratpos report",
    validation: dict | None = None,
    top_shared: int = 5,
) -> Path:
    """Write the HTML report of the warehouse marts to ``out_path`` and return the path.

    ``validation`` is a reconciliation run (``{"run_id", "checks": [{"check", "severity", "status",
    "mismatches", "worst": [{"key", "expected", "observed", "diff"}]}]}``); without it the latest
    run in ``{audit}.dq_alerts`` is shown, if that table exists.
    """
    out_path = Path(out_path)
    with decimal.localcontext() as ctx:
        ctx.prec = 80  # DECIMAL(38,18) sums stay exact
        with _open(settings) as db:
            positions = _load_positions(db)
            episodes = _load_shared_episodes(db, top_shared)
            episode_count = (
                db.rows(f"select count(*) as n from {db.name('marts', 'exchange_positions')}")[0]["n"]
                if episodes is not None
                else None
            )
            alerts = None if validation is not None else _load_latest_alerts(db)
            income = _load_account_income(db)
        page = _render(
            settings,
            title=title,
            positions=positions,
            episodes=episodes,
            episode_count=episode_count,
            validation=validation,
            alerts=alerts,
            top_shared=top_shared,
            income=income,
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # write next to the target, then rename: a reader never sees half a report
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_path


def _render(
    settings: Settings,
    *,
    title: str,
    positions: list[_Position] | None,
    episodes: list[_Episode] | None,
    episode_count: int | None,
    validation: dict | None,
    alerts: dict | None,
    top_shared: int,
    income: list[dict] | None = None,
) -> str:
    all_positions = positions or []
    colours = _colours(p.strategy_id for p in all_positions)
    by_asset = _by_asset(all_positions)
    symbol_assets = {p.symbol: p.margin_asset for p in all_positions}
    times = [t for p in all_positions for t in (p.entry_ms, p.exit_ms) if t is not None]
    span = f"{_utc(min(times))} → {_utc(max(times))} UTC · " if times else ""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sub = f"{span}{settings.describe()} · generated {generated}"
    sections = []
    if not all_positions:
        missing = " (the marts are not built yet: run `stratpos transform`)" if positions is None else ""
        sections.append(
            '<section id="leaderboard"><h2>Strategy leaderboard</h2>'
            f'<p class="empty">No positions yet{_e(missing)}.</p></section>'
        )
    else:
        # counts (positions, win rate, close reasons) are asset-free: over all positions
        rows, bucket = _leaderboard(all_positions, None)
        counts = _LeaderRow("account total")
        for p in all_positions:
            counts.add(p)
        strategy_positions = sum(r.positions for r in rows)
        boards, totals = [], {}
        for asset, positions_in in by_asset.items():
            asset_rows, asset_bucket = _leaderboard(positions_in, asset)
            total = totals[asset] = _LeaderRow(f"{asset} total", asset)
            for p in positions_in:
                total.add(p)
            boards.append(_leaderboard_section(asset_rows, asset_bucket, total, colours, asset))
        sections.append(_kpis(totals, counts, strategy_positions, episode_count))
        sections.append(
            '<section id="leaderboard"><h2>Strategy leaderboard</h2>'
            + "".join(boards)
            + '<p class="note">One table per margin asset: a strategy trading contracts of several margin assets '
            "has a row in each, and amounts of different assets are never added. Closed = every entry exited; open "
            "positions = positions still holding quantity. The unattributed row is the bucket: liquidations, manual "
            "trades and other bots' fills (SPEC §4.2).</p>"
            "</section>"
        )
        sections.append(f'<section id="equity"><h2>Equity curves</h2>{_equity_section(by_asset, colours)}</section>')
        sections.append(
            f'<section id="outcomes"><h2>How positions closed</h2>{_outcomes_section(rows, bucket, colours)}</section>'
        )
        sections.append(
            '<section id="attribution"><h2>Attribution of the largest shared positions</h2>'
            f"{_attribution_section(episodes, colours, symbol_assets, top_shared)}</section>"
        )
    if income:
        sections.append(f'<section id="income"><h2>Account income per asset</h2>{_income_section(income)}</section>')
    if validation is not None:
        validation = {**validation, "from_argument": True}
    recon = _reconciliation_section(
        validation if validation is not None else alerts, f"{settings.schema('audit')}.dq_alerts"
    )
    sections.append(f'<section id="reconciliation"><h2>Reconciliation</h2>{recon}</section>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<header><h1>{_e(title)}</h1><p class="sub">{_e(sub)}</p></header>'
        + "".join(sections)
        + "<footer>stratpos · books rebuilt from signals, orders and fills; Binance is the referee.</footer>"
        f"</main><script>{_SCRIPT}</script></body></html>\n"
    )


def main_report(out: str | None = None) -> int:
    """``stratpos report [--out PATH]``: write the report (default ``warehouse/report.html``), print its path."""
    from stratpos.config import ConfigError, load_settings
    from stratpos.warehouse import WarehouseUnavailable

    try:
        path = build_report(load_settings(), Path(out) if out else DEFAULT_OUT)
    except (ReportError, WarehouseUnavailable, ConfigError) as exc:
        print(f"stratpos report: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
