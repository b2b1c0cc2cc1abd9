"""stratpos: per-strategy books for shared Binance USD-M futures positions."""

__version__ = "0.1.0"
