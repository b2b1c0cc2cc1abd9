"""DDL of the raw and audit tables, owned by the project and created on first use.

One column list per table renders to DuckDB and to MySQL/MariaDB, so both targets
hold the same columns with the same exact types: decimals are DECIMAL(38,18), times
are epoch milliseconds (BIGINT) as the sources send them (staging casts them to
timestamps), and every raw row keeps its original payload for audit.
"""

from __future__ import annotations

from stratpos.core.ddl import C, Table

# lineage columns every raw table carries. Columns added to a table after its first release follow them:
# that is where ALTER TABLE … ADD puts them on a table an older version created (ingestion/migrate.py), so a
# new and a migrated table have the same column order.
LINEAGE = (
    C("payload", "text", nullable=False),
    C("payload_hash", size=64, nullable=False),
    C("source", size=255, nullable=False),
    C("run_id", size=40, nullable=False),
    C("loaded_at", "ts", nullable=False),
)

RAW_TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "accounts",
            "raw",
            (C("account_id"), C("position_mode", size=16), *LINEAGE),
            ("account_id",),
        ),
        Table(
            "signals",
            "raw",
            (
                C("signal_id"),
                C("account_id"),
                C("strategy_id"),
                C("symbol", size=32),
                C("action", size=8),
                C("quantity", "dec"),
                C("price", "dec"),
                C("take_profit", "dec"),
                C("stop_loss", "dec"),
                C("take_profit_pct", "dec"),
                C("stop_loss_pct", "dec"),
                C("signal_time_ms", "int"),
                C("attributes", "text"),
                *LINEAGE,
            ),
            ("signal_id",),
        ),
        Table(
            "order_links",
            "raw",
            (
                C("account_id"),
                C("link_ref", size=96),
                C("order_id", "int"),
                C("client_order_id"),
                C("signal_id"),
                C("role", size=16),
                *LINEAGE,
                C("symbol", size=32),  # optional: the symbol an order_id belongs to (ids are per symbol)
            ),
            ("account_id", "link_ref"),
        ),
        Table(
            "futures_trades",
            "raw",
            (
                C("account_id"),
                C("symbol", size=32),
                C("trade_id", "int"),
                C("order_id", "int"),
                C("side", size=8),
                C("position_side", size=8),
                C("price", "dec"),
                C("qty", "dec"),
                C("quote_qty", "dec"),
                C("realized_pnl", "dec"),
                C("commission", "dec"),
                C("commission_asset", size=16),
                C("trade_time_ms", "int"),
                C("buyer", "bool"),
                C("maker", "bool"),
                C("margin_asset", size=16),
                *LINEAGE,
            ),
            ("account_id", "symbol", "trade_id"),
            indexes=(("account_id", "symbol", "order_id"),),
        ),
        Table(
            "futures_orders",
            "raw",
            (
                C("account_id"),
                C("symbol", size=32),
                C("order_id", "int"),
                C("client_order_id"),
                C("status", size=24),
                C("order_type", size=32),
                C("orig_type", size=32),
                C("side", size=8),
                C("position_side", size=8),
                C("price", "dec"),
                C("avg_price", "dec"),
                C("orig_qty", "dec"),
                C("executed_qty", "dec"),
                C("cum_quote", "dec"),
                C("stop_price", "dec"),
                C("reduce_only", "bool"),
                C("close_position", "bool"),
                C("time_in_force", size=16),
                C("working_type", size=24),
                C("order_time_ms", "int"),
                C("update_time_ms", "int"),
                *LINEAGE,
            ),
            ("account_id", "symbol", "order_id"),
            version="update_time_ms",
        ),
        Table(
            "futures_algo_orders",
            "raw",
            (
                C("account_id"),
                C("algo_id", "int"),
                C("symbol", size=32),
                C("client_algo_id"),
                C("order_type", size=32),
                C("side", size=8),
                C("position_side", size=8),
                C("quantity", "dec"),
                C("algo_status", size=24),
                C("trigger_price", "dec"),
                C("create_time_ms", "int"),
                C("update_time_ms", "int"),
                C("trigger_time_ms", "int"),
                C("actual_order_id", "int"),  # NULL while Binance sends ""
                C("executed_qty", "dec"),
                C("avg_price", "dec"),
                *LINEAGE,
                C("algo_type", size=32),
                C("price", "dec"),
                C("actual_price", "dec"),
                C("reduce_only", "bool"),
                C("close_position", "bool"),
            ),
            # algoId is a sequence per symbol (SPEC §3.2): the same number on two symbols is two orders
            ("account_id", "symbol", "algo_id"),
            version="update_time_ms",
            indexes=(("account_id", "symbol", "actual_order_id"),),
        ),
        Table(
            "position_snapshots",
            "raw",
            (
                C("account_id"),
                C("symbol", size=32),
                C("position_side", size=8),
                C("snapshot_time_ms", "int"),
                C("position_amt", "dec"),
                C("entry_price", "dec"),
                C("break_even_price", "dec"),
                C("mark_price", "dec"),
                C("unrealized_profit", "dec"),
                C("notional", "dec"),
                C("update_time_ms", "int"),
                *LINEAGE,
            ),
            ("account_id", "symbol", "position_side", "snapshot_time_ms"),
        ),
        Table(
            "income",
            "raw",
            (
                C("account_id"),
                C("income_type", size=32),
                C("tran_id", "bigid"),
                C("symbol", size=32),
                C("income", "dec"),
                C("asset", size=16),
                C("info", size=255),
                C("income_time_ms", "int"),
                C("trade_id", size=32),
                *LINEAGE,
            ),
            ("account_id", "income_type", "tran_id"),
        ),
        Table(
            "symbols",
            "raw",
            (
                C("symbol", size=32),
                C("pair", size=32),
                C("contract_type", size=32),
                C("delivery_date_ms", "int"),
                C("onboard_date_ms", "int"),
                C("status", size=24),
                C("base_asset", size=16),
                C("quote_asset", size=16),
                C("margin_asset", size=16),
                *LINEAGE,
            ),
            ("symbol",),
            replace=True,  # the latest exchangeInfo wins (status, delivery date, ...)
        ),
        Table(
            "balance_snapshots",
            "raw",
            (
                C("account_id"),
                C("asset", size=16),
                C("snapshot_time_ms", "int"),
                C("balance", "dec"),
                C("cross_wallet_balance", "dec"),
                C("cross_un_pnl", "dec"),
                C("available_balance", "dec"),
                C("max_withdraw_amount", "dec"),
                C("update_time_ms", "int"),
                *LINEAGE,
            ),
            ("account_id", "asset", "snapshot_time_ms"),
        ),
        Table(
            "klines",
            "raw",
            (
                C("symbol", size=32),
                C("kline_interval", size=8),
                C("open_time_ms", "int"),
                C("open_price", "dec"),
                C("high_price", "dec"),
                C("low_price", "dec"),
                C("close_price", "dec"),
                C("volume", "dec"),
                C("close_time_ms", "int"),
                *LINEAGE,
            ),
            ("symbol", "kline_interval", "open_time_ms"),
            replace=True,  # public market data: a later answer for the same minute wins
        ),
        Table(
            "quarantine",
            "raw",
            (
                C("source", size=255),
                C("record_hash", size=64),
                C("record_key", size=255),
                C("reason", "text", nullable=False),
                C("payload", "text", nullable=False),
                C("run_id", size=40, nullable=False),
                C("quarantined_at", "ts", nullable=False),
                # the payload's full length in bytes: ``payload`` keeps at most its first 64 KiB, ``record_hash``
                # is the sha256 of all of it (NULL on rows quarantined before this column existed)
                C("payload_bytes", "int"),
            ),
            ("source", "record_hash"),
        ),
    )
}

AUDIT_TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "ingestion_runs",
            "audit",
            (
                C("run_id", size=40),
                C("source", size=255),
                C("batch_no", "int"),
                C("target", size=16, nullable=False),
                C("started_at", "ts", nullable=False),
                C("finished_at", "ts", nullable=False),
                C("duration_ms", "int", nullable=False),
                C("received", "int", nullable=False),
                C("loaded", "int", nullable=False),
                C("duplicates", "int", nullable=False),
                C("quarantined", "int", nullable=False),
                C("status", size=16, nullable=False),
                C("message", "text"),
            ),
            ("run_id", "source", "batch_no"),
        ),
        Table(
            "ingestion_state",
            "audit",
            (
                C("state_key", size=255),
                C("watermark", size=255, nullable=False),
                C("updated_at", "ts", nullable=False),
                C("run_id", size=40, nullable=False),
            ),
            ("state_key",),
        ),
    )
}

ALL_TABLES: dict[str, Table] = {**RAW_TABLES, **AUDIT_TABLES}
