"""Replay records shaped as Binance documents them, written by hand for the dbt scenario tests.

Field lists follow Binance's USD-M futures API reference: userTrades, allOrders, allAlgoOrders
("algoId is self-increment for each specific symbol"; ``actualOrderId`` a string, "" until
triggered), positionRisk v3 (``positionAmt`` negative on a SHORT key: its hedge-mode example
shows ``"positionSide": "SHORT", "positionAmt": "-1.000"``) and income (19-digit ``tranId``).
Extra fields Binance added over time (``marginAsset``, ``priceMatch`` …) are included: ingestion
keeps them in the payload.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

from ingestion.replay import load_replay
from stratpos.core.settings import Settings
from stratpos.core.warehouse import fetch_rows
from stratpos.transform import run_dbt

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TAKER = Decimal("0.0005")


def s(x) -> str:
    return format(Decimal(str(x)), "f")


class Replay:
    """One account's replay directory, record by record."""

    def __init__(self, out: Path, account_id: str, mode: str):
        self.out = out
        self.account = {"account_id": account_id, "position_mode": mode}
        self.files: dict[str, list[dict]] = {}
        self._tran = 9_689_322_392_000_000_000  # 19 digits, as Binance sends them

    def add(self, name: str, record: dict) -> None:
        self.files.setdefault(name, []).append(record)

    def signal(self, signal_id, strategy_id, symbol, action, quantity, at):
        self.add(
            "signals",
            {
                "signal_id": signal_id,
                "strategy_id": strategy_id,
                "symbol": symbol,
                "action": action,
                "quantity": s(quantity),
                "timestamp": T0 + at,
                "account_id": self.account["account_id"],
            },
        )

    def link(self, signal_id, role, order_id, symbol=None):
        rec = {"order_id": order_id, "signal_id": signal_id, "role": role, "account_id": self.account["account_id"]}
        if symbol is not None:
            rec["symbol"] = symbol
        self.add("order_links", rec)

    def order(self, symbol, order_id, client_order_id, side, position_side, qty, price, at, order_type="MARKET"):
        self.add(
            "futures_orders",
            {
                "avgPrice": s(price),
                "clientOrderId": client_order_id,
                "cumQuote": s(Decimal(qty) * Decimal(price)),
                "executedQty": s(qty),
                "orderId": order_id,
                "origQty": s(qty),
                "origType": order_type,
                "price": "0",
                "reduceOnly": False,
                "side": side,
                "positionSide": position_side,
                "status": "FILLED",
                "stopPrice": "0",
                "closePosition": False,
                "symbol": symbol,
                "time": T0 + at,
                "timeInForce": "GTC",
                "type": order_type,
                "updateTime": T0 + at + 1,
                "workingType": "CONTRACT_PRICE",
                "priceProtect": False,
                "priceMatch": "NONE",
                "selfTradePreventionMode": "EXPIRE_MAKER",
                "goodTillDate": 0,
            },
        )

    def fill(self, symbol, trade_id, order_id, side, position_side, qty, price, realized_pnl, at):
        """One userTrades object (taker, 0.05 % commission in USDT) and its two income rows."""
        qty, price = Decimal(str(qty)), Decimal(str(price))
        commission = (qty * price * TAKER).quantize(Decimal("0.00000001"))
        self.add(
            "futures_trades",
            {
                "buyer": side == "BUY",
                "commission": s(commission),
                "commissionAsset": "USDT",
                "id": trade_id,
                "maker": False,
                "orderId": order_id,
                "price": s(price),
                "qty": s(qty),
                "quoteQty": s(qty * price),
                "realizedPnl": s(realized_pnl),
                "side": side,
                "positionSide": position_side,
                "symbol": symbol,
                "time": T0 + at,
                "marginAsset": "USDT",
            },
        )
        for kind, amount in (("REALIZED_PNL", Decimal(str(realized_pnl))), ("COMMISSION", -commission)):
            if amount:
                self._tran += 1
                self.add(
                    "income",
                    {
                        "symbol": symbol,
                        "incomeType": kind,
                        "income": s(amount),
                        "asset": "USDT",
                        "info": "",
                        "time": T0 + at,
                        "tranId": self._tran,
                        "tradeId": str(trade_id),
                    },
                )

    def algo(self, symbol, algo_id, client_algo_id, side, position_side, qty, trigger, status, actual_order_id, at):
        self.add(
            "futures_algo_orders",
            {
                "algoId": algo_id,
                "clientAlgoId": client_algo_id,
                "algoType": "CONDITIONAL",
                "orderType": "TAKE_PROFIT_MARKET",
                "symbol": symbol,
                "side": side,
                "positionSide": position_side,
                "timeInForce": "GTC",
                "quantity": s(qty),
                "algoStatus": status,
                "actualOrderId": "" if actual_order_id is None else str(actual_order_id),
                "actualPrice": "0.00000",
                "triggerPrice": s(trigger),
                "price": "0.000",
                "icebergQuantity": None,
                "selfTradePreventionMode": "EXPIRE_MAKER",
                "workingType": "CONTRACT_PRICE",
                "priceMatch": "NONE",
                "closePosition": False,
                "priceProtect": False,
                "reduceOnly": True,
                "createTime": T0,
                "updateTime": T0 + at,
                "triggerTime": 0 if actual_order_id is None else T0 + at,
                "goodTillDate": 0,
            },
        )

    def position(self, symbol, position_side, amount, entry_price, mark, at):
        amount, entry, mark = Decimal(str(amount)), Decimal(str(entry_price)), Decimal(str(mark))
        self.add(
            "position_risk",
            {
                "symbol": symbol,
                "positionSide": position_side,
                "positionAmt": s(amount),
                "entryPrice": s(entry),
                "breakEvenPrice": s(entry),
                "markPrice": s(mark),
                "unRealizedProfit": s(((mark - entry) * amount).quantize(Decimal("0.00000001"))),
                "liquidationPrice": "0",
                "isolatedMargin": "0",
                "notional": s(amount * mark),
                "marginAsset": "USDT",
                "isolatedWallet": "0",
                "initialMargin": "0",
                "maintMargin": "0",
                "positionInitialMargin": "0",
                "openOrderInitialMargin": "0",
                "adl": 1 if amount else 0,
                "bidNotional": "0",
                "askNotional": "0",
                "updateTime": T0 + at,
                "snapshotTime": T0 + at,
            },
        )

    def write(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "account.json").write_text(json.dumps(self.account))
        for name, records in self.files.items():
            with open(self.out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
                for r in records:
                    fh.write(json.dumps(r) + "\n")
        return self.out


def load(settings: Settings, *replays: Path) -> None:
    logging.getLogger("ingestion").setLevel(logging.WARNING)
    for replay in replays:
        load_replay(replay, settings)


def build(settings: Settings, *replays: Path, full_refresh: bool = False) -> None:
    load(settings, *replays)
    run_dbt(settings, "build", full_refresh=full_refresh, extra_args=["--quiet"])


def rows(settings: Settings, layer: str, table: str) -> list[dict]:
    return fetch_rows(settings, layer, table)


def by(settings: Settings, layer: str, table: str, key: str) -> dict[str, dict]:
    return {r[key]: r for r in rows(settings, layer, table)}


def D(x) -> Decimal:
    return Decimal(str(x))
