"""Compact read-only indexes over a replay directory (SPEC §3.4) for the fake Binance REST API.

The fake API must serve replay directories with up to ~1M trades without holding a Python dict per
record, so every JSONL file is parsed exactly once into per-symbol ``array('q')`` columns (paging key,
times, byte offset and length of the line) sorted by the paging key. Pages are answered with ``bisect``
and the matching lines are read back from the file and spliced into the JSON response *verbatim*, which
also keeps Binance's decimal strings byte-for-byte exact.

Time visibility ("the data clock"): a record whose time is later than ``clock`` does not exist yet.
Orders and algo orders are *versioned*: the same id may appear several times (state changes) and a
query returns, per id, the latest version whose ``updateTime`` is ``<= clock``; versions with the same
``updateTime`` are ordered by how far their status has progressed (``TRIGGERED`` before ``FINISHED``).

Ids are per symbol (SPEC §3.2): every id-keyed index here is one :class:`VersionedSeries` per symbol, so
equal ``orderId``/``algoId``/trade ``id`` numbers on two symbols never meet.

Retention (what Binance no longer serves, relative to the data clock) is applied through a
:class:`Visibility`: a time floor per dataset, and a second, later floor for orders that ended
``CANCELED``/``EXPIRED`` without a fill.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TRADES_FILE = "futures_trades.jsonl"
ORDERS_FILE = "futures_orders.jsonl"
ALGO_ORDERS_FILE = "futures_algo_orders.jsonl"
POSITION_RISK_FILE = "position_risk.jsonl"
INCOME_FILE = "income.jsonl"
BALANCES_FILE = "balances.jsonl"
KLINES_FILE = "klines.jsonl"
SYMBOLS_FILE = "symbols.jsonl"
ACCOUNT_FILE = "account.json"

# Among versions with the same updateTime, the one further along its life cycle is the later one
# (allOrders: NEW -> PARTIALLY_FILLED -> final; allAlgoOrders, SPEC §3.2: NEW -> TRIGGERING ->
# TRIGGERED -> FINISHED, or a final CANCELED / REJECTED / EXPIRED).
ORDER_STATUS_RANK = {"NEW": 0, "PARTIALLY_FILLED": 1}
ORDER_FINAL_RANK = 2
ALGO_STATUS_RANK = {"NEW": 0, "TRIGGERING": 1, "TRIGGERED": 2}
ALGO_FINAL_RANK = 3
# allOrders / allAlgoOrders: "order status is CANCELED or EXPIRED AND order has NO filled trade AND
# created time + 3 days < current time" -> not found.
UNFILLED_PURGED_STATUSES = frozenset({"CANCELED", "EXPIRED"})

MONTH_UNITS = {"M": 1}
SPAN_UNITS_MS = {"ms": 1, "s": 1_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_SPAN_RE = re.compile(r"^\s*([0-9]+)\s*(ms|s|min|h|d|w|M)\s*$")


class LineStore:
    """Reads single lines of one file back by (offset, length); safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("rb")
        self._lock = threading.Lock()

    def read(self, offset: int, length: int) -> bytes:
        """The raw bytes of one stored line (without its newline)."""
        with self._lock:
            self._fh.seek(offset)
            return self._fh.read(length)

    def close(self) -> None:
        self._fh.close()


def _iter_jsonl(path: Path) -> Iterator[tuple[dict[str, Any], int, int]]:
    """Yield ``(record, offset, length)`` per valid JSON-object line; bad lines are logged and skipped."""
    offset = 0
    bad = 0
    with path.open("rb") as fh:
        for raw in fh:
            start = offset
            offset += len(raw)
            body = raw.strip()
            if not body:
                continue
            try:
                rec = json.loads(body)
            except ValueError:
                bad += 1
                continue
            if not isinstance(rec, dict):
                bad += 1
                continue
            # Leading whitespace is rare but would shift the slice; the stripped length is what we serve.
            lead = len(raw) - len(raw.lstrip())
            yield rec, start + lead, len(body)
    if bad:
        log.warning("%s: skipped %d line(s) that are not JSON objects", path.name, bad)


def as_int(value: Any) -> int | None:
    """Binance ids/times are ints; tolerate numeric strings and reject anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _is_zero(value: Any) -> bool:
    """``"0"``, ``"0.000"``, ``0`` -> True; anything unparsable counts as non-zero (a fill we cannot rule out)."""
    if value is None or isinstance(value, bool):
        return False
    try:
        return Decimal(str(value)) == 0
    except (InvalidOperation, ValueError):
        return False


def parse_span(span: int | str | None) -> tuple[int, int] | None:
    """A retention span as ``(months, milliseconds)``; ``None`` means "kept forever".

    Accepts an int (milliseconds) or ``"<n><unit>"`` with unit ``M`` (calendar months, as Binance words
    its trade and income limits), ``w``, ``d``, ``h``, ``min``, ``s`` or ``ms``.
    """
    if span is None:
        return None
    if isinstance(span, bool):
        raise ValueError(f"invalid retention span {span!r}")
    if isinstance(span, int):
        if span < 0:
            raise ValueError("a retention span cannot be negative")
        return 0, span
    match = _SPAN_RE.match(span) if isinstance(span, str) else None
    if match is None:
        raise ValueError(f"invalid retention span {span!r}; expected e.g. '6M', '90d', '12h' or milliseconds")
    n, unit = int(match.group(1)), match.group(2)
    return (n, 0) if unit in MONTH_UNITS else (0, n * SPAN_UNITS_MS[unit])


def months_before(ms: int, months: int) -> int:
    """``ms`` moved back by calendar months in UTC (the day is clamped to the target month's length)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    total = dt.year * 12 + (dt.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    next_first = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    last_day = (next_first - datetime(year, month, 1, tzinfo=UTC)).days
    moved = dt.replace(year=year, month=month, day=min(dt.day, last_day))
    # Whole milliseconds survive the round trip exactly; keep the sub-second part from the input.
    return int(moved.replace(microsecond=0).timestamp()) * 1000 + ms % 1000


def retention_floor(clock: int, span: int | str | None) -> int | None:
    """The earliest record time still served at ``clock`` (records at the floor are served)."""
    parsed = parse_span(span)
    if parsed is None:
        return None
    months, millis = parsed
    floor = months_before(clock, months) if months else clock
    return floor - millis


@dataclass(frozen=True)
class Visibility:
    """What exists at one request: records up to ``clock``, none older than ``floor``, and no order that
    ended canceled/expired without a fill older than ``unfilled_floor`` (``None``: no such limit)."""

    clock: int
    floor: int | None = None
    unfilled_floor: int | None = None


class RawColumns:
    """Columns of one symbol's records in file order, collected while a file is parsed."""

    def __init__(self) -> None:
        self.keys = array("q")
        self.vis = array("q")
        self.wtimes = array("q")
        self.offs = array("q")
        self.lens = array("q")
        self.ranks = array("b")
        self.purgeable = array("b")

    def append(
        self, key: int, vis: int, wtime: int, off: int, length: int, rank: int = 0, purgeable: bool = False
    ) -> None:
        self.keys.append(key)
        self.vis.append(vis)
        self.wtimes.append(wtime)
        self.offs.append(off)
        self.lens.append(length)
        self.ranks.append(rank)
        self.purgeable.append(1 if purgeable else 0)


class VersionedSeries:
    """One symbol's records of one file, sorted by paging key; each key has one or more versions.

    Columns (one entry per distinct key, ascending): ``keys``, ``wtimes`` (the time that
    ``startTime``/``endTime`` and retention filter on: a trade's ``time``, an order's creation time)
    and ``vstart`` (where the key's versions begin). Version columns (grouped by key, ascending by
    visibility time within a key): ``vtimes``, ``offs``, ``lens`` and ``purgeable`` (the version is a
    CANCELED/EXPIRED order without a fill, which Binance forgets sooner). Trades are the degenerate
    case of exactly one version whose visibility time is its ``time``.
    """

    def __init__(self, raw: RawColumns) -> None:
        n = len(raw.keys)
        # Replay files are usually written in key order; only sort (by key, visibility time, status
        # progress, then file order so the line written last wins a remaining tie) when they are not.
        ks, vs, rs = raw.keys, raw.vis, raw.ranks
        in_order = all((ks[i], vs[i], rs[i]) <= (ks[i + 1], vs[i + 1], rs[i + 1]) for i in range(n - 1))
        order: range | list[int] = range(n) if in_order else sorted(range(n), key=lambda i: (ks[i], vs[i], rs[i], i))
        self.keys = array("q")
        self.wtimes = array("q")
        self.vstart = array("q")
        self.vtimes = array("q")
        self.offs = array("q")
        self.lens = array("q")
        self.purgeable = array("b")
        last_key: int | None = None
        for i in order:
            key = raw.keys[i]
            if key != last_key:
                self.keys.append(key)
                self.wtimes.append(raw.wtimes[i])
                self.vstart.append(len(self.vtimes))
                last_key = key
            elif raw.wtimes[i] < self.wtimes[-1]:
                # The window time of an order is its creation time; keep the earliest one seen.
                self.wtimes[-1] = raw.wtimes[i]
            self.vtimes.append(raw.vis[i])
            self.offs.append(raw.offs[i])
            self.lens.append(raw.lens[i])
            self.purgeable.append(raw.purgeable[i])
        self.vstart.append(len(self.vtimes))
        # Ids normally grow with time; then a time window is a contiguous key range and needs no
        # secondary index. Otherwise keep key positions sorted by window time.
        self.monotonic = all(self.wtimes[i] <= self.wtimes[i + 1] for i in range(len(self.wtimes) - 1))
        self.by_time: array | None = None
        self.sorted_wtimes: array = self.wtimes
        if not self.monotonic:
            by_time = sorted(range(len(self.keys)), key=lambda i: (self.wtimes[i], self.keys[i]))
            self.by_time = array("q", by_time)
            self.sorted_wtimes = array("q", (self.wtimes[i] for i in by_time))

    def __len__(self) -> int:
        return len(self.keys)

    def max_vis_time(self) -> int | None:
        return max(self.vtimes) if self.vtimes else None

    def visible_version(self, pos: int, vis: Visibility) -> int:
        """Index of the latest version of key ``pos`` visible under ``vis``; -1 when none is visible."""
        if vis.floor is not None and self.wtimes[pos] < vis.floor:
            return -1
        lo, hi = self.vstart[pos], self.vstart[pos + 1]
        ver = bisect_right(self.vtimes, vis.clock, lo, hi) - 1
        if ver < lo:
            return -1
        if self.purgeable[ver] and vis.unfilled_floor is not None and self.wtimes[pos] < vis.unfilled_floor:
            return -1
        return ver

    def from_key(self, key: int, vis: Visibility, limit: int, offset: int = 0) -> list[int]:
        """Versions of the first ``limit`` visible keys ``>= key`` (after skipping ``offset``)."""
        out: list[int] = []
        skip = offset
        start = bisect_left(self.keys, key)
        if vis.floor is not None and self.monotonic:
            # Window times grow with the key: skip everything retention hides in one step.
            start = max(start, bisect_left(self.wtimes, vis.floor))
        for pos in range(start, len(self.keys)):
            ver = self.visible_version(pos, vis)
            if ver < 0:
                continue
            if skip:
                skip -= 1
                continue
            out.append(ver)
            if len(out) >= limit:
                break
        return out

    def in_window(self, start: int, end: int, vis: Visibility) -> list[int]:
        """Versions of every visible key whose window time is in ``[start, end]``, ascending by key."""
        if vis.floor is not None:
            start = max(start, vis.floor)
        lo = bisect_left(self.sorted_wtimes, start)
        hi = bisect_right(self.sorted_wtimes, end)
        if lo >= hi:
            return []
        positions: Iterable[int] = range(lo, hi) if self.by_time is None else sorted(self.by_time[lo:hi])
        out: list[int] = []
        for pos in positions:
            ver = self.visible_version(pos, vis)
            if ver >= 0:
                out.append(ver)
        return out


class IncomeSeries:
    """All income rows sorted by (time, tranId), with cached per-(symbol, incomeType) sub-indexes."""

    def __init__(self) -> None:
        self.times = array("q")
        self.trans = array("q")
        self.offs = array("q")
        self.lens = array("q")
        # Small integer codes instead of per-row strings keep 1M+ rows cheap.
        self._symbols: list[str] = []
        self._types: list[str] = []
        self._sym_code: dict[str, int] = {}
        self._typ_code: dict[str, int] = {}
        self.sym = array("l")
        self.typ = array("l")
        self._asset_code: dict[str, int] = {}
        self.asset = array("l")
        self._cache: dict[tuple[str | None, str | None], tuple[array, array]] = {}
        self._lock = threading.Lock()

    def append(
        self, time: int, tran_id: int, symbol: str, income_type: str, off: int, length: int, asset: str = ""
    ) -> None:
        """Add one row in file order; call :meth:`finish` once all rows are in."""
        sym = self._sym_code.setdefault(symbol, len(self._sym_code))
        typ = self._typ_code.setdefault(income_type, len(self._typ_code))
        if sym == len(self._symbols):
            self._symbols.append(symbol)
        if typ == len(self._types):
            self._types.append(income_type)
        self.times.append(time)
        # tranId only orders rows of equal time; one beyond int64 keeps file order among its peers.
        self.trans.append(min(tran_id, 2**63 - 1))
        self.asset.append(self._asset_code.setdefault(asset, len(self._asset_code)))
        self.sym.append(sym)
        self.typ.append(typ)
        self.offs.append(off)
        self.lens.append(length)

    def finish(self) -> IncomeSeries:
        """Sort by (time, tranId, file order) unless the file already is."""
        n = len(self.times)
        t, r = self.times, self.trans
        if not all((t[i], r[i]) <= (t[i + 1], r[i + 1]) for i in range(n - 1)):
            order = sorted(range(n), key=lambda i: (t[i], r[i], i))
            for name in ("times", "trans", "offs", "lens", "sym", "typ", "asset"):
                col = getattr(self, name)
                setattr(self, name, array(col.typecode, (col[i] for i in order)))
        return self

    def __len__(self) -> int:
        return len(self.times)

    @property
    def symbols(self) -> list[str]:
        return [s for s in self._symbols if s]

    def _subindex(self, symbol: str | None, income_type: str | None) -> tuple[array, array]:
        """(positions, times) of the rows matching a symbol and/or type filter, built once per filter."""
        with self._lock:
            hit = self._cache.get((symbol, income_type))
            if hit is not None:
                return hit
            s = self._sym_code.get(symbol, -2) if symbol is not None else -2
            t = self._typ_code.get(income_type, -2) if income_type is not None else -2
            pos = array(
                "q",
                (
                    i
                    for i in range(len(self.times))
                    if (symbol is None or self.sym[i] == s) and (income_type is None or self.typ[i] == t)
                ),
            )
            hit = (pos, array("q", (self.times[i] for i in pos)))
            self._cache[(symbol, income_type)] = hit
            return hit

    def of_asset(self, asset: str, after: int, until: int) -> list[int]:
        """Row indexes of one asset's income with ``after < time <= until``, ascending."""
        code = self._asset_code.get(asset)
        if code is None:
            return []
        lo, hi = bisect_right(self.times, after), bisect_right(self.times, until)
        return [i for i in range(lo, hi) if self.asset[i] == code]

    def query(
        self, symbol: str | None, income_type: str | None, start: int, end: int, offset: int, limit: int
    ) -> list[int]:
        """Row indexes in ``[start, end]`` matching the filters, ascending, ``offset``/``limit`` applied."""
        if symbol is None and income_type is None:
            lo = min(bisect_right(self.times, end), bisect_left(self.times, start) + offset)
            return list(range(lo, min(bisect_right(self.times, end), lo + limit)))
        pos, times = self._subindex(symbol, income_type)
        hi = bisect_right(times, end)
        lo = min(hi, bisect_left(times, start) + offset)
        return list(pos[lo : min(hi, lo + limit)])


class PositionSnapshots:
    """positionRisk rows per (symbol, positionSide), ascending by snapshotTime."""

    def __init__(self, items: list[tuple[str, str, int, int, int, int]]) -> None:
        # items: (symbol, positionSide, snapshotTime, seq, offset, length)
        items.sort()
        self.series: dict[tuple[str, str], tuple[array, array, array]] = {}
        for sym, side, snap, _seq, off, length in items:
            times, offs, lens = self.series.setdefault((sym, side), (array("q"), array("q"), array("q")))
            times.append(snap)
            offs.append(off)
            lens.append(length)

    @property
    def symbols(self) -> set[str]:
        return {sym for sym, _ in self.series}

    def max_time(self) -> int | None:
        return max((t[-1] for t, _, _ in self.series.values()), default=None)

    def latest(self, clock: int, symbol: str | None) -> list[tuple[str, str, int, int]]:
        """``(symbol, side, offset, length)`` of the latest snapshot at or before ``clock`` per key."""
        out = []
        for (sym, side), (times, offs, lens) in sorted(self.series.items()):
            if symbol is not None and sym != symbol:
                continue
            i = bisect_right(times, clock) - 1
            if i >= 0:
                out.append((sym, side, offs[i], lens[i]))
        return out


class BalanceSnapshots:
    """``balances.jsonl`` rows per asset, ascending by snapshotTime (file order breaks a tie: last wins)."""

    def __init__(self, items: list[tuple[str, int, int, int, int]]) -> None:
        # items: (asset, snapshotTime, seq, offset, length)
        items.sort()
        self.series: dict[str, tuple[array, array, array]] = {}
        for asset, snap, _seq, off, length in items:
            times, offs, lens = self.series.setdefault(asset, (array("q"), array("q"), array("q")))
            times.append(snap)
            offs.append(off)
            lens.append(length)

    def __len__(self) -> int:
        return sum(len(t) for t, _, _ in self.series.values())

    def max_time(self) -> int | None:
        return max((t[-1] for t, _, _ in self.series.values()), default=None)

    def latest(self, clock: int) -> list[tuple[str, int, int, int]]:
        """``(asset, snapshotTime, offset, length)`` of each asset's latest snapshot at or before
        ``clock``, by asset name."""
        out = []
        for asset, (times, offs, lens) in sorted(self.series.items()):
            i = bisect_right(times, clock) - 1
            if i >= 0:
                out.append((asset, times[i], offs[i], lens[i]))
        return out


class KlineSeries:
    """One (symbol, interval)'s klines ascending by open time; a repeated open time keeps the last line."""

    def __init__(self, items: list[tuple[int, int, int, int]]) -> None:
        # items: (openTime, seq, offset, length)
        items.sort()
        self.open_times = array("q")
        self.offs = array("q")
        self.lens = array("q")
        for open_time, _seq, off, length in items:
            if self.open_times and self.open_times[-1] == open_time:
                self.offs[-1], self.lens[-1] = off, length
                continue
            self.open_times.append(open_time)
            self.offs.append(off)
            self.lens.append(length)

    def __len__(self) -> int:
        return len(self.open_times)

    def query(self, start: int | None, end: int | None, clock: int, limit: int) -> range:
        """Positions of the klines Binance would return for a startTime/endTime/limit query.

        A kline exists once it has opened (``openTime <= clock``; Binance also serves the kline still
        forming). ``startTime``: the first ``limit`` klines opening at or after it; only ``endTime`` or
        neither bound: the ``limit`` most recent klines opening at or before the end.
        """
        hi = bisect_right(self.open_times, clock if end is None else min(end, clock))
        if start is not None:
            lo = bisect_left(self.open_times, start)
            return range(lo, max(lo, min(hi, lo + limit)))
        return range(max(0, hi - limit), hi)


class ReplayData:
    """Every file of one replay directory, indexed for the fake API; call :meth:`close` when done."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"replay directory {self.data_dir} does not exist")
        self._stores: dict[str, LineStore] = {}
        self.account: dict[str, Any] = self._load_account()
        # One VersionedSeries per symbol and file: ids are per symbol (SPEC §3.2).
        self.trades = self._load_versioned(TRADES_FILE, key="id", vis="time", window="time")
        self.orders = self._load_versioned(
            ORDERS_FILE,
            key="orderId",
            vis="updateTime",
            window="time",
            status="status",
            ranks=ORDER_STATUS_RANK,
            final_rank=ORDER_FINAL_RANK,
        )
        self.algo_orders = self._load_versioned(
            ALGO_ORDERS_FILE,
            key="algoId",
            vis="updateTime",
            window="createTime",
            status="algoStatus",
            ranks=ALGO_STATUS_RANK,
            final_rank=ALGO_FINAL_RANK,
        )
        self.income = self._load_income()
        self.positions = self._load_positions()
        self.balances = self._load_balances()
        self.klines = self._load_klines()
        self.symbol_infos: dict[str, dict[str, Any]] = self._load_symbol_infos()
        # Both are asked on every request (data clock, symbol validation): compute them once.
        self.symbols: frozenset[str] = self._symbols()
        self.max_time: int | None = self._max_time()

    # -- loading -------------------------------------------------------------------------------------

    def _load_account(self) -> dict[str, Any]:
        path = self.data_dir / ACCOUNT_FILE
        if not path.exists():
            return {}
        try:
            account = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            log.warning("%s is not valid JSON; ignoring it", path)
            return {}
        return account if isinstance(account, dict) else {}

    def _store(self, name: str) -> LineStore | None:
        path = self.data_dir / name
        if not path.exists():
            return None
        store = LineStore(path)
        self._stores[name] = store
        return store

    def _load_versioned(
        self,
        name: str,
        *,
        key: str,
        vis: str,
        window: str,
        status: str | None = None,
        ranks: dict[str, int] | None = None,
        final_rank: int = 0,
    ) -> dict[str, VersionedSeries]:
        store = self._store(name)
        if store is None:
            return {}
        per_symbol: dict[str, RawColumns] = {}
        skipped = 0
        for rec, off, length in _iter_jsonl(store.path):
            k, v = as_int(rec.get(key)), as_int(rec.get(vis))
            w = as_int(rec.get(window))
            sym = rec.get("symbol")
            if k is None or v is None or not isinstance(sym, str) or not sym:
                skipped += 1
                continue
            rank, purgeable = 0, False
            if status is not None:
                state = rec.get(status)
                rank = (ranks or {}).get(state, final_rank) if isinstance(state, str) else 0
                purgeable = state in UNFILLED_PURGED_STATUSES and not _has_fill(rec)
            cols = per_symbol.get(sym)
            if cols is None:
                cols = per_symbol[sym] = RawColumns()
            cols.append(k, v, v if w is None else w, off, length, rank, purgeable)
        if skipped:
            log.warning("%s: skipped %d record(s) without symbol/%s/%s", name, skipped, key, vis)
        return {sym: VersionedSeries(cols) for sym, cols in per_symbol.items()}

    def _load_income(self) -> IncomeSeries:
        store = self._store(INCOME_FILE)
        income = IncomeSeries()
        if store is not None:
            for rec, off, length in _iter_jsonl(store.path):
                t = as_int(rec.get("time"))
                if t is None:
                    continue
                tran = as_int(rec.get("tranId"))
                sym = rec.get("symbol") if isinstance(rec.get("symbol"), str) else ""
                typ = rec.get("incomeType") if isinstance(rec.get("incomeType"), str) else ""
                asset = rec.get("asset") if isinstance(rec.get("asset"), str) else ""
                income.append(t, tran if tran is not None else 0, sym, typ, off, length, asset)
        return income.finish()

    def _load_positions(self) -> PositionSnapshots:
        store = self._store(POSITION_RISK_FILE)
        items: list[tuple[str, str, int, int, int, int]] = []
        if store is not None:
            for seq, (rec, off, length) in enumerate(_iter_jsonl(store.path)):
                snap = as_int(rec.get("snapshotTime"))
                sym, side = rec.get("symbol"), rec.get("positionSide", "BOTH")
                if snap is None or not isinstance(sym, str) or not isinstance(side, str):
                    continue
                items.append((sym, side, snap, seq, off, length))
        return PositionSnapshots(items)

    def _load_balances(self) -> BalanceSnapshots:
        store = self._store(BALANCES_FILE)
        items: list[tuple[str, int, int, int, int]] = []
        skipped = 0
        if store is not None:
            for seq, (rec, off, length) in enumerate(_iter_jsonl(store.path)):
                snap, asset = as_int(rec.get("snapshotTime")), rec.get("asset")
                if snap is None or not isinstance(asset, str) or not asset:
                    skipped += 1
                    continue
                items.append((asset, snap, seq, off, length))
        if skipped:
            log.warning("%s: skipped %d record(s) without asset/snapshotTime", BALANCES_FILE, skipped)
        return BalanceSnapshots(items)

    def _load_klines(self) -> dict[tuple[str, str], KlineSeries]:
        store = self._store(KLINES_FILE)
        per_key: dict[tuple[str, str], list[tuple[int, int, int, int]]] = {}
        skipped = 0
        if store is not None:
            for seq, (rec, off, length) in enumerate(_iter_jsonl(store.path)):
                sym, interval, kline = rec.get("symbol"), rec.get("interval"), rec.get("kline")
                open_time = as_int(kline[0]) if isinstance(kline, list) and len(kline) >= 7 else None
                if open_time is None or not isinstance(sym, str) or not isinstance(interval, str):
                    skipped += 1
                    continue
                per_key.setdefault((sym, interval), []).append((open_time, seq, off, length))
        if skipped:
            log.warning("%s: skipped %d record(s) without symbol/interval/kline array", KLINES_FILE, skipped)
        return {key: KlineSeries(items) for key, items in per_key.items()}

    def _load_symbol_infos(self) -> dict[str, dict[str, Any]]:
        """``symbols.jsonl``: exchangeInfo ``symbols[]`` objects by symbol (a later line replaces one)."""
        path = self.data_dir / SYMBOLS_FILE
        out: dict[str, dict[str, Any]] = {}
        if path.exists():
            for rec, _off, _length in _iter_jsonl(path):
                sym = rec.get("symbol")
                if isinstance(sym, str) and sym:
                    out[sym] = rec
        return out

    # -- reading -------------------------------------------------------------------------------------

    def _symbols(self) -> frozenset[str]:
        """Every symbol that appears anywhere in the data (exchange info and klines included)."""
        out = set(self.trades) | set(self.orders) | set(self.algo_orders) | self.positions.symbols
        out.update(self.income.symbols)
        out.update(self.symbol_infos)
        out.update(sym for sym, _interval in self.klines)
        return frozenset(out)

    def _max_time(self) -> int | None:
        """The latest time of any account record: the default data clock (klines are market data and
        do not move it)."""
        candidates = [s.max_vis_time() for d in (self.trades, self.orders, self.algo_orders) for s in d.values()]
        candidates.append(max(self.income.times) if len(self.income) else None)
        candidates.append(self.positions.max_time())
        candidates.append(self.balances.max_time())
        present = [c for c in candidates if c is not None]
        return max(present) if present else None

    def lines(self, name: str, series_offs: array, series_lens: array, versions: Iterable[int]) -> list[bytes]:
        """Raw JSON lines of the given version indexes of one file."""
        store = self._stores[name]
        return [store.read(series_offs[v], series_lens[v]) for v in versions]

    def read(self, name: str, offset: int, length: int) -> bytes:
        return self._stores[name].read(offset, length)

    def counts(self) -> dict[str, int]:
        """Number of distinct records per dataset (for the admin state endpoint and logs)."""
        return {
            "trades": sum(len(s) for s in self.trades.values()),
            "orders": sum(len(s) for s in self.orders.values()),
            "algo_orders": sum(len(s) for s in self.algo_orders.values()),
            "income": len(self.income),
            "position_keys": len(self.positions.series),
            "balance_snapshots": len(self.balances),
            "klines": sum(len(s) for s in self.klines.values()),
            "exchange_symbols": len(self.symbol_infos),
        }

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()


def _has_fill(rec: dict[str, Any]) -> bool:
    """Whether an order (or algo order) version shows a filled trade: a non-zero ``executedQty``; an algo
    order without that field counts as filled once its placed order has a non-zero ``actualPrice``."""
    if "executedQty" in rec:
        return not _is_zero(rec.get("executedQty"))
    if rec.get("actualOrderId") not in (None, ""):
        return not _is_zero(rec.get("actualPrice", "0"))
    return False


# ----------------------------------------------------------------------------- asynchronous history exports
# Binance's USD-M "Get Download Id For Futures Transaction/Order/Trade History" (GET /fapi/v1/income/asyn,
# /fapi/v1/order/asyn, /fapi/v1/trade/asyn) answer a downloadId; ".../asyn/id" then answers a link to the file.
# Binance does not document the file's columns: the paper exchange writes one CSV per export whose header names
# the fields of the matching REST record (userTrades, allOrders + allAlgoOrders, income), one record per row.
EXPORT_FILES = {"trade": (TRADES_FILE,), "order": (ORDERS_FILE, ALGO_ORDERS_FILE), "income": (INCOME_FILE,)}


def export_records(data_dir: Path, kind: str, start: int, end: int, clock: int) -> list[dict[str, Any]]:
    """The records of one export over ``[start, end]`` as the exchange knows them at ``clock``, retention
    ignored (that is what exports are for): trades and income by ``time``; orders (latest version at the clock)
    by creation time (``time``; conditional orders ``createTime``)."""
    out: list[dict[str, Any]] = []
    for name in EXPORT_FILES[kind]:
        path = Path(data_dir) / name
        if not path.exists():
            continue
        if name in (ORDERS_FILE, ALGO_ORDERS_FILE):
            id_field, created = ("algoId", "createTime") if name == ALGO_ORDERS_FILE else ("orderId", "time")
            latest: dict[tuple[str, int], dict[str, Any]] = {}
            for rec, _off, _len in _iter_jsonl(path):
                key, updated = (rec.get("symbol"), as_int(rec.get(id_field))), as_int(rec.get("updateTime"))
                t = as_int(rec.get(created))
                if key[1] is None or t is None or not start <= t <= end or (updated or t) > clock:
                    continue
                old = latest.get(key)  # type: ignore[arg-type]
                if old is None or (as_int(old.get("updateTime")) or 0) <= (updated or 0):
                    latest[key] = rec  # type: ignore[index]
            out.extend(latest[k] for k in sorted(latest, key=lambda k: (str(k[0]), k[1])))
        else:
            for rec, _off, _len in _iter_jsonl(path):
                t = as_int(rec.get("time"))
                if t is not None and start <= t <= end and t <= clock:
                    out.append(rec)
    return out


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def render_csv(records: list[dict[str, Any]]) -> bytes:
    """One CSV (header = the union of the records' field names, in first-seen order)."""
    import csv
    import io

    header: dict[str, None] = {}
    for rec in records:
        header.update(dict.fromkeys(rec))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for rec in records:
        writer.writerow([_csv_cell(rec.get(name)) if name in rec else "" for name in header])
    return buf.getvalue().encode("utf-8")
