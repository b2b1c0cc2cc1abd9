"""Deterministic simulation of several strategies trading one Binance USD-M account (SPEC §7).

One ``random.Random(seed)`` drives everything and every loop runs in a fixed order, so
the same arguments give byte-identical files. The simulation steps minute by minute:

- per-symbol price paths (geometric random walk with occasional jumps);
- strategies emit ``buy``/``sell`` signals (absolute or percentage TP/SL, sometimes
  both), ``close`` signals and ``hold`` signals; entries are MARKET orders with partial
  fills (taker) or LIMIT orders that fill as maker when the path crosses them, partly
  or not at all before they expire;
- after the entry the strategy places a take-profit and a stop-loss conditional order
  (some strategies through Binance's algo service) that trigger on the path; the other
  leg is then cancelled; some strategies scale out (half at TP, stop moved to entry);
- links follow SPEC §3.3: ``{signal_id}-{code}`` client ids, explicit
  ``order_links.jsonl`` rows by order id or by client id, unlinked manual UI and
  other-bot orders, ``autoclose-``/``adl_autoclose`` liquidations, rare over-closes;
- commissions (taker 0.05 %, maker 0.02 %, in BNB during a window), funding every 8 h,
  hourly positionRisk and wallet-balance snapshots, REALIZED_PNL and COMMISSION income
  per fill, a BNBUSDT 1-minute kline every minute (the BNB conversion price).

A real account's shapes (SPEC §7), each switchable, all on with ``real_account=True``
(CLI ``--real-account``): maker rebates during a stretch of the run (``rebates``);
transfers, INSURANCE_CLEAR on liquidations and a daily rebate-program payment
(``account_income``); a quarterly contract delivered inside the run and the
BTC-margined ``ETHBTC`` among the symbols; history starting mid-position
(``history_start``: the account trades from ``start``, the replay holds only what
Binance still serves from ``history_start`` on, the ground truth starts from SPEC §4.1's
opening state). Order, algo and trade ids overlap across symbols in every mode.

Output is streamed; memory stays flat in the number of fills.
"""

from __future__ import annotations

import itertools
import math
import random
import string
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path

from sandbox.account import MAKER_RATE, AccountSummary, AlgoOrder, Order, PaperAccount
from sandbox.books import Link, SignalInfo
from sandbox.instruments import DEFAULT_SYMBOLS, DELIVERY_HOUR_UTC, Instrument, instrument, quarterly_symbol
from sandbox.jsonl import Number

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
MAKER_REBATE = Decimal("-0.00005")  # a maker rebate tier: negative commission on maker fills
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)
STRATEGY_NAMES = (
    "trend_follow",
    "mean_revert",
    "breakout",
    "scalper",
    "momentum",
    "grid_swing",
    "vol_squeeze",
    "range_fade",
    "news_momo",
    "pairs_alpha",
    "carry_tilt",
    "orderflow",
)
TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h")


@dataclass
class GenerateConfig:
    out: Path
    days: float = 7
    strategies: int = 6
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    mode: str = "hedge"
    seed: int = 42
    account_id: str = "default"
    start: datetime = DEFAULT_START
    snapshot_minutes: int = 60
    # mean minutes between new positions per (strategy, symbol); sets the volume
    entry_every_minutes: float = 45.0
    manual_per_symbol_day: float = 1.5
    liquidations_per_key_day: float = 0.3
    progress: Callable[[int, int], None] | None = None
    # a real account's shapes (SPEC §7); ``real_account`` switches all of them on
    history_start: datetime | None = None  # the replay holds only records from here on
    rebates: bool = False  # a negative maker rate (rebate) during a stretch of the run
    account_income: bool = False  # transfers, INSURANCE_CLEAR, daily rebate-program payments
    real_account: bool = False

    def __post_init__(self) -> None:
        if self.real_account:
            self.apply_real_account()

    def apply_real_account(self) -> None:
        """The preset of the end-to-end test: hedge mode, history from a quarter into the run,
        rebates, BNB fees, transfers, liquidations with INSURANCE_CLEAR, a quarterly that is
        delivered inside the run and the BTC-margined ETHBTC among the symbols."""
        self.mode = "hedge"
        self.rebates = True
        self.account_income = True
        if self.history_start is None:
            self.history_start = self.start + timedelta(days=self.days * 0.25)
        if tuple(self.symbols) == DEFAULT_SYMBOLS:
            self.symbols = ("BTCUSDT", "ETHUSDT", "BNBUSDT", real_account_quarterly(self.start, self.days), "ETHBTC")
        self.liquidations_per_key_day = max(self.liquidations_per_key_day, 0.5)

    @property
    def history_start_ms(self) -> int | None:
        return None if self.history_start is None else int(self.history_start.timestamp() * 1000)

    def validate(self) -> None:
        if self.days <= 0:
            raise ValueError("--days must be positive")
        if not 1 <= self.strategies <= 200:
            raise ValueError("--strategies must be between 1 and 200")
        if not self.symbols:
            raise ValueError("at least one symbol is needed")
        for s in self.symbols:
            instrument(s)
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be distinct")
        if self.mode not in ("hedge", "one_way"):
            raise ValueError("--mode must be hedge or one_way")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        end = self.start + timedelta(days=self.days)
        if self.history_start is not None:
            if self.history_start.tzinfo is None:
                raise ValueError("history start must be timezone-aware (UTC)")
            if not self.start <= self.history_start < end:
                raise ValueError("--history-start must fall inside the simulated run [start, start + days)")
        for s in self.symbols:
            inst = instrument(s)
            if not inst.perpetual and not self.start.timestamp() * 1000 < inst.delivery_date:
                raise ValueError(f"{s} is delivered before the run starts")


def real_account_quarterly(start: datetime, days: float) -> str:
    """A BTCUSDT quarterly delivered inside the run: 08:00 UTC on the day 70 % into it."""
    at = start + timedelta(days=days * 0.7)
    delivery = at.replace(hour=DELIVERY_HOUR_UTC, minute=0, second=0, microsecond=0)
    if delivery > at:
        delivery -= timedelta(days=1)
    if delivery <= start:
        raise ValueError("--real-account needs a run long enough to deliver a quarterly inside it (≥ 2 days)")
    return quarterly_symbol("BTCUSDT", delivery)


@dataclass
class Strategy:
    strategy_id: str
    symbols: list[str]
    market_ratio: float
    tp_style: str  # abs | pct | both
    tp_range: tuple[float, float]
    sl_range: tuple[float, float]
    link_style: str  # convention | links_by_client | links_by_order
    algo_tpsl: bool
    scale_out: bool
    id_alias: bool
    ts_format: str  # iso | s | ms
    numbers_as_json: bool
    long_bias: float
    close_per_minute: float
    max_open: int
    seq: int = 0


@dataclass
class SimPosition:
    sid: str
    strategy: Strategy
    inst: Instrument
    side: str  # LONG | SHORT of the strategy position
    key_side: str  # positionSide of its orders
    qty: Decimal
    signal_price: Decimal
    tp_abs: Decimal | None
    sl_abs: Decimal | None
    tp_pct: Decimal | None
    sl_pct: Decimal | None
    entry: Order | None = None
    entry_expires: int = 0
    filled: Decimal = Decimal(0)
    filled_quote: Decimal = Decimal(0)
    closed_qty: Decimal = Decimal(0)
    tp: Order | AlgoOrder | None = None
    sl: Order | AlgoOrder | None = None
    tp_price: Decimal = Decimal(0)
    sl_price: Decimal = Decimal(0)
    scaled: bool = False
    state: str = "entering"  # entering | open | done

    @property
    def dir(self) -> int:
        return 1 if self.side == "LONG" else -1

    @property
    def open_qty(self) -> Decimal:
        return self.filled - self.closed_qty

    @property
    def exit_side(self) -> str:
        return "SELL" if self.side == "LONG" else "BUY"

    @property
    def entry_side(self) -> str:
        return "BUY" if self.side == "LONG" else "SELL"


@dataclass
class _Clock:
    """Strictly increasing event times; events of a minute stay inside that minute."""

    now: int = 0

    def start_minute(self, t0: int, rng: random.Random) -> None:
        self.now = max(self.now, t0 + rng.randint(150, 2500))

    def tick(self, rng: random.Random, t0: int) -> int:
        step = rng.randint(3, 350)
        limit = t0 + MINUTE - 1
        self.now = min(self.now + step, limit) if self.now + 1 <= limit else self.now + 1
        if self.now >= t0 + MINUTE:
            raise RuntimeError("too many events in one simulated minute")
        return self.now


@dataclass
class Simulation:
    cfg: GenerateConfig
    rng: random.Random = field(init=False)
    account: PaperAccount = field(init=False)

    def __post_init__(self) -> None:
        self.cfg.validate()
        self.rng = random.Random(self.cfg.seed)
        # the real-account features draw from their own stream, so default runs keep theirs
        self.rng2 = random.Random(self.cfg.seed * 7919 + 17)
        real = self.cfg.real_account or self.cfg.account_income or self.cfg.history_start is not None
        self.account = PaperAccount(
            self.cfg.out,
            self.cfg.account_id,
            self.cfg.mode,
            history_start_ms=self.cfg.history_start_ms,
            track_income=self.cfg.account_income,
            tran_id_base=1_234_567_890_123_456_789 if real else 9_689_000_000,  # Binance's tranIds run to 19 digits
        )
        self.insts = [instrument(s) for s in self.cfg.symbols]
        self.prices: dict[str, Decimal] = {i.symbol: i.start_price for i in self.insts}
        self.log_prices: dict[str, float] = {i.symbol: math.log(float(i.start_price)) for i in self.insts}
        self.bnb_log = math.log(310.0)
        self.strategies = [self._make_strategy(k) for k in range(self.cfg.strategies)]
        self.positions: list[SimPosition] = []
        self.clock = _Clock()
        self.start_ms = int(self.cfg.start.timestamp() * 1000)
        self.minutes = round(self.cfg.days * 1440)
        self.manual_seq = 0
        # fees are paid in BNB during one stretch of the run (the account toggled "BNB burn")
        self.bnb_from = self.minutes * 2 // 7
        self.bnb_until = self.bnb_from + max(1, self.minutes // 7)
        if cfg_hs := self.cfg.history_start_ms:
            # the BNB stretch lies inside the served history
            first = max(0, (cfg_hs - self.start_ms) // MINUTE)
            span = self.minutes - first
            self.bnb_from = first + span // 5
            self.bnb_until = self.bnb_from + max(1, span // 5)
        # maker rebates (a market-maker programme month, compressed): a negative maker rate
        self.rebate_from = self.minutes * 3 // 7 if self.cfg.rebates else -1
        self.rebate_until = self.minutes * 6 // 7 if self.cfg.rebates else -1
        self.bnb_prev: Decimal | None = None
        self.served_liquidations = 0

    # ------------------------------------------------------------------ set-up
    def _make_strategy(self, k: int) -> Strategy:
        rng = self.rng
        base = STRATEGY_NAMES[k % len(STRATEGY_NAMES)]
        name = base if k < len(STRATEGY_NAMES) else f"{base}_{k // len(STRATEGY_NAMES) + 1}"
        n = len(self.insts)
        count = max(1, min(n, round(n * rng.uniform(0.45, 0.85))))
        symbols = sorted(rng.sample([i.symbol for i in self.insts], count))
        styles = ("convention", "convention", "convention", "links_by_client", "links_by_order")
        tp_lo = rng.uniform(0.003, 0.008)
        sl_lo = rng.uniform(0.003, 0.007)
        return Strategy(
            strategy_id=name,
            symbols=symbols,
            market_ratio=rng.choice((1.0, 0.8, 0.6)),
            tp_style=rng.choice(("abs", "pct", "both")),
            tp_range=(tp_lo, tp_lo * rng.uniform(1.5, 2.5)),
            sl_range=(sl_lo, sl_lo * rng.uniform(1.3, 2.0)),
            link_style=styles[k % len(styles)],
            algo_tpsl=k % 3 == 2,
            scale_out=k % 4 == 1,
            id_alias=k % 5 == 3,
            ts_format=("iso", "ms", "s")[k % 3],
            numbers_as_json=k % 2 == 1,
            long_bias=rng.uniform(0.35, 0.65),
            close_per_minute=1 / rng.uniform(240, 900),
            max_open=rng.choice((2, 3)),
        )

    # ------------------------------------------------------------------ helpers
    def _round_price(self, inst: Instrument, price: Decimal) -> Decimal:
        return max(inst.tick_size, (price / inst.tick_size).quantize(Decimal(1), ROUND_HALF_UP) * inst.tick_size)

    def _round_qty(self, inst: Instrument, qty: Decimal) -> Decimal:
        return (qty / inst.step_size).quantize(Decimal(1), ROUND_DOWN) * inst.step_size

    def _rand_id(self, n: int) -> str:
        return "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(n))

    def _num(self, strategy: Strategy, value: Decimal):
        return Number(str(value)) if strategy.numbers_as_json else str(value)

    def _timestamp(self, strategy: Strategy, ms: int):
        if strategy.ts_format == "ms":
            return ms
        if strategy.ts_format == "s":
            return Number(f"{ms // 1000}.{ms % 1000:03d}")
        dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
        return dt.isoformat(timespec="milliseconds")

    def _key_side(self, side: str) -> str:
        return side if self.cfg.mode == "hedge" else "BOTH"

    def _key_qty(self, symbol: str, key_side: str) -> Decimal:
        kp = self.account.keys.get(f"{symbol}_{key_side}")
        return abs(kp.qty) if kp else Decimal(0)

    def _place(self, pos: SimPosition, role: str, side: str, order_type: str, qty: Decimal, t: int, **kw) -> Order:
        """An order of a strategy position, linked the way its strategy links orders."""
        code = {"entry": "en", "take_profit": "tp", "stop_loss": "sl", "close": "cl"}[role]
        symbol = pos.inst.symbol
        style = pos.strategy.link_style
        link = Link(pos.sid, role)
        if style == "convention":
            cid = f"{pos.sid}-{code}"
            order_id = None
        else:
            cid = f"x-{self._rand_id(20)}"
            order_id = self.account.new_order_id(symbol)
            if style == "links_by_order":
                # real accounts: order ids are per symbol, so some link records name theirs
                named = symbol if self.cfg.real_account and order_id % 2 == 0 else None
                self.account.add_link(pos.sid, role, order_id=order_id, symbol=named)
            else:
                self.account.add_link(pos.sid, role, client_order_id=cid)
        return self.account.place_order(
            symbol, side, pos.key_side, order_type, qty, cid, t, link=link, order_id=order_id, **kw
        )

    def _market_fills(
        self, order: Order, inst: Instrument, price: Decimal, t: int, parts: int, qty: Decimal | None = None
    ) -> None:
        """Fill ``qty`` (default: all) of a MARKET order in up to ``parts`` pieces, each a tick worse."""
        qty = order.remaining if qty is None else qty
        steps = int(qty / inst.step_size)
        parts = max(1, min(parts, steps))
        cuts = sorted(self.rng.sample(range(1, steps), parts - 1)) if parts > 1 else []
        bounds = [0, *cuts, steps]
        worse = 1 if order.side == "BUY" else -1
        p = self._round_price(inst, price + worse * inst.tick_size * self.rng.randint(0, 2))
        for a, b in itertools.pairwise(bounds):
            self.account.fill(order, inst.step_size * (b - a), p, t)
            p = self._round_price(inst, p + worse * inst.tick_size)

    # ------------------------------------------------------------------ signals and entries
    def _new_position(self, strategy: Strategy, inst: Instrument, t0: int) -> None:
        rng = self.rng
        price = self.prices[inst.symbol]
        side = "LONG" if rng.random() < strategy.long_bias else "SHORT"
        notional = inst.typical_notional * Decimal(str(round(rng.uniform(0.5, 2.0), 2)))
        qty = max(inst.min_qty, self._round_qty(inst, notional / price))
        strategy.seq += 1
        sid = f"{strategy.strategy_id}_{strategy.seq:06d}_{inst.base_asset.lower()[:4]}"
        d = 1 if side == "LONG" else -1
        tp_f = Decimal(str(round(rng.uniform(*strategy.tp_range), 4)))
        sl_f = Decimal(str(round(rng.uniform(*strategy.sl_range), 4)))
        tp_abs = sl_abs = tp_pct = sl_pct = None
        if strategy.tp_style in ("abs", "both"):
            tp_abs = self._round_price(inst, price * (1 + d * tp_f))
            sl_abs = self._round_price(inst, price * (1 - d * sl_f))
        if strategy.tp_style in ("pct", "both"):
            tp_pct, sl_pct = tp_f, sl_f
        ts = self.clock.tick(rng, t0)
        rec: dict = {("id" if strategy.id_alias else "signal_id"): sid}
        rec.update(
            strategy_id=strategy.strategy_id,
            symbol=inst.symbol,
            action="buy" if side == "LONG" else "sell",
            quantity=self._num(strategy, qty),
            price=self._num(strategy, price),
        )
        for name, value in (
            ("take_profit", tp_abs),
            ("stop_loss", sl_abs),
            ("take_profit_pct", tp_pct),
            ("stop_loss_pct", sl_pct),
        ):
            if value is not None:
                rec[name] = self._num(strategy, value)
        rec["timestamp"] = self._timestamp(strategy, ts)
        if self.cfg.account_id != "default" or rng.random() < 0.5:
            rec["account_id"] = self.cfg.account_id
        rec["confidence"] = Number(f"{rng.uniform(0.5, 0.99):.2f}")
        rec["strategy"] = strategy.strategy_id.replace("_", " ").title()
        rec["timeframe"] = rng.choice(TIMEFRAMES)
        rec["metadata"] = {
            "model_version": f"v{1 + strategy.seq % 3}",
            "regime": rng.choice(("trend", "chop")),
        }
        info = SignalInfo(
            sid, strategy.strategy_id, self.cfg.account_id, inst.symbol, side, tp_abs, sl_abs, tp_pct, sl_pct
        )
        self.account.add_signal(rec, info)
        pos = SimPosition(sid, strategy, inst, side, self._key_side(side), qty, price, tp_abs, sl_abs, tp_pct, sl_pct)
        self.positions.append(pos)
        t = self.clock.tick(rng, t0)
        if rng.random() < strategy.market_ratio:
            order = self._place(pos, "entry", pos.entry_side, "MARKET", qty, t)
            pos.entry = order
            self._market_fills(order, inst, price, t, rng.choice((1, 1, 2, 3)))
            self.account.finish_order(order, "FILLED", t)
            self._entry_done(pos, t0)
        else:
            limit = self._round_price(inst, price - d * inst.tick_size * rng.randint(1, 8))
            pos.entry = self._place(pos, "entry", pos.entry_side, "LIMIT", qty, t, price=limit, resting=True)
            pos.entry_expires = t + rng.randint(15, 60) * MINUTE

    def _work_limit(self, pos: SimPosition, t0: int) -> None:
        order = pos.entry
        assert order is not None
        price = self.prices[pos.inst.symbol]
        crossed = price <= order.price if order.side == "BUY" else price >= order.price
        if crossed:
            t = self.clock.tick(self.rng, t0)
            qty = order.remaining
            if self.rng.random() < 0.3 and qty >= 2 * pos.inst.step_size:
                qty = self._round_qty(pos.inst, qty / 2)
            self.account.fill(order, qty, order.price, t, maker=True)
            if order.remaining == 0:
                self.account.finish_order(order, "FILLED", t)
                self._entry_done(pos, t0)
                return
        if t0 >= pos.entry_expires:
            t = self.clock.tick(self.rng, t0)
            self.account.finish_order(order, "CANCELED", t)
            if order.executed:
                self._entry_done(pos, t0)
            else:
                pos.state = "done"
                self.account.books.forget_signal(pos.sid)

    def _entry_done(self, pos: SimPosition, t0: int) -> None:
        order = pos.entry
        assert order is not None
        pos.filled = order.executed
        pos.filled_quote = order.cum_quote
        pos.state = "open"
        vwap = pos.filled_quote / pos.filled
        d = pos.dir
        pos.tp_price = (
            pos.tp_abs if pos.tp_abs is not None else self._round_price(pos.inst, vwap * (1 + d * pos.tp_pct))
        )
        pos.sl_price = (
            pos.sl_abs if pos.sl_abs is not None else self._round_price(pos.inst, vwap * (1 - d * pos.sl_pct))
        )
        tp_qty = pos.filled
        if pos.strategy.scale_out and pos.filled >= 2 * pos.inst.step_size:
            tp_qty = self._round_qty(pos.inst, pos.filled / 2)
        t = self.clock.tick(self.rng, t0)
        pos.tp = self._protective(pos, "take_profit", tp_qty, pos.tp_price, t)
        pos.sl = self._protective(pos, "stop_loss", pos.filled, pos.sl_price, t)

    def _protective(self, pos: SimPosition, role: str, qty: Decimal, trigger: Decimal, t: int):
        kind = "TAKE_PROFIT_MARKET" if role == "take_profit" else "STOP_MARKET"
        if pos.strategy.algo_tpsl:
            code = "tp" if role == "take_profit" else "sl"
            return self.account.place_algo(
                pos.inst.symbol,
                pos.exit_side,
                pos.key_side,
                kind,
                qty,
                trigger,
                f"{pos.sid}-{code}",
                t,
                Link(pos.sid, role),
            )
        return self._place(pos, role, pos.exit_side, kind, qty, t, stop_price=trigger, resting=True)

    # ------------------------------------------------------------------ exits
    def _cancel(self, order: Order | AlgoOrder | None, t: int, status: str = "CANCELED") -> None:
        if order is None or order.status not in ("NEW",):
            return
        if isinstance(order, AlgoOrder):
            self.account.finish_algo(order, status, t)
        else:
            self.account.finish_order(order, status, t)

    def _exit_fill(self, pos: SimPosition, order: Order, t: int) -> Decimal:
        """Fill an exit; in hedge mode a reducing order never exceeds what the key holds."""
        qty = order.remaining
        if self.cfg.mode == "hedge":
            qty = min(qty, self._key_qty(pos.inst.symbol, pos.key_side))
        if qty <= 0:
            self.account.finish_order(order, "EXPIRED", t)
            return Decimal(0)
        # fill what the key allows; a reduce-only remainder expires
        self._market_fills(order, pos.inst, self.prices[pos.inst.symbol], t, self.rng.choice((1, 1, 2)), qty)
        self.account.finish_order(order, "FILLED" if order.remaining == 0 else "EXPIRED", t)
        pos.closed_qty += qty
        self._after_flat(pos.inst.symbol, pos.key_side, t)
        return qty

    def _check_triggers(self, pos: SimPosition, t0: int) -> None:
        price = self.prices[pos.inst.symbol]
        d = pos.dir
        for leg, other, role in ((pos.tp, pos.sl, "take_profit"), (pos.sl, pos.tp, "stop_loss")):
            if leg is None or leg.status != "NEW":
                continue
            trigger = leg.trigger_price if isinstance(leg, AlgoOrder) else leg.stop_price
            hit = (price - trigger) * d >= 0 if role == "take_profit" else (price - trigger) * d <= 0
            if not hit:
                continue
            t = self.clock.tick(self.rng, t0)
            # an algo-service order fires as a new MARKET order with its own id
            order = self.account.trigger_algo(leg, t, self._rand_id(22)) if isinstance(leg, AlgoOrder) else leg
            done = self._exit_fill(pos, order, t)
            if isinstance(leg, AlgoOrder):
                self.account.finish_algo(leg, "FINISHED", t)
            if pos.state == "done":  # the fill flattened the key: every position on it is closed
                self._cancel(other, t)
                return
            if role == "take_profit" and pos.strategy.scale_out and not pos.scaled and pos.open_qty > 0 and done:
                # scale out: the rest rides with a stop at the entry price and a second target
                pos.scaled = True
                self._cancel(other, t)
                vwap = pos.filled_quote / pos.filled
                t2 = self.clock.tick(self.rng, t0)
                pos.sl = self._protective(pos, "stop_loss", pos.open_qty, self._round_price(pos.inst, vwap), t2)
                second = self._round_price(pos.inst, pos.tp_price + (pos.tp_price - vwap))
                pos.tp = self._protective(pos, "take_profit", pos.open_qty, second, t2)
            else:
                self._cancel(other, t)
                pos.state = "done"
            return

    def _linked_close(self, pos: SimPosition, t0: int) -> None:
        rng = self.rng
        strategy = pos.strategy
        qty = pos.open_qty
        if rng.random() < 0.04:
            qty += pos.inst.step_size * rng.randint(1, 3)  # a bot bug: an over-close
        t = self.clock.tick(rng, t0)
        strategy.seq += 1
        close_sid = f"{strategy.strategy_id}_{strategy.seq:06d}_cl"
        rec: dict = {("id" if strategy.id_alias else "signal_id"): close_sid}
        rec.update(
            strategy_id=strategy.strategy_id,
            symbol=pos.inst.symbol,
            action="close",
            quantity=self._num(strategy, qty),
            price=self._num(strategy, self.prices[pos.inst.symbol]),
            timestamp=self._timestamp(strategy, t),
            metadata={"closes": pos.sid},
        )
        self.account.add_signal(rec)
        self._cancel(pos.tp, t)
        self._cancel(pos.sl, t)
        t = self.clock.tick(rng, t0)
        order = self._place(pos, "close", pos.exit_side, "MARKET", qty, t)
        self._exit_fill(pos, order, t)
        pos.state = "done"

    # ------------------------------------------------------------------ outsiders
    def _manual_trade(self, inst: Instrument, t0: int) -> None:
        """A human in the Binance UI (or another bot) trades the same account: unlinked."""
        rng = self.rng
        self.manual_seq += 1
        # "ext-grid-N" looks like {signal_id}-{code} but names no signal: it must stay unlinked
        cid = f"web_{self._rand_id(16)}" if rng.random() < 0.75 else f"ext-grid-{self.manual_seq}"
        key_side = rng.choice(("LONG", "SHORT")) if self.cfg.mode == "hedge" else "BOTH"
        held = self._key_qty(inst.symbol, key_side)
        small = max(inst.min_qty, self._round_qty(inst, inst.typical_notional / 2 / self.prices[inst.symbol]))
        if self.cfg.mode == "hedge":
            if held > 0 and rng.random() < 0.7:
                qty = held if rng.random() < 0.25 else max(inst.min_qty, self._round_qty(inst, held * Decimal("0.4")))
                qty = min(qty, held)
                side = "SELL" if key_side == "LONG" else "BUY"
            else:
                qty = small
                side = "BUY" if key_side == "LONG" else "SELL"
        else:
            qty, side = small, rng.choice(("BUY", "SELL"))
        t = self.clock.tick(rng, t0)
        order = self.account.place_order(inst.symbol, side, key_side, "MARKET", qty, cid, t)
        self._market_fills(order, inst, self.prices[inst.symbol], t, 1)
        self.account.finish_order(order, "FILLED", t)
        self._after_flat(inst.symbol, key_side, t)

    def _liquidate(self, inst: Instrument, key_side: str, t0: int, force_clearance: bool = False) -> None:
        held_signed = self.account.keys[f"{inst.symbol}_{key_side}"].qty
        qty = abs(held_signed)
        side = "SELL" if held_signed > 0 else "BUY"
        t = self.clock.tick(self.rng, t0)
        cid = f"autoclose-{t}{self.rng.randint(100000, 999999)}" if self.rng.random() < 0.85 else f"adl_autoclose-{t}"
        if force_clearance:
            cid = f"autoclose-{t}000001"
        adverse = Decimal(str(round(self.rng.uniform(0.003, 0.01), 4)))
        price = self.prices[inst.symbol] * (1 - adverse if side == "SELL" else 1 + adverse)
        order = self.account.place_order(
            inst.symbol,
            side,
            key_side,
            "LIMIT",
            qty,
            cid,
            t,
            price=self._round_price(inst, price),
            time_in_force="IOC",
        )
        self.account.fill(order, qty, self._round_price(inst, price), t)
        self.account.finish_order(order, "FILLED", t)
        if self.cfg.account_income and cid.startswith("autoclose-"):
            # the liquidation clearance fee, posted right after the liquidation order's fills
            self.account.insurance_clear(order, t + 1)
            if self.account.served(t):
                self.served_liquidations += 1
        # the exchange expires reduce-only protection of a liquidated position; bots stop managing it
        for pos in self.positions:
            if pos.inst.symbol == inst.symbol and pos.key_side == key_side and pos.state != "done":
                self._retire(pos, t)

    def _retire(self, pos: SimPosition, t: int) -> None:
        if pos.state == "entering" and pos.entry is not None and pos.entry.status == "NEW":
            self.account.finish_order(pos.entry, "CANCELED", t)
            if not pos.entry.executed:
                self.account.books.forget_signal(pos.sid)
        self._cancel(pos.tp, t, "EXPIRED")
        self._cancel(pos.sl, t, "EXPIRED")
        pos.state = "done"

    def _after_flat(self, symbol: str, key_side: str, t: int) -> None:
        """Hedge mode: a key back at zero closed every position on it (SPEC §4.2), so bots stop."""
        if self.cfg.mode != "hedge" or self._key_qty(symbol, key_side) != 0:
            return
        for pos in self.positions:
            if pos.inst.symbol == symbol and pos.key_side == key_side and pos.state != "done":
                if pos.state == "entering" and not (pos.entry and pos.entry.executed):
                    continue  # nothing filled yet: it will open the next episode
                self._retire(pos, t)

    # ------------------------------------------------------------------ main loop
    def _step_prices(self, minute: int) -> None:
        rng = self.rng
        for inst in self.insts:
            sigma = inst.daily_vol / math.sqrt(1440)
            shock = rng.gauss(0.0, sigma)
            if rng.random() < 0.0015:
                shock += rng.choice((-1, 1)) * sigma * rng.uniform(6, 15)
            self.log_prices[inst.symbol] += shock
            self.prices[inst.symbol] = self._round_price(inst, Decimal(repr(math.exp(self.log_prices[inst.symbol]))))
        self.bnb_log += rng.gauss(0.0, 0.03 / math.sqrt(1440))
        # fees paid in BNB convert at the BNBUSDT price: the traded one when BNBUSDT is a symbol
        bnb = self.prices.get("BNBUSDT") or Decimal(f"{math.exp(self.bnb_log):.2f}")
        self.account.bnb_price = bnb
        self.account.pay_fees_in_bnb = self.bnb_from <= minute < self.bnb_until
        self.account.maker_rate = MAKER_REBATE if self.rebate_from <= minute < self.rebate_until else MAKER_RATE
        t0 = self.start_ms + minute * MINUTE
        prev = self.bnb_prev if self.bnb_prev is not None else bnb
        self.account.write_kline("BNBUSDT", t0, prev, max(prev, bnb), min(prev, bnb), bnb)
        self.bnb_prev = bnb

    def _tradable(self, inst: Instrument, t: int) -> bool:
        """A quarterly trades until its delivery."""
        return inst.perpetual or (t < inst.delivery_date and inst.symbol not in self.account.delivered)

    def _deliveries(self, t0: int) -> None:
        for inst in self.insts:
            if not inst.perpetual and inst.delivery_date <= t0 and inst.symbol not in self.account.delivered:
                self.account.deliver(inst.symbol, self.prices[inst.symbol], t0)
                for pos in self.positions:
                    if pos.inst.symbol == inst.symbol and pos.state != "done":
                        self._retire(pos, t0)
                self.positions = [p for p in self.positions if p.state != "done"]

    def _account_income(self, minute: int, t0: int) -> None:
        """Transfers at noon now and then; the rebate programme pays at the end of each UTC day.

        Modelling choices (Binance documents the income types, not their schedule): a TRANSFER
        (symbol "") at 12:00:30 UTC on 70 % of days, mostly in; the rebate programme pays 10 % of
        the day's USDT commission at 23:59:59.999 of that day, as COMMISSION_REBATE, API_REBATE
        or FEE_RETURN by day; INSURANCE_CLEAR (0.5 % of the notional) follows each ``autoclose-``
        liquidation by 1 ms (ADL closes pay none).
        """
        of_day = (t0 % DAY) // MINUTE
        if of_day == 720 and self.rng2.random() < 0.7:
            usdt = self.account.balances.get("USDT", Decimal(0))
            if self.rng2.random() < 0.6 or usdt < 500:
                amount = Decimal(self.rng2.randint(100, 1500))
            else:
                amount = -Decimal(self.rng2.randint(50, 400))
            self.account.transfer("USDT", amount, t0 + 30_000)
        if of_day == 1439:
            day = t0 // DAY
            paid = self.account.day_commission(day, "USDT")
            amount = (paid * Decimal("0.1")).quantize(Decimal("1e-8"), ROUND_DOWN)
            if amount > 0:
                kind = ("COMMISSION_REBATE", "API_REBATE", "FEE_RETURN")[day % 3]
                self.account.rebate(kind, "USDT", amount, t0 + MINUTE - 1)

    def run(self) -> AccountSummary:
        cfg = self.cfg
        rng = self.rng
        p_entry = 1.0 / cfg.entry_every_minutes
        p_manual = cfg.manual_per_symbol_day / 1440
        p_liq = cfg.liquidations_per_key_day / 1440
        for minute in range(self.minutes):
            t0 = self.start_ms + minute * MINUTE
            self._step_prices(minute)
            if minute and minute % 480 == 0:
                for inst in self.insts:
                    if not inst.perpetual:
                        continue  # delivery contracts pay no funding
                    rate = Decimal(f"{max(-0.003, min(0.003, rng.gauss(0.0001, 0.00015))):.8f}")
                    self.account.funding(inst.symbol, rate, self.prices[inst.symbol], t0)
            self._deliveries(t0)
            if minute % cfg.snapshot_minutes == 0 and minute:
                self.account.snapshot(t0, self.prices)
            self.clock.start_minute(t0, rng)
            live = [p for p in self.positions if p.state != "done"]
            for pos in live:
                if pos.state == "entering":
                    self._work_limit(pos, t0)
                elif pos.state == "open":
                    self._check_triggers(pos, t0)
                    if pos.state == "open" and rng.random() < pos.strategy.close_per_minute:
                        self._linked_close(pos, t0)
                if pos.state == "done":
                    self._after_flat(pos.inst.symbol, pos.key_side, self.clock.now)
            self.positions = [p for p in self.positions if p.state != "done"]
            for strategy in self.strategies:
                for symbol in strategy.symbols:
                    if rng.random() >= p_entry:
                        continue
                    if symbol in self.account.delivered:
                        continue
                    held = sum(1 for p in self.positions if p.strategy is strategy and p.inst.symbol == symbol)
                    if held >= strategy.max_open:
                        if rng.random() < 0.2:
                            self._hold_signal(strategy, symbol, t0)
                        continue
                    self._new_position(strategy, instrument(symbol), t0)
            for inst in self.insts:
                traded = inst.symbol in self.account.traded_symbols
                if traded and rng.random() < p_manual and self._tradable(inst, t0):
                    self._manual_trade(inst, t0)
                for key_side in self.account.position_sides():
                    kp = self.account.keys.get(f"{inst.symbol}_{key_side}")
                    if kp is not None and kp.qty != 0 and rng.random() < p_liq:
                        self._liquidate(inst, key_side, t0)
            if cfg.real_account and minute == self.minutes * 6 // 7 and not self.served_liquidations:
                self._force_liquidation(t0)
            if cfg.account_income:
                self._account_income(minute, t0)
            if cfg.progress and (minute + 1) % 1440 == 0:
                cfg.progress(minute + 1, self.minutes)
        end = self.start_ms + self.minutes * MINUTE
        self.account.snapshot(end, self.prices)
        if cfg.progress:
            cfg.progress(self.minutes, self.minutes)
        return self.account.close(dict(self.prices))

    def _force_liquidation(self, t0: int) -> None:
        """The real-account preset promises a served liquidation with its INSURANCE_CLEAR."""
        for inst in self.insts:
            for key_side in self.account.position_sides():
                kp = self.account.keys.get(f"{inst.symbol}_{key_side}")
                if inst.perpetual and kp is not None and kp.qty != 0:
                    self._liquidate(inst, key_side, t0, force_clearance=True)
                    return

    def _hold_signal(self, strategy: Strategy, symbol: str, t0: int) -> None:
        strategy.seq += 1
        sid = f"{strategy.strategy_id}_{strategy.seq:06d}_hd"
        t = self.clock.tick(self.rng, t0)
        rec: dict = {("id" if strategy.id_alias else "signal_id"): sid}
        rec.update(
            strategy_id=strategy.strategy_id,
            symbol=symbol,
            action="hold",
            timestamp=self._timestamp(strategy, t),
        )
        self.account.add_signal(rec)


def generate(cfg: GenerateConfig) -> AccountSummary:
    """Run the simulation and write the replay directory plus ``expected_strategy_positions.jsonl``."""
    started = _time.perf_counter()
    sim = Simulation(cfg)
    try:
        summary = sim.run()
    except BaseException:
        sim.account.abort()
        raise
    summary.files["_seconds"] = round(_time.perf_counter() - started, 2)  # type: ignore[assignment]
    return summary
