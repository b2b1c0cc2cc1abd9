"""A warehouse written by the previous stratpos is migrated on first use, on DuckDB and MariaDB, once.

The previous release keyed ``raw.futures_algo_orders`` by (account, algoId), stored ``tranId`` as BIGINT,
had no ``symbol`` on ``raw.order_links`` and stored ``abs(commission)``. ``create table if not exists``
changes none of that, so opening the store must: rebuild the algo-orders table on (account, symbol, algoId)
and the income table with a 19-digit ``tran_id``, add the new columns, and derive the affected rows again
from their payload (the signed commission, the link's symbol, the new algo columns) — so that loading the
same records again afterwards finds duplicates, not conflicts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from decimal import Decimal

from ingestion.migrate import describe
from ingestion.records import KINDS, row_hash, to_row
from ingestion.replay import load_replay
from ingestion.schema import RAW_TABLES, C, Table
from ingestion.store import RawStore, utcnow
from tests.ingestion import documented as doc
from tests.ingestion.warehouse_dump import dump, rows

NEW_ALGO_COLUMNS = ("algo_type", "price", "actual_price", "reduce_only", "close_position")


def _legacy_tables() -> dict[str, Table]:
    """The tables as the previous release declared them."""
    algo = RAW_TABLES["futures_algo_orders"]
    links = RAW_TABLES["order_links"]
    income = RAW_TABLES["income"]
    return {
        "futures_algo_orders": dataclasses.replace(
            algo,
            columns=tuple(c for c in algo.columns if c.name not in NEW_ALGO_COLUMNS),
            key=("account_id", "algo_id"),
            indexes=(("account_id", "actual_order_id"),),
        ),
        "order_links": dataclasses.replace(links, columns=tuple(c for c in links.columns if c.name != "symbol")),
        "income": dataclasses.replace(
            income, columns=tuple(C("tran_id", "int") if c.name == "tran_id" else c for c in income.columns)
        ),
        "futures_trades": RAW_TABLES["futures_trades"],
        "accounts": RAW_TABLES["accounts"],
        "quarantine": RAW_TABLES["quarantine"],
    }


def _legacy_row(table: Table, kind: str, obj: dict, source: str = "replay:acct/legacy", **changes) -> dict:
    """A row as the previous release wrote it: its columns only, its own hash, the original payload."""
    row = to_row(KINDS[kind], obj, doc.ACCOUNT)
    row.update(changes)
    row = {c: row[c] for c in table.column_names if c in row}
    row["payload_hash"] = row_hash(row)
    row.update(payload=json.dumps(obj), source=source, run_id="legacy-run", loaded_at=utcnow())
    return row


def _write_legacy(settings, monkeypatch) -> None:
    legacy = _legacy_tables()
    with monkeypatch.context() as m:
        m.setattr(RawStore, "ensure_tables", lambda self: None)  # the previous release's tables, not ours
        with RawStore(settings) as store:
            for t in legacy.values():
                store.execute(t.ddl(settings))
            if settings.target == "mysql":
                store.execute(
                    "create index `ix_account_id_actual_order_id` on "
                    f"{legacy['futures_algo_orders'].qualified(settings)} (`account_id`, `actual_order_id`)"
                )
            algo = legacy["futures_algo_orders"]
            finished, waiting = doc.ALGO_ORDERS[2], doc.ALGO_ORDERS[3]
            store.merge(algo, [_legacy_row(algo, "futures_algo_orders", finished)])
            # the previous key could not hold ETHUSDT's algo 3000 next to BTCUSDT's: it was quarantined then
            assert waiting["algoId"] == finished["algoId"]
            trades = legacy["futures_trades"]
            rebate = doc.TRADES[1]
            store.merge(
                trades,
                [
                    _legacy_row(trades, "futures_trades", rebate, commission="0.0781901"),  # abs() of -0.0781901
                    _legacy_row(trades, "futures_trades", doc.TRADES[0]),
                ],
            )
            links = legacy["order_links"]
            store.merge(
                links,
                [
                    _legacy_row(links, "order_links", doc.LINKS[0], link_ref="order:7"),  # its symbol was ignored
                    _legacy_row(links, "order_links", doc.LINKS[3]),
                ],
            )
            inc = legacy["income"]
            store.merge(
                inc,
                [_legacy_row(inc, "income", r, tran_id=r["tranId"]) for r in doc.INCOME if r["tranId"] < 2**63],
            )
            accounts = RAW_TABLES["accounts"]
            account = {"account_id": doc.ACCOUNT, "position_mode": "hedge"}
            store.merge(accounts, [_legacy_row(accounts, "account", account, source="replay:acct/account.json")])
            # what the previous rules quarantined: the ETHUSDT algo 3000 (its key clashed with BTCUSDT's), the
            # quarterly and ETHBTC trades (refused by the old symbol pattern), and one record refused for good
            now = utcnow()
            store.quarantine(
                [
                    {
                        "source": source,
                        "record_hash": f"h{i}",
                        "record_key": "?",
                        "reason": reason,
                        "payload": json.dumps(obj),
                        "run_id": "legacy-run",
                        "quarantined_at": now,
                    }
                    for i, (source, obj, reason) in enumerate(
                        [
                            (
                                f"binance:{doc.ACCOUNT}:algo_orders:ETHUSDT",
                                waiting,
                                "key acct_doc:3000 version 1767571220000 was already loaded with different content",
                            ),
                            ("replay:acct/futures_trades.jsonl", doc.TRADES[5], "symbol: String should match pattern"),
                            ("replay:acct/futures_trades.jsonl", doc.TRADES[3], "symbol: String should match pattern"),
                            ("replay:acct/futures_trades.jsonl", {**doc.TRADES[6], "side": "HOLD"}, "side: Input"),
                        ]
                    )
                ]
            )


def _migrations(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("raw layer migration")]


def test_a_previous_warehouse_is_migrated_once(warehouse_settings, monkeypatch, caplog, tmp_path):
    s = warehouse_settings
    _write_legacy(s, monkeypatch)
    caplog.set_level(logging.WARNING, logger="ingestion.migrate")

    with RawStore(s) as store:
        algo = describe(store, RAW_TABLES["futures_algo_orders"])
        income = describe(store, RAW_TABLES["income"])
        links = describe(store, RAW_TABLES["order_links"])
        indexes = (
            {
                r[0]
                for r in store.fetchall(
                    "select index_name from information_schema.statistics where table_schema = %s "
                    "and table_name = 'futures_algo_orders'",
                    [s.schema("raw")],
                )
            }
            if s.target == "mysql"
            else set()
        )
    done = _migrations(caplog)
    assert any("rebuilt raw.futures_algo_orders (primary key ('account_id', 'algo_id')" in m for m in done), done
    assert any("rebuilt raw.income (type of tran_id)" in m for m in done), done
    assert any("added column(s) symbol to raw.order_links" in m for m in done), done
    assert any("derived 1 row(s) of raw.futures_trades again" in m for m in done), done
    assert any("loaded 3 quarantined record(s) that the current rules accept" in m for m in done), done
    assert algo[1] == ("account_id", "symbol", "algo_id")
    assert set(NEW_ALGO_COLUMNS) <= set(algo[0])
    assert income[0]["tran_id"] == "decimal(20,0)" and income[1] == ("account_id", "income_type", "tran_id")
    assert "symbol" in links[0]
    if s.target == "mysql":
        assert "ix_account_id_symbol_actual_order_id" in indexes and "ix_account_id_actual_order_id" not in indexes

    # the rows survived, derived again from their payload
    assert rows(s, "select symbol, trade_id, commission, account_id from {raw}.futures_trades order by symbol") == [
        {"symbol": "BTCUSDT", "trade_id": 100, "commission": Decimal("0.00001"), "account_id": doc.ACCOUNT},
        {"symbol": "BTCUSDT_261225", "trade_id": 1, "commission": Decimal("0.05"), "account_id": doc.ACCOUNT},
        {"symbol": "ETHBTC", "trade_id": 5, "commission": Decimal("0.0000012"), "account_id": doc.ACCOUNT},
        {"symbol": "ETHUSDT", "trade_id": 100, "commission": Decimal("-0.0781901"), "account_id": doc.ACCOUNT},
    ]
    algos = rows(s, "select symbol, algo_id, algo_status, actual_order_id, account_id from {raw}.futures_algo_orders")
    assert sorted(tuple(r.values()) for r in algos) == [
        ("BTCUSDT", 3000, "FINISHED", 8, doc.ACCOUNT),
        ("ETHUSDT", 3000, "NEW", None, doc.ACCOUNT),  # out of the quarantine: it fits beside BTCUSDT's now
    ]
    assert rows(s, "select link_ref, symbol from {raw}.order_links order by link_ref") == [
        {"link_ref": "client:sigA-tp", "symbol": None},
        {"link_ref": "order:BTCUSDT:7", "symbol": "BTCUSDT"},
    ]
    assert rows(s, "select count(*) as n from {raw}.income") == [{"n": len(doc.INCOME) - 1}]
    sources = {r["source"] for r in rows(s, "select source from {raw}.futures_trades")}
    assert sources == {"replay:acct/legacy", "replay:acct/futures_trades.jsonl"}  # lineage kept, quarantine's too
    assert len(rows(s, "select * from {raw}.quarantine")) == 4  # the quarantine keeps its history

    # opening again changes nothing
    caplog.clear()
    before = dump(s)
    with RawStore(s):
        pass
    assert _migrations(caplog) == [] and dump(s) == before

    # the same records loaded now: what was stored is a duplicate, never a conflict
    stats = {x.source: x for x in load_replay(doc.write(tmp_path / "acct"), s)}
    assert all(x.quarantined == 0 for x in stats.values()), [x.summary() for x in stats.values()]
    assert stats["futures_trades"].duplicates == 4 and stats["futures_trades"].loaded == len(doc.TRADES) - 4
    assert stats["futures_algo_orders"].loaded == 0  # both algo 3000 are stored already
    assert stats["income"].loaded == 1  # the 19-digit tranId the old BIGINT could not hold
    assert stats["order_links"].loaded == 2 and stats["order_links"].duplicates == 2
    assert len(rows(s, "select * from {raw}.futures_algo_orders where algo_id = 3000")) == 2
