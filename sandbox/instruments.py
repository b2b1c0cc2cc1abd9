"""Contract specifications of the symbols the paper exchange can trade.

The generator uses them to round prices and quantities the way Binance's filters
would; :func:`exchange_info_symbol` renders one as a ``/fapi/v1/exchangeInfo``
``symbols[]`` object (written to ``symbols.jsonl`` and served by the fake API).

Besides USDT perpetuals the paper exchange lists the two other shapes a USD-M account
meets (SPEC §3.2): a quarterly delivery contract ``BTCUSDT_yymmdd`` (contractType
``CURRENT_QUARTER``, margin USDT) and a BTC-margined contract listed under USD-M,
``ETHBTC`` (``marginAsset`` BTC: its realizedPnl, commission, funding and income are in
BTC). Field names follow Binance's exchangeInfo (``symbol, pair, contractType,
deliveryDate, onboardDate, status, baseAsset, quoteAsset, marginAsset, pricePrecision,
quantityPrecision, filters`` — developers.binance.com, USDⓈ-M Futures › Market Data ›
Exchange Information).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

PERPETUAL_DELIVERY_MS = 4133404800000  # Binance's deliveryDate of a perpetual (2100-12-25)
ONBOARD_MS = 1569398400000
QUARTERLY_RE = re.compile(r"^(?P<pair>[A-Z0-9]+)_(?P<yymmdd>\d{6})$")


@dataclass(frozen=True)
class Instrument:
    """A USD-M contract: tick and lot sizes, a starting price and a daily volatility."""

    symbol: str
    base_asset: str
    tick_size: Decimal
    step_size: Decimal
    start_price: Decimal
    daily_vol: float
    min_qty: Decimal
    typical_notional: Decimal  # quote-asset size of a typical strategy entry
    quote_asset: str = "USDT"
    margin_asset: str = "USDT"
    contract_type: str = "PERPETUAL"  # PERPETUAL | CURRENT_QUARTER | NEXT_QUARTER
    delivery_date: int = PERPETUAL_DELIVERY_MS  # ms; a quarterly is delivered then
    pair: str = ""

    @property
    def price_precision(self) -> int:
        return -self.tick_size.normalize().as_tuple().exponent

    @property
    def quantity_precision(self) -> int:
        return max(0, -self.step_size.normalize().as_tuple().exponent)

    @property
    def perpetual(self) -> bool:
        return self.contract_type == "PERPETUAL"


def _i(symbol, base, tick, step, price, vol, notional, quote="USDT") -> Instrument:
    return Instrument(
        symbol=symbol,
        base_asset=base,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        start_price=Decimal(price),
        daily_vol=vol,
        min_qty=Decimal(step),
        typical_notional=Decimal(notional),
        quote_asset=quote,
        margin_asset=quote,
        pair=symbol,
    )


INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        _i("BTCUSDT", "BTC", "0.1", "0.001", "45000.0", 0.025, "150"),
        _i("ETHUSDT", "ETH", "0.01", "0.001", "2400.00", 0.032, "120"),
        _i("SOLUSDT", "SOL", "0.001", "0.01", "98.000", 0.045, "100"),
        _i("BNBUSDT", "BNB", "0.01", "0.01", "310.00", 0.030, "100"),
        _i("XRPUSDT", "XRP", "0.0001", "0.1", "0.6200", 0.040, "80"),
        _i("DOGEUSDT", "DOGE", "0.00001", "1", "0.08500", 0.050, "60"),
        _i("ADAUSDT", "ADA", "0.0001", "1", "0.5200", 0.042, "60"),
        _i("LINKUSDT", "LINK", "0.001", "0.01", "15.000", 0.045, "80"),
        _i("AVAXUSDT", "AVAX", "0.001", "0.1", "36.000", 0.050, "80"),
        _i("LTCUSDT", "LTC", "0.01", "0.001", "72.00", 0.035, "70"),
        _i("DOTUSDT", "DOT", "0.001", "0.1", "7.200", 0.045, "60"),
        _i("TRXUSDT", "TRX", "0.00001", "1", "0.10500", 0.030, "50"),
        # BTC-margined, listed under USD-M: quoted and settled in BTC
        _i("ETHBTC", "ETH", "0.00001", "0.001", "0.05330", 0.020, "0.003", quote="BTC"),
    )
}

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")
DELIVERY_HOUR_UTC = 8  # Binance delivers quarterly contracts at 08:00 UTC on the delivery date


def quarterly_symbol(pair: str, delivery: datetime) -> str:
    """``BTCUSDT_260327``: the symbol of ``pair``'s quarterly delivered on ``delivery``'s UTC date."""
    return f"{pair}_{delivery.astimezone(UTC):%y%m%d}"


def quarterly_delivery_ms(yymmdd: str) -> int:
    """When the quarterly of ``{PAIR}_{yymmdd}`` is delivered: 08:00 UTC of that date, in ms."""
    day = datetime.strptime(yymmdd, "%y%m%d").replace(hour=DELIVERY_HOUR_UTC, tzinfo=UTC)
    return int(day.timestamp() * 1000)


@lru_cache(maxsize=64)
def quarterly(symbol: str) -> Instrument:
    """The quarterly contract ``{PAIR}_{yymmdd}``, delivered at 08:00 UTC of that date.

    Modelling choice: its contract sizes and start price follow the perpetual of the same
    pair (with a small basis), its contractType is ``CURRENT_QUARTER`` and its margin asset
    the perpetual's. Binance names quarterlies after their delivery date the same way.
    """
    m = QUARTERLY_RE.match(symbol)
    if not m or m["pair"] not in INSTRUMENTS:
        raise ValueError(f"unknown symbol {symbol!r}")
    perp = INSTRUMENTS[m["pair"]]
    basis = (perp.start_price * Decimal("1.004") / perp.tick_size).quantize(Decimal(1)) * perp.tick_size
    return replace(
        perp,
        symbol=symbol,
        start_price=basis,
        contract_type="CURRENT_QUARTER",
        delivery_date=quarterly_delivery_ms(m["yymmdd"]),
        pair=perp.symbol,
    )


def instrument(symbol: str) -> Instrument:
    """The instrument for ``symbol``; a clear error for one the paper exchange does not list."""
    try:
        return INSTRUMENTS[symbol]
    except KeyError:
        pass
    try:
        return quarterly(symbol)
    except ValueError:
        known = ", ".join(sorted(INSTRUMENTS))
        raise ValueError(
            f"unknown symbol {symbol!r}; the paper exchange lists: {known}, and quarterlies {{PAIR}}_yymmdd"
        ) from None


def exchange_info_symbol(inst: Instrument, status: str = "TRADING") -> dict:
    """One ``/fapi/v1/exchangeInfo`` ``symbols[]`` object (field names as Binance sends them)."""
    return {
        "symbol": inst.symbol,
        "pair": inst.pair or inst.symbol,
        "contractType": inst.contract_type,
        "deliveryDate": inst.delivery_date,
        "onboardDate": ONBOARD_MS,
        "status": status,
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": inst.base_asset,
        "quoteAsset": inst.quote_asset,
        "marginAsset": inst.margin_asset,
        "pricePrecision": inst.price_precision,
        "quantityPrecision": inst.quantity_precision,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": str(inst.tick_size),
                "maxPrice": "1000000",
                "tickSize": str(inst.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": str(inst.min_qty),
                "maxQty": "100000",
                "stepSize": str(inst.step_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": str(inst.min_qty),
                "maxQty": "10000",
                "stepSize": str(inst.step_size),
            },
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }
