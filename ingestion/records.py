"""Validation at the boundary: source records -> typed raw rows, or a specific rejection reason.

Each source record type has a pydantic model. ``parse_line`` turns bytes into a JSON
object (or a reason: not UTF-8, truncated JSON, oversized …); ``to_row`` validates an
object and returns the raw-table row (or raises :class:`Rejected` with a reason that
names the field). Decimals never pass through floats: JSON numbers are parsed as
``Decimal`` and the warehouse stores DECIMAL(38,18), so values with more than 18
decimal places or 20 integer digits are rejected rather than rounded.

Canonical forms, so that the same record hashes the same whatever its encoding: decimals
are written without exponent and trailing zeros (``45053.0``, ``"45053"`` and
``"45053.000"`` are one value), and a signal's extra fields (``attributes``) are JSON with
sorted keys and canonical decimal numbers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

MAX_PAYLOAD_BYTES = 64 * 1024  # a longer record (line) is quarantined, and only its first bytes are kept
QUARANTINE_PAYLOAD_BYTES = 64 * 1024  # raw.quarantine keeps at most this much of a payload (+ length, sha256)
MIN_TIME_MS = 1_230_768_000_000  # 2009-01-01
MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01
# Any USD-M contract symbol (SPEC §3.2): perpetuals (BTCUSDT, BTCUSDC, 1000PEPEUSDT), quarterlies
# (BTCUSDT_261225), BTC-margined contracts listed under USD-M (ETHBTC) and the CJK-named contracts Binance
# lists (e.g. 币安人生USDT). Binance's own parameter rule is "legal range is '^[A-Z0-9-_.]{1,20}$'" (error
# -1100); we add CJK letters and allow up to 32 characters (the column size). Nothing here derives the margin
# asset from the name: that comes from exchangeInfo (raw.symbols).
SYMBOL_RE = r"^[A-Z0-9\u3400-\u9fff][A-Z0-9_.\-\u3400-\u9fff]{1,31}$"
# assets: "S" (SUSDT's base asset), "1000PEPE", and the CJK-named ones of CJK-named contracts
ASSET_RE = r"^[A-Z0-9\u3400-\u9fff]{1,16}$"
MAX_ID = 9_223_372_036_854_775_807  # Binance ids are Java longs (signed 64-bit): orderId, algoId, trade id
MAX_TRAN_ID = 10**19 - 1  # income tranId: up to 19 digits, stored as DECIMAL(20,0)
ID_RE = r"^[A-Za-z0-9_.:\-]{1,64}$"
ROLES = ("entry", "take_profit", "stop_loss", "close")


class Rejected(ValueError):
    """A record that cannot be loaded; ``reason`` says exactly why."""

    def __init__(self, reason: str, key: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.key = key


# DECIMAL(38,18): fewer than 20 integer digits (the bounds, checked by pydantic-core) and at most 18
# decimal places (checked by `_s` while it writes the value: pydantic's own `decimal_places` check costs
# ~10 % of the replay's throughput, the string we build anyway gives it for free)
MAX_PLACES = 18
_DEC = {
    "allow_inf_nan": False,
    "gt": Decimal("-1e20"),
    "lt": Decimal("1e20"),
}
Dec = Annotated[Decimal, Field(**_DEC)]
PosDec = Annotated[Decimal, Field(**{**_DEC, "gt": 0})]
Pct = Annotated[Decimal, Field(**{**_DEC, "gt": 0, "le": 1})]
Symbol = Annotated[str, Field(pattern=SYMBOL_RE)]
Ident = Annotated[str, Field(pattern=ID_RE)]
Asset = Annotated[str, Field(pattern=ASSET_RE)]
Id = Annotated[StrictInt, Field(ge=0, le=MAX_ID)]
MIN_INT64 = -(2**63)
Int64 = Annotated[StrictInt, Field(ge=MIN_INT64, le=MAX_ID)]  # any other integer stored in a BIGINT column


def _digits(v: Any) -> Any:
    """An id sent as a JSON number or as a string of digits (Binance sends both, e.g. tranId) -> int."""
    if isinstance(v, str) and v.strip().isdigit() and v.strip().isascii():
        return int(v.strip())
    return v


def _max_19_digits(v: int) -> int:
    if v > MAX_TRAN_ID:  # checked here: pydantic's own bound message rounds a 20-digit limit through a float
        raise ValueError(f"more than 19 digits (got number {v})")
    return v


TranId = Annotated[StrictInt, BeforeValidator(_digits), Field(ge=0), AfterValidator(_max_19_digits)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _aware_ms(dt: datetime, shown: Any) -> int:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"timestamp {shown!r} has no UTC offset")
    return (dt - _EPOCH) // _MS  # exact integer milliseconds (sub-millisecond digits are truncated)


def _time_ms(v: Any) -> int:
    """Epoch seconds or milliseconds (number or numeric string), or ISO-8601 with a UTC offset.

    Timezone-aware ``datetime`` objects (typed sources: Parquet, SQL) are accepted as well;
    Python floats are read through ``repr`` (their shortest exact decimal form).
    """
    if isinstance(v, bool) or v is None:
        raise ValueError("must be ISO-8601 with an offset or epoch seconds/milliseconds")
    if isinstance(v, datetime):
        ms = _aware_ms(v, v.isoformat())
        if not MIN_TIME_MS <= ms < MAX_TIME_MS:
            raise ValueError(f"timestamp {v.isoformat()!r} is outside 2009..2100")
        return ms
    if isinstance(v, float):
        v = Decimal(repr(v))
    if isinstance(v, str):
        s = v.strip()
        try:
            num = Decimal(s)
        except InvalidOperation:
            num = None
        if num is None:
            try:
                dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"unparseable timestamp {v!r}") from None
            ms = _aware_ms(dt, v)
        else:
            v = num
    if not isinstance(v, str):
        if not isinstance(v, int | Decimal):
            raise ValueError(f"timestamp must be a string or number, got {type(v).__name__}")
        d = Decimal(v)
        if not d.is_finite():
            raise ValueError("timestamp must be finite")
        ms = int(d * 1000) if abs(d) < Decimal("1e11") else int(d)  # seconds vs milliseconds
    if not MIN_TIME_MS <= ms < MAX_TIME_MS:
        raise ValueError(f"timestamp {v!r} is outside 2009..2100")
    return ms


TimeMs = Annotated[int, BeforeValidator(_time_ms)]
EpochMs = Annotated[StrictInt, Field(ge=MIN_TIME_MS, lt=MAX_TIME_MS)]


# ----------------------------------------------------------------------------- models
class Strict(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=False)


class SignalIn(Strict):
    signal_id: Ident = Field(validation_alias=AliasChoices("signal_id", "id"))
    strategy_id: Ident
    symbol: Symbol
    action: Literal["buy", "sell", "close", "hold"]
    quantity: PosDec | None = None
    price: PosDec | None = None
    take_profit: PosDec | None = None
    stop_loss: PosDec | None = None
    take_profit_pct: Pct | None = None
    stop_loss_pct: Pct | None = None
    timestamp: TimeMs
    account_id: Ident | None = None  # absent: the source's account (``default`` outside a replay directory)

    @model_validator(mode="after")
    def _rules(self) -> SignalIn:
        if self.strategy_id == "unattributed":
            raise ValueError("strategy_id 'unattributed' is reserved for the bucket")
        if self.action in ("buy", "sell") and self.quantity is None:
            raise ValueError(f"quantity is required for a {self.action} signal")
        d = 1 if self.action == "buy" else -1 if self.action == "sell" else 0
        if d and self.price is not None:
            if self.take_profit is not None and (self.take_profit - self.price) * d <= 0:
                raise ValueError(
                    f"take_profit {self.take_profit} is on the wrong side of price {self.price} for a {self.action}"
                )
            if self.stop_loss is not None and (self.stop_loss - self.price) * d >= 0:
                raise ValueError(
                    f"stop_loss {self.stop_loss} is on the wrong side of price {self.price} for a {self.action}"
                )
        tp, sl = self.take_profit, self.stop_loss
        if d and tp is not None and sl is not None and (tp - sl) * d <= 0:
            raise ValueError(f"take_profit {self.take_profit} and stop_loss {self.stop_loss} are swapped")
        return self


class OrderLinkIn(Strict):
    order_id: Id | None = None
    client_order_id: Ident | None = None
    signal_id: Ident
    role: Literal["entry", "take_profit", "stop_loss", "close"]
    account_id: Ident = "default"
    symbol: Symbol | None = None  # an order_id is per symbol (SPEC §3.3): the record may name it

    @model_validator(mode="after")
    def _one_ref(self) -> OrderLinkIn:
        if self.order_id is None and self.client_order_id is None:
            raise ValueError("a link needs order_id or client_order_id")
        return self


class TradeIn(Strict):
    symbol: Symbol
    id: Id
    orderId: Id
    side: Literal["BUY", "SELL"]
    positionSide: Literal["LONG", "SHORT", "BOTH"]
    price: PosDec
    qty: PosDec
    quoteQty: Dec
    realizedPnl: Dec
    commission: Dec  # signed: negative is a maker rebate (SPEC §3.2)
    commissionAsset: Asset
    time: EpochMs
    buyer: StrictBool
    maker: StrictBool
    marginAsset: Asset | None = None


class OrderIn(Strict):
    symbol: Symbol
    orderId: Id
    clientOrderId: str = Field(max_length=64)
    status: str = Field(max_length=24)
    type: str = Field(max_length=32)
    origType: str | None = Field(default=None, max_length=32)
    side: Literal["BUY", "SELL"]
    positionSide: Literal["LONG", "SHORT", "BOTH"]
    price: Dec = Decimal(0)
    avgPrice: Dec = Decimal(0)
    origQty: Dec
    executedQty: Dec
    cumQuote: Dec = Decimal(0)
    stopPrice: Dec = Decimal(0)
    reduceOnly: StrictBool = False
    closePosition: StrictBool = False
    # GTC, IOC, FOK, GTX, GTD and MARK_PRICE, CONTRACT_PRICE (USD-M "New Order" docs): the columns hold 16 / 24
    timeInForce: str | None = Field(default=None, max_length=16)
    workingType: str | None = Field(default=None, max_length=24)
    time: EpochMs
    updateTime: EpochMs


def _actual_order_id(v: Any) -> Any:
    """``actualOrderId``: a string, ``""`` until the algo service placed the order (SPEC §3.2) -> None."""
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return None
    return _digits(v)


class AlgoOrderIn(Strict):
    algoId: Id
    clientAlgoId: str = Field(max_length=64)
    algoType: str | None = Field(default=None, max_length=32)
    orderType: str = Field(max_length=32)
    symbol: Symbol
    side: Literal["BUY", "SELL"]
    positionSide: Literal["LONG", "SHORT", "BOTH"]
    quantity: Dec
    algoStatus: str = Field(max_length=24)
    triggerPrice: Dec = Decimal(0)
    price: Dec | None = None
    createTime: EpochMs
    updateTime: EpochMs
    triggerTime: Int64 = 0
    actualOrderId: Annotated[Id | None, BeforeValidator(_actual_order_id)] = None
    actualPrice: Dec | None = None
    reduceOnly: StrictBool | None = None
    closePosition: StrictBool | None = None
    executedQty: Dec = Decimal(0)
    avgPrice: Dec = Decimal(0)


class PositionRiskIn(Strict):
    symbol: Symbol
    positionSide: Literal["LONG", "SHORT", "BOTH"]
    positionAmt: Dec
    entryPrice: Dec
    breakEvenPrice: Dec | None = None
    markPrice: Dec | None = None  # absent only on the flat rows we write for keys v3 no longer lists
    unRealizedProfit: Dec
    notional: Dec | None = None
    updateTime: Int64 = 0
    snapshotTime: EpochMs


class IncomeIn(Strict):
    # "" for account-wide income (TRANSFER, ...); any other value is a contract symbol like every symbol (§3.2)
    symbol: Annotated[str, Field(pattern=f"^$|{SYMBOL_RE}")] = ""
    incomeType: Annotated[str, Field(pattern=r"^[A-Z_]{2,32}$")]
    income: Dec
    asset: Asset
    info: str = Field(default="", max_length=255)
    time: EpochMs
    # a JSON number in the USD-M docs ("tranId":9689322392), a string in the COIN-M ones; up to 19 digits
    tranId: TranId
    # a string of digits, "" when the income is not a trade's (USD-M "Get Income History"); column of 32
    tradeId: Annotated[str, Field(max_length=32)] | Annotated[StrictInt, Field(ge=0, le=MAX_ID)] = ""


class SymbolIn(Strict):
    """One ``symbols[]`` object of ``GET /fapi/v1/exchangeInfo`` (also a line of ``symbols.jsonl``)."""

    symbol: Symbol
    pair: str = Field(default="", max_length=32)
    contractType: str = Field(default="", max_length=32)  # PERPETUAL, CURRENT_QUARTER, NEXT_QUARTER, ...
    deliveryDate: StrictInt | None = Field(default=None, ge=0, le=MAX_ID)
    onboardDate: StrictInt | None = Field(default=None, ge=0, le=MAX_ID)
    status: str = Field(default="", max_length=24)
    baseAsset: Asset
    quoteAsset: Asset
    marginAsset: Asset | None = None  # SPEC §3.2: marginAsset, else quoteAsset


class BalanceIn(Strict):
    """One asset of ``GET /fapi/v3/balance`` (or of ``/fapi/v3/account``'s ``assets``) plus ``snapshotTime``."""

    asset: Asset
    balance: Dec = Field(validation_alias=AliasChoices("balance", "walletBalance"))
    crossWalletBalance: Dec
    crossUnPnl: Dec
    availableBalance: Dec
    maxWithdrawAmount: Dec | None = None
    updateTime: StrictInt = Field(default=0, ge=0, le=MAX_ID)  # 0 for an asset never touched
    snapshotTime: EpochMs


KLINE_FIELDS = ("open", "high", "low", "close", "volume")  # kline[1..5]


def _kline_decimal(v: Any) -> Decimal | None:
    if isinstance(v, bool) or not isinstance(v, str | int | Decimal):
        return None
    try:
        d = Decimal(v)
    except InvalidOperation:
        return None
    return d if d.is_finite() and 0 <= d < Decimal("1e20") else None


KLINE_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")


class KlineIn(Strict):
    """``{"symbol", "interval", "kline": [...]}``: the kline array exactly as ``GET /fapi/v1/klines`` returns it:
    ``[openTime, open, high, low, close, volume, closeTime, quoteAssetVolume, trades, takerBuyBase,
    takerBuyQuote, ignore]``."""

    symbol: Symbol
    interval: Literal[KLINE_INTERVALS]  # type: ignore[valid-type]
    kline: list[Any] = Field(min_length=7)

    @model_validator(mode="after")
    def _array(self) -> KlineIn:
        k = self.kline
        for i, name in ((0, "openTime"), (6, "closeTime")):
            if isinstance(k[i], bool) or not isinstance(k[i], int) or not MIN_TIME_MS <= k[i] < MAX_TIME_MS:
                raise ValueError(f"kline[{i}] ({name}) must be epoch milliseconds (got {_shown(k[i])})")
        if k[6] < k[0]:
            raise ValueError(f"kline closeTime {k[6]} is before openTime {k[0]}")
        for i, name in enumerate(KLINE_FIELDS, start=1):
            if _kline_decimal(k[i]) is None:
                raise ValueError(f"kline[{i}] ({name}) must be a non-negative decimal (got {_shown(k[i])})")
        return self


class AccountIn(Strict):
    account_id: Ident
    position_mode: Literal["hedge", "one_way"]


# ----------------------------------------------------------------------------- rows
class _TooPrecise(ValueError):
    def __init__(self, field: str, value: Decimal):
        super().__init__(
            f"{field}: Decimal input should have no more than {MAX_PLACES} decimal places (got number {value})"
        )


def _s(d: Decimal | None, field: str) -> str | None:
    """Decimals travel to the warehouse as exact canonical strings and are CAST there.

    Canonical: no exponent, no trailing zeros, no negative zero, so ``45053.0`` and
    ``"45053"`` give the same row (and row hash), and a value like ``1.5000000000000000000``
    (19 places, valid because the extra digits are zeros) fits DECIMAL(38,18) without a
    truncation warning. More than 18 significant decimal places are rejected (never rounded).
    (``_canonical`` inlined: this runs five times per fill of a replay.)
    """
    if d is None:
        return None
    s = str(d)  # faster than format(); falls back to it for exponent notation
    if "E" in s:
        s = format(d, "f")
    dot = s.find(".")
    if dot >= 0:
        s = s.rstrip("0")
        if len(s) - dot == 1:
            s = s[:dot]
        elif len(s) - dot - 1 > MAX_PLACES:
            raise _TooPrecise(field, d)
    return "0" if s == "-0" else s


def _canonical(d: Decimal) -> str:
    s = str(d)
    if "E" in s:
        s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def canonical_json(value: Any) -> str:
    """JSON with sorted keys where every Decimal is a canonical number (exact, never a float).

    Non-finite decimals become strings ("NaN"); other unknown types (datetimes …) are
    written with ``str``.
    """
    if isinstance(value, Decimal):
        return _canonical(value) if value.is_finite() else json.dumps(str(value))
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return canonical_json(Decimal(repr(value)))
    if isinstance(value, dict):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{canonical_json(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, datetime | date):
        return json.dumps(value.isoformat())
    return json.dumps(str(value), ensure_ascii=False)


def _signal_row(m: SignalIn, account_id: str) -> dict:
    known = set(SignalIn.model_fields) | {"id"}
    extras = {k: v for k, v in (m.model_extra or {}).items() if k not in known}
    return {
        "signal_id": m.signal_id,
        "account_id": account_id if m.account_id is None else m.account_id,
        "strategy_id": m.strategy_id,
        "symbol": m.symbol,
        "action": m.action,
        "quantity": _s(m.quantity, "quantity"),
        "price": _s(m.price, "price"),
        "take_profit": _s(m.take_profit, "take_profit"),
        "stop_loss": _s(m.stop_loss, "stop_loss"),
        "take_profit_pct": _s(m.take_profit_pct, "take_profit_pct"),
        "stop_loss_pct": _s(m.stop_loss_pct, "stop_loss_pct"),
        "signal_time_ms": m.timestamp,
        "attributes": canonical_json(extras),
    }


def link_ref(order_id: int | None, client_order_id: str | None, symbol: str | None, signal_id: str) -> str:
    """The key of a link: ``order:{SYMBOL}:{id}`` when the record names the symbol (order ids are per
    symbol, SPEC §3.2), ``client:{id}`` for a clientOrderId link, and ``order:{id}#{signal_id}`` when an
    order id comes without its symbol: that id is matched on the signal's symbol (§3.3), so two such
    records of one number for signals on two symbols are two links, not one record replacing the other.
    (At most 6 + 20 + 1 + 64 = 91 characters: the column holds 96.)"""
    if order_id is not None:
        return f"order:{symbol}:{order_id}" if symbol else f"order:{order_id}#{signal_id}"
    return f"client:{client_order_id}"


def _link_row(m: OrderLinkIn, account_id: str) -> dict:
    return {
        "account_id": account_id if m.account_id == "default" else m.account_id,
        "link_ref": link_ref(m.order_id, m.client_order_id, m.symbol, m.signal_id),
        "order_id": m.order_id,
        "client_order_id": m.client_order_id,
        "signal_id": m.signal_id,
        "role": m.role,
        "symbol": m.symbol,
    }


def _trade_row(m: TradeIn, account_id: str) -> dict:
    return {
        "account_id": account_id,
        "symbol": m.symbol,
        "trade_id": m.id,
        "order_id": m.orderId,
        "side": m.side,
        "position_side": m.positionSide,
        "price": _s(m.price, "price"),
        "qty": _s(m.qty, "qty"),
        "quote_qty": _s(m.quoteQty, "quoteQty"),
        "realized_pnl": _s(m.realizedPnl, "realizedPnl"),
        # signed as Binance sends it: negative is a maker rebate (SPEC §3.2; an earlier abs() here was wrong)
        "commission": _s(m.commission, "commission"),
        "commission_asset": m.commissionAsset,
        "trade_time_ms": m.time,
        "buyer": m.buyer,
        "maker": m.maker,
        "margin_asset": m.marginAsset,
    }


def _order_row(m: OrderIn, account_id: str) -> dict:
    return {
        "account_id": account_id,
        "symbol": m.symbol,
        "order_id": m.orderId,
        "client_order_id": m.clientOrderId,
        "status": m.status,
        "order_type": m.type,
        "orig_type": m.origType,
        "side": m.side,
        "position_side": m.positionSide,
        "price": _s(m.price, "price"),
        "avg_price": _s(m.avgPrice, "avgPrice"),
        "orig_qty": _s(m.origQty, "origQty"),
        "executed_qty": _s(m.executedQty, "executedQty"),
        "cum_quote": _s(m.cumQuote, "cumQuote"),
        "stop_price": _s(m.stopPrice, "stopPrice"),
        "reduce_only": m.reduceOnly,
        "close_position": m.closePosition,
        "time_in_force": m.timeInForce,
        "working_type": m.workingType,
        "order_time_ms": m.time,
        "update_time_ms": m.updateTime,
    }


def _algo_row(m: AlgoOrderIn, account_id: str) -> dict:
    return {
        "account_id": account_id,
        "symbol": m.symbol,
        "algo_id": m.algoId,
        "client_algo_id": m.clientAlgoId,
        "order_type": m.orderType,
        "side": m.side,
        "position_side": m.positionSide,
        "quantity": _s(m.quantity, "quantity"),
        "algo_status": m.algoStatus,
        "trigger_price": _s(m.triggerPrice, "triggerPrice"),
        "create_time_ms": m.createTime,
        "update_time_ms": m.updateTime,
        "trigger_time_ms": m.triggerTime or None,
        "actual_order_id": m.actualOrderId,
        "executed_qty": _s(m.executedQty, "executedQty"),
        "avg_price": _s(m.avgPrice, "avgPrice"),
        "algo_type": m.algoType,
        "price": _s(m.price, "price"),
        "actual_price": _s(m.actualPrice, "actualPrice"),
        "reduce_only": m.reduceOnly,
        "close_position": m.closePosition,
    }


def _risk_row(m: PositionRiskIn, account_id: str) -> dict:
    return {
        "account_id": account_id,
        "symbol": m.symbol,
        "position_side": m.positionSide,
        "snapshot_time_ms": m.snapshotTime,
        "position_amt": _s(m.positionAmt, "positionAmt"),
        "entry_price": _s(m.entryPrice, "entryPrice"),
        "break_even_price": _s(m.breakEvenPrice, "breakEvenPrice"),
        "mark_price": _s(m.markPrice, "markPrice"),
        "unrealized_profit": _s(m.unRealizedProfit, "unRealizedProfit"),
        "notional": _s(m.notional, "notional"),
        "update_time_ms": m.updateTime,
    }


def _income_row(m: IncomeIn, account_id: str) -> dict:
    return {
        "account_id": account_id,
        "income_type": m.incomeType,
        "tran_id": str(m.tranId),  # DECIMAL(20,0): travels as an exact string like the decimals
        "symbol": m.symbol,
        "income": _s(m.income, "income"),
        "asset": m.asset,
        "info": m.info,
        "income_time_ms": m.time,
        "trade_id": str(m.tradeId),
    }


def _account_row(m: AccountIn, account_id: str) -> dict:
    return {"account_id": m.account_id, "position_mode": m.position_mode}


def _symbol_row(m: SymbolIn, account_id: str) -> dict:
    return {
        "symbol": m.symbol,
        "pair": m.pair,
        "contract_type": m.contractType,
        "delivery_date_ms": m.deliveryDate,
        "onboard_date_ms": m.onboardDate,
        "status": m.status,
        "base_asset": m.baseAsset,
        "quote_asset": m.quoteAsset,
        "margin_asset": m.marginAsset or m.quoteAsset,
    }


def _balance_row(m: BalanceIn, account_id: str) -> dict:
    return {
        "account_id": account_id,
        "asset": m.asset,
        "snapshot_time_ms": m.snapshotTime,
        "balance": _s(m.balance, "balance"),
        "cross_wallet_balance": _s(m.crossWalletBalance, "crossWalletBalance"),
        "cross_un_pnl": _s(m.crossUnPnl, "crossUnPnl"),
        "available_balance": _s(m.availableBalance, "availableBalance"),
        "max_withdraw_amount": _s(m.maxWithdrawAmount, "maxWithdrawAmount"),
        "update_time_ms": m.updateTime,
    }


def _kline_row(m: KlineIn, account_id: str) -> dict:
    p = {name: _kline_decimal(m.kline[i]) for i, name in enumerate(KLINE_FIELDS, start=1)}
    return {
        "symbol": m.symbol,
        "kline_interval": m.interval,
        "open_time_ms": m.kline[0],
        "open_price": _s(p["open"], "kline.open"),
        "high_price": _s(p["high"], "kline.high"),
        "low_price": _s(p["low"], "kline.low"),
        "close_price": _s(p["close"], "kline.close"),
        "volume": _s(p["volume"], "kline.volume"),
        "close_time_ms": m.kline[6],
    }


@dataclass(frozen=True)
class RecordKind:
    """How one source record type becomes a row of one raw table."""

    name: str
    table: str
    model: type[BaseModel]
    row: Callable[[Any, str], dict]
    key: Callable[[dict], str]  # best-effort key of a raw object, for quarantine rows


def _k(*fields: str) -> Callable[[dict], str]:
    def key(obj: dict) -> str:
        return ":".join(str(obj.get(f, "?"))[:64] for f in fields)

    return key


KINDS: dict[str, RecordKind] = {
    k.name: k
    for k in (
        RecordKind(
            "signals",
            "signals",
            SignalIn,
            _signal_row,
            lambda o: str(o.get("signal_id", o.get("id", "?")))[:64],
        ),
        RecordKind(
            "order_links",
            "order_links",
            OrderLinkIn,
            _link_row,
            _k("symbol", "order_id", "client_order_id", "signal_id"),
        ),
        RecordKind("futures_trades", "futures_trades", TradeIn, _trade_row, _k("symbol", "id")),
        RecordKind("futures_orders", "futures_orders", OrderIn, _order_row, _k("symbol", "orderId")),
        RecordKind("futures_algo_orders", "futures_algo_orders", AlgoOrderIn, _algo_row, _k("symbol", "algoId")),
        RecordKind(
            "position_risk",
            "position_snapshots",
            PositionRiskIn,
            _risk_row,
            _k("symbol", "positionSide", "snapshotTime"),
        ),
        RecordKind("income", "income", IncomeIn, _income_row, _k("incomeType", "tranId")),
        RecordKind("account", "accounts", AccountIn, _account_row, _k("account_id")),
        RecordKind("symbols", "symbols", SymbolIn, _symbol_row, _k("symbol")),
        RecordKind("balances", "balance_snapshots", BalanceIn, _balance_row, _k("asset", "snapshotTime")),
        RecordKind("klines", "klines", KlineIn, _kline_row, lambda o: _kline_key(o)),
    )
}


def _kline_key(obj: dict) -> str:
    k = obj.get("kline")
    first = k[0] if isinstance(k, list) and k else "?"
    return f"{str(obj.get('symbol', '?'))[:32]}:{str(obj.get('interval', '?'))[:8]}:{str(first)[:20]}"


def _shown(value: Any) -> str:
    """A short description of an offending input, in JSON terms: ``boolean true``, ``object``, ``string 'x'``."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, int | float | Decimal):
        return f"number {value}"[:60]
    if isinstance(value, str):
        return f"string {value[:40]!r}" + ("…" if len(value) > 40 else "")
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(x) for x in err["loc"] if x != "__root__")
        msg = err["msg"].removeprefix("Value error, ")
        if loc and err["type"] != "missing" and "input" in err:
            msg = f"{msg} (got {_shown(err['input'])})"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _constant(name: str) -> Decimal:
    return Decimal(name.replace("Infinity", "Inf"))  # NaN/Infinity reach the model, which names the field


class DuplicateKey(ValueError):
    """A JSON object names one key twice (``json`` would silently keep the last value)."""


def _object(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dupe = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise DuplicateKey(f"duplicate key {dupe[:64]!r} in one JSON object")
    return obj


# one decoder (json.loads builds one per call); duplicate keys are refused, never last-one-wins
DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_constant, object_pairs_hook=_object)


def decode_json(text: str) -> Any:
    """JSON text -> value (decimals exact), or :class:`Rejected`: invalid, duplicate keys, nested too deeply."""
    try:
        return DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise Rejected(f"invalid JSON ({exc.msg} at column {exc.colno}); truncated line?") from None
    except DuplicateKey as exc:
        raise Rejected(str(exc)) from None
    except RecursionError:
        raise Rejected("JSON nested too deeply (the parser's recursion limit was reached)") from None


def parse_line(raw: bytes) -> dict:
    """Bytes of one JSONL line -> JSON object, or :class:`Rejected` with the reason."""
    return parse_line_text(raw)[0]


def parse_line_text(raw: bytes) -> tuple[dict, str]:
    """Like :func:`parse_line`, also returning the decoded text (the payload kept for audit)."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise Rejected(f"payload of {len(raw)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at position {exc.start}") from None
    obj = decode_json(text)
    if not isinstance(obj, dict):
        raise Rejected(f"expected a JSON object, got {type(obj).__name__}")
    return obj, text


def to_row(kind: RecordKind, obj: dict, account_id: str) -> dict:
    """Validate ``obj`` and return its raw row (without lineage columns).

    Besides the model's rules, every value must fit its column on both targets alike (:func:`check_row`),
    so a record that passes can always be stored.
    """
    try:
        model = kind.model.model_validate(obj)
        row = kind.row(model, account_id)
    except ValidationError as exc:
        raise Rejected(_reason(exc), _safe_key(kind, obj)) from None
    except _TooPrecise as exc:
        raise Rejected(str(exc), _safe_key(kind, obj)) from None
    except RecursionError:
        raise Rejected("record nested too deeply to validate", _safe_key(kind, obj)) from None
    problem = check_row(kind.table, row)
    if problem:
        raise Rejected(problem, _safe_key(kind, obj))
    return row


def _safe_key(kind: RecordKind, obj: dict) -> str:
    try:
        return safe_text(kind.key(obj))
    except Exception:
        return "?"


def _column_checks(table_name: str) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...], tuple[str, ...]]:
    """(varchar columns with their size, BIGINT columns, text columns) of a raw table."""
    from ingestion.schema import RAW_TABLES

    table = RAW_TABLES[table_name]
    return (
        tuple((c.name, c.size) for c in table.columns if c.kind == "str"),
        tuple(c.name for c in table.columns if c.kind == "int"),
        tuple(c.name for c in table.columns if c.kind == "text"),
    )


_CHECKS: dict[str, tuple] = {}


def check_row(table_name: str, row: dict) -> str | None:
    """Why ``row`` cannot be stored in ``raw.{table_name}`` as it is on either target, or None.

    MariaDB's varchar(n) would refuse (strict mode) or cut (LOAD DATA) a longer string where DuckDB keeps it,
    a BIGINT holds 64 bits, and utf8mb4 cannot hold a lone surrogate (a ``\ud800`` escape in JSON): each is a
    quarantine reason naming the column, the same on DuckDB and MariaDB.
    """
    checks = _CHECKS.get(table_name)
    if checks is None:
        checks = _CHECKS[table_name] = _column_checks(table_name)
    sized, ints, texts = checks
    for name, size in sized:
        v = row.get(name)
        if v.__class__ is str and (len(v) > size or not v.isascii()):  # one test on the usual path
            if len(v) > size:
                return f"{name}: longer than the column's {size} characters (got {len(v)})"
            if not _encodable(v):
                return f"{name}: not encodable as UTF-8 (a lone surrogate such as \\ud800)"
    for name in ints:
        v = row.get(name)
        if v is not None and not MIN_INT64 <= v <= MAX_ID:
            return f"{name}: integer outside the signed 64-bit range (got {str(v)[:40]})"
    for name in texts:
        v = row.get(name)
        if v.__class__ is str and not v.isascii() and not _encodable(v):
            return f"{name}: not encodable as UTF-8 (a lone surrogate such as \\ud800)"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_text(text: str) -> str:
    """``text`` storable as utf8mb4: lone surrogates become visible ``\\udXXX`` escapes (nothing dropped)."""
    if text.isascii() or _encodable(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def bounded_payload(payload: str | bytes, limit: int = QUARANTINE_PAYLOAD_BYTES) -> tuple[str, int]:
    """(storable text of at most ``limit`` bytes, full length in bytes) of a quarantined record's payload.

    Bytes are decoded with undecodable bytes escaped; a longer payload is cut at ``limit`` bytes (on a
    character boundary) and ends with ``…``: the quarantine row keeps its full length and sha256 instead.
    """
    if isinstance(payload, bytes):
        size = len(payload)
        text = printable_payload(payload[: limit + 4] if size > limit else payload)
    else:
        text = safe_text(payload)
        size = len(text.encode("utf-8"))
    if size <= limit:
        return text, size
    data = text.encode("utf-8")[:limit]
    return data.decode("utf-8", "ignore") + "…", size


def row_hash(row: dict) -> str:
    """Content hash of the typed row: the same record sent as number or string hashes the same."""
    # surrogatepass: never fails (a lone surrogate is refused by check_row, or the store, not here)
    return hashlib.sha256("\x1f".join(map(str, row.values())).encode("utf-8", "surrogatepass")).hexdigest()


def raw_hash(payload: bytes | str) -> str:
    if isinstance(payload, str):
        try:
            data = payload.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate outside surrogateescape's range (a JSON "\ud800")
            data = payload.encode("utf-8", "surrogatepass")
    else:
        data = payload
    return hashlib.sha256(data).hexdigest()


def printable_payload(raw: bytes) -> str:
    """The original payload as text for the quarantine table (undecodable bytes escaped, nothing dropped)."""
    return raw.decode("utf-8", errors="backslashreplace")
