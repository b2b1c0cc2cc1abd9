"""Compact read-only indexes over a replay directory (SPEC §3.4) for the fake Binance REST API.

The fake API must serve replay directories with up to ~1M trades without holding a Python dict per
record, so every JSONL file is parsed exactly once into per-symbol ``array('q')`` columns (paging key,
times, byte offset and length of the line) sorted by the paging key. Pages are answered with ``bisect``
and the matching lines are read back from the file and spliced into the JSON response *verbatim*, which
also keeps Binance's decimal strings byte-for-byte exact.

Time visibility ("the data clock"): a record whose time is later than ``clock`` does not exist yet.
Orders and algo orders are *versioned*: the same id may appear several times (state changes) and a
query returns, per id, the latest version whose ``updateTime`` is ``<= clock``.
"""

from __future__ import annotations

import json
import logging
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TRADES_FILE = "futures_trades.jsonl"
ORDERS_FILE = "futures_orders.jsonl"
ALGO_ORDERS_FILE = "futures_algo_orders.jsonl"
POSITION_RISK_FILE = "position_risk.jsonl"
INCOME_FILE = "income.jsonl"
ACCOUNT_FILE = "account.json"


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


def _as_int(value: Any) -> int | None:
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


class RawColumns:
    """Columns of one symbol's records in file order, collected while a file is parsed."""

    def __init__(self) -> None:
        self.keys = array("q")
        self.vis = array("q")
        self.wtimes = array("q")
        self.offs = array("q")
        self.lens = array("q")

    def append(self, key: int, vis: int, wtime: int, off: int, length: int) -> None:
        self.keys.append(key)
        self.vis.append(vis)
        self.wtimes.append(wtime)
        self.offs.append(off)
        self.lens.append(length)


class VersionedSeries:
    """One symbol's records of one file, sorted by paging key; each key has one or more versions.

    Columns (one entry per distinct key, ascending): ``keys``, ``wtimes`` (the time that
    ``startTime``/``endTime`` filter on) and ``vstart`` (where the key's versions begin). Version
    columns (grouped by key, ascending by visibility time within a key): ``vtimes``, ``offs``, ``lens``.
    Trades are the degenerate case of exactly one version whose visibility time is its ``time``.
    """

    def __init__(self, raw: RawColumns) -> None:
        n = len(raw.keys)
        # Replay files are usually written in key order; only sort (by key, then visibility time, then
        # file order so the line written last wins a tie) when they are not.
        in_order = all((raw.keys[i], raw.vis[i]) <= (raw.keys[i + 1], raw.vis[i + 1]) for i in range(n - 1))
        order: range | list[int] = (
            range(n) if in_order else sorted(range(n), key=lambda i: (raw.keys[i], raw.vis[i], i))
        )
        self.keys = array("q")
        self.wtimes = array("q")
        self.vstart = array("q")
        self.vtimes = array("q")
        self.offs = array("q")
        self.lens = array("q")
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

    def visible_version(self, pos: int, clock: int) -> int:
        """Index of the latest version of key ``pos`` visible at ``clock``; -1 when none is visible."""
        lo, hi = self.vstart[pos], self.vstart[pos + 1]
        ver = bisect_right(self.vtimes, clock, lo, hi) - 1
        return ver if ver >= lo else -1

    def from_key(self, key: int, clock: int, limit: int, offset: int = 0) -> list[int]:
        """Versions of the first ``limit`` visible keys ``>= key`` (after skipping ``offset``)."""
        out: list[int] = []
        skip = offset
        for pos in range(bisect_left(self.keys, key), len(self.keys)):
            ver = self.visible_version(pos, clock)
            if ver < 0:
                continue
            if skip:
                skip -= 1
                continue
            out.append(ver)
            if len(out) >= limit:
                break
        return out

    def in_window(self, start: int, end: int, clock: int) -> list[int]:
        """Versions of every visible key whose window time is in ``[start, end]``, ascending by key."""
        lo = bisect_left(self.sorted_wtimes, start)
        hi = bisect_right(self.sorted_wtimes, end)
        if lo >= hi:
            return []
        positions: Iterable[int] = range(lo, hi) if self.by_time is None else sorted(self.by_time[lo:hi])
        out: list[int] = []
        for pos in positions:
            ver = self.visible_version(pos, clock)
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
        self._cache: dict[tuple[str | None, str | None], tuple[array, array]] = {}
        self._lock = threading.Lock()

    def append(self, time: int, tran_id: int, symbol: str, income_type: str, off: int, length: int) -> None:
        """Add one row in file order; call :meth:`finish` once all rows are in."""
        sym = self._sym_code.setdefault(symbol, len(self._sym_code))
        typ = self._typ_code.setdefault(income_type, len(self._typ_code))
        if sym == len(self._symbols):
            self._symbols.append(symbol)
        if typ == len(self._types):
            self._types.append(income_type)
        self.times.append(time)
        self.trans.append(tran_id)
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
            for name in ("times", "trans", "offs", "lens", "sym", "typ"):
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


class ReplayData:
    """Every file of one replay directory, indexed for the fake API; call :meth:`close` when done."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"replay directory {self.data_dir} does not exist")
        self._stores: dict[str, LineStore] = {}
        self.account: dict[str, Any] = self._load_account()
        self.trades = self._load_versioned(TRADES_FILE, key="id", vis="time", window="time")
        self.orders = self._load_versioned(ORDERS_FILE, key="orderId", vis="updateTime", window="time")
        self.algo_orders = self._load_versioned(ALGO_ORDERS_FILE, key="algoId", vis="updateTime", window="createTime")
        self.income = self._load_income()
        self.positions = self._load_positions()
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

    def _load_versioned(self, name: str, *, key: str, vis: str, window: str) -> dict[str, VersionedSeries]:
        store = self._store(name)
        if store is None:
            return {}
        per_symbol: dict[str, RawColumns] = {}
        skipped = 0
        for rec, off, length in _iter_jsonl(store.path):
            k, v = _as_int(rec.get(key)), _as_int(rec.get(vis))
            w = _as_int(rec.get(window))
            sym = rec.get("symbol")
            if k is None or v is None or not isinstance(sym, str) or not sym:
                skipped += 1
                continue
            cols = per_symbol.get(sym)
            if cols is None:
                cols = per_symbol[sym] = RawColumns()
            cols.append(k, v, v if w is None else w, off, length)
        if skipped:
            log.warning("%s: skipped %d record(s) without symbol/%s/%s", name, skipped, key, vis)
        return {sym: VersionedSeries(cols) for sym, cols in per_symbol.items()}

    def _load_income(self) -> IncomeSeries:
        store = self._store(INCOME_FILE)
        income = IncomeSeries()
        if store is not None:
            for rec, off, length in _iter_jsonl(store.path):
                t = _as_int(rec.get("time"))
                if t is None:
                    continue
                tran = _as_int(rec.get("tranId"))
                sym = rec.get("symbol") if isinstance(rec.get("symbol"), str) else ""
                typ = rec.get("incomeType") if isinstance(rec.get("incomeType"), str) else ""
                income.append(t, tran if tran is not None else 0, sym, typ, off, length)
        return income.finish()

    def _load_positions(self) -> PositionSnapshots:
        store = self._store(POSITION_RISK_FILE)
        items: list[tuple[str, str, int, int, int, int]] = []
        if store is not None:
            for seq, (rec, off, length) in enumerate(_iter_jsonl(store.path)):
                snap = _as_int(rec.get("snapshotTime"))
                sym, side = rec.get("symbol"), rec.get("positionSide", "BOTH")
                if snap is None or not isinstance(sym, str) or not isinstance(side, str):
                    continue
                items.append((sym, side, snap, seq, off, length))
        return PositionSnapshots(items)

    # -- reading -------------------------------------------------------------------------------------

    def _symbols(self) -> frozenset[str]:
        """Every symbol that appears anywhere in the data."""
        out = set(self.trades) | set(self.orders) | set(self.algo_orders) | self.positions.symbols
        out.update(self.income.symbols)
        return frozenset(out)

    def _max_time(self) -> int | None:
        """The latest time of any record: the default data clock."""
        candidates = [s.max_vis_time() for d in (self.trades, self.orders, self.algo_orders) for s in d.values()]
        candidates.append(max(self.income.times) if len(self.income) else None)
        candidates.append(self.positions.max_time())
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
        }

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
