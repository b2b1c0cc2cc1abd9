"""A paper Binance USD-M futures account: orders, fills, income and snapshots as the API reports them.

Both the random simulator (:mod:`sandbox.generator`) and scripted scenarios
(:mod:`sandbox.scenario`) drive this class. Every fill goes through Binance's accounting
(:mod:`sandbox.accounting`) and, with its true link, into the ground truth
(:mod:`sandbox.books`); every record is streamed to the replay directory (SPEC §3.4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from pathlib import Path

from sandbox.accounting import ZERO, KeyPosition
from sandbox.books import LIQUIDATION, UNLINKED, Fill, GroundTruth, Link, SignalInfo
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
}
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
    by_order_id: dict[int, Link],
    by_client_id: dict[str, Link],
) -> Link:
    """SPEC §3.3, first match wins: explicit link, ``{signal_id}-{code}``, liquidation ids, unlinked."""
    if order_id is not None and order_id in by_order_id:
        return by_order_id[order_id]
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
        o = self.actual_order
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
    files: dict[str, int] = field(default_factory=dict)


class PaperAccount:
    """One Binance USD-M account writing a replay directory and its ground truth."""

    def __init__(self, out_dir: Path, account_id: str = "default", position_mode: str = "hedge"):
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
        self.books = GroundTruth(self.out_dir / GROUND_TRUTH_FILE, account_id, position_mode)
        self.keys: dict[str, KeyPosition] = self.books.keys  # Binance's view == the books' key state
        self.known_signals: set[str] = set()
        self.links_by_order: dict[int, Link] = {}
        self.links_by_client: dict[str, Link] = {}
        self._next_order: dict[str, int] = {}
        self._next_trade: dict[str, int] = {}
        self._next_tran = 9_689_000_000
        self._next_algo = 3_000_000
        self.traded_symbols: list[str] = []
        self.bnb_price = Decimal("310")
        self.pay_fees_in_bnb = False

    # ------------------------------------------------------------ ids
    def _order_id(self, symbol: str) -> int:
        n = self._next_order.get(symbol, 8_389_765_000 + 10_000_000 * len(self._next_order))
        self._next_order[symbol] = n + 1
        return n

    def _trade_id(self, symbol: str) -> int:
        n = self._next_trade.get(symbol, 1_000_001 + 100_000_000 * len(self._next_trade))
        self._next_trade[symbol] = n + 1
        return n

    def _tran_id(self) -> int:
        self._next_tran += 1
        return self._next_tran

    # ------------------------------------------------------------ signals and links
    def add_signal(self, record: dict, info: SignalInfo | None = None) -> None:
        """Write a signal; ``info`` registers an opening signal with the ground truth."""
        self.w["signals"].write(record)
        sid = record.get("signal_id", record.get("id"))
        self.known_signals.add(sid)
        if info is not None:
            self.books.register_signal(info)

    def add_link(self, signal_id: str, role: str, *, order_id: int | None = None, client_order_id: str | None = None):
        """An explicit order link (SPEC §3.3 rule 1), written to order_links.jsonl."""
        link = Link(signal_id, role)
        rec: dict = {}
        if order_id is not None:
            rec["order_id"] = order_id
            self.links_by_order[order_id] = link
        if client_order_id is not None:
            rec["client_order_id"] = client_order_id
            self.links_by_client[client_order_id] = link
        rec.update(signal_id=signal_id, role=role)
        self.w["order_links"].write(rec)

    def link_for(self, client_order_id: str, order_id: int | None = None) -> Link:
        return resolve_link(client_order_id, order_id, self.known_signals, self.links_by_order, self.links_by_client)

    # ------------------------------------------------------------ orders
    def new_order_id(self, symbol: str) -> int:
        """Reserve the next orderId (for explicit links written before the order)."""
        return self._order_id(symbol)

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
        if symbol not in self.traded_symbols:
            self.traded_symbols.append(symbol)
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
            link=link if link is not None else self.link_for(client_order_id, oid),
            price=price,
            stop_price=stop_price,
            orig_type=orig_type,
            reduce_only=reduce_only,
            time_in_force=time_in_force,
            working_type="MARK_PRICE" if stop_price else "CONTRACT_PRICE",
        )
        if resting:
            self.w["orders"].write(order.record())
        return order

    def fill(self, order: Order, qty: Decimal, price: Decimal, time: int, maker: bool = False) -> dict:
        """Execute ``qty`` of ``order`` at ``price``: trade, income rows and the ground truth."""
        if qty <= 0 or qty > order.remaining:
            raise ValueError(f"fill of {qty} on order {order.order_id} with {order.remaining} remaining")
        with localcontext(EXACT):
            notional = price * qty
            rate = MAKER_RATE if maker else TAKER_RATE
            if self.pay_fees_in_bnb:
                commission, asset = q8(notional * rate * BNB_DISCOUNT / self.bnb_price), "BNB"
            else:
                commission, asset = q8(notional * rate), "USDT"
        trade_id = self._trade_id(order.symbol)
        fill = Fill(order.symbol, trade_id, order.side, order.position_side, price, qty, commission, asset, time)
        _, realized = self.books.on_fill(fill, order.link)
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
            "marginAsset": "USDT",
        }
        self.w["trades"].write(trade)
        if realized:
            self._income(order.symbol, "REALIZED_PNL", realized, "USDT", time, trade_id)
        if commission:
            self._income(order.symbol, "COMMISSION", -commission, asset, time, trade_id)
        return trade

    def finish_order(self, order: Order, status: str, time: int) -> None:
        """Write the order's final state (FILLED, CANCELED, EXPIRED, PARTIALLY_FILLED …)."""
        order.status = status
        order.update_time = max(time, order.update_time)
        self.w["orders"].write(order.record())

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
        self._next_algo += 1
        algo = AlgoOrder(
            self._next_algo,
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
        self.w["algo_orders"].write(algo.record())
        return algo

    def trigger_algo(self, algo: AlgoOrder, time: int, auto_client_id: str) -> Order:
        """The algo service fires: a MARKET order (with its own, unlinked-looking id) enters the book."""
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
        )
        algo.actual_order = order
        algo.trigger_time = time
        algo.status = "TRIGGERED"
        algo.update_time = time
        return order

    def finish_algo(self, algo: AlgoOrder, status: str, time: int) -> None:
        algo.status = status
        algo.update_time = max(time, algo.update_time)
        self.w["algo_orders"].write(algo.record())

    # ------------------------------------------------------------ income, funding, snapshots
    def _income(self, symbol: str, kind: str, amount: Decimal, asset: str, time: int, trade_id: int | None):
        self.w["income"].write(
            {
                "symbol": symbol,
                "incomeType": kind,
                "income": money(amount),
                "asset": asset,
                "info": kind if trade_id is None else "",
                "time": time,
                "tranId": self._tran_id(),
                "tradeId": "" if trade_id is None else str(trade_id),
            }
        )

    def net_quantity(self, symbol: str) -> Decimal:
        return sum((kp.qty for key, kp in self.keys.items() if key.startswith(symbol + "_")), ZERO)

    def funding(self, symbol: str, rate: Decimal, mark: Decimal, time: int) -> Decimal:
        """Charge funding on the symbol's net position (longs pay a positive rate)."""
        with localcontext(EXACT):
            amount = q8(-self.net_quantity(symbol) * mark * rate)
        if amount:
            self._income(symbol, "FUNDING_FEE", amount, "USDT", time, None)
            self.books.on_funding(symbol, amount, time)
        return amount

    def position_sides(self) -> tuple[str, ...]:
        return ("LONG", "SHORT") if self.mode == "hedge" else ("BOTH",)

    def snapshot(self, time: int, marks: dict[str, Decimal]) -> None:
        """positionRisk rows for every key of every traded symbol (flat keys included, so R3 sees zeros)."""
        with localcontext(EXACT):
            for symbol in self.traded_symbols:
                mark = marks[symbol]
                for ps in self.position_sides():
                    kp = self.keys.get(f"{symbol}_{ps}") or KeyPosition(ps)
                    amt = kp.qty
                    notional = amt * mark
                    upnl = (mark - kp.avg) * amt if amt else ZERO
                    fee_adj = kp.avg * TAKER_RATE * (1 if amt > 0 else -1) if amt else ZERO
                    self.w["position_risk"].write(
                        {
                            "symbol": symbol,
                            "positionSide": ps,
                            "positionAmt": dec(amt),
                            "entryPrice": money(kp.avg) if amt else "0.0",
                            "breakEvenPrice": money(kp.avg + fee_adj) if amt else "0.0",
                            "markPrice": money(mark),
                            "unRealizedProfit": money(upnl),
                            "liquidationPrice": "0",
                            "isolatedMargin": "0",
                            "notional": money(notional),
                            "marginAsset": "USDT",
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
                        }
                    )

    # ------------------------------------------------------------ finish
    def abort(self) -> None:
        """Close every file of a failed run and remove the ground truth's temporary file."""
        for writer in self.w.values():
            writer.close()
        self.books.discard()

    def close(self, marks: dict[str, Decimal]) -> AccountSummary:
        """Flush every file and write the ground truth at the final marks."""
        for writer in self.w.values():
            writer.close()
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
            files=counts,
        )
