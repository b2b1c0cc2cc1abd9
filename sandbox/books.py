"""Ground-truth attribution (SPEC §4) for the paper exchange.

The simulator knows which strategy placed every order; this module turns that knowledge
into the books SPEC §4 defines — fill allocations, strategy positions and buckets — so
the dbt models can be checked against an independent implementation.

It streams: a strategy position is written out as soon as it can no longer change
(closed), so a million fills need only the open positions in memory.

Rounding conventions (also in the README):
- quantities and prices from the exchange are exact;
- commission: each allocation carries ``commission·q/Q`` of its fill (rounded to 18
  decimals; exactly the commission when q = Q), signed (a maker rebate is negative);
  ``fees`` sums the shares paid in the symbol's margin asset, ``fees_by_asset`` the
  native shares per asset (assets whose sum is not zero, keys sorted) and
  ``other_fees`` sums, per allocation of a fill paid in another asset (BNB),
  ``round_half_away(native share × close of the {asset}{margin} 1-minute kline, 18)``;
- ``other_income`` (SPEC §4.5): INSURANCE_CLEAR pro rata to the allocated quantities of
  the liquidation order's fills, DELIVERED_SETTELMENT pro rata to |open quantity| of the
  positions open on the contract just before delivery, COMMISSION_REBATE / API_REBATE /
  FEE_RETURN pro rata to the positions' commission shares (that asset, that UTC day);
  positions in id order, each share rounded to 18 decimals, the last takes the
  remainder (as funding); income with nobody to carry it stays account-level;
- opening state (SPEC §4.1, a served history that starts mid-position): the books see
  only served fills; a key whose Binance quantity before its first served fill is not
  zero opens episode 1 with an opening allocation of |qty0| to its bucket at that fill's
  time. avg0 is recovered from Binance's rounded realizedPnl of the opening episode's
  first reducing fill k, ``avg_k = q18(p − realizedPnl/(q·dir))`` (q: the quantity it
  reduced), then walked back over the increases before it in one step,
  ``avg0 = q18((|Q_k|·avg_k − Σ q_i·p_i)/|qty0|)`` (as dbt's int_opening_states); without
  a reducing fill the latest snapshot's ``entryPrice`` is walked back the same way. A key
  with a position in the latest snapshot and no served fill is an open episode of just
  its opening allocation, at that snapshot's time and entryPrice. Funding on a symbol
  none of whose served positions is open yet stays account-level.
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
    margin_asset: str = "USDT"
    conversion: Decimal | None = None  # close of the {commission_asset}{margin_asset} kline of the fill's minute
    order_id: int = 0


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
    other_fees: Decimal = ZERO
    other_fees_missing: bool = False
    fee_assets: dict[str, Decimal] = field(default_factory=dict)
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


def native_share(fill: Fill, qty: Decimal) -> Decimal:
    """The commission (in its own asset, signed) carried by ``qty`` of ``fill``."""
    if qty == 0:
        return ZERO
    return fill.commission if qty == fill.qty else _share(fill.commission, qty, fill.qty)


def commission_share(fill: Fill, qty: Decimal) -> Decimal:
    """The margin-asset commission carried by ``qty`` of ``fill`` (0 for commission paid in BNB)."""
    if fill.commission_asset != fill.margin_asset:
        return ZERO
    return native_share(fill, qty)


def split_pro_rata(amount: Decimal, weights: dict[str, Decimal]) -> dict[str, Decimal]:
    """``amount`` over ids pro rata to ``weights`` (ids in order, 18 dp, the last takes the remainder)."""
    ids = sorted(k for k, w in weights.items() if w != 0)
    total = sum((weights[k] for k in ids), ZERO)
    if not ids or total == 0:
        return {}
    out: dict[str, Decimal] = {}
    given = ZERO
    for k in ids[:-1]:
        out[k] = _share(amount, weights[k], total)
        given += out[k]
    out[ids[-1]] = amount - given
    return out


@dataclass
class _Opening:
    """SPEC §4.1 opening state of a key whose served history starts mid-position."""

    key: str
    qty0: Decimal  # |qty0|
    direction: int
    bucket: PositionBook
    increases: list[tuple[Decimal, Decimal]] = field(default_factory=list)  # (q, p) of increasing legs
    resolved: bool = False
    avg0: Decimal | None = None


class GroundTruth:
    """Replays fills in (time, id) order with their true links and keeps the §4 books."""

    def __init__(self, out_path: Path, account_id: str, position_mode: str, track_income: bool = False):
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
        # opening state (SPEC §4.1) and position-caused income (§4.5)
        self.openings: dict[str, _Opening] = {}
        self.other_income: dict[str, Decimal] = {}
        self.unallocated: list[tuple[str, str, Decimal, int]] = []  # (incomeType, asset, amount, time)
        self.track_income = track_income
        self._day_fees: dict[tuple[int, str], dict[str, Decimal]] = {}
        self._liq_allocs: dict[tuple[str, int], dict[str, Decimal]] = {}
        self._pending: list[tuple] = []
        self._income_written: dict[str, Decimal] = {}
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

    def on_fill(
        self,
        fill: Fill,
        link: Link,
        exchange_qty_before: Decimal | None = None,
        exchange_realized: Decimal | None = None,
    ) -> tuple[list[Leg], Decimal]:
        """Book one fill; returns its legs and the per-fill realizedPnl of the books' own average.

        ``exchange_qty_before`` is Binance's signed key quantity before the fill: when the
        books have not seen the key yet and it is not zero, the served history starts
        mid-position and the key gets its SPEC §4.1 opening state. ``exchange_realized`` is
        Binance's (rounded) realizedPnl of the fill, from which the opening average is recovered.
        """
        key = f"{fill.symbol}_{fill.position_side}"
        kp = self.keys.get(key)
        if kp is None:
            kp = self.keys[key] = KeyPosition(fill.position_side)
            if exchange_qty_before:
                self._open_mid_position(key, fill, exchange_qty_before)
        legs, realized = kp.apply(fill.side, fill.qty, fill.price, fill.time)
        opening = self.openings.get(key)
        for leg in legs:
            if opening is not None and not opening.resolved and leg.episode_no == 1:
                if leg.increasing:
                    opening.increases.append((leg.qty, fill.price))
                else:
                    rpnl = exchange_realized if exchange_realized is not None else q8(realized)
                    with localcontext(EXACT):
                        avg = q18(fill.price - rpnl / (leg.qty * leg.episode_dir))
                    self._resolve_opening(opening, avg)
            episode = self._episode(key, leg)
            self._allocate_leg(fill, leg, episode, key, link)
            if leg.closes_episode:
                self._end_episode(episode)
        return legs, realized

    # ------------------------------------------------------------- opening state (SPEC §4.1)
    def _open_mid_position(self, key: str, fill: Fill, qty0: Decimal, at: int | None = None) -> _Opening:
        kp = self.keys[key]
        kp.qty = qty0
        kp.episode_no = 1
        direction = 1 if qty0 > 0 else -1
        ep = _Episode(f"{self.account_id}:{key}:1")
        self.current_episode[key] = ep
        bucket = self._bucket(ep, key, fill.symbol, direction)
        bucket.entry_q += abs(qty0)
        bucket.entry_time = fill.time if at is None else at
        self._track_open(bucket)
        opening = _Opening(key, abs(qty0), direction, bucket)
        self.openings[key] = opening
        return opening

    def _resolve_opening(self, opening: _Opening, avg_after: Decimal) -> None:
        """Walk the average at the first reducing fill (or the snapshot's) back over the increases."""
        with localcontext(EXACT):
            # one step: |Q_k|·avg_k = |qty0|·avg0 + Σ q_i·p_i over the increases before fill k
            qty_after = opening.qty0 + sum((q for q, _ in opening.increases), ZERO)
            notional = sum((q * p for q, p in opening.increases), ZERO)
            avg = q18((qty_after * avg_after - notional) / opening.qty0)
            opening.bucket.entry_pq += opening.qty0 * avg
        opening.resolved = True
        opening.avg0 = avg
        opening.increases.clear()

    def open_from_snapshot(self, key: str, symbol: str, qty: Decimal, entry_price: Decimal, at: int) -> None:
        """A key with a position in the latest snapshot but no served fill: an episode of its opening."""
        if key in self.keys or qty == 0:
            return
        self.keys[key] = KeyPosition(key.rsplit("_", 1)[1])
        dummy = Fill(symbol, 0, "BUY", key.rsplit("_", 1)[1], ZERO, abs(qty), ZERO, "", at)
        opening = self._open_mid_position(key, dummy, qty, at=at)
        self._resolve_opening(opening, entry_price)

    def resolve_from_snapshots(self, entry_prices: dict[str, Decimal]) -> None:
        """Openings without a reducing fill: the latest snapshot's entryPrice walked back (SPEC §4.1)."""
        for key, opening in self.openings.items():
            if not opening.resolved:
                if key not in entry_prices:
                    raise AssertionError(f"opening state of {key} has no reducing fill and no snapshot")
                self._resolve_opening(opening, entry_prices[key])

    def on_funding(self, symbol: str, amount: Decimal, time: int) -> None:
        """Allocate a FUNDING_FEE income pro rata by signed open quantity (SPEC §4.4)."""
        holders = sorted(self.open_by_symbol.get(symbol, {}).values(), key=lambda p: p.id)
        total = sum((p.signed_open for p in holders), ZERO)
        if not holders or total == 0:
            # nothing the books know is open (e.g. the key's opening state only begins at its
            # first served fill): the funding stays account-level
            self.unallocated.append(("FUNDING_FEE", symbol, amount, time))
            return
        given = ZERO
        for pos in holders[:-1]:
            share = _share(amount, pos.signed_open, total)
            pos.funding += share
            given += share
        holders[-1].funding += amount - given

    def on_insurance_clear(self, symbol: str, order_id: int, amount: Decimal, time: int) -> None:
        """INSURANCE_CLEAR of a liquidation order: its fills' final allocations carry it (resolved at the end)."""
        self._pending.append(("INSURANCE_CLEAR", symbol, order_id, amount, time))

    def on_rebate(self, kind: str, asset: str, amount: Decimal, time: int) -> None:
        """COMMISSION_REBATE / API_REBATE / FEE_RETURN: pro rata to the day's commission shares in ``asset``."""
        self._pending.append((kind, asset, time // 86_400_000, amount, time))

    def on_delivery(self, symbol: str, amount: Decimal, time: int) -> None:
        """DELIVERED_SETTELMENT: the positions open on the contract just before delivery, by |open quantity|."""
        weights = {p.id: abs(p.open) for p in self.open_by_symbol.get(symbol, {}).values()}
        shares = split_pro_rata(amount, weights)
        if not shares:
            self.unallocated.append(("DELIVERED_SETTELMENT", symbol, amount, time))
        for pid, share in shares.items():
            self.other_income[pid] = self.other_income.get(pid, ZERO) + share

    def _resolve_pending(self) -> None:
        for item in self._pending:
            kind = item[0]
            if kind == "INSURANCE_CLEAR":
                _, symbol, order_id, amount, time = item
                weights = self._liq_allocs.get((symbol, order_id), {})
            else:
                _, asset, day, amount, time = item
                weights = self._day_fees.get((day, asset), {})
            shares = split_pro_rata(amount, weights)
            if not shares:
                self.unallocated.append((kind, item[1], amount, time))
            for pid, share in shares.items():
                self.other_income[pid] = self.other_income.get(pid, ZERO) + share
        self._pending.clear()

    def _charge(self, pos: PositionBook, fill: Fill, qty: Decimal, sign: int = 1) -> None:
        """Add (or, sign −1, take back) the commission carried by ``qty`` of ``fill``."""
        if qty == 0:
            return
        native = native_share(fill, qty) * sign
        asset = fill.commission_asset
        if native != 0:
            pos.fee_assets[asset] = pos.fee_assets.get(asset, ZERO) + native
            if asset == fill.margin_asset:
                pos.fees += native
            elif fill.conversion is None:
                pos.other_fees_missing = True
            else:
                with localcontext(EXACT):
                    pos.other_fees += q18(native * fill.conversion)
            if self.track_income:
                day = self._day_fees.setdefault((fill.time // 86_400_000, asset), {})
                day[pos.id] = day.get(pos.id, ZERO) + native
        if self.track_income and fill.order_id and (fill.symbol, fill.order_id) in self._liq_allocs:
            allocs = self._liq_allocs[(fill.symbol, fill.order_id)]
            allocs[pos.id] = allocs.get(pos.id, ZERO) + qty * sign

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
        if self.track_income and link.role == "liquidation" and fill.order_id:
            self._liq_allocs.setdefault((fill.symbol, fill.order_id), {})
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
        self._charge(pos, fill, qty)
        self._track_open(pos)

    def _add_exit(self, pos: PositionBook, fill: Fill, qty: Decimal, reason: str) -> None:
        pos.exit_q += qty
        pos.exit_pq += qty * fill.price
        if (fill.time, fill.trade_id) >= pos.last_exit:
            pos.last_exit = (fill.time, fill.trade_id)
            pos.last_exit_reason = reason
            pos.exit_time = fill.time
        self._charge(pos, fill, qty)
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
            self._charge(bucket, alloc.fill, alloc.kept)
            self._charge(bucket, alloc.fill, alloc.qty, -1)
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
        self._charge(pos, fill, qty)

    # --------------------------------------------------------------- output
    def _flush(self, pos: PositionBook) -> None:
        if pos.id not in self.live:
            return
        del self.live[pos.id]
        self.closed_ids.add(pos.id)
        self.open_by_symbol.get(pos.symbol, {}).pop(pos.id, None)
        if pos.signal_id:
            self.signals.pop(pos.signal_id, None)
        if pos.is_unattributed and self._empty(pos):
            return  # a bucket whose every allocation was re-allocated holds nothing to report
        self._closed.write(self.record(pos, mark=None))
        if pos.id in self.other_income:
            self._income_written[pos.id] = self.other_income[pos.id]

    def _empty(self, pos: PositionBook) -> bool:
        return pos.entry_q == 0 and pos.exit_q == 0 and pos.funding == 0 and not self.other_income.get(pos.id)

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

        other_fees = None if pos.other_fees_missing else pos.other_fees
        other_income = self.other_income.get(pos.id, ZERO)
        net = None
        if other_fees is not None:
            net = realized - pos.fees - other_fees + pos.funding + other_income

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
            "other_fees": out(other_fees),
            "fees_by_asset": {a: dec(q18(v)) for a, v in sorted(pos.fee_assets.items()) if v != 0},
            "funding_fees": out(pos.funding),
            "other_income": out(other_income),
            "realized_pnl_net": out(net),
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
        self._resolve_pending()
        n = 0
        out = JsonlWriter(self.out_path)
        try:
            if self._tmp_path.exists():
                with open(self._tmp_path, encoding="utf-8") as fh:
                    for line in fh:
                        row = json.loads(line)
                        mark = marks.get(row["symbol"])
                        row["mark_price"] = dec(mark) if mark is not None else None
                        pid = row["strategy_position_id"]
                        extra = self.other_income.get(pid, ZERO) - self._income_written.get(pid, ZERO)
                        if extra:  # income resolved after the position closed (§4.5)
                            with localcontext(EXACT):
                                row["other_income"] = dec(Decimal(row["other_income"]) + extra)
                                if row["realized_pnl_net"] is not None:
                                    row["realized_pnl_net"] = dec(Decimal(row["realized_pnl_net"]) + extra)
                        out.write(row)
                        n += 1
            for pos in sorted(self.live.values(), key=lambda p: p.id):
                if self._empty(pos):
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
