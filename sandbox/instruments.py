"""Contract specifications of the symbols the paper exchange can trade.

The generator uses them to round prices and quantities the way Binance's filters
would; the fake REST API serves them from ``/fapi/v1/exchangeInfo``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Instrument:
    """A USD-M perpetual: tick and lot sizes, a starting price and a daily volatility."""

    symbol: str
    base_asset: str
    tick_size: Decimal
    step_size: Decimal
    start_price: Decimal
    daily_vol: float
    min_qty: Decimal
    typical_notional: Decimal  # USDT size of a typical strategy entry

    @property
    def quote_asset(self) -> str:
        return "USDT"

    @property
    def price_precision(self) -> int:
        return -self.tick_size.normalize().as_tuple().exponent

    @property
    def quantity_precision(self) -> int:
        return max(0, -self.step_size.normalize().as_tuple().exponent)


def _i(symbol, base, tick, step, price, vol, notional) -> Instrument:
    return Instrument(
        symbol=symbol,
        base_asset=base,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        start_price=Decimal(price),
        daily_vol=vol,
        min_qty=Decimal(step),
        typical_notional=Decimal(notional),
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
    )
}

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")


def instrument(symbol: str) -> Instrument:
    """The instrument for ``symbol``; a clear error for one the paper exchange does not list."""
    try:
        return INSTRUMENTS[symbol]
    except KeyError:
        known = ", ".join(sorted(INSTRUMENTS))
        raise ValueError(f"unknown symbol {symbol!r}; the paper exchange lists: {known}") from None
