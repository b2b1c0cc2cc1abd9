"""Paper exchange: a deterministic Binance USD-M futures simulator and a fake REST API (SPEC §7)."""
