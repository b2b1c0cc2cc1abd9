"""Records shaped exactly as Binance documents them (tests/ingestion/documented.py names the sources).

What a real account sends and the paper exchange did not: maker rebates (negative commission), extra
fields (``marginAsset``, ``baseQty``, ``pair``), 19-digit ``tranId``s, ``actualOrderId`` as a string,
quarterly and BTC-margined contracts, and order/algo/trade ids that repeat across symbols. Loaded from a
replay directory on both targets, and read through the real python-binance client from the fake API.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from ingestion.batch import Batch, new_run_id
from ingestion.binance_client import BinanceApi, RetryPolicy
from ingestion.binance_source import FINAL_ALGO_STATUSES, ingest_binance
from ingestion.records import KINDS, Rejected, to_row
from ingestion.replay import load_replay
from ingestion.schema import RAW_TABLES
from ingestion.store import RawStore
from sandbox.server import SandboxServer, ServerConfig, make_client
from stratpos.core.settings import Settings
from tests.ingestion import documented as doc
from tests.ingestion.warehouse_dump import LINEAGE_OF_A_RUN, dump, rows

LINEAGE = {"payload", "payload_hash", "source", "run_id", "loaded_at"}


@pytest.fixture
def replay_dir(tmp_path):
    return doc.write(tmp_path / "acct")


def _one(settings, sql, params=None) -> dict:
    found = rows(settings, sql, params)
    assert len(found) == 1, found
    return found[0]


# ----------------------------------------------------------------------------- record rules
def test_a_documented_user_trade_keeps_its_sign_and_extra_fields():
    # Binance's USD-M OpenAPI example, verbatim, plus the COIN-M example's extra fields
    obj = {
        "buyer": False,
        "commission": "-0.07819010",
        "commissionAsset": "USDT",
        "id": 698759,
        "maker": False,
        "orderId": 25851813,
        "price": "7819.01",
        "qty": "0.002",
        "quoteQty": "15.63802",
        "realizedPnl": "-0.91539999",
        "side": "SELL",
        "positionSide": "SHORT",
        "symbol": "BTCUSDT",
        "time": 1569514978020,
        "marginAsset": "USDT",
        "baseQty": "0.002",
        "pair": "BTCUSDT",
    }
    row = to_row(KINDS["futures_trades"], obj, "a")
    assert row["commission"] == "-0.0781901"  # signed, never abs()
    assert row["margin_asset"] == "USDT" and row["trade_id"] == 698759 and row["order_id"] == 25851813


@pytest.mark.parametrize("symbol", ["BTCUSDT_261225", "ETHBTC", "BTCUSDC", "1000PEPEUSDT", "币安人生USDT"])
def test_every_usdm_contract_symbol_is_valid(symbol):
    obj = doc.trade(symbol, 1, 1, doc.T0, commission="0.1")
    assert to_row(KINDS["futures_trades"], obj, "a")["symbol"] == symbol


def test_exchange_info_entries_of_unusual_contracts_load():
    for symbol, base in (("SUSDT", "S"), ("币安人生USDT", "币安人生"), ("1000PEPEUSDT", "1000PEPE")):
        row = to_row(KINDS["symbols"], doc.symbol_info(symbol, symbol, "PERPETUAL", base, "USDT", "USDT"), "a")
        assert (row["symbol"], row["base_asset"], row["margin_asset"]) == (symbol, base, "USDT")
    no_margin = {k: v for k, v in doc.symbol_info("ETHBTC", "ETHBTC", "PERPETUAL", "ETH", "BTC", None).items()}
    del no_margin["marginAsset"]
    assert to_row(KINDS["symbols"], no_margin, "a")["margin_asset"] == "BTC"  # SPEC §3.2: else quoteAsset


@pytest.mark.parametrize("symbol", ["btcusdt", "BTC/USDT", "BTC USDT", "_BTC", "B"])
def test_junk_symbols_are_still_rejected(symbol):
    with pytest.raises(Rejected, match="symbol: String should match pattern"):
        to_row(KINDS["futures_trades"], doc.trade(symbol, 1, 1, doc.T0, commission="0.1"), "a")


def test_tran_id_up_to_19_digits_as_number_or_string():
    base = doc.income("", "TRANSFER", "-0.375", "USDT", doc.T0, 1)
    assert to_row(KINDS["income"], {**base, "tranId": doc.TRAN_MAX_19}, "a")["tran_id"] == "9999999999999999999"
    assert to_row(KINDS["income"], {**base, "tranId": "9689322392"}, "a")["tran_id"] == "9689322392"  # COIN-M
    with pytest.raises(Rejected, match="tranId: more than 19 digits"):
        to_row(KINDS["income"], {**base, "tranId": 10**19}, "a")
    with pytest.raises(Rejected, match="tranId"):
        to_row(KINDS["income"], {**base, "tranId": "12a"}, "a")


def test_actual_order_id_is_a_string_and_empty_means_none():
    waiting = doc.algo("BNBUSDT", 2148627, "NEW", doc.T0)
    assert waiting["actualOrderId"] == ""
    assert to_row(KINDS["futures_algo_orders"], waiting, "a")["actual_order_id"] is None
    placed = doc.algo("BNBUSDT", 2148627, "TRIGGERED", doc.T0, actual=str(doc.ORDER_19))
    assert to_row(KINDS["futures_algo_orders"], placed, "a")["actual_order_id"] == doc.ORDER_19
    with pytest.raises(Rejected, match="actualOrderId"):
        to_row(KINDS["futures_algo_orders"], {**placed, "actualOrderId": "abc"}, "a")


def test_only_documented_final_algo_statuses_are_final():
    # "Event: Algo Order Update": TRIGGERED = placed into the matching engine; FINISHED follows it
    assert {"FINISHED", "CANCELED", "REJECTED", "EXPIRED"} == FINAL_ALGO_STATUSES
    assert "TRIGGERED" not in FINAL_ALGO_STATUSES and "TRIGGERING" not in FINAL_ALGO_STATUSES


def test_order_links_name_their_symbol():
    rows_ = [to_row(KINDS["order_links"], r, "a") for r in doc.LINKS]
    assert [r["link_ref"] for r in rows_] == ["order:BTCUSDT:7", "order:ETHUSDT:7", "order:7#sigC", "client:sigA-tp"]
    assert [r["symbol"] for r in rows_] == ["BTCUSDT", "ETHUSDT", None, None]


def test_kline_and_balance_objects():
    k = to_row(KINDS["klines"], doc.kline("BNBUSDT", doc.T0, "612.40"), "a")
    assert (k["symbol"], k["kline_interval"], k["open_time_ms"], k["close_price"], k["close_time_ms"]) == (
        "BNBUSDT",
        "1m",
        doc.T0,
        "612.4",
        doc.T0 + 59_999,
    )
    with pytest.raises(Rejected, match=r"kline\[4\] \(close\)"):
        to_row(KINDS["klines"], {**doc.kline("BNBUSDT", doc.T0, "x"), "interval": "1m"}, "a")
    with pytest.raises(Rejected, match="interval"):
        to_row(KINDS["klines"], {**doc.kline("BNBUSDT", doc.T0, "1"), "interval": "7m"}, "a")
    b = to_row(KINDS["balances"], doc.BALANCES[0], "acct")
    assert (b["account_id"], b["asset"], b["balance"], b["cross_un_pnl"], b["snapshot_time_ms"]) == (
        "acct",
        "USDT",
        "122607.35137903",
        "0",
        doc.T0,
    )


# ----------------------------------------------------------------------------- replay, both targets
def test_replay_of_documented_records_loads_exactly_and_idempotently(warehouse_settings, replay_dir):
    first = {s.source: s for s in load_replay(replay_dir, warehouse_settings)}
    assert all(s.balanced and s.quarantined == 0 for s in first.values()), [s.summary() for s in first.values()]
    s = warehouse_settings

    # the same trade id / order id on two symbols: two trades, two orders
    trades = rows(s, "select symbol, trade_id, order_id, commission, margin_asset from {raw}.futures_trades")
    assert len(trades) == len(doc.TRADES)
    by_key = {(r["symbol"], r["trade_id"]): r for r in trades}
    assert by_key[("ETHUSDT", 100)]["commission"] == Decimal("-0.0781901")  # the rebate, signed
    assert by_key[("BTCUSDT", 100)]["commission"] == Decimal("0.00001")
    assert by_key[("ETHBTC", 5)]["margin_asset"] == "BTC"
    payload = _one(s, "select payload from {raw}.futures_trades where symbol = 'ETHUSDT' and trade_id = 100")
    assert json.loads(payload["payload"])["baseQty"] == "0.002"  # extra fields stay in the payload
    assert len(rows(s, "select * from {raw}.futures_orders where order_id = 7")) == 3  # BTCUSDT, ETHUSDT, BTCUSDC

    # algo orders: (account, symbol, algoId); the latest version; "" -> NULL
    algos = rows(s, "select symbol, algo_id, algo_status, actual_order_id, algo_type from {raw}.futures_algo_orders")
    assert sorted((r["symbol"], r["algo_id"], r["algo_status"], r["actual_order_id"]) for r in algos) == [
        ("BTCUSDT", 3000, "FINISHED", 8),
        ("ETHUSDT", 3000, "NEW", None),
    ]
    assert {r["algo_type"] for r in algos} == {"CONDITIONAL"}

    tran = {r["tran_id"]: r for r in rows(s, "select tran_id, income from {raw}.income")}
    assert Decimal(doc.TRAN_MAX_19) in tran and Decimal(9_223_372_036_854_775_807) in tran
    assert tran[Decimal(doc.TRAN_MAX_19)]["income"] == Decimal("0.0781901")

    symbols = {r["symbol"]: r for r in rows(s, "select * from {raw}.symbols")}
    assert set(symbols) == {x["symbol"] for x in doc.SYMBOLS}
    assert symbols["ETHBTC"]["margin_asset"] == "BTC" and symbols["ETHBTC"]["quote_asset"] == "BTC"
    q = symbols["BTCUSDT_261225"]
    assert (q["pair"], q["contract_type"], q["delivery_date_ms"]) == ("BTCUSDT", "CURRENT_QUARTER", 1798185600000)

    bal = rows(s, "select asset, snapshot_time_ms, balance from {raw}.balance_snapshots order by 2, 1")
    assert [(r["asset"], r["snapshot_time_ms"], r["balance"]) for r in bal] == [
        ("BNB", doc.T0, Decimal("1.5")),
        ("USDT", doc.T0, Decimal("122607.35137903")),
        ("BNB", doc.T0 + 360_000, Decimal("1.49999")),
        ("USDT", doc.T0 + 360_000, Decimal("122607.06")),
    ]
    assert {r["account_id"] for r in rows(s, "select account_id from {raw}.balance_snapshots")} == {doc.ACCOUNT}
    kl = rows(s, "select symbol, kline_interval, open_time_ms, close_price, close_time_ms from {raw}.klines")
    assert sorted((r["open_time_ms"], r["close_price"]) for r in kl) == [
        (doc.T0, Decimal("612.4")),
        (doc.T0 + 60_000, Decimal("612.55")),
    ]
    links = rows(s, "select link_ref, symbol from {raw}.order_links order by link_ref")
    assert [(r["link_ref"], r["symbol"]) for r in links] == [
        ("client:sigA-tp", None),
        ("order:7#sigC", None),
        ("order:BTCUSDT:7", "BTCUSDT"),
        ("order:ETHUSDT:7", "ETHUSDT"),
    ]

    before = dump(s)
    second = load_replay(replay_dir, s)
    assert all(x.loaded == 0 and x.quarantined == 0 and x.duplicates == x.received for x in second)
    assert dump(s) == before


def test_a_changed_exchange_info_replaces_the_symbol(duckdb_settings, replay_dir):
    load_replay(replay_dir, duckdb_settings)
    changed = [dict(x, status="SETTLING") if x["symbol"] == "BTCUSDT_261225" else x for x in doc.SYMBOLS]
    (replay_dir / "symbols.jsonl").write_text("".join(json.dumps(x) + "\n" for x in changed))
    stats = {x.source: x for x in load_replay(replay_dir, duckdb_settings)}["symbols"]
    assert (stats.loaded, stats.duplicates, stats.quarantined) == (1, len(doc.SYMBOLS) - 1, 0)
    assert _one(duckdb_settings, "select status from {raw}.symbols where symbol = 'BTCUSDT_261225'") == {
        "status": "SETTLING"
    }


# ----------------------------------------------------------------------------- the API, through python-binance
@pytest.fixture
def server(replay_dir):
    with SandboxServer(replay_dir, config=ServerConfig(weight_limit_1m=1_000_000)) as srv:
        yield srv


def _api(srv) -> BinanceApi:
    client = make_client(srv.url, srv.config.api_key, srv.config.api_secret, requests_params={"timeout": 5})
    return BinanceApi(client, retry=RetryPolicy(attempts=2, base_wait=0.001), sleep=lambda s: None)


def _ingest(settings, api, **kw):
    stats = ingest_binance(
        settings,
        client=api,
        account_id=doc.ACCOUNT,
        since_ms=doc.T0 - 86_400_000,
        until_ms=doc.T0 + 86_400_000,
        symbols=[x["symbol"] for x in doc.SYMBOLS],
        **kw,
    )
    assert all(x.balanced for x in stats)
    return {x.source: x for x in stats}


def _table(settings, name) -> set[tuple]:
    cols = [c for c in RAW_TABLES[name].column_names if c not in LINEAGE]
    with RawStore(settings) as st:
        got = st.fetchall(f"select {', '.join(st.q(c) for c in cols)} from {st.table(name)}")
    return {tuple(int(v) if isinstance(v, bool) else v for v in r) for r in got}


@pytest.mark.parametrize("target", ["duckdb", pytest.param("mysql", marks=pytest.mark.mysql)])
def test_api_ingest_reads_symbols_balances_and_needed_klines(request, target, server, replay_dir, tmp_path, caplog):
    settings = request.getfixturevalue(f"{target}_settings")
    caplog.set_level(logging.WARNING)
    stats = _ingest(settings, _api(server))
    assert stats["symbols"].loaded == len(doc.SYMBOLS) and stats["symbols"].quarantined == 0

    # the API gives the same rows as the replay files (symbols, trades, orders, algo orders, income)
    reference = Settings(target="duckdb", duckdb_path=tmp_path / "reference.duckdb")
    load_replay(replay_dir, reference)
    for name in ("symbols", "futures_trades", "futures_orders", "futures_algo_orders", "income"):
        assert _table(settings, name) == _table(reference, name), name

    # one balance snapshot per run: each asset's latest balance, stamped with the exchange's now (the
    # paper exchange's data clock)
    bal = rows(settings, "select asset, balance, snapshot_time_ms, account_id from {raw}.balance_snapshots")
    assert sorted((r["asset"], r["balance"]) for r in bal) == [
        ("BNB", Decimal("1.49999")),
        ("USDT", Decimal("122607.06")),
    ]
    assert {r["snapshot_time_ms"] for r in bal} == {server.visible_until}
    assert {r["account_id"] for r in bal} == {doc.ACCOUNT}

    # klines: only the BNBUSDT minute of the BNB fee on BTCUSDT; BNBBTC (ETHBTC's BNB fee) is not listed
    kl = rows(settings, "select symbol, kline_interval, open_time_ms, close_price from {raw}.klines")
    assert [(r["symbol"], r["kline_interval"], r["open_time_ms"], r["close_price"]) for r in kl] == [
        ("BNBUSDT", "1m", doc.T0, Decimal("612.4"))
    ]
    assert any("no USD-M contract BNBBTC" in m for m in caplog.messages)

    server.set_visible_until(server.visible_until + 60_000)  # a minute later, nothing new
    again = _ingest(settings, _api(server))
    assert again["klines"].received == 0  # nothing needed any more
    assert again["symbols"].loaded == 0 and again["symbols"].duplicates == len(doc.SYMBOLS)
    assert again["balances"].loaded == 2  # a new snapshot per run at a new instant
    assert len(rows(settings, "select * from {raw}.balance_snapshots")) == 4


def test_a_triggered_algo_order_is_read_again_until_it_is_finished(duckdb_settings, server):
    api = _api(server)
    server.set_visible_until(doc.T0 + 60_500)  # the BTCUSDT take-profit is TRIGGERED, not yet FINISHED
    _ingest(duckdb_settings, api)
    with RawStore(duckdb_settings) as st:
        marks = st.watermarks(f"binance:{doc.ACCOUNT}:algo_orders:")
    assert marks == {
        f"binance:{doc.ACCOUNT}:algo_orders:BTCUSDT": "3000",  # TRIGGERED is not final: read again
        f"binance:{doc.ACCOUNT}:algo_orders:ETHUSDT": "3000",
    }
    status = "select algo_status from {raw}.futures_algo_orders where symbol = 'BTCUSDT' and algo_id = 3000"
    assert _one(duckdb_settings, status) == {"algo_status": "TRIGGERED"}

    server.set_visible_until(None)
    _ingest(duckdb_settings, api)
    assert _one(duckdb_settings, status) == {"algo_status": "FINISHED"}
    with RawStore(duckdb_settings) as st:
        assert st.get_watermark(f"binance:{doc.ACCOUNT}:algo_orders:BTCUSDT") == "3001"
        assert st.get_watermark(f"binance:{doc.ACCOUNT}:algo_orders:ETHUSDT") == "3000"  # still NEW
    # the same numbers on two symbols stayed two rows all along
    assert len(rows(duckdb_settings, "select * from {raw}.futures_algo_orders where algo_id = 3000")) == 2


def test_same_ids_on_two_symbols_in_one_batch_are_two_rows(duckdb_settings):
    batch = Batch("futures_algo_orders", "test", "a", new_run_id())
    for r in (doc.algo("BTCUSDT", 1, "NEW", doc.T0), doc.algo("ETHUSDT", 1, "NEW", doc.T0)):
        batch.add_object(r)
    with RawStore(duckdb_settings) as st:
        stats = batch.commit(st)
    assert (stats.loaded, stats.duplicates, stats.quarantined) == (2, 0, 0)
    assert dump(duckdb_settings, ["futures_algo_orders"], exclude=LINEAGE_OF_A_RUN)["futures_algo_orders"]


def test_a_window_past_binance_retention_is_told(duckdb_settings, server, caplog):
    """SPEC §3.2: trades 6 months, orders 90 days, income 3 months; never silently thin."""
    caplog.set_level(logging.WARNING)
    api = _api(server)
    run_id = new_run_id()
    # retention counts back from the exchange's now; the paper exchange's now is its data clock
    # (X-Sandbox-Data-Clock): put it 200 days after the records
    server.set_visible_until(doc.T0 + 200 * 86_400_000)
    _ingest(duckdb_settings, api, run_id=run_id)  # since = T0 - 1 day: months before the exchange's now
    notes = rows(
        duckdb_settings,
        "select status, message from {audit}.ingestion_runs where run_id = ? and source = ?",
        [run_id, f"binance:{doc.ACCOUNT}:retention"],
    )
    assert [n["status"] for n in notes] == ["warning"]
    for what in ("trades (userTrades)", "orders and algo orders", "income (income history)"):
        assert what in notes[0]["message"]
        assert any(what in m and "Binance serves them back to" in m for m in caplog.messages)

    recent = new_run_id()
    now = api.sync_time()
    ingest_binance(duckdb_settings, client=api, account_id=doc.ACCOUNT, since_ms=now - 10 * 86_400_000, run_id=recent)
    assert (
        rows(duckdb_settings, "select source from {audit}.ingestion_runs where run_id = ? and status <> 'ok'", [recent])
        == []
    )


def test_retention_floor_is_calendar_months():
    from ingestion.binance_source import _months_before, retention_notes

    aug31 = 1_788_134_400_000  # 2026-08-31 00:00 UTC
    assert _months_before(aug31, 6) == 1_772_236_800_000  # 2026-02-28: the 31st clamped to February
    assert _months_before(aug31, 0) == aug31
    assert retention_notes(aug31 - 89 * 86_400_000, aug31, ["symbols", "income"]) == []
    assert len(retention_notes(aug31 - 91 * 86_400_000, aug31, ["symbols", "income"])) == 1  # orders: 90 days
