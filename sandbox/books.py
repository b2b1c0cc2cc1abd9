"""Ground-truth attribution (SPEC §4) for the paper exchange.

The simulator knows which strategy placed every order; this module turns that knowledge
into the books SPEC §4 defines — fill allocations, strategy positions and buckets — so
the dbt models can be checked against an independent implementation.

It streams: a strategy position is written out as soon as it can no longer change
(closed), so a million fills need only the open positions in memory.

Rounding conventions (also in the README):
- quantities and prices from the exchange are exact;
- VWAPs, take-profit/stop-loss from percentages, PnL percentages are rounded half away
  from zero to 18 decimals when written;
- pro-rata shares are rounded per allocation — quantities of the episode-end
  re-allocation to 8 decimals (Binance's quantity precision), commission and funding to
  18 — and the last share (by id, then by fill) takes the remainder so sums stay exact.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from pathlib import Path

from sandbox.accounting import ZERO, KeyPosition, Leg
from sandbox.jsonl import EXACT, JsonlWriter, dec, dumps, q8, q18

EXIT_ROLES = ("take_profit", "stop_loss", "close")
ROLE_REASON = {"take_profit": "take_profit", "stop_loss": "stop_loss", "close": "manual"}
QUOTE_ASSET = "USDT"


@dataclass(frozen=True)
class Link:
    """How a fill's order is tied to a strategy position (SPEC §3.3)."""

    strategy_position_id: str | None  # the opening signal_id
    role: str  # entry | take_profit | stop_loss | close | liquidation | unlinked


UNLINKED = Link(None, "unlinked")
LIQUIDATION = Link(None, "liquidation")


@dataclass(frozen=True)
class Fill:
    symbol: str
    trade_id: int
    side: str
    position_side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int


@dataclass
class SignalInfo:
    """What a strategy position needs from its opening signal."""

    signal_id: str
    strategy_id: str
    account_id: str
    symbol: str
    side: str  # LONG | SHORT
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit_pct: Decimal | None = None
    stop_loss_pct: Decimal | None = None


@dataclass
class _PoolAlloc:
    """A reducing allocation of the bucket (kept for the hedge-mode episode-end rule)."""

    fill: Fill
    qty: Decimal
    liquidation: bool
    kept: Decimal = ZERO


@dataclass
class PositionBook:
    id: str
    strategy_id: str
    signal_id: str | None
    account_id: str
    symbol: str
    side: str
    key: str
    exchange_position_id: str
    is_unattributed: bool
    signal: SignalInfo | None = None
    entry_q: Decimal = ZERO
    entry_pq: Decimal = ZERO
    entry_time: int | None = None
    exit_q: Decimal = ZERO
    exit_pq: Decimal = ZERO
    exit_time: int | None = None
    last_exit: tuple[int, int] = (-1, -1)
    last_exit_reason: str | None = None
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    closed_by_rule: str | None = None
    signed_bucket: bool = False  # a BOTH bucket reports its quantity signed like the key

    @property
    def dir(self) -> int:
        return 1 if self.side == "LONG" else -1

    @property
    def open(self) -> Decimal:
        return self.entry_q - self.exit_q

    @property
    def signed_open(self) -> Decimal:
        return self.open * self.dir


@dataclass
class _Episode:
    id: str
    members: dict[str, PositionBook] = field(default_factory=dict)
    bucket: PositionBook | None = None
    pool: list[_PoolAlloc] = field(default_factory=list)
    ended: bool = False


def _share(total: Decimal, part: Decimal, whole: Decimal, places: int = 18) -> Decimal:
    with localcontext(EXACT):
        x = total * part / whole
        return q18(x) if places == 18 else q8(x)


def commission_share(fill: Fill, qty: Decimal) -> Decimal:
    """The quote-asset commission carried by ``qty`` of ``fill`` (0 for commission paid in BNB)."""
    if fill.commission_asset != QUOTE_ASSET or qty == 0:
        return ZERO
    return fill.commission if qty == fill.qty else _share(fill.commission, qty, fill.qty)


class GroundTruth:
    """Replays fills in (time, id) order with their true links and keeps the §4 books."""

    def __init__(self, out_path: Path, account_id: str, position_mode: str):
        self.out_path = out_path
        self.account_id = account_id
        self.mode = position_mode
        self.keys: dict[str, KeyPosition] = {}
        self.signals: dict[str, SignalInfo] = {}
        self.live: dict[str, PositionBook] = {}
        self.closed_ids: set[str] = set()
        self.current_episode: dict[str, _Episode] = {}
        self.open_by_symbol: dict[str, dict[str, PositionBook]] = {}
        self.over_closes = 0
        self.over_close_qty = ZERO
        fd, tmp = tempfile.mkstemp(prefix=".closed-", suffix=".jsonl", dir=out_path.parent)
        os.close(fd)
        self._tmp_path = Path(tmp)
        self._closed = JsonlWriter(self._tmp_path)

    # ------------------------------------------------------------------ inputs
    def register_signal(self, info: SignalInfo) -> None:
        self.signals[info.signal_id] = info

    def forget_signal(self, signal_id: str) -> None:
        """A signal that will never fill (e.g. its limit order expired)."""
        if signal_id not in self.live:
            self.signals.pop(signal_id, None)

    def on_fill(self, fill: Fill, link: Link) -> tuple[list[Leg], Decimal]:
        """Book one fill; returns its legs and Binance's per-fill realizedPnl."""
        key = f"{fill.symbol}_{fill.position_side}"
        kp = self.keys.setdefault(key, KeyPosition(fill.position_side))
        legs, realized = kp.apply(fill.side, fill.qty, fill.price, fill.time)
        for leg in legs:
            episode = self._episode(key, leg)
            self._allocate_leg(fill, leg, episode, key, link)
            if leg.closes_episode:
                self._end_episode(episode)
        return legs, realized

    def on_funding(self, symbol: str, amount: Decimal, time: int) -> None:
        """Allocate a FUNDING_FEE income pro rata by signed open quantity (SPEC §4.4)."""
        holders = sorted(self.open_by_symbol.get(symbol, {}).values(), key=lambda p: p.id)
        total = sum((p.signed_open for p in holders), ZERO)
        if not holders or total == 0:
            # Binance charges funding on the net position, so the paper exchange never
            # books funding on a symbol nobody holds; real data is handled by dbt.
            raise ValueError(f"funding of {amount} on {symbol} at {time} but no open position carries it")
        given = ZERO
        for pos in holders[:-1]:
            share = _share(amount, pos.signed_open, total)
            pos.funding += share
            given += share
        holders[-1].funding += amount - given

    # ------------------------------------------------------------- allocation
    def _episode(self, key: str, leg: Leg) -> _Episode:
        eid = f"{self.account_id}:{key}:{leg.episode_no}"
        ep = self.current_episode.get(key)
        if ep is None or ep.id != eid:
            ep = _Episode(eid)
            self.current_episode[key] = ep
        return ep

    def _allocate_leg(self, fill: Fill, leg: Leg, ep: _Episode, key: str, link: Link) -> None:
        qty = leg.qty
        if link.role == "entry":
            pos = self._strategy_position(link.strategy_position_id, fill, key, ep)
            self._add_entry(pos, fill, qty)
            return
        if link.role in EXIT_ROLES:
            pos = self.live.get(link.strategy_position_id or "")
            cap = ZERO
            if pos is not None and not pos.is_unattributed:
                cap = pos.open
                if self.mode == "hedge" and pos.exchange_position_id != ep.id:
                    cap = ZERO  # the episode it entered in is over: wholly an over-close
            take = min(qty, max(cap, ZERO))
            if take > 0:
                self._add_exit(pos, fill, take, ROLE_REASON[link.role])
            excess = qty - take
            if excess > 0:
                self.over_closes += 1
                self.over_close_qty += excess
                self._to_bucket(fill, leg, ep, key, excess, liquidation=False)
            return
        self._to_bucket(fill, leg, ep, key, qty, liquidation=link.role == "liquidation")

    def _strategy_position(self, sid: str | None, fill: Fill, key: str, ep: _Episode) -> PositionBook:
        pos = self.live.get(sid or "")
        if pos is not None:
            return pos
        if sid in self.closed_ids:
            raise ValueError(f"entry fill {fill.trade_id} for strategy position {sid}, which is already closed")
        info = self.signals.get(sid or "")
        if info is None:
            raise ValueError(f"entry fill {fill.trade_id} links to unknown signal {sid!r}")
        pos = PositionBook(
            id=info.signal_id,
            strategy_id=info.strategy_id,
            signal_id=info.signal_id,
            account_id=info.account_id,
            symbol=info.symbol,
            side=info.side,
            key=key,
            exchange_position_id=ep.id,
            is_unattributed=False,
            signal=info,
        )
        self.live[pos.id] = pos
        ep.members[pos.id] = pos
        return pos

    def _bucket(self, ep: _Episode, key: str, symbol: str, episode_dir: int) -> PositionBook:
        if ep.bucket is None:
            side = key.rsplit("_", 1)[1]
            if side == "BOTH":
                side = "LONG" if episode_dir > 0 else "SHORT"
            ep.bucket = PositionBook(
                id=f"unattributed:{ep.id}",
                strategy_id="unattributed",
                signal_id=None,
                account_id=self.account_id,
                symbol=symbol,
                side=side,
                key=key,
                exchange_position_id=ep.id,
                is_unattributed=True,
                signed_bucket=key.endswith("_BOTH"),
            )
            self.live[ep.bucket.id] = ep.bucket
        return ep.bucket

    def _to_bucket(self, fill: Fill, leg: Leg, ep: _Episode, key: str, qty: Decimal, liquidation: bool) -> None:
        bucket = self._bucket(ep, key, fill.symbol, leg.episode_dir)
        if leg.increasing:
            self._add_entry(bucket, fill, qty)
        else:
            reason = "liquidation" if liquidation else "external"
            self._add_exit(bucket, fill, qty, reason)
            if self.mode == "hedge":
                ep.pool.append(_PoolAlloc(fill, qty, liquidation, kept=qty))

    def _add_entry(self, pos: PositionBook, fill: Fill, qty: Decimal) -> None:
        pos.entry_q += qty
        pos.entry_pq += qty * fill.price
        if pos.entry_time is None:
            pos.entry_time = fill.time
        pos.fees += commission_share(fill, qty)
        self._track_open(pos)

    def _add_exit(self, pos: PositionBook, fill: Fill, qty: Decimal, reason: str) -> None:
        pos.exit_q += qty
        pos.exit_pq += qty * fill.price
        if (fill.time, fill.trade_id) >= pos.last_exit:
            pos.last_exit = (fill.time, fill.trade_id)
            pos.last_exit_reason = reason
            pos.exit_time = fill.time
        pos.fees += commission_share(fill, qty)
        self._track_open(pos)
        if not pos.is_unattributed and pos.open == 0:
            self._flush(pos)

    def _track_open(self, pos: PositionBook) -> None:
        holders = self.open_by_symbol.setdefault(pos.symbol, {})
        if pos.open != 0:
            holders[pos.id] = pos
        else:
            holders.pop(pos.id, None)

    # ---------------------------------------------------------- episode end
    def _end_episode(self, ep: _Episode) -> None:
        ep.ended = True
        if self.mode == "hedge":
            self._reallocate_pool(ep)
        bucket = ep.bucket
        if bucket is not None and bucket.open == 0:
            self._flush(bucket)
        # one-way mode keeps what the bucket holds (SPEC §4.2); either way nothing more is
        # allocated to this episode, so its bookkeeping can go
        ep.members.clear()
        ep.pool.clear()

    def _reallocate_pool(self, ep: _Episode) -> None:
        """SPEC §4.2: the bucket's reducing allocations close the positions still open at the end."""
        holders = sorted((p for p in ep.members.values() if p.open > 0), key=lambda p: p.id)
        if not holders:
            return
        pool = ep.pool
        total_pool = sum((a.qty for a in pool), ZERO)
        remaining = sum((p.open for p in holders), ZERO)
        if total_pool < remaining or not pool:
            raise AssertionError(f"episode {ep.id} ended with {remaining} open but a pool of {total_pool}")
        reason = "liquidation" if all(a.liquidation for a in pool) else "external"
        bucket = ep.bucket
        assert bucket is not None
        exact_fit = total_pool == remaining
        for n, pos in enumerate(holders):
            r = pos.open
            last_holder = n == len(holders) - 1
            given = ZERO
            for j, alloc in enumerate(pool):
                if last_holder and exact_fit:
                    share = alloc.kept  # the bucket keeps nothing; column sums stay exact
                elif j == len(pool) - 1:
                    share = r - given  # row sums stay exact
                else:
                    share = _share(alloc.qty, r, total_pool, places=8)  # quantities keep Binance's 8 decimals
                given += share
                alloc.kept -= share
                if share:
                    self._move_from_bucket(bucket, pos, alloc.fill, share)
            pos.closed_by_rule = reason
            self._track_open(pos)
            self._flush(pos)
        # each final allocation carries commission·q/Q: the bucket's pool rows now hold `kept`
        for alloc in pool:
            bucket.fees += commission_share(alloc.fill, alloc.kept) - commission_share(alloc.fill, alloc.qty)
        # the bucket's last exit is now its last allocation that kept a quantity
        kept = [a for a in pool if a.kept > 0]
        last = max(kept, key=lambda a: (a.fill.time, a.fill.trade_id), default=None)
        bucket.last_exit = (last.fill.time, last.fill.trade_id) if last else (-1, -1)
        bucket.exit_time = last.fill.time if last else None
        bucket.last_exit_reason = ("liquidation" if last.liquidation else "external") if last else None
        self._track_open(bucket)

    def _move_from_bucket(self, bucket: PositionBook, pos: PositionBook, fill: Fill, qty: Decimal) -> None:
        bucket.exit_q -= qty
        bucket.exit_pq -= qty * fill.price
        pos.exit_q += qty
        pos.exit_pq += qty * fill.price
        if (fill.time, fill.trade_id) >= pos.last_exit:
            pos.last_exit = (fill.time, fill.trade_id)
            pos.exit_time = fill.time
        pos.fees += commission_share(fill, qty)

    # --------------------------------------------------------------- output
    def _flush(self, pos: PositionBook) -> None:
        if pos.id not in self.live:
            return
        del self.live[pos.id]
        self.closed_ids.add(pos.id)
        self.open_by_symbol.get(pos.symbol, {}).pop(pos.id, None)
        if pos.signal_id:
            self.signals.pop(pos.signal_id, None)
        if pos.is_unattributed and pos.entry_q == 0 and pos.exit_q == 0 and pos.funding == 0:
            return  # a bucket whose every allocation was re-allocated holds nothing to report
        self._closed.write(self.record(pos, mark=None))

    def record(self, pos: PositionBook, mark: Decimal | None) -> dict:
        """The §4.3 row of one position; ``mark`` None leaves mark_price to :meth:`finish`."""
        with localcontext(EXACT):
            return self._record(pos, mark)

    def _record(self, pos: PositionBook, mark: Decimal | None) -> dict:
        d = pos.dir
        if pos.entry_q > 0:
            entry_price = pos.entry_pq / pos.entry_q
        elif pos.exit_q > 0:
            entry_price = pos.exit_pq / pos.exit_q  # a bucket that only reduced: realized 0, exposure unrealized
        else:
            entry_price = None
        exit_price = pos.exit_pq / pos.exit_q if pos.exit_q > 0 else None
        realized = d * (pos.exit_pq - entry_price * pos.exit_q) if entry_price is not None else ZERO
        if pos.is_unattributed:
            status = "closed" if pos.open == 0 else "open"
        else:
            status = "open" if pos.exit_q == 0 else "closed" if pos.open == 0 else "partial"
        close_reason = None
        if status == "closed":
            close_reason = pos.closed_by_rule or pos.last_exit_reason
        sig = pos.signal
        tp = sl = None
        if sig is not None and entry_price is not None:
            tp = (
                sig.take_profit
                if sig.take_profit is not None
                else (entry_price * (1 + d * sig.take_profit_pct) if sig.take_profit_pct is not None else None)
            )
            sl = (
                sig.stop_loss
                if sig.stop_loss is not None
                else (entry_price * (1 - d * sig.stop_loss_pct) if sig.stop_loss_pct is not None else None)
            )
        pct = None
        if pos.exit_q > 0 and entry_price:
            pct = realized / (entry_price * pos.exit_q) * 100
        open_qty = pos.signed_open if pos.signed_bucket else pos.open
        unrealized = None
        if mark is not None:
            unrealized = (mark - entry_price) * pos.open * d if entry_price is not None and pos.open else ZERO
        holding = None
        if status == "closed" and pos.entry_time is not None and pos.exit_time is not None:
            holding = Decimal(pos.exit_time - pos.entry_time) / 1000

        def out(x):
            return None if x is None else dec(q18(x))

        return {
            "strategy_position_id": pos.id,
            "strategy_id": pos.strategy_id,
            "signal_id": pos.signal_id,
            "account_id": pos.account_id,
            "symbol": pos.symbol,
            "side": pos.side,
            "exchange_position_key": pos.key,
            "exchange_position_id": pos.exchange_position_id,
            "entry_quantity": out(pos.entry_q),
            "entry_price": out(entry_price),
            "entry_time": pos.entry_time,
            "take_profit_price": out(tp),
            "stop_loss_price": out(sl),
            "exit_quantity": out(pos.exit_q),
            "exit_price": out(exit_price),
            "exit_time": pos.exit_time,
            "open_quantity": out(open_qty),
            "status": status,
            "close_reason": close_reason,
            "realized_pnl": out(realized),
            "realized_pnl_pct": out(pct),
            "fees": out(pos.fees),
            "funding_fees": out(pos.funding),
            "realized_pnl_net": out(realized - pos.fees + pos.funding),
            "mark_price": out(mark),
            "unrealized_pnl": out(unrealized) if mark is not None else "0",
            "holding_seconds": out(holding),
            "is_unattributed": pos.is_unattributed,
        }

    def discard(self) -> None:
        """Drop the temporary file of a run that failed."""
        self._closed.close()
        self._tmp_path.unlink(missing_ok=True)

    def finish(self, marks: dict[str, Decimal]) -> int:
        """Write ``expected_strategy_positions.jsonl``: closed positions in closing order, then open ones."""
        self._closed.close()
        n = 0
        out = JsonlWriter(self.out_path)
        try:
            if self._tmp_path.exists():
                with open(self._tmp_path, encoding="utf-8") as fh:
                    for line in fh:
                        row = json.loads(line)
                        mark = marks.get(row["symbol"])
                        row["mark_price"] = dec(mark) if mark is not None else None
                        out.write(row)
                        n += 1
            for pos in sorted(self.live.values(), key=lambda p: p.id):
                if pos.entry_q == 0 and pos.exit_q == 0 and pos.funding == 0:
                    continue  # a bucket whose every allocation was re-allocated
                out.write(self.record(pos, marks.get(pos.symbol)))
                n += 1
        finally:
            out.close()
            self._tmp_path.unlink(missing_ok=True)
        if n == 0:
            self.out_path.write_text("", encoding="utf-8")
        return n


__all__ = ["LIQUIDATION", "UNLINKED", "Fill", "GroundTruth", "Link", "PositionBook", "SignalInfo", "dumps"]
