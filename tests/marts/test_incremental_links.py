"""The order links and the funding shares, incremental: the hour's run resolves again only the
orders whose links can have changed, and shares again only the FUNDING_FEE records whose holders
can have changed — and equals a full refresh, on both warehouses (issue 14). The legs and the
allocation chain are tested in test_incremental.py."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from ingestion.replay import load_replay
from sandbox.generator import GenerateConfig, generate
from stratpos.core.warehouse import fetch_rows
from stratpos.transform import run_dbt
from tests.dbt.replay_split import cut_replay
from tests.marts.test_incremental import CHAIN, DAY_MS, _filter_jsonl, hash_id, scope_size, snapshot
from tests.reconciliation.helpers import query

LINK_MODELS = (
    ("intermediate", "int_order_links_resolved"),
    ("intermediate", "int_legs_linked"),
    *CHAIN,
    ("marts", "position_contributions"),
)


def test_hourly_runs_resolve_only_the_orders_whose_links_changed_and_equal_a_full_refresh(warehouse_settings, tmp_path):
    """The order links are resolved again only for the orders the hour touched — new orders and
    fills, and the stored orders that late signals and late explicit link records name — and after
    hours of such runs hold the same rows as a full refresh. A run that failed after listing its
    orders leaves them in `__pending`, and the next run resolves them."""
    logging.getLogger("ingestion").setLevel(logging.WARNING)
    full = tmp_path / "full"
    start = datetime(2026, 3, 2, tzinfo=UTC)
    # five strategies: three link by convention, one by explicit records by client id, one by order id
    cfg = GenerateConfig(
        out=full, days=1.5, strategies=5, symbols=("BTCUSDT", "ETHUSDT"), seed=7, mode="hedge", start=start
    )
    generate(cfg)
    first_cut = int(start.timestamp() * 1000) + DAY_MS
    select = ["--quiet", "-s", "+fct_fill_allocations", "+position_contributions"]

    def late_signal(r):  # signals name their id `signal_id` or `id` (SPEC §3.1)
        return hash_id(r.get("signal_id") or r["id"]) % 3 == 0

    def late_link(r):
        return hash_id(json.dumps(r, sort_keys=True)) % 2 == 0

    def rebuilt(table, side):
        return len(fetch_rows(warehouse_settings, "intermediate", f"{table}__{side}")), len(
            fetch_rows(warehouse_settings, "intermediate", table)
        )

    # two 2-hour loads without the late signals and links, then those alone (no new fill), then the rest
    resolved, relinked, scopes = [], [], []
    for step in range(4):
        until = first_cut + min(step, 1) * 2 * 3_600_000 if step < 3 else 2**62
        cut = cut_replay(full, tmp_path / f"cut{step}", until)
        if step < 2:
            assert _filter_jsonl(cut / "signals.jsonl", lambda r: not late_signal(r)) > 5
            assert _filter_jsonl(cut / "order_links.jsonl", lambda r: not late_link(r)) > 5
        load_replay(cut, warehouse_settings)
        run_dbt(warehouse_settings, "run", extra_args=select)
        if step:
            resolved.append(rebuilt("int_order_links_resolved", "rebuilt"))
            relinked.append(rebuilt("int_legs_linked", "legs"))
            scopes.append(scope_size(warehouse_settings))
    # an hour resolves its own orders, not the account's; the late records reach back into the past:
    # without a new fill, the legs of the orders they name are linked again, and only those
    assert 0 < resolved[0][0] < resolved[0][1] / 4, resolved
    assert 0 < resolved[1][0] < resolved[1][1], resolved
    assert 0 < relinked[1][0] < relinked[1][1], relinked
    # the allocation chain follows: only the components the late records touched
    assert 0 < scopes[1][0] < scopes[1][1], scopes
    incremental = snapshot(warehouse_settings, LINK_MODELS)
    rows = [dict(r) for r in incremental["int_order_links_resolved"]]
    assert {r["link_rule"] for r in rows} >= {"explicit_order_id", "explicit_client_id", "convention"}

    # a run that failed after its pre-hook: an order in `__pending` whose stored row went stale is
    # resolved again by the next run, though nothing about it is new
    [linked] = query(
        warehouse_settings,
        "select symbol, order_id from {intermediate}.int_order_links_resolved "
        "where link_rule = 'convention' order by symbol, order_id limit 1",
    )
    where = f"where symbol = '{linked['symbol']}' and order_id = {linked['order_id']}"
    query(
        warehouse_settings,
        f"update {{intermediate}}.int_order_links_resolved set link_role = 'unlinked', link_rule = 'none' {where}",
    )
    query(
        warehouse_settings,
        "create table {intermediate}.int_order_links_resolved__pending as "
        f"select account_id, symbol, order_id from {{intermediate}}.int_order_links_resolved {where}",
    )
    run_dbt(warehouse_settings, "run", extra_args=select)
    assert snapshot(warehouse_settings, LINK_MODELS) == incremental

    # late explicit records move every order of one convention-linked position to another signal
    # (explicit links win): the first position keeps no leg, and its rows must go wherever they were
    [moved] = query(
        warehouse_settings,
        "select strategy_position_id, min(symbol) as symbol from {intermediate}.int_order_links_resolved "
        "where link_rule = 'convention' group by strategy_position_id having count(*) > 1 "
        "order by strategy_position_id limit 1",
    )
    [other] = query(
        warehouse_settings,
        f"select signal_id from {{raw}}.signals where symbol = '{moved['symbol']}' "
        f"and signal_id <> '{moved['strategy_position_id']}' order by signal_id limit 1",
    )
    orders = query(
        warehouse_settings,
        "select symbol, order_id, link_role from {intermediate}.int_order_links_resolved "
        f"where strategy_position_id = '{moved['strategy_position_id']}'",
    )
    relink = tmp_path / "relink"
    relink.mkdir()
    (relink / "account.json").write_text((full / "account.json").read_text(encoding="utf-8"), encoding="utf-8")
    (relink / "order_links.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "order_id": int(o["order_id"]),
                    "symbol": o["symbol"],
                    "signal_id": other["signal_id"],
                    "role": o["link_role"],
                }
            )
            + "\n"
            for o in orders
        ),
        encoding="utf-8",
    )
    load_replay(relink, warehouse_settings)
    run_dbt(warehouse_settings, "run", extra_args=select)
    assert query(
        warehouse_settings,
        "select node_id from {intermediate}.int_allocation_scope "
        f"where node_type = 'position' and node_id = '{moved['strategy_position_id']}'",
    )
    incremental = snapshot(warehouse_settings, LINK_MODELS)
    run_dbt(warehouse_settings, "run", full_refresh=True, extra_args=select)
    assert snapshot(warehouse_settings, LINK_MODELS) == incremental

    # a signal's strategy corrected in raw: only its orders are resolved again, and its allocations
    # and contributions name the new strategy
    [renamed] = query(
        warehouse_settings,
        "select strategy_position_id from {marts}.position_contributions order by strategy_position_id limit 1",
    )
    query(
        warehouse_settings,
        "update {raw}.signals set strategy_id = 'renamed_strategy' "
        f"where signal_id = '{renamed['strategy_position_id']}'",
    )
    run_dbt(warehouse_settings, "run", extra_args=select)
    assert 0 < rebuilt("int_order_links_resolved", "rebuilt")[0] < rebuilt("int_order_links_resolved", "rebuilt")[1]
    incremental = snapshot(warehouse_settings, LINK_MODELS)
    assert {
        dict(r)["strategy_id"]
        for r in incremental["position_contributions"]
        if dict(r)["strategy_position_id"] == renamed["strategy_position_id"]
    } == {"renamed_strategy"}
    run_dbt(warehouse_settings, "run", full_refresh=True, extra_args=select)
    assert snapshot(warehouse_settings, LINK_MODELS) == incremental

    # the account switched position mode (Binance allows it when flat): every leg says so
    query(warehouse_settings, "update {raw}.accounts set position_mode = 'one_way'")
    run_dbt(warehouse_settings, "run", extra_args=select)
    assert rebuilt("int_legs_linked", "legs")[0] == rebuilt("int_legs_linked", "legs")[1]
    incremental = snapshot(warehouse_settings, LINK_MODELS)
    assert {dict(r)["position_mode"] for r in incremental["int_legs_linked"]} == {"one_way"}

    run_dbt(warehouse_settings, "run", full_refresh=True, extra_args=select)
    assert snapshot(warehouse_settings, LINK_MODELS) == incremental


FUNDING_MODELS = (
    ("intermediate", "int_holding_intervals"),
    ("intermediate", "int_funding_holders"),
    ("intermediate", "int_funding_allocations"),
)


def test_hourly_funding_rebuilds_only_the_records_whose_holders_changed_and_equals_a_full_refresh(
    warehouse_settings, tmp_path
):
    """Each hour the funding holders and shares are rebuilt only for the FUNDING_FEE records that
    are new or changed, or whose time lies where a holding changed — and equal a full refresh,
    also after a late edit of an old fill, an edited funding record, and a run that stopped
    between the holders and the shares."""
    logging.getLogger("ingestion").setLevel(logging.WARNING)
    full = tmp_path / "full"
    start = datetime(2026, 3, 2, tzinfo=UTC)
    cfg = GenerateConfig(
        out=full, days=2, strategies=3, symbols=("BTCUSDT", "ETHUSDT"), seed=13, mode="hedge", start=start
    )
    generate(cfg)
    first_cut = int(start.timestamp() * 1000) + DAY_MS
    select = ["--quiet", "-s", "+int_funding_allocations", "+fct_fill_allocations"]

    def counts() -> tuple[int, int]:
        [row] = query(
            warehouse_settings,
            "select (select count(*) from {intermediate}.int_funding_holders__rebuilt) as rebuilt, "
            "(select count(*) from {raw}.income where income_type = 'FUNDING_FEE') as total",
        )
        return int(row["rebuilt"]), int(row["total"])

    load_replay(cut_replay(full, tmp_path / "cut0", first_cut), warehouse_settings)
    run_dbt(warehouse_settings, "run", extra_args=select)
    rebuilt = []
    for step in range(1, 5):  # four 4-hour loads: a funding time (every 8 h) in every other one
        load_replay(cut_replay(full, tmp_path / f"cut{step}", first_cut + step * 4 * 3_600_000), warehouse_settings)
        run_dbt(warehouse_settings, "run", extra_args=select)
        rebuilt.append(counts())
    # the hour's records, and those of the hours in which a held position changed: never all of them
    assert all(n < total for n, total in rebuilt), rebuilt
    assert any(n > 0 for n, _ in rebuilt), rebuilt
    assert len(fetch_rows(warehouse_settings, "intermediate", "int_funding_allocations")) > 0

    # the rest arrives, but the run stops after the holders: the shares catch up next run
    load_replay(full, warehouse_settings)
    run_dbt(warehouse_settings, "run", extra_args=["--quiet", "-s", "+int_funding_holders", "+fct_fill_allocations"])
    assert counts()[0] == rebuilt[-1][0]  # the shares did not run: `__rebuilt` is the last run's
    run_dbt(warehouse_settings, "run", extra_args=select)

    # a late edit of the first fill's quantity reaches every later record of its symbol that a
    # holding of its position covers; an edited record is rebuilt though no holding changed
    [first] = query(
        warehouse_settings,
        "select symbol, trade_id, trade_time_ms from {raw}.futures_trades order by trade_time_ms, trade_id limit 1",
    )
    query(
        warehouse_settings,
        f"update {{raw}}.futures_trades set qty = qty + 0.001 "
        f"where symbol = '{first['symbol']}' and trade_id = {first['trade_id']}",
    )
    [record] = query(
        warehouse_settings,
        "select tran_id from {raw}.income where income_type = 'FUNDING_FEE' "
        "order by income_time_ms desc, tran_id limit 1",
    )
    query(
        warehouse_settings,
        "update {raw}.income set income = income * 2 "
        f"where income_type = 'FUNDING_FEE' and tran_id = {record['tran_id']}",
    )
    run_dbt(warehouse_settings, "run", extra_args=select)
    n, total = counts()
    assert 0 < n <= total

    # a position's closing fill moved past the next funding time: the position now holds at that
    # record, though its holding starts and its quantity stay the same (only the end moved)
    closing = query(
        warehouse_settings,
        "select a.symbol, a.trade_id, min(f.income_time_ms) as funding_ms, min(f.tran_id) as tran_id "
        "from {intermediate}.int_holding_intervals as h "
        "inner join {intermediate}.int_fill_allocations_linked as a on a.strategy_position_id = h.strategy_position_id "
        "and a.trade_time_ms = h.until_ms and a.allocation_type = 'exit' "
        "inner join {raw}.income as f on f.account_id = h.account_id and f.symbol = h.symbol "
        "and f.income_type = 'FUNDING_FEE' and f.income_time_ms > h.until_ms "
        "and f.income_time_ms < h.until_ms + 3600000 "
        "where h.bucket_episode_id is null and not exists (select 1 from {intermediate}.int_holding_intervals as x "
        "where x.strategy_position_id = h.strategy_position_id and x.from_ms >= h.until_ms) "
        "group by a.symbol, a.trade_id order by 3, 1, 2 limit 1",
    )
    assert closing, "no position closed within the hour before a funding time"
    [moved] = closing
    query(
        warehouse_settings,
        f"update {{raw}}.futures_trades set trade_time_ms = {int(moved['funding_ms']) + 1} "
        f"where symbol = '{moved['symbol']}' and trade_id = {moved['trade_id']}",
    )
    run_dbt(warehouse_settings, "run", extra_args=select)
    assert {"tran_id": str(moved["tran_id"])} in [
        {"tran_id": str(r["tran_id"])}
        for r in fetch_rows(warehouse_settings, "intermediate", "int_funding_holders__rebuilt")
    ]
    incremental = snapshot(warehouse_settings, FUNDING_MODELS)
    assert any(dict(r)["tran_id"] == str(record["tran_id"]) for r in incremental["int_funding_allocations"])

    run_dbt(warehouse_settings, "run", full_refresh=True, extra_args=select)
    assert snapshot(warehouse_settings, FUNDING_MODELS) == incremental
