"""Binance USD-M futures → raw layer through python-binance (SPEC §3.2, §3.5).

One call of :func:`ingest_binance` reads, for one account:

1. the position mode (``GET /fapi/v1/positionSide/dual``) → ``raw.accounts``;
2. every USD-M contract of ``GET /fapi/v1/exchangeInfo`` with its margin asset → ``raw.symbols`` (each run;
   the latest answer wins);
3. one positionRisk v3 snapshot, stamped ``snapshotTime`` = when it was taken, on the exchange's clock
   (:meth:`BinanceApi.now_ms`: the clock its fills and income carry; committed after the fills,
   with explicit zero rows for keys seen before that v3 no longer lists because they are flat);
4. income in windows of at most 7 days, from the watermark minus ``lookback_ms`` (late rows), paged;
5. per symbol — the ``symbols`` argument ∪ symbols in income, positionRisk, ``raw.signals`` and this
   account's ``raw.futures_trades`` — orders (``allOrders``), conditional orders (``allAlgoOrders``,
   skipped when the exchange does not offer it) and trades (``userTrades``);
6. one wallet balance snapshot (``GET /fapi/v3/balance``, every asset, ``snapshotTime`` = when taken, the same way)
   → ``raw.balance_snapshots``;
7. the 1m klines (``GET /fapi/v1/klines``, public) of the ``{commissionAsset}{marginAsset}`` pairs that
   convert commission paid in another asset, for exactly the minutes of such fills not stored yet
   → ``raw.klines``.

Ids are per symbol (SPEC §3.2): every watermark and every paging by orderId, algoId or trade id below is
kept per symbol.

Incremental state lives in ``audit.ingestion_state`` (keys below, ``{a}`` = account id) and is written in
the same transaction as the batch it describes, so it never runs ahead of committed data:

* ``binance:{a}:trades:{SYMBOL}`` — the last trade id committed; the next run reads ``fromId`` = it + 1;
* ``binance:{a}:orders:{SYMBOL}`` / ``binance:{a}:algo_orders:{SYMBOL}`` — the orderId / algoId to resume
  from: the smallest one read that was not yet final (NEW, PARTIALLY_FILLED, …), else the last one + 1, so
  status changes of open orders are picked up (a newer ``updateTime`` replaces the stored version);
* ``binance:{a}:income`` — the latest income ``time`` committed;
* ``binance:{a}:position_risk`` — the ``snapshotTime`` of the last snapshot (informational).

Paging (issue 12). Every history read walks windows of at most 7 days (``startTime``/``endTime``) from the
watermark's record time (a key without a watermark: ``since_ms``, default 30 days before the server time) up to
``until_ms`` (default: the server time), and reads each window to its end: userTrades and income continue from
the latest time seen (records already seen are dropped; a millisecond holding more than a page continues by
``fromId`` / ``page``), allOrders and allAlgoOrders from the last id seen + 1 inside the window. A window ends
when a page brings nothing new — never because a page is shorter than ``limit`` — so the read is complete
whether or not Binance applies its 7-day window to id-paged queries and whatever page size it caps at.

Retention. Windows reaching past Binance's retention (trades 6 months, orders 90 days, income 3 months,
counted back from the exchange's now: its server time, or the paper exchange's data clock) start at the limit
instead, with a warning and an ``audit.ingestion_runs`` row (status ``warning``); the older part is loaded from
Binance's history exports (:mod:`ingestion.export`, ``stratpos ingest export``).

Records are committed in batches of at most ``batch_size`` with the watermark of exactly what each batch
holds; a request that keeps failing ends the run with :class:`~ingestion.binance_client.BinanceIngestError`
after writing a ``failed`` audit row for the batch in progress (which is not committed, so its watermark does
not move). The positionRisk and balance snapshots are still taken when an earlier stream failed; the run
fails after them.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from ingestion.batch import Batch, BatchStats, audit_row, new_run_id
from ingestion.binance_client import (
    BinanceApi,
    BinanceIngestError,
    endpoint_of,
    scrub,
    weight_snapshot,
)
from ingestion.records import SYMBOL_RE
from ingestion.store import RawStore, utcnow
from stratpos.core.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
WINDOW_MS = 7 * DAY_MS  # Binance's longest startTime..endTime span
DEFAULT_SINCE_MS = 30 * DAY_MS
PAGE_LIMIT = 1000
DEFAULT_BATCH = 50_000
FINAL_ORDER_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})
# SPEC §3.2, after Binance's "Event: Algo Order Update" (USD-M user data streams): NEW, TRIGGERING ("has met
# the triggering condition and has been forwarded to the matching engine"), TRIGGERED ("successfully placed
# into the matching engine"), then FINISHED ("the triggered conditional order has been filled or canceled in
# the matching engine"), or CANCELED / REJECTED / EXPIRED. TRIGGERED is not final: FINISHED follows it.
FINAL_ALGO_STATUSES = frozenset({"FINISHED", "CANCELED", "REJECTED", "EXPIRED"})
MINUTE_MS = 60_000
# GET /fapi/v1/klines: "limit: Default 500; max 1500"; weight by limit: [1,100) 1, [100,500) 2, [500,1000] 5,
# > 1000 10 (Binance's Kline/Candlestick Data page)
KLINE_LIMIT = 1500
_SYMBOL = re.compile(SYMBOL_RE)

Progress = Callable[[str, int, int], None]

# Binance's retention (SPEC §3.2): trades 6 months, orders and algo orders 90 days (canceled/expired ones
# without fills 3 days), income 3 months. (stream, what, months, days)
RETENTION = (
    ("symbols", "trades (userTrades)", 6, 0),
    ("symbols", "orders and algo orders (allOrders, allAlgoOrders)", 0, 90),
    ("income", "income (income history)", 3, 0),
)


def _months_before(ms: int, months: int) -> int:
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    month = dt.month - months
    year = dt.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    for day in (dt.day, 30, 29, 28):  # the same day of the month, clamped to the month's length
        try:
            return int(dt.replace(year=year, month=month, day=day).timestamp() * 1000)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def retention_floors(now_ms: int) -> dict[str, int]:
    """The oldest time Binance still serves, per dataset, at ``now_ms`` (see ``RETENTION``)."""
    return {
        "trades": _months_before(now_ms, 6),
        "orders": now_ms - 90 * DAY_MS,
        "income": _months_before(now_ms, 3),
    }


def retention_notes(since_ms: int, server_ms: int, streams: Collection[str]) -> list[str]:
    """What a window starting at ``since_ms`` cannot get any more: one note per dataset past Binance's retention."""
    notes = []
    for stream, what, months, days in RETENTION:
        if stream not in streams:
            continue
        floor = _months_before(server_ms, months) - days * DAY_MS
        if since_ms < floor:
            notes.append(
                f"{what}: Binance serves them back to {_iso(floor)} only; the window starts {_iso(since_ms)}, "
                "so the read starts there and the older part must come from Binance's history export "
                "(stratpos ingest export)"
            )
    return notes


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _field_int(obj: Any, name: str) -> int | None:
    return _int(obj.get(name)) if isinstance(obj, dict) else None


def _content_key(obj: Any) -> str:
    """Records without an id of their own (income) are told apart by their whole content."""
    return json.dumps(obj, sort_keys=True, default=str)


def _id_key(id_field: str) -> Callable[[Any], Any]:
    """A record's id (records without one: their content, so they are added once, then quarantined)."""

    def key(obj: Any) -> Any:
        rid = _field_int(obj, id_field)
        return rid if rid is not None else _content_key(obj)

    return key


def watermark_key(account_id: str, kind: str, symbol: str | None = None) -> str:
    return f"binance:{account_id}:{kind}" + (f":{symbol}" if symbol else "")


class _SkipSymbol(Exception):
    """The exchange does not know this symbol (-1121): skip it, don't fail the run."""


class _Stream:
    """Consecutive batches of one source; each commit carries the watermarks of what it holds."""

    def __init__(self, ing: _Ingestion, kind: str, source: str) -> None:
        self.ing = ing
        self.kind = kind
        self.source = source
        self.total = BatchStats(kind)
        self.batch_no = 0
        self.batch = self._new()

    def _new(self) -> Batch:
        return Batch(self.kind, self.source, self.ing.account_id, self.ing.run_id, self.batch_no)

    def add(self, obj: Any) -> None:
        if isinstance(obj, dict):
            self.batch.add_object(obj)
        else:  # not an object: quarantined with the reason, never silently dropped
            self.batch.add_line(json.dumps(obj, default=str).encode("utf-8"))

    def maybe_commit(self, watermarks: dict[str, str]) -> None:
        if len(self.batch) >= self.ing.batch_size:
            self.commit(watermarks)

    def commit(self, watermarks: dict[str, str]) -> None:
        self.total.add(self.batch.commit(self.ing.store, watermarks))
        self.batch_no += 1
        self.batch = self._new()

    def finish(self, watermarks: dict[str, str]) -> BatchStats:
        """Commit the rest; a source that received nothing still gets its (empty) audit row."""
        if len(self.batch) or self.batch_no == 0:
            self.commit(watermarks)
        return self.total

    def fail(self, exc: BaseException) -> None:
        """Audit the batch in progress as failed; it is not committed, so its watermark stays put."""
        store, batch = self.ing.store, self.batch
        seconds = time.perf_counter() - batch.started
        row = audit_row(
            self.ing.run_id,
            self.source,
            store.target,
            batch.started_at,
            "failed",
            scrub(f"{type(exc).__name__}: {exc}")[:2000],
            batch_no=self.batch_no,
            duration_ms=int(seconds * 1000),
            received=batch.received,
        )
        try:
            store.record_run(row)
        except Exception as err:  # the original error matters more than the audit row
            log.error("could not write the failed audit row for %s: %s", self.source, scrub(str(err)))


class _Ingestion:
    def __init__(
        self,
        store: RawStore,
        api: BinanceApi,
        *,
        account_id: str,
        run_id: str,
        since_ms: int,
        until_ms: int,
        lookback_ms: int,
        page_limit: int,
        batch_size: int,
        progress: Progress | None,
    ) -> None:
        self.store = store
        self.api = api
        self.account_id = account_id
        self.run_id = run_id
        self.since_ms = since_ms
        self.until_ms = until_ms
        self.lookback_ms = lookback_ms
        self.page_limit = page_limit
        self.batch_size = batch_size
        self.progress = progress
        self.totals: dict[str, BatchStats] = {}
        self.algo_supported = True
        self.server_ms = until_ms  # the server time of the run (set by ingest_binance)
        self.floors: dict[str, int] = {}  # dataset -> Binance's retention floor at this run (set by ingest_binance)
        self._cut_noted: set[str] = set()
        self._retention_rows = 0

    # -- helpers ---------------------------------------------------------------------------------------
    def _ph(self) -> str:
        return "?" if self.store.target == "duckdb" else "%s"

    def _source(self, kind: str, symbol: str | None = None) -> str:
        return f"binance:{self.account_id}:{kind}" + (f":{symbol}" if symbol else "")

    def _page(self, method: str, **params: Any) -> list:
        """One request whose answer must be a JSON array."""
        page = self.api.call(method, **params)
        if not isinstance(page, list):
            raise BinanceIngestError(
                f"{endpoint_of(method, params)}: expected a JSON array, got {type(page).__name__}",
                endpoint=endpoint_of(method, params),
                symbol=params.get("symbol"),
            )
        return page

    def _tally(self, kind: str, stats: BatchStats) -> None:
        self.totals.setdefault(kind, BatchStats(kind)).add(stats)

    def _tick(self, label: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(label, done, total)

    def _guarded(self, stream: _Stream, body: Callable[[], dict[str, str]]) -> BatchStats:
        """Run ``body`` (which fills ``stream`` and returns its final watermarks) and finish the stream."""
        try:
            watermarks = body()
        except BinanceIngestError as exc:
            if exc.code == -1121 and exc.symbol:
                raise _SkipSymbol(str(exc)) from None
            if not (stream.kind == "futures_algo_orders" and self._unsupported(exc)):
                stream.fail(exc)
            raise
        return stream.finish(watermarks)

    @staticmethod
    def _unsupported(exc: BinanceIngestError) -> bool:
        return exc.status_code in (404, 405) or exc.code in (-5000, -1099)

    def retention(self, notes: list[str]) -> None:
        """Tell the user (a warning and an audit row) what the window reaches past Binance's retention."""
        if not notes:
            return
        for note in notes:
            log.warning("binance account %s: %s", self.account_id, note)
        row = audit_row(
            self.run_id,
            self._source("retention"),
            self.store.target,
            utcnow(),
            "warning",
            "; ".join(notes)[:2000],
            batch_no=self._retention_rows,  # one row per note of the run (the audit key ends in batch_no)
        )
        self._retention_rows += 1
        self.store.record_run(row)

    # -- account ---------------------------------------------------------------------------------------
    def account(self) -> BatchStats:
        stream = _Stream(self, "account", self._source("account"))

        def body() -> dict[str, str]:
            mode = self.api.call("futures_get_position_mode")
            dual = mode.get("dualSidePosition") if isinstance(mode, dict) else None
            if isinstance(dual, str) and dual.strip().lower() in ("true", "false"):
                dual = dual.strip().lower() == "true"
            # an answer that is neither true nor false is quarantined with the reason, not guessed
            position_mode = {True: "hedge", False: "one_way"}.get(dual, f"unknown: {mode!r}"[:64])
            stream.add({"account_id": self.account_id, "position_mode": position_mode})
            return {}

        stats = self._guarded(stream, body)
        self._tally("account", stats)
        return stats

    # -- positions -------------------------------------------------------------------------------------
    def fetch_positions(self) -> tuple[int, list[dict]]:
        try:
            rows = self._page("futures_position_information")
        except BinanceIngestError as exc:
            _Stream(self, "position_risk", self._source("position_risk")).fail(exc)
            raise
        return self.api.now_ms(), rows

    def commit_positions(self, snapshot_ms: int, rows: list[dict]) -> BatchStats:
        stream = _Stream(self, "position_risk", self._source("position_risk"))
        objects = [r for r in rows if isinstance(r, dict)]
        present = {(r.get("symbol"), r.get("positionSide")) for r in objects}
        marks: dict[str, str] = {}
        for r in objects:
            if isinstance(r.get("symbol"), str) and r.get("markPrice") not in (None, ""):
                marks.setdefault(r["symbol"], str(r["markPrice"]))
        for r in rows:
            stream.add({**r, "snapshotTime": snapshot_ms} if isinstance(r, dict) else r)
        ph = self._ph()
        known = self.store.fetchall(
            f"select symbol, position_side from {self.store.table('position_snapshots')} where account_id = {ph} "
            f"union select symbol, position_side from {self.store.table('futures_trades')} where account_id = {ph}",
            [self.account_id, self.account_id],
        )
        flat = sorted({(s, side) for s, side in known} - present)
        for symbol, side in flat:
            row = {
                "symbol": symbol,
                "positionSide": side,
                "positionAmt": "0",
                "entryPrice": "0",
                "breakEvenPrice": "0",
                "unRealizedProfit": "0",
                "notional": "0",
                "updateTime": 0,
                "snapshotTime": snapshot_ms,
                "stratposFlat": True,  # not sent by Binance: v3 omits flat keys, we write them explicitly
            }
            # a symbol v3 no longer lists at all (every key flat, or a delivered quarterly) has no mark in
            # this answer: unknown (NULL), never 0 — marks are taken from the latest snapshot that has one
            if symbol in marks:
                row["markPrice"] = marks[symbol]
            stream.add(row)
        stats = stream.finish({watermark_key(self.account_id, "position_risk"): str(snapshot_ms)})
        self._tally("position_risk", stats)
        return stats

    # -- exchangeInfo symbols ---------------------------------------------------------------------------
    def exchange_symbols(self) -> BatchStats:
        """Every USD-M contract of ``exchangeInfo`` with its margin asset -> ``raw.symbols`` (latest wins)."""
        stream = _Stream(self, "symbols", "binance:exchange_info")

        def body() -> dict[str, str]:
            info = self.api.exchange_info
            if info is None:
                info = self.api.exchange_info = self.api.call("futures_exchange_info")
            symbols = info.get("symbols") if isinstance(info, dict) else None
            if not isinstance(symbols, list):
                raise BinanceIngestError(
                    f"GET /fapi/v1/exchangeInfo: expected a symbols array, got {type(symbols).__name__}",
                    endpoint="GET /fapi/v1/exchangeInfo",
                )
            for r in symbols:
                stream.add(r)
            return {}

        stats = self._guarded(stream, body)
        self._tally("symbols", stats)
        return stats

    # -- balances --------------------------------------------------------------------------------------
    def balances(self) -> BatchStats:
        """One ``GET /fapi/v3/balance`` snapshot, every asset stamped ``snapshotTime`` = the exchange's now
        (:meth:`BinanceApi.now_ms`)."""
        stream = _Stream(self, "balances", self._source("balances"))
        key = watermark_key(self.account_id, "balances")

        def body() -> dict[str, str]:
            rows = self._page("futures_account_balance")
            snapshot_ms = self.api.now_ms()
            for r in rows:
                stream.add({**r, "snapshotTime": snapshot_ms} if isinstance(r, dict) else r)
            return {key: str(snapshot_ms)}

        stats = self._guarded(stream, body)
        self._tally("balances", stats)
        return stats

    # -- klines of conversion pairs --------------------------------------------------------------------
    def needed_minutes(self) -> dict[str, list[int]]:
        """pair -> minutes (open times) whose 1m kline converts a commission paid in another asset.

        A fill whose ``commissionAsset`` differs from its symbol's margin asset (``raw.symbols``, from
        exchangeInfo; else the fill's own ``marginAsset``) needs the ``{commissionAsset}{marginAsset}`` kline
        of the minute containing it (e.g. BNBUSDT for a BNB fee on BTCUSDT). Minutes already stored are left
        out, and so are minutes not closed yet (they are read by a later run).
        """
        t, s, k = (self.store.table(n) for n in ("futures_trades", "symbols", "klines"))
        mod = "%%" if self.store.target == "mysql" else "%"  # PyMySQL formats the query with %
        minute = f"(t.trade_time_ms - t.trade_time_ms {mod} 60000)"
        margin = "coalesce(s.margin_asset, t.margin_asset)"
        pair = (
            f"concat(t.commission_asset, {margin})"
            if self.store.target == "mysql"
            else (f"t.commission_asset || {margin}")
        )
        ph = self._ph()
        rows = self.store.fetchall(
            f"select distinct {pair} as pair, {minute} as open_ms from {t} t left join {s} s on s.symbol = t.symbol "
            f"where t.account_id = {ph} and t.commission <> 0 and {margin} is not null "
            f"and t.commission_asset <> {margin} and not exists (select 1 from {k} k where k.symbol = {pair} "
            f"and k.kline_interval = '1m' and k.open_time_ms = {minute}) order by 1, 2",
            [self.account_id],
        )
        out: dict[str, list[int]] = {}
        for p, open_ms in rows:
            m = int(open_ms)
            if m + MINUTE_MS <= min(self.until_ms + 1, self.server_ms):  # closed by the end of the window
                out.setdefault(p, []).append(m)
        return out

    def klines(self) -> BatchStats:
        """The 1m klines of the conversion pairs actually needed (see :meth:`needed_minutes`) -> ``raw.klines``.

        Needed minutes are grouped into requests of at most 1500 minutes; only the needed minutes of each
        answer are stored. A pair that Binance does not list (e.g. BNBBTC for a BNB fee on ETHBTC) is
        skipped with a warning: those fees stay unconverted (``other_fees`` NULL).
        """
        stream = _Stream(self, "klines", "binance:klines")
        needed = self.needed_minutes()
        listed = {row[0] for row in self.store.fetchall(f"select symbol from {self.store.table('symbols')}")}

        def body() -> dict[str, str]:
            missing = 0
            for i, (pair, minutes) in enumerate(sorted(needed.items())):
                if listed and pair not in listed:
                    log.warning(
                        "no USD-M contract %s: %d fill minute(s) with that fee stay unconverted", pair, len(minutes)
                    )
                    continue
                wanted = set(minutes)
                j = 0
                while j < len(minutes):
                    lo = minutes[j]
                    hi = lo
                    while j < len(minutes) and minutes[j] < lo + KLINE_LIMIT * MINUTE_MS:
                        hi = minutes[j]
                        j += 1
                    limit = (hi - lo) // MINUTE_MS + 1
                    try:
                        page = self._page(
                            "futures_klines",
                            symbol=pair,
                            interval="1m",
                            startTime=lo,
                            endTime=hi + MINUTE_MS - 1,
                            limit=limit,
                        )
                    except BinanceIngestError as exc:
                        if exc.code != -1121:
                            raise
                        log.warning("%s: %s; its fees stay unconverted", pair, exc)
                        break
                    got = 0
                    for k in page:
                        if isinstance(k, list) and k and k[0] in wanted:
                            stream.add({"symbol": pair, "interval": "1m", "kline": k})
                            got += 1
                        elif not isinstance(k, list) or not k or not isinstance(k[0], int):
                            stream.add({"symbol": pair, "interval": "1m", "kline": k})  # quarantined with why
                    missing += sum(1 for m in wanted if lo <= m <= hi) - got
                    stream.maybe_commit({})
                self._tick("klines", i + 1, len(needed))
            if missing:
                log.warning("%d needed 1m kline(s) were not served; those fees stay unconverted for now", missing)
            return {}

        stats = self._guarded(stream, body)
        self._tally("klines", stats)
        return stats

    # -- paging ----------------------------------------------------------------------------------------
    def _windows(self, start: int) -> list[tuple[int, int]]:
        """``[start, until_ms]`` cut into windows of at most 7 days (Binance's longest startTime..endTime span)."""
        out, lo = [], start
        while lo <= self.until_ms:
            hi = min(lo + WINDOW_MS - 1, self.until_ms)
            out.append((lo, hi))
            lo = hi + 1
        return out

    def _cut(self, dataset: str, start: int, what: str) -> int:
        """``start``, or Binance's retention floor of ``dataset`` when it reaches past it (warned and audited)."""
        floor = self.floors.get(dataset)
        if floor is None or start >= floor:
            return start
        if dataset not in self._cut_noted:
            self._cut_noted.add(dataset)
            self.retention(
                [
                    f"{what}: reading starts {_iso(start)}, but Binance serves them back to {_iso(floor)} only; "
                    "the read starts there and the older part must come from Binance's history export "
                    "(stratpos ingest export)"
                ]
            )
        return floor

    def _time_paged(
        self,
        method: str,
        lo: int,
        hi: int,
        key_of: Callable[[Any], Any],
        time_field: str,
        same_ms: Callable[[int, list], Iterable[list]],
        **params: Any,
    ) -> Iterable[list]:
        """Every record of ``[lo, hi]``, page by page (only records not seen before in this window).

        Each request starts at the latest time seen so far (inclusive) and drops what it already had, so the
        window ends when a page brings nothing new — never because a page is shorter than ``limit`` (servers cap
        pages below it). A page that holds nothing but records of its start millisecond cannot move the time
        forward; ``same_ms(ms, page)`` then reads the rest of that millisecond another way.
        """
        cursor, seen = lo, set()
        while True:
            page = self._page(method, startTime=cursor, endTime=hi, limit=self.page_limit, **params)
            fresh = []
            latest = cursor
            for r in page:
                k = key_of(r)
                if k in seen:
                    continue
                seen.add(k)
                fresh.append(r)
                t = _field_int(r, time_field)
                if t is not None and cursor <= t <= hi:
                    latest = max(latest, t)
            if fresh:
                yield fresh
            stuck = bool(page) and all(_field_int(r, time_field) == cursor for r in page)
            if stuck and (not fresh or latest == cursor):
                for more in same_ms(cursor, page):
                    more = [r for r in more if key_of(r) not in seen]
                    seen.update(key_of(r) for r in more)
                    if more:
                        yield more
                if latest == cursor:
                    if cursor >= hi:
                        return
                    cursor += 1  # that millisecond is read whole; go on after it
                    continue
            if not fresh:
                return
            cursor = latest

    # -- income ----------------------------------------------------------------------------------------
    def income(self) -> BatchStats:
        key = watermark_key(self.account_id, "income")
        stream = _Stream(self, "income", self._source("income"))
        stored = _int(self.store.get_watermark(key))
        start = stored - self.lookback_ms if stored is not None else self.since_ms
        start = self._cut("income", start, "income (income history)")
        windows = self._windows(start)

        def same_ms(ms: int, page: list) -> Iterable[list]:
            # more records of one millisecond than a page holds: page through it with `page` (1-based),
            # each page as long as the server's first one was
            size, page_no = max(1, len(page)), 2
            while True:
                more = self._page("futures_income_history", startTime=ms, endTime=ms, limit=size, page=page_no)
                if not more:
                    return
                yield more
                page_no += 1

        def body() -> dict[str, str]:
            high = stored

            def marks() -> dict[str, str]:
                return {key: str(high)} if high is not None else {}

            for i, (lo, hi) in enumerate(windows):
                for fresh in self._time_paged("futures_income_history", lo, hi, _content_key, "time", same_ms):
                    for r in fresh:
                        stream.add(r)
                        t = _field_int(r, "time")
                        if t is not None and lo <= t <= hi:
                            high = t if high is None else max(high, t)
                    stream.maybe_commit(marks())
                self._tick("income", i + 1, len(windows))
            return marks()

        stats = self._guarded(stream, body)
        self._tally("income", stats)
        return stats

    # -- symbols ---------------------------------------------------------------------------------------
    def symbols(self, explicit: Iterable[str] | None, positions: list[dict]) -> list[str]:
        found: set[str] = {s.strip().upper() for s in explicit or () if isinstance(s, str)}
        found |= {r["symbol"] for r in positions if isinstance(r, dict) and isinstance(r.get("symbol"), str)}
        ph = self._ph()
        for sql, params in (
            (
                f"select distinct symbol from {self.store.table('income')} where account_id = {ph} and symbol <> ''",
                [self.account_id],
            ),
            (f"select distinct symbol from {self.store.table('signals')}", []),
            (
                f"select distinct symbol from {self.store.table('futures_trades')} where account_id = {ph}",
                [self.account_id],
            ),
        ):
            found |= {row[0] for row in self.store.fetchall(sql, params) if isinstance(row[0], str)}
        bad = sorted(s for s in found if not _SYMBOL.match(s))
        if bad:
            log.warning("ignoring symbols that are not USD-M futures symbols: %s", ", ".join(bad))
        return sorted(s for s in found if _SYMBOL.match(s))

    # -- trades ----------------------------------------------------------------------------------------
    def _resume_time(self, table: str, id_col: str, time_col: str, symbol: str, upto: int) -> int | None:
        """The time of the stored record with the largest id <= ``upto`` of this account and symbol."""
        ph = self._ph()
        rows = self.store.fetchall(
            f"select {time_col} from {self.store.table(table)} where account_id = {ph} and symbol = {ph} "
            f"and {id_col} <= {ph} order by {id_col} desc limit 1",
            [self.account_id, symbol, upto],
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def trades(self, symbol: str) -> BatchStats:
        """userTrades of one symbol: 7-day windows by time (``fromId`` cannot be combined with a window), from
        the time of the last stored trade (or ``since_ms``); trades up to the stored id are not re-read."""
        key = watermark_key(self.account_id, "trades", symbol)
        stream = _Stream(self, "futures_trades", self._source("trades", symbol))
        stored = _int(self.store.get_watermark(key))

        def same_ms(ms: int, page: list) -> Iterable[list]:
            # more fills in one millisecond than a page holds: continue by id (fromId, no window) while the
            # fills are of that millisecond
            ids = [i for i in (_field_int(r, "id") for r in page) if i is not None]
            while ids:
                more = self._page("futures_account_trades", symbol=symbol, fromId=max(ids) + 1, limit=self.page_limit)
                more = [r for r in more if _field_int(r, "time") == ms]
                if not more:
                    return
                yield more
                ids = [i for i in (_field_int(r, "id") for r in more) if i is not None]

        def body() -> dict[str, str]:
            last = stored
            start = self.since_ms
            if stored is not None:
                resume = self._resume_time("futures_trades", "trade_id", "trade_time_ms", symbol, stored)
                start = resume if resume is not None else self.since_ms
            start = self._cut("trades", start, "trades (userTrades)")

            def marks() -> dict[str, str]:
                return {key: str(last)} if last is not None else {}

            for lo, hi in self._windows(start):
                for fresh in self._time_paged(
                    "futures_account_trades", lo, hi, _id_key("id"), "time", same_ms, symbol=symbol
                ):
                    for r in sorted(fresh, key=lambda r: _field_int(r, "id") or 0):
                        rid = _field_int(r, "id")
                        if rid is not None and stored is not None and rid <= stored:
                            continue  # committed by an earlier run
                        stream.add(r)
                        if rid is not None:
                            last = rid if last is None else max(last, rid)
                    stream.maybe_commit(marks())
            return marks()

        stats = self._guarded(stream, body)
        self._tally("futures_trades", stats)
        return stats

    # -- orders and algo orders ------------------------------------------------------------------------
    def _orders(self, symbol: str, *, algo: bool) -> BatchStats:
        kind = "futures_algo_orders" if algo else "futures_orders"
        state = "algo_orders" if algo else "orders"
        id_field = "algoId" if algo else "orderId"
        status_field = "algoStatus" if algo else "status"
        final = FINAL_ALGO_STATUSES if algo else FINAL_ORDER_STATUSES
        extra = {"conditional": True} if algo else {}
        key = watermark_key(self.account_id, state, symbol)
        stream = _Stream(self, kind, self._source(state, symbol))
        stored = _int(self.store.get_watermark(key))

        table, id_col, time_col = ("futures_orders", "order_id", "order_time_ms")
        if algo:
            table, id_col, time_col = ("futures_algo_orders", "algo_id", "create_time_ms")

        def body() -> dict[str, str]:
            start = self.since_ms
            if stored is not None:
                resume = self._resume_time(table, id_col, time_col, symbol, stored)
                start = resume if resume is not None else self.since_ms
            what = "algo orders (allAlgoOrders)" if algo else "orders (allOrders)"
            start = self._cut("orders", start, what)
            first_open: int | None = None
            last: int | None = None

            def marks() -> dict[str, str]:
                if first_open is not None:
                    return {key: str(first_open)}
                if last is not None:
                    return {key: str(last + 1)}
                return {key: str(stored)} if stored is not None else {}

            # each window is read by id from the stored cursor (orders before it are final and stored); the
            # window is done when a page brings no order not seen yet, whatever its length
            for lo, hi in self._windows(start):
                cursor, seen = stored, set()
                while True:
                    ids_param = {id_field: cursor} if cursor is not None else {}
                    page = self._page(
                        "futures_get_all_orders",
                        symbol=symbol,
                        startTime=lo,
                        endTime=hi,
                        limit=self.page_limit,
                        **ids_param,
                        **extra,
                    )
                    fresh = [r for r in page if _id_key(id_field)(r) not in seen]
                    seen.update(_id_key(id_field)(r) for r in fresh)
                    if not fresh:
                        break
                    for r in sorted(fresh, key=lambda r: _field_int(r, id_field) or 0):
                        rid = _field_int(r, id_field)
                        if rid is not None and stored is not None and rid < stored:
                            continue
                        stream.add(r)
                        if rid is None:
                            continue
                        last = rid if last is None else max(last, rid)
                        if r.get(status_field) not in final and (first_open is None or rid < first_open):
                            first_open = rid
                    stream.maybe_commit(marks())
                    ids = [i for i in (_field_int(r, id_field) for r in fresh) if i is not None]
                    if not ids:
                        break
                    cursor = max(ids) + 1
            return marks()

        stats = self._guarded(stream, body)
        self._tally(kind, stats)
        return stats

    def orders(self, symbol: str) -> BatchStats:
        return self._orders(symbol, algo=False)

    def algo_orders(self, symbol: str) -> BatchStats | None:
        if not self.algo_supported:
            return None
        try:
            return self._orders(symbol, algo=True)
        except BinanceIngestError as exc:
            if not self._unsupported(exc):
                raise
            self.algo_supported = False
            log.warning("conditional (algo) orders are not available from this exchange (%s); skipping them", exc)
            return None


# account: position mode; exchange_info: every contract with its margin asset (raw.symbols); income; symbols:
# orders, algo orders and trades of each symbol; positions: the positionRisk snapshot; balances: the wallet
# balance snapshot; klines: the 1m prices that convert commission paid in another asset (after the trades)
STREAMS = ("account", "exchange_info", "income", "symbols", "positions", "balances", "klines")


def _api_of(client: Any) -> BinanceApi:
    """``client`` as a :class:`BinanceApi`: as given, wrapped (a python-binance ``Client``), or built from the
    environment / Airflow connection / sandbox (credentials and key checks of :func:`resolve_credentials`)."""
    if isinstance(client, BinanceApi):
        return client
    if client is not None:
        return BinanceApi(client)
    return BinanceApi.from_environment()


def discover_symbols(
    settings: Settings,
    *,
    symbols: Iterable[str] | None = None,
    client: Any = None,
    account_id: str | None = None,
) -> list[str]:
    """The symbols a run would read: ``symbols`` ∪ income ∪ positionRisk ∪ signals ∪ traded ones."""
    api = _api_of(client)
    with RawStore(settings) as store:
        server_ms = api.prepare()
        ing = _Ingestion(
            store,
            api,
            account_id=account_id or "default",
            run_id=new_run_id(),
            since_ms=server_ms - DEFAULT_SINCE_MS,
            until_ms=server_ms,
            lookback_ms=3_600_000,
            page_limit=PAGE_LIMIT,
            batch_size=DEFAULT_BATCH,
            progress=None,
        )
        _, positions = ing.fetch_positions()
        return ing.symbols(symbols, positions)


def ingest_binance(
    settings: Settings,
    *,
    symbols: Iterable[str] | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    client: Any = None,
    account_id: str | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    lookback_ms: int = 3_600_000,
    page_limit: int = PAGE_LIMIT,
    batch_size: int = DEFAULT_BATCH,
    store: RawStore | None = None,
    streams: Collection[str] = STREAMS,
    discover: bool = True,
) -> list[BatchStats]:
    """Read one Binance USD-M account into the raw layer; returns one summed :class:`BatchStats` per source.

    ``streams`` selects parts of the run — ``account``, ``income``, ``symbols`` (orders, algo orders
    and trades of each symbol) and ``positions`` (the positionRisk snapshot) — so an orchestrator can
    run them as separate tasks; ``discover=False`` reads exactly ``symbols`` (one mapped task each).

    ``client`` is a python-binance ``Client`` or a :class:`~ingestion.binance_client.BinanceApi` (retry
    policy, injectable sleep); default: built from the environment / Airflow connection / sandbox.
    ``progress(label, done, total)`` is called with ``("income", windows done, windows)`` and
    ``("symbols", symbols done, symbols)``. ``page_limit`` (≤ 1000) and ``batch_size`` exist for tests.
    """
    if not 1 <= page_limit <= PAGE_LIMIT:
        raise ValueError(f"page_limit must be within 1..{PAGE_LIMIT}")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    if lookback_ms < 0:
        raise ValueError("lookback_ms must not be negative")
    unknown = set(streams) - set(STREAMS)
    if unknown:
        raise ValueError(f"unknown stream(s) {sorted(unknown)}; streams are {', '.join(STREAMS)}")
    api = _api_of(client)
    account_id = account_id or "default"
    run_id = run_id or new_run_id()
    own = store is None
    store = store or RawStore(settings)
    try:
        store.open()
        server_ms = api.prepare()
        # Binance's retention counts back from its now; the paper exchange's now is its data clock
        now = api.now_ms()
        # nothing exists after the exchange's now: a later `until` (a run's data interval end, on the paper
        # exchange the wall clock months past its data) would only page through empty 7-day windows
        until = min(until_ms, now) if until_ms is not None else now
        since = since_ms if since_ms is not None else now - DEFAULT_SINCE_MS
        ing = _Ingestion(
            store,
            api,
            account_id=account_id,
            run_id=run_id,
            since_ms=since,
            until_ms=until,
            lookback_ms=lookback_ms,
            page_limit=page_limit,
            batch_size=batch_size,
            progress=progress,
        )
        ing.server_ms = server_ms
        ing.floors = retention_floors(now)
        notes = retention_notes(since, now, streams)
        ing.retention(notes)
        ing._cut_noted.update(d for d, f in ing.floors.items() if since < f)
        failure: BinanceIngestError | None = None
        snapshot_ms, positions = 0, []
        try:
            if "account" in streams:
                ing.account()
            if "exchange_info" in streams:
                ing.exchange_symbols()
            if discover or "positions" in streams:
                snapshot_ms, positions = ing.fetch_positions()
            if "income" in streams:
                ing.income()
            todo = [s.upper() for s in symbols or []] if not discover else ing.symbols(symbols, positions)
            if "symbols" not in streams:
                todo = []
            log.info("binance account %s: %d symbol(s) %s, run %s", account_id, len(todo), ", ".join(todo), run_id)
            for i, symbol in enumerate(todo):
                try:
                    ing.orders(symbol)
                    ing.algo_orders(symbol)
                    ing.trades(symbol)
                except _SkipSymbol as exc:
                    log.warning("skipping symbol %s: %s", symbol, exc)
                ing._tick("symbols", i + 1, len(todo))
        except BinanceIngestError as exc:
            # the snapshots below are still taken (the books need them whatever else failed); the run fails after
            failure = exc
            log.error("binance account %s: %s; taking the snapshots, then failing the run", account_id, exc)
        if "positions" in streams and snapshot_ms:
            try:
                ing.commit_positions(snapshot_ms, positions)
            except BinanceIngestError as exc:
                failure = failure or exc
        if "balances" in streams:
            try:
                ing.balances()
            except BinanceIngestError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        if "klines" in streams:
            ing.klines()
    finally:
        if own:
            store.close()
    results = [
        ing.totals.get(kind, BatchStats(kind))
        for kind in (
            "account",
            "symbols",
            "income",
            "futures_orders",
            "futures_algo_orders",
            "futures_trades",
            "position_risk",
            "balances",
            "klines",
        )
        if kind in ing.totals
    ]
    for stats in results:
        log.info("binance %s", stats.summary())
    log.info("binance request stats: %s", weight_snapshot(api))
    return results
