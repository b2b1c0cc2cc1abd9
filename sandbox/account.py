"""A paper Binance USD-M futures account: orders, fills, income and snapshots as the API reports them.

Both the random simulator (:mod:`sandbox.generator`) and scripted scenarios
(:mod:`sandbox.scenario`) drive this class. Every fill goes through Binance's accounting
(:mod:`sandbox.accounting`) and, with its true link, into the ground truth
(:mod:`sandbox.books`); every record is streamed to the replay directory (SPEC §3.4).

A real account's shapes (SPEC §3.2, §7):

- ``orderId``, ``algoId`` and trade ``id`` are sequences **per symbol**; every symbol's
  sequence starts near the same number, so equal numbers on two symbols are common;
- commission is signed: a negative maker rate books a rebate (negative ``commission``,
  positive ``COMMISSION`` income); fees may be paid in BNB at the close of the
  ``BNBUSDT`` 1-minute kline written to ``klines.jsonl``;
- each symbol settles in its margin asset (``ETHBTC`` in BTC), listed in ``symbols.jsonl``;
- the wallet ``balance`` per asset changes by exactly the income records
  (``balances.jsonl``, GET /fapi/v3/balance objects plus ``snapshotTime``);
- algo orders go NEW → (TRIGGERING) → TRIGGERED → FINISHED, or CANCELED / EXPIRED,
  with ``actualOrderId`` a string (``""`` until triggered);
- with ``history_start_ms`` the account trades from the start but the replay holds only
  what Binance would still serve (records with time ≥ history_start); the ground truth
  then starts from the SPEC §4.1 opening state of each key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from pathlib import Path

from sandbox.accounting import ZERO, KeyPosition
from sandbox.books import LIQUIDATION, UNLINKED, Fill, GroundTruth, Link, SignalInfo
from sandbox.instruments import INSTRUMENTS, exchange_info_symbol, instrument
from sandbox.jsonl import EXACT, JsonlWriter, dec, q8

TAKER_RATE = Decimal("0.0005")
MAKER_RATE = Decimal("0.0002")
BNB_DISCOUNT = Decimal("0.9")
LEVERAGE = Decimal(20)
MAINT_RATE = Decimal("0.004")

REPLAY_FILES = {
    "signals": "signals.jsonl",
    "order_links": "order_links.jsonl",
    "trades": "futures_trades.jsonl",
    "orders": "futures_orders.jsonl",
    "algo_orders": "futures_algo_orders.jsonl",
    "position_risk": "position_risk.jsonl",
    "income": "income.jsonl",
    "balances": "balances.jsonl",
    "klines": "klines.jsonl",
    "symbols": "symbols.jsonl",
}
# where every symbol's id sequence starts (per-symbol sequences, SPEC §3.2): near the same number
ORDER_ID_BASE = 8_389_765_000
TRADE_ID_BASE = 1_000_001
ALGO_ID_BASE = 3_000_000
ID_STAGGER = 3  # symbol k starts k·3 above the base, so the ranges overlap almost entirely
START_BALANCES = {"USDT": Decimal(10000), "BNB": Decimal(10), "BTC": Decimal("0.5")}
INSURANCE_CLEAR_RATE = Decimal("0.005")
DAY_MS = 86_400_000
GROUND_TRUTH_FILE = "expected_strategy_positions.jsonl"
CODE_ROLES = {"en": "entry", "tp": "take_profit", "sl": "stop_loss", "cl": "close"}
LIQUIDATION_PREFIXES = ("autoclose-", "adl_autoclose", "settlement_autoclose-")


def money(x: Decimal) -> str:
    """Binance's 8-decimal money string ("-0.01000000")."""
    return format(q8(x), "f")


def resolve_link(
    client_order_id: str,
    order_id: int | None,
    known_signals: set[str],
    by_order_id: dict[tuple[str, int], Link],
    by_client_id: dict[str, Link],
    symbol: str = "",
) -> Link:
    """SPEC §3.3, first match wins: explicit link (order ids per symbol), ``{signal_id}-{code}``, liquidation ids."""
    if order_id is not None and (symbol, order_id) in by_order_id:
        return by_order_id[(symbol, order_id)]
    if client_order_id in by_client_id:
        return by_client_id[client_order_id]
    sid, dash, code = client_order_id.rpartition("-")
    if dash and code in CODE_ROLES and sid in known_signals:
        return Link(sid, CODE_ROLES[code])
    if client_order_id.startswith(LIQUIDATION_PREFIXES):
        return LIQUIDATION
    return UNLINKED


@dataclass
class Order:
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    position_side: str
    type: str
    orig_qty: Decimal
    time: int
    link: Link
    price: Decimal = ZERO
    stop_price: Decimal = ZERO
    orig_type: str | None = None
    time_in_force: str = "GTC"
    reduce_only: bool = False
    close_position: bool = False
    working_type: str = "CONTRACT_PRICE"
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    update_time: int = 0

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed

    def record(self) -> dict:
        avg = self.cum_quote / self.executed if self.executed else ZERO
        return {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "status": self.status,
            "clientOrderId": self.client_order_id,
            "price": dec(self.price),
            "avgPrice": dec(avg.quantize(Decimal("1e-8"))) if self.executed else "0",
            "origQty": dec(self.orig_qty),
            "executedQty": dec(self.executed),
            "cumQuote": dec(self.cum_quote),
            "timeInForce": self.time_in_force,
            "type": self.type,
            "reduceOnly": self.reduce_only,
            "closePosition": self.close_position,
            "side": self.side,
            "positionSide": self.position_side,
            "stopPrice": dec(self.stop_price),
            "workingType": self.working_type,
            "priceProtect": False,
            "origType": self.orig_type or self.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": self.time,
            "updateTime": self.update_time or self.time,
        }


@dataclass
class AlgoOrder:
    """A conditional order held by Binance's algo service until it triggers."""

    algo_id: int
    symbol: str
    client_algo_id: str
    order_type: str  # TAKE_PROFIT_MARKET | STOP_MARKET
    side: str
    position_side: str
    quantity: Decimal
    trigger_price: Decimal
    create_time: int
    link: Link
    status: str = "NEW"
    update_time: int = 0
    trigger_time: int = 0
    actual_order: Order | None = None

    def record(self) -> dict:
        o = self.actual_order if self.status not in ("NEW", "TRIGGERING") else None
        return {
            "algoId": self.algo_id,
            "clientAlgoId": self.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": self.order_type,
            "symbol": self.symbol,
            "side": self.side,
            "positionSide": self.position_side,
            "timeInForce": "GTC",
            "quantity": dec(self.quantity),
            "algoStatus": self.status,
            "triggerPrice": dec(self.trigger_price),
            "price": "0",
            "workingType": "MARK_PRICE",
            "closePosition": False,
            "priceProtect": False,
            "reduceOnly": False,
            "createTime": self.create_time,
            "updateTime": self.update_time or self.create_time,
            "triggerTime": self.trigger_time,
            "actualOrderId": str(o.order_id) if o else "",
            "executedQty": dec(o.executed) if o else "0",
            "avgPrice": dec((o.cum_quote / o.executed).quantize(Decimal("1e-8"))) if o and o.executed else "0",
        }


@dataclass
class AccountSummary:
    fills: int = 0
    orders: int = 0
    signals: int = 0
    income: int = 0
    snapshots: int = 0
    positions: int = 0
    over_closes: int = 0
    unallocated_income: int = 0
    files: dict[str, int] = field(default_factory=dict)


class PaperAccount:
    """One Binance USD-M account writing a replay directory and its ground truth."""

    def __init__(
        self,
        out_dir: Path,
        account_id: str = "default",
        position_mode: str = "hedge",
        *,
        history_start_ms: int | None = None,
        track_income: bool = False,
        tran_id_base: int = 9_689_000_000,
    ):
        if position_mode not in ("hedge", "one_way"):
            raise ValueError(f"position mode must be hedge or one_way, got {position_mode!r}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name in [*REPLAY_FILES.values(), GROUND_TRUTH_FILE]:
            (self.out_dir / name).unlink(missing_ok=True)
        for stale in self.out_dir.glob(".closed-*.jsonl"):  # left by an interrupted run
            stale.unlink()
        self.account_id = account_id
        self.mode = position_mode
        (self.out_dir / "account.json").write_text(
            json.dumps({"account_id": account_id, "position_mode": position_mode}) + "\n", encoding="utf-8"
        )
        self.w = {name: JsonlWriter(self.out_dir / fname) for name, fname in REPLAY_FILES.items()}
        self.books = GroundTruth(self.out_dir / GROUND_TRUTH_FILE, account_id, position_mode, track_income)
        self.keys: dict[str, KeyPosition] = {}  # Binance's own view of every key
        self.history_start = history_start_ms
        self.known_signals: set[str] = set()
        self.signal_symbols: dict[str, str] = {}
        self.links_by_order: dict[tuple[str, int], Link] = {}
        self.links_by_client: dict[str, Link] = {}
        self._seq: dict[str, dict[str, int]] = {"order": {}, "trade": {}, "algo": {}}
        self._next_tran = tran_id_base
        self.traded_symbols: list[str] = []
        self.bnb_price = Decimal("310")
        self.pay_fees_in_bnb = False
        self.maker_rate = MAKER_RATE
        self.balances: dict[str, Decimal] = dict(START_BALANCES)
        self.balance_update: dict[str, int] = {}
        self._day_commission: dict[tuple[int, str], Decimal] = {}
        self._kline_close: dict[int, Decimal] = {}
        self.delivered: dict[str, int] = {}
        self.last_snapshot: dict[str, tuple[int, Decimal, Decimal]] = {}
        self.triggered_algos = 0

    # ------------------------------------------------------------ served history
    def served(self, time: int) -> bool:
        """Would Binance still serve a record of this time? (SPEC §7: retention relative to the data clock)"""
        return self.history_start is None or time >= self.history_start

    def _emit(self, kind: str, record: dict, time: int) -> None:
        if self.served(time):
            self.w[kind].write(record)

    # ------------------------------------------------------------ ids (per symbol, SPEC §3.2)
    def _next(self, kind: str, symbol: str, base: int) -> int:
        seqs = self._seq[kind]
        n = seqs.get(symbol)
        if n is None:
            n = base + ID_STAGGER * len(seqs)
        seqs[symbol] = n + 1
        return n

    def _order_id(self, symbol: str) -> int:
        return self._next("order", symbol, ORDER_ID_BASE)

    def _trade_id(self, symbol: str) -> int:
        return self._next("trade", symbol, TRADE_ID_BASE)

    def _algo_id(self, symbol: str) -> int:
        return self._next("algo", symbol, ALGO_ID_BASE)

    def claim_order_id(self, symbol: str, order_id: int) -> int:
        """Use ``order_id`` on ``symbol`` (scenarios force two symbols to share a number); never reused."""
        seqs = self._seq["order"]
        nxt = seqs.get(symbol, ORDER_ID_BASE + ID_STAGGER * len(seqs))
        if order_id < nxt:
            raise ValueError(f"orderId {order_id} on {symbol} is below its sequence ({nxt}): it may be taken")
        seqs[symbol] = order_id + 1
        return order_id

    def _tran_id(self) -> int:
        self._next_tran += 1
        return self._next_tran

    # ------------------------------------------------------------ signals and links
    def add_signal(self, record: dict, info: SignalInfo | None = None) -> None:
        """Write a signal; ``info`` registers an opening signal with the ground truth."""
        self.w["signals"].write(record)
        sid = record.get("signal_id", record.get("id"))
        self.known_signals.add(sid)
        if record.get("symbol"):
            self.signal_symbols[sid] = record["symbol"]
        if info is not None:
            self.books.register_signal(info)

    def add_link(
        self,
        signal_id: str,
        role: str,
        *,
        order_id: int | None = None,
        client_order_id: str | None = None,
        symbol: str | None = None,
    ):
        """An explicit order link (SPEC §3.3 rule 1); an ``order_id`` is matched on ``symbol``, else the signal's."""
        link = Link(signal_id, role)
        rec: dict = {}
        if order_id is not None:
            rec["order_id"] = order_id
            self.links_by_order[(symbol or self.signal_symbols.get(signal_id, ""), order_id)] = link
        if client_order_id is not None:
            rec["client_order_id"] = client_order_id
            self.links_by_client[client_order_id] = link
        if symbol is not None:
            rec["symbol"] = symbol
        rec.update(signal_id=signal_id, role=role)
        self.w["order_links"].write(rec)

    def link_for(self, client_order_id: str, order_id: int | None = None, symbol: str = "") -> Link:
        return resolve_link(
            client_order_id, order_id, self.known_signals, self.links_by_order, self.links_by_client, symbol
        )

    # ------------------------------------------------------------ orders
    def new_order_id(self, symbol: str) -> int:
        """Reserve the next orderId (for explicit links written before the order)."""
        return self._order_id(symbol)

    def _use_symbol(self, symbol: str) -> None:
        if symbol not in self.traded_symbols:
            inst = instrument(symbol)
            self.traded_symbols.append(symbol)
            self.balances.setdefault(inst.margin_asset, ZERO)

    def place_order(
        self,
        symbol: str,
        side: str,
        position_side: str,
        order_type: str,
        qty: Decimal,
        client_order_id: str,
        time: int,
        *,
        price: Decimal = ZERO,
        stop_price: Decimal = ZERO,
        link: Link | None = None,
        order_id: int | None = None,
        orig_type: str | None = None,
        resting: bool = False,
        reduce_only: bool = False,
        time_in_force: str = "GTC",
    ) -> Order:
        """Create an order; ``resting`` orders (limits, stops) are written as NEW right away."""
        self._use_symbol(symbol)
        oid = order_id if order_id is not None else self._order_id(symbol)
        order = Order(
            order_id=oid,
            symbol=symbol,
            client_order_id=client_order_id,
            side=side,
            position_side=position_side,
            type=order_type,
            orig_qty=qty,
            time=time,
            link=link if link is not None else self.link_for(client_order_id, oid, symbol),
            price=price,
            stop_price=stop_price,
            orig_type=orig_type,
            reduce_only=reduce_only,
            time_in_force=time_in_force,
            working_type="MARK_PRICE" if stop_price else "CONTRACT_PRICE",
        )
        if resting:
            self._emit("orders", order.record(), time)
        return order

    def fill(
        self,
        order: Order,
        qty: Decimal,
        price: Decimal,
        time: int,
        maker: bool = False,
        commission_rate: Decimal | None = None,
    ) -> dict:
        """Execute ``qty`` of ``order`` at ``price``: trade, income rows and the ground truth.

        Commission is ``notional × rate`` in the margin asset, signed: a negative (maker) rate
        is a rebate. With "pay fees in BNB" on, a positive fee on a USDT-margined symbol is
        paid in BNB at 90 % converted at ``bnb_price``, the close of the minute's BNBUSDT kline.
        """
        if qty <= 0 or qty > order.remaining:
            raise ValueError(f"fill of {qty} on order {order.order_id} with {order.remaining} remaining")
        margin = instrument(order.symbol).margin_asset
        conversion = None
        with localcontext(EXACT):
            notional = price * qty
            rate = commission_rate if commission_rate is not None else self.maker_rate if maker else TAKER_RATE
            if rate > 0 and self.pay_fees_in_bnb and margin == "USDT":
                commission, asset = q8(notional * rate * BNB_DISCOUNT / self.bnb_price), "BNB"
                conversion = self.bnb_price
                self._bnb_kline(time)
            else:
                commission, asset = q8(notional * rate), margin
        trade_id = self._trade_id(order.symbol)
        key = f"{order.symbol}_{order.position_side}"
        kp = self.keys.setdefault(key, KeyPosition(order.position_side))
        qty_before = kp.qty
        _, realized = kp.apply(order.side, qty, price, time)
        if self.served(time):
            fill = Fill(
                order.symbol,
                trade_id,
                order.side,
                order.position_side,
                price,
                qty,
                commission,
                asset,
                time,
                margin_asset=margin,
                conversion=conversion,
                order_id=order.order_id,
            )
            self.books.on_fill(fill, order.link, qty_before, realized)
        order.executed += qty
        order.cum_quote += notional
        order.update_time = time
        trade = {
            "symbol": order.symbol,
            "id": trade_id,
            "orderId": order.order_id,
            "side": order.side,
            "price": dec(price),
            "qty": dec(qty),
            "realizedPnl": money(realized) if realized else "0",
            "quoteQty": dec(notional),
            "commission": money(commission),
            "commissionAsset": asset,
            "time": time,
            "positionSide": order.position_side,
            "buyer": order.side == "BUY",
            "maker": maker,
            "marginAsset": margin,
        }
        self._emit("trades", trade, time)
        if realized:
            self._income(order.symbol, "REALIZED_PNL", realized, margin, time, trade_id)
        if commission:
            day = (time // DAY_MS, asset)
            self._day_commission[day] = self._day_commission.get(day, ZERO) + commission
            self._income(order.symbol, "COMMISSION", -commission, asset, time, trade_id)
        return trade

    def finish_order(self, order: Order, status: str, time: int) -> None:
        """Write the order's final state (FILLED, CANCELED, EXPIRED, PARTIALLY_FILLED …)."""
        order.status = status
        order.update_time = max(time, order.update_time)
        self._emit("orders", order.record(), order.update_time)

    # ------------------------------------------------------------ algo (conditional) orders
    def place_algo(
        self,
        symbol: str,
        side: str,
        position_side: str,
        order_type: str,
        qty: Decimal,
        trigger_price: Decimal,
        client_algo_id: str,
        time: int,
        link: Link,
    ) -> AlgoOrder:
        self._use_symbol(symbol)
        algo = AlgoOrder(
            self._algo_id(symbol),
            symbol,
            client_algo_id,
            order_type,
            side,
            position_side,
            qty,
            trigger_price,
            time,
            link,
        )
        self._emit("algo_orders", algo.record(), time)
        return algo

    def trigger_algo(
        self,
        algo: AlgoOrder,
        time: int,
        auto_client_id: str,
        order_id: int | None = None,
        triggering: bool | None = None,
    ) -> Order:
        """The algo service fires: a MARKET order (with its own, unlinked-looking id) enters the book.

        Binance's ALGO_UPDATE statuses (developers.binance.com, USDⓈ-M Futures › User Data
        Streams › Event: Algo Order Update): TRIGGERING = condition met and forwarded to the
        matching engine, TRIGGERED = placed in the matching engine, FINISHED = the triggered
        order filled or was cancelled there. Every third trigger is also seen in TRIGGERING.
        """
        self.triggered_algos += 1
        if triggering is None:
            triggering = self.triggered_algos % 3 == 0
        if triggering:
            algo.status = "TRIGGERING"
            algo.update_time = time
            self._emit("algo_orders", algo.record(), time)
        order = self.place_order(
            algo.symbol,
            algo.side,
            algo.position_side,
            "MARKET",
            algo.quantity,
            auto_client_id,
            time,
            link=algo.link,
            orig_type=algo.order_type,
            order_id=order_id,
        )
        algo.actual_order = order
        algo.trigger_time = time
        algo.status = "TRIGGERED"
        algo.update_time = time + 1 if triggering else time
        self._emit("algo_orders", algo.record(), algo.update_time)
        return order

    def finish_algo(self, algo: AlgoOrder, status: str, time: int) -> None:
        """Final state; a later update than any before it (so "latest updateTime wins" is unambiguous)."""
        if algo.status in ("TRIGGERING", "TRIGGERED"):
            time = max(time, algo.update_time + 1)
        algo.status = status
        algo.update_time = max(time, algo.update_time)
        self._emit("algo_orders", algo.record(), algo.update_time)

    # ------------------------------------------------------------ income, funding, snapshots
    def _income(
        self, symbol: str, kind: str, amount: Decimal, asset: str, time: int, trade_id: int | None, info: str = ""
    ):
        """One GET /fapi/v1/income object; the wallet balance of ``asset`` moves by exactly ``amount``.

        Fields and income types as Binance documents them (developers.binance.com, USDⓈ-M
        Futures › Account › Get Income History: ``symbol, incomeType, income, asset, info, time,
        tranId, tradeId``; types include TRANSFER, REALIZED_PNL, FUNDING_FEE, COMMISSION,
        INSURANCE_CLEAR, COMMISSION_REBATE, API_REBATE, DELIVERED_SETTELMENT, FEE_RETURN …;
        ``symbol`` is "" for income not tied to a symbol, e.g. TRANSFER).
        """
        self.balances[asset] = self.balances.get(asset, ZERO) + amount
        self.balance_update[asset] = max(time, self.balance_update.get(asset, 0))
        self._emit(
            "income",
            {
                "symbol": symbol,
                "incomeType": kind,
                "income": money(amount),
                "asset": asset,
                "info": info or (kind if trade_id is None else ""),
                "time": time,
                "tranId": self._tran_id(),
                "tradeId": "" if trade_id is None else str(trade_id),
            },
            time,
        )

    def net_quantity(self, symbol: str) -> Decimal:
        return sum((kp.qty for key, kp in self.keys.items() if key.startswith(symbol + "_")), ZERO)

    def funding(self, symbol: str, rate: Decimal, mark: Decimal, time: int) -> Decimal:
        """Charge funding on the symbol's net position (longs pay a positive rate), in its margin asset."""
        with localcontext(EXACT):
            amount = q8(-self.net_quantity(symbol) * mark * rate)
        if amount:
            self._income(symbol, "FUNDING_FEE", amount, instrument(symbol).margin_asset, time, None)
            if self.served(time):
                self.books.on_funding(symbol, amount, time)
        return amount

    def transfer(self, asset: str, amount: Decimal, time: int) -> None:
        """A transfer between the spot and the futures wallet (TRANSFER income, account-level, SPEC §4.5)."""
        self._income("", "TRANSFER", amount, asset, time, None)

    def insurance_clear(
        self, order: Order, time: int, rate: Decimal = INSURANCE_CLEAR_RATE, amount: Decimal | None = None
    ) -> Decimal:
        """The liquidation clearance fee of a liquidation order (INSURANCE_CLEAR, negative, margin asset):
        ``rate`` × the order's notional unless ``amount`` is given."""
        if amount is None:
            with localcontext(EXACT):
                amount = -q8(order.cum_quote * rate)
        self._income(order.symbol, "INSURANCE_CLEAR", amount, instrument(order.symbol).margin_asset, time, None)
        if self.served(time):
            self.books.on_insurance_clear(order.symbol, order.order_id, amount, time)
        return amount

    def rebate(self, kind: str, asset: str, amount: Decimal, time: int) -> None:
        """A rebate program payment (COMMISSION_REBATE, API_REBATE or FEE_RETURN) for ``time``'s UTC day."""
        self._income("", kind, amount, asset, time, None)
        if self.served(time):
            self.books.on_rebate(kind, asset, amount, time)

    def day_commission(self, day: int, asset: str) -> Decimal:
        """Σ commission (signed) paid in ``asset`` on UTC day ``day`` (days since the epoch)."""
        return self._day_commission.get((day, asset), ZERO)

    def deliver(self, symbol: str, price: Decimal, time: int, fee_rate: Decimal = Decimal("0.0001")) -> None:
        """Quarterly delivery (sandbox model; Binance documents the income type, not the mechanics).

        At ``deliveryDate`` every open key of the contract is closed by a
        ``settlement_autoclose-…`` MARKET order at the delivery price (a liquidation id, SPEC
        §3.3), without commission; the fills book realizedPnl and REALIZED_PNL as usual. One
        DELIVERED_SETTELMENT income (a delivery fee, −fee_rate × Σ |qty|·price, negative) is
        posted at the same time; the ground truth gives it to the positions open just before.
        """
        inst = instrument(symbol)
        if symbol in self.delivered:
            raise ValueError(f"{symbol} is already delivered")
        self.delivered[symbol] = time
        open_keys = [(k, kp) for k, kp in sorted(self.keys.items()) if k.startswith(symbol + "_") and kp.qty != 0]
        with localcontext(EXACT):
            fee = -q8(sum((abs(kp.qty) * price for _, kp in open_keys), ZERO) * fee_rate)
        if fee and self.served(time):
            self.books.on_delivery(symbol, fee, time)
        for n, (key, kp) in enumerate(open_keys):
            ps = key.rsplit("_", 1)[1]
            side = "SELL" if kp.qty > 0 else "BUY"
            order = self.place_order(
                symbol, side, ps, "MARKET", abs(kp.qty), f"settlement_autoclose-{symbol}-{time}-{n}", time
            )
            self.fill(order, abs(kp.qty), price, time, commission_rate=ZERO)
            self.finish_order(order, "FILLED", time)
        if fee:
            self._income(symbol, "DELIVERED_SETTELMENT", fee, inst.margin_asset, time, None)

    # ------------------------------------------------------------ klines
    def write_kline(self, symbol: str, open_time: int, o: Decimal, h: Decimal, low: Decimal, c: Decimal) -> None:
        """One 1-minute kline, the array exactly as GET /fapi/v1/klines returns it (developers.binance.com,
        USDⓈ-M Futures › Market Data › Kline/Candlestick Data): [openTime, open, high, low, close,
        volume, closeTime, quoteAssetVolume, numberOfTrades, takerBuyBaseVolume, takerBuyQuoteVolume, ignore].
        Volumes are synthetic (deterministic in the minute)."""
        minute = open_time // 60_000
        if symbol == "BNBUSDT":
            known = self._kline_close.get(minute)
            if known is not None and known != c:
                raise ValueError(f"BNBUSDT kline of minute {open_time} already closed at {known}, not {c}")
            self._kline_close[minute] = c
        volume = Decimal(1000 + (minute * 7919) % 9000) / 10
        with localcontext(EXACT):
            quote = q8(volume * c)
        kline = [
            open_time,
            dec(o),
            dec(h),
            dec(low),
            dec(c),
            dec(volume),
            open_time + 59_999,
            dec(quote),
            100 + minute % 900,
            dec(volume / 2),
            dec(quote / 2),
            "0",
        ]
        self._emit("klines", {"symbol": symbol, "interval": "1m", "kline": kline}, open_time)

    def _bnb_kline(self, time: int) -> None:
        """The minute of a BNB-paid fill has a BNBUSDT kline closing at the price used (scenarios write it here)."""
        minute = time // 60_000
        known = self._kline_close.get(minute)
        if known is None:
            p = self.bnb_price
            self.write_kline("BNBUSDT", minute * 60_000, p, p, p, p)
        elif known != self.bnb_price:
            raise ValueError(
                f"BNB fee at {time} converted at {self.bnb_price}, but the minute's kline closed at {known}"
            )

    # ------------------------------------------------------------ snapshots
    def position_sides(self) -> tuple[str, ...]:
        return ("LONG", "SHORT") if self.mode == "hedge" else ("BOTH",)

    def snapshot(self, time: int, marks: dict[str, Decimal]) -> None:
        """positionRisk rows for every key of every traded symbol (flat keys included, so R3 sees zeros),
        and the wallet balance of every asset (GET /fapi/v3/balance objects plus ``snapshotTime``).

        Balance fields as Binance's Futures Account Balance V2/V3 (developers.binance.com):
        ``accountAlias, asset, balance, crossWalletBalance, crossUnPnl, availableBalance,
        maxWithdrawAmount, marginAvailable, updateTime``; ``balance`` is the wallet balance
        (no unrealized PnL), so between two snapshots it moves by exactly the income between them.
        """
        unpnl: dict[str, Decimal] = {}
        margin_used: dict[str, Decimal] = {}
        with localcontext(EXACT):
            for symbol in self.traded_symbols:
                mark = marks[symbol]
                margin = instrument(symbol).margin_asset
                for ps in self.position_sides():
                    key = f"{symbol}_{ps}"
                    kp = self.keys.get(key) or KeyPosition(ps)
                    amt = kp.qty
                    notional = amt * mark
                    upnl = (mark - kp.avg) * amt if amt else ZERO
                    unpnl[margin] = unpnl.get(margin, ZERO) + upnl
                    margin_used[margin] = margin_used.get(margin, ZERO) + abs(notional) / LEVERAGE
                    fee_adj = kp.avg * TAKER_RATE * (1 if amt > 0 else -1) if amt else ZERO
                    entry = money(kp.avg) if amt else "0.0"
                    if self.served(time):
                        self.last_snapshot[key] = (time, amt, Decimal(entry))
                    self._emit(
                        "position_risk",
                        {
                            "symbol": symbol,
                            "positionSide": ps,
                            "positionAmt": dec(amt),
                            "entryPrice": entry,
                            "breakEvenPrice": money(kp.avg + fee_adj) if amt else "0.0",
                            "markPrice": money(mark),
                            "unRealizedProfit": money(upnl),
                            "liquidationPrice": "0",
                            "isolatedMargin": "0",
                            "notional": money(notional),
                            "marginAsset": margin,
                            "isolatedWallet": "0",
                            "initialMargin": money(abs(notional) / LEVERAGE),
                            "maintMargin": money(abs(notional) * MAINT_RATE),
                            "positionInitialMargin": money(abs(notional) / LEVERAGE),
                            "openOrderInitialMargin": "0",
                            "adl": 1 if amt else 0,
                            "bidNotional": "0",
                            "askNotional": "0",
                            "updateTime": kp.last_fill_time,
                            "snapshotTime": time,
                        },
                        time,
                    )
            for asset in sorted(self.balances):
                bal = self.balances[asset]
                cross_un = unpnl.get(asset, ZERO)
                available = max(ZERO, bal + cross_un - margin_used.get(asset, ZERO))
                self._emit(
                    "balances",
                    {
                        "accountAlias": "SgsR",
                        "asset": asset,
                        "balance": money(bal),
                        "crossWalletBalance": money(bal),
                        "crossUnPnl": money(cross_un),
                        "availableBalance": money(available),
                        "maxWithdrawAmount": money(min(available, max(bal, ZERO))),
                        "marginAvailable": True,
                        "updateTime": self.balance_update.get(asset, 0),
                        "snapshotTime": time,
                    },
                    time,
                )

    # ------------------------------------------------------------ finish
    def abort(self) -> None:
        """Close every file of a failed run and remove the ground truth's temporary file."""
        for writer in self.w.values():
            writer.close()
        self.books.discard()

    def _write_symbols(self, end_time: int) -> None:
        """symbols.jsonl: the exchangeInfo object of every traded symbol and of the BNBUSDT conversion pair."""
        names = list(self.traded_symbols)
        if "BNBUSDT" not in names:
            names.append("BNBUSDT")
        for symbol in sorted(names):
            inst = instrument(symbol) if symbol != "BNBUSDT" else INSTRUMENTS["BNBUSDT"]
            status = "TRADING"
            if not inst.perpetual and inst.delivery_date <= end_time:
                status = "DELIVERED"
            self.w["symbols"].write(exchange_info_symbol(inst, status))

    def close(self, marks: dict[str, Decimal]) -> AccountSummary:
        """Flush every file and write the ground truth at the final marks."""
        end = max((t for t, _, _ in self.last_snapshot.values()), default=0)
        self._write_symbols(end)
        for writer in self.w.values():
            writer.close()
        # SPEC §4.1: keys known only from the latest snapshot, and openings without a reducing fill
        for key, (t, amt, entry) in sorted(self.last_snapshot.items()):
            if amt and key not in self.books.keys:
                self.books.open_from_snapshot(key, key.rsplit("_", 1)[0], amt, entry, t)
        self.books.resolve_from_snapshots({k: e for k, (_, _, e) in self.last_snapshot.items()})
        positions = self.books.finish(marks)
        counts = {REPLAY_FILES[k]: w.count for k, w in self.w.items()}
        return AccountSummary(
            fills=self.w["trades"].count,
            orders=self.w["orders"].count,
            signals=self.w["signals"].count,
            income=self.w["income"].count,
            snapshots=self.w["position_risk"].count,
            positions=positions,
            over_closes=self.books.over_closes,
            unallocated_income=len(self.books.unallocated),
            files=counts,
        )
