"""Scripted paper-exchange scenarios: hand-written signals and fills, same files and ground truth.

Tests use them to pin exact situations (SPEC §4.4's worked example, over-closes,
liquidations …) that a random simulation only hits by chance.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sandbox.account import AccountSummary, PaperAccount
from sandbox.books import Link, SignalInfo
from sandbox.jsonl import Number

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def D(x) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(str(x))


class Scenario:
    """A replay directory built step by step; times are seconds after ``start_ms``."""

    def __init__(
        self,
        out_dir: Path,
        mode: str = "hedge",
        account_id: str = "default",
        start_ms: int = T0,
        history_start: float | None = None,
        track_income: bool = True,
    ):
        """``history_start`` (seconds after start): the replay holds only what Binance serves from then on."""
        self.start_ms = start_ms
        hs = None if history_start is None else start_ms + int(history_start * 1000)
        self.account = PaperAccount(out_dir, account_id, mode, history_start_ms=hs, track_income=track_income)
        self.marks: dict[str, Decimal] = {}
        self.sides: dict[str, str] = {}

    def at(self, seconds: float) -> int:
        return self.start_ms + int(seconds * 1000)

    def signal(
        self,
        signal_id: str,
        strategy_id: str,
        symbol: str,
        action: str,
        quantity=None,
        *,
        at: float,
        price=None,
        take_profit=None,
        stop_loss=None,
        take_profit_pct=None,
        stop_loss_pct=None,
    ) -> None:
        rec: dict = {"signal_id": signal_id, "strategy_id": strategy_id, "symbol": symbol, "action": action}
        for name, value in (
            ("quantity", quantity),
            ("price", price),
            ("take_profit", take_profit),
            ("stop_loss", stop_loss),
            ("take_profit_pct", take_profit_pct),
            ("stop_loss_pct", stop_loss_pct),
        ):
            if value is not None:
                rec[name] = Number(str(value))
        rec["timestamp"] = self.at(at)
        info = None
        if action in ("buy", "sell"):
            info = SignalInfo(
                signal_id,
                strategy_id,
                self.account.account_id,
                symbol,
                "LONG" if action == "buy" else "SHORT",
                None if take_profit is None else D(take_profit),
                None if stop_loss is None else D(stop_loss),
                None if take_profit_pct is None else D(take_profit_pct),
                None if stop_loss_pct is None else D(stop_loss_pct),
            )
        if info is not None:
            self.sides[signal_id] = info.side
        self.account.add_signal(rec, info)

    def trade(
        self,
        client_order_id: str,
        symbol: str,
        side: str,
        fills: list[tuple] | tuple,
        *,
        at: float,
        position_side: str | None = None,
        order_type: str = "MARKET",
        maker: bool = False,
        link: Link | None = None,
        order_id: int | None = None,
        commission_rate=None,
        bnb_price=None,
        insurance_clear=None,
    ) -> int:
        """One order filled by ``fills`` = [(qty, price), …]; returns its orderId. The link follows §3.3.

        ``order_id`` forces the number (two symbols may share it); ``commission_rate`` overrides
        the taker/maker rate (negative: a rebate); ``bnb_price`` pays the fees in BNB converted at
        that price (the minute's BNBUSDT kline closes there); ``insurance_clear`` posts that
        INSURANCE_CLEAR (negative) 1 ms after the last fill.
        """
        if isinstance(fills, tuple):
            fills = [fills]
        if order_id is None:
            order_id = self.account.new_order_id(symbol)
        else:
            self.account.claim_order_id(symbol, order_id)
        resolved = link or self.account.link_for(client_order_id, order_id, symbol)
        if position_side is None and self.account.mode == "one_way":
            position_side = "BOTH"
        elif position_side is None:
            # hedge mode: a linked order trades its position's key; anything else opens by side
            position_side = self.sides.get(resolved.strategy_position_id or "") or (
                "LONG" if side == "BUY" else "SHORT"
            )
        total = sum((D(q) for q, _ in fills), Decimal(0))
        t = self.at(at)
        order = self.account.place_order(
            symbol,
            side,
            position_side,
            order_type,
            total,
            client_order_id,
            t,
            link=resolved,
            order_id=order_id,
        )
        self._fill_all(order, fills, t, maker, commission_rate, bnb_price)
        self.account.finish_order(order, "FILLED", t + len(fills))
        if insurance_clear is not None:
            self.account.insurance_clear(order, t + len(fills), amount=D(insurance_clear))
        return order.order_id

    def _fill_all(self, order, fills, t: int, maker: bool, commission_rate, bnb_price) -> None:
        account = self.account
        if bnb_price is not None:
            account.pay_fees_in_bnb, account.bnb_price = True, D(bnb_price)
        try:
            for i, (q, p) in enumerate(fills):
                rate = None if commission_rate is None else D(commission_rate)
                account.fill(order, D(q), D(p), t + i, maker=maker, commission_rate=rate)
                self.marks[order.symbol] = D(p)
        finally:
            account.pay_fees_in_bnb = False

    def algo_exit(
        self,
        client_algo_id: str,
        symbol: str,
        side: str,
        fills: list[tuple] | tuple,
        *,
        at: float,
        placed_at: float | None = None,
        trigger_price,
        order_type: str = "TAKE_PROFIT_MARKET",
        position_side: str | None = None,
        order_id: int | None = None,
        triggering: bool = False,
    ) -> tuple[int, int]:
        """A TP/SL placed through the algo service; it triggers at ``at`` and its order fills.

        The link is the clientAlgoId's (§3.3 rule 2); ``order_id`` forces the actual order's id.
        Returns (algoId, actualOrderId).
        """
        if isinstance(fills, tuple):
            fills = [fills]
        link = self.account.link_for(client_algo_id, None, symbol)
        if position_side is None:
            position_side = (
                "BOTH"
                if self.account.mode == "one_way"
                else self.sides.get(link.strategy_position_id or "", "LONG" if side == "SELL" else "SHORT")
            )
        total = sum((D(q) for q, _ in fills), Decimal(0))
        algo = self.account.place_algo(
            symbol,
            side,
            position_side,
            order_type,
            total,
            D(trigger_price),
            client_algo_id,
            self.at(at if placed_at is None else placed_at),
            link,
        )
        t = self.at(at)
        if order_id is not None:
            self.account.claim_order_id(symbol, order_id)
        order = self.account.trigger_algo(algo, t, f"algo{algo.algo_id}", order_id=order_id, triggering=triggering)
        self._fill_all(order, fills, t, False, None, None)
        self.account.finish_order(order, "FILLED", t + len(fills))
        self.account.finish_algo(algo, "FINISHED", t + len(fills))
        return algo.algo_id, order.order_id

    def transfer(self, asset: str, amount, *, at: float) -> None:
        self.account.transfer(asset, D(amount), self.at(at))

    def rebate(self, kind: str, asset: str, amount, *, at: float) -> None:
        self.account.rebate(kind, asset, D(amount), self.at(at))

    def deliver(self, symbol: str, price, *, at: float) -> None:
        self.account.deliver(symbol, D(price), self.at(at))
        self.marks[symbol] = D(price)

    def snapshot(self, marks: dict[str, object] | None = None, *, at: float) -> None:
        """positionRisk and balance snapshots at ``at`` (finish() writes the last one)."""
        self.account.snapshot(self.at(at), {**self.marks, **{k: D(v) for k, v in (marks or {}).items()}})

    def link(self, signal_id: str, role: str, *, order_id=None, client_order_id=None, symbol=None) -> None:
        self.account.add_link(signal_id, role, order_id=order_id, client_order_id=client_order_id, symbol=symbol)

    def funding(self, symbol: str, rate, mark, *, at: float) -> Decimal:
        return self.account.funding(symbol, D(rate), D(mark), self.at(at))

    def finish(self, marks: dict[str, object] | None = None, *, at: float | None = None) -> AccountSummary:
        final = {**self.marks, **{k: D(v) for k, v in (marks or {}).items()}}
        t = self.at(at) if at is not None else self.at(10**6)
        self.account.snapshot(t, final)
        return self.account.close(final)


def add_worked_example(s: Scenario, at: float = 0) -> None:
    """SPEC §4.4's steps on BTCUSDT: A and B share BTCUSDT_LONG; each closes with its own take-profit."""
    s.signal("A1", "strat_a", "BTCUSDT", "buy", "0.001", at=at, price="45000", take_profit="48000")
    s.trade("A1-en", "BTCUSDT", "BUY", ("0.001", "45000"), at=at + 1)
    s.signal("B1", "strat_b", "BTCUSDT", "buy", "0.002", at=at + 10, price="46000", take_profit="49000")
    s.trade("B1-en", "BTCUSDT", "BUY", ("0.002", "46000"), at=at + 11)
    s.trade("A1-tp", "BTCUSDT", "SELL", ("0.001", "48000"), at=at + 100)
    s.trade("B1-tp", "BTCUSDT", "SELL", ("0.002", "49000"), at=at + 200)


def worked_example(out_dir: Path) -> AccountSummary:
    """SPEC §4.4 as a replay directory of its own."""
    s = Scenario(out_dir, mode="hedge")
    add_worked_example(s)
    return s.finish({"BTCUSDT": "49000"}, at=300)
