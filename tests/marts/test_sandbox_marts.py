"""SPEC §6 on sandbox data: the performance marts add up to strategy_positions (and to the
paper exchange's ground truth) on both warehouses, per strategy and margin asset (the account
also trades ETHBTC, margined in BTC), both warehouses agree, and on MariaDB the read-only BI
user created by the build reads the marts and nothing else.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections import defaultdict
from decimal import Decimal as D
from pathlib import Path

import pymysql
import pytest

from sandbox.generator import GenerateConfig, generate
from sandbox.instruments import DEFAULT_SYMBOLS, instrument
from stratpos.bi import ensure_bi_user
from stratpos.core.settings import Settings
from stratpos.core.warehouse import drop_schemas, mysql_connection
from tests.dbt.truth import mart_rows
from tests.marts.warehouses import build

BI_PASSWORD = "bi-Pw_" + uuid.uuid4().hex[:12]
BI_HOST = "127.0.0.1"  # the tests connect over TCP to 127.0.0.1 (the server skips name resolution)
PERFORMANCE_MARTS = (
    "strategy_performance",
    "strategy_daily_pnl",
    "strategy_symbol_performance",
    "strategy_close_reasons",
    "multi_strategy_positions",
    "contribution_timeline",
    "strategy_trade_rankings",
    "strategy_co_entries",
    "execution_quality",
)
COUNTED = ("positions_total", "positions_open", "positions_partial", "positions_closed", "wins", "losses", "breakevens")
SUMMED = ("realized_pnl", "fees", "other_fees", "funding_fees", "other_income", "realized_pnl_net", "unrealized_pnl")
REASONS = ("take_profit", "stop_loss", "manual", "external", "liquidation")


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sandbox-acct")
    generate(GenerateConfig(out=out, days=3, strategies=4, symbols=(*DEFAULT_SYMBOLS, "ETHBTC")))
    return out


@pytest.fixture(scope="module")
def bi_user() -> str:
    return f"bi_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def duckdb_marts(replay, tmp_path_factory) -> Settings:
    settings = Settings(target="duckdb", duckdb_path=tmp_path_factory.mktemp("sandbox-wh") / "w.duckdb")
    build(settings, replay)
    return settings


@pytest.fixture(scope="module")
def mysql_marts(request, replay, bi_user) -> Settings:
    """The replay on MariaDB, built with STRATPOS_BI_* set so that the build creates the BI user."""
    settings = Settings(
        target="mysql", mysql=request.getfixturevalue("mysql_available"), schema_prefix=f"t{uuid.uuid4().hex[:10]}_"
    )

    def cleanup() -> None:
        drop_schemas(settings)
        with mysql_connection(settings) as con, con.cursor() as cur:
            cur.execute("drop user if exists %s@%s", (bi_user, BI_HOST))

    request.addfinalizer(cleanup)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STRATPOS_BI_USER", bi_user)
        mp.setenv("STRATPOS_BI_HOST", BI_HOST)
        mp.setenv("STRATPOS_BI_PASSWORD", BI_PASSWORD)
        build(settings, replay)
    return settings


@pytest.fixture(params=["duckdb", "mysql"])
def marts(request) -> Settings:
    return request.getfixturevalue(f"{request.param}_marts")


def margin_asset(position: dict) -> str:
    """The mart's column, else (the ground truth has none) the instrument's margin asset."""
    return position.get("margin_asset") or instrument(position["symbol"]).margin_asset


def expected_totals(positions: list[dict]) -> dict[tuple[str, str], dict]:
    """Per strategy and margin asset: counts, outcome counts, close reasons and money sums over its
    strategy positions (a NULL amount — an unpriced conversion — adds nothing, as SQL's SUM)."""
    totals: dict[tuple[str, str], dict] = defaultdict(lambda: defaultdict(D))
    for p in positions:
        if p["strategy_id"] == "unattributed":
            continue
        t = totals[(p["strategy_id"], margin_asset(p))]
        t["positions_total"] += 1
        t[f"positions_{p['status']}"] += 1
        if p["status"] == "closed":
            if p["realized_pnl_net"] is not None:
                net = D(str(p["realized_pnl_net"]))
                t["wins" if net > 0 else "losses" if net < 0 else "breakevens"] += 1
            t[f"{p['close_reason']}_closes"] += 1
        for col in SUMMED:
            t[col] += D(str(p[col] or 0))
    return totals


def performance(settings: Settings) -> dict[tuple[str, str], dict]:
    return {(r["strategy_id"], r["margin_asset"]): r for r in mart_rows(settings, "strategy_performance")}


def check_totals(perf: dict[tuple[str, str], dict], totals: dict[tuple[str, str], dict]) -> list[str]:
    problems = []
    assert set(perf) == set(totals)
    for strategy, t in totals.items():
        row = perf[strategy]
        for col in (*COUNTED, *SUMMED, *(f"{r}_closes" for r in REASONS)):
            if D(str(row[col])) != t[col]:
                problems.append(f"{strategy}.{col}: mart {row[col]}, positions {t[col]}")
    return problems


def test_strategy_performance_totals_equal_strategy_positions(marts):
    perf = performance(marts)
    totals = expected_totals(mart_rows(marts, "strategy_positions"))
    assert len({strategy for strategy, _ in totals}) == 4
    assert {asset for _, asset in totals} == {"USDT", "BTC"}  # ETHBTC is margined in BTC
    assert check_totals(perf, totals) == []


def test_strategy_performance_totals_equal_the_ground_truth(marts, replay):
    """The same totals from the paper exchange's own books (independent of dbt)."""
    with open(replay / "expected_strategy_positions.jsonl", encoding="utf-8") as fh:
        truth = [json.loads(line) for line in fh]
    assert check_totals(performance(marts), expected_totals(truth)) == []


def test_daily_pnl_sums_to_the_same_totals(marts):
    perf = performance(marts)
    days: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in mart_rows(marts, "strategy_daily_pnl"):
        days[(r["strategy_id"], r["margin_asset"])].append(r)
    assert set(days) == set(perf)
    for strategy, rows in days.items():
        p = perf[strategy]
        columns = ("realized_pnl", "fees", "other_fees", "funding_fees", "other_income", "net_pnl")
        total = {c: sum((D(str(r[c])) for r in rows), D(0)) for c in columns}
        assert sum(r["unpriced_amounts"] for r in rows) == p["unpriced_positions"] == 0, strategy
        assert total.pop("net_pnl") == D(str(p["realized_pnl_net"])), strategy
        assert total == {c: D(str(p[c])) for c in total}, strategy
        assert sum(r["positions_opened"] for r in rows) == p["positions_total"]
        assert sum(r["positions_closed"] for r in rows) == p["positions_closed"]
        assert sum(r["wins"] for r in rows) == p["wins"] and sum(r["losses"] for r in rows) == p["losses"]
        # a contiguous spine: one row per calendar day, and the curve's worst drawdown is the strategy's
        dates = sorted(r["pnl_date"] for r in rows)
        assert len(dates) == (dates[-1] - dates[0]).days + 1 == p["active_days"]
        assert max(D(str(r["drawdown"])) for r in rows) == D(str(p["max_drawdown"]))


def test_breakdowns_add_up_to_the_strategy(marts):
    perf = performance(marts)
    by_symbol: dict[tuple[str, str], dict] = defaultdict(lambda: defaultdict(D))
    for r in mart_rows(marts, "strategy_symbol_performance"):
        assert r["margin_asset"] == instrument(r["symbol"]).margin_asset, r["symbol"]
        columns = ("positions_total", "wins", "losses", "realized_pnl_net", "fees", "other_fees", "unrealized_pnl")
        for col in columns:
            by_symbol[(r["strategy_id"], r["margin_asset"])][col] += D(str(r[col]))
    closes: dict[tuple[str, str], D] = defaultdict(D)
    for r in mart_rows(marts, "strategy_close_reasons"):
        closes[(r["strategy_id"], r["margin_asset"])] += r["closes"]
    ranked: dict[tuple[str, str], int] = defaultdict(int)
    for r in mart_rows(marts, "strategy_trade_rankings"):
        ranked[(r["strategy_id"], r["margin_asset"])] += 1
        assert r["strategy_trades"] == perf[(r["strategy_id"], r["margin_asset"])]["positions_closed"]
    for strategy, p in perf.items():
        for col, total in by_symbol[strategy].items():
            assert total == D(str(p[col])), (strategy, col)
        assert closes[strategy] == ranked[strategy] == p["positions_closed"]


def test_both_warehouses_agree(duckdb_marts, mysql_marts):
    """Every performance mart row for row: decimals exactly, DOUBLE metrics to 1e-9 (relative)."""

    def keyed(settings: Settings, table: str) -> dict:
        rows = mart_rows(settings, table)
        key = next(iter(rows[0]))  # each mart's first column is its primary key
        return {r[key]: r for r in rows}

    for table in PERFORMANCE_MARTS:
        duck, maria = keyed(duckdb_marts, table), keyed(mysql_marts, table)
        assert duck and set(duck) == set(maria), table
        for key, row in duck.items():
            for col, a in row.items():
                b = maria[key][col]
                if isinstance(a, float) or isinstance(b, float):
                    assert a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9), (table, key, col)
                elif isinstance(a, bool) or isinstance(b, bool):
                    assert int(a) == int(b), (table, key, col)
                else:
                    assert a == b, (table, key, col, a, b)


# --------------------------------------------------------------------------- the BI user (MariaDB)
def bi_connect(settings: Settings, user: str, password: str = BI_PASSWORD):
    return pymysql.connect(
        host=settings.mysql.host, port=settings.mysql.port, user=user, password=password, autocommit=True
    )


def denied(cur, sql: str) -> bool:
    try:
        cur.execute(sql)
    except pymysql.err.MySQLError as exc:
        return exc.args[0] in (1044, 1142, 1143)  # access denied to database / table / column
    return False


def test_bi_user_reads_the_marts_and_nothing_else(mysql_marts, bi_user):
    settings = mysql_marts
    marts, raw, staging = (settings.schema(layer) for layer in ("marts", "raw", "staging"))
    with bi_connect(settings, bi_user) as con, con.cursor() as cur:
        for table in (*PERFORMANCE_MARTS, "strategy_positions"):
            cur.execute(f"select count(*) from `{marts}`.`{table}`")
            assert cur.fetchone()[0] > 0, table
        assert denied(cur, f"insert into `{marts}`.strategy_performance (strategy_key) values ('x')")
        assert denied(cur, f"update `{marts}`.strategy_performance set wins = 0")
        assert denied(cur, f"delete from `{marts}`.strategy_performance")
        assert denied(cur, f"create table `{marts}`.bi_scratch (x int)")
        assert denied(cur, f"drop table `{marts}`.strategy_performance")
        assert denied(cur, f"select count(*) from `{raw}`.futures_trades")
        assert denied(cur, f"select count(*) from `{staging}`.stg_binance__trades")
        cur.execute("show databases")
        assert {r[0] for r in cur.fetchall()} & set(settings.schemas.values()) == {marts}


def test_bi_user_refresh_is_idempotent_and_narrows_grants(mysql_marts, bi_user, monkeypatch, caplog):
    settings = mysql_marts
    raw = settings.schema("raw")
    with mysql_connection(settings) as con, con.cursor() as cur:  # someone widened the grant
        cur.execute(f"grant select, insert on `{raw}`.* to %s@%s", (bi_user, BI_HOST))
        cur.execute(f"grant insert on `{settings.schema('marts')}`.* to %s@%s", (bi_user, BI_HOST))
    monkeypatch.setenv("STRATPOS_BI_USER", bi_user)
    monkeypatch.setenv("STRATPOS_BI_HOST", BI_HOST)
    monkeypatch.setenv("STRATPOS_BI_PASSWORD", BI_PASSWORD)
    with caplog.at_level(logging.DEBUG):
        ensure_bi_user(settings)
        ensure_bi_user(settings)
    assert BI_PASSWORD not in caplog.text
    with mysql_connection(settings) as con, con.cursor() as cur:
        cur.execute("show grants for %s@%s", (bi_user, BI_HOST))
        grants = [r[0] for r in cur.fetchall()]
    assert [g for g in grants if not g.startswith("GRANT USAGE")] == [
        f"GRANT SELECT ON `{settings.schema('marts')}`.* TO `{bi_user}`@`{BI_HOST}`"
    ]
    with bi_connect(settings, bi_user) as con, con.cursor() as cur:
        assert denied(cur, f"select count(*) from `{raw}`.futures_trades")


def test_bi_user_needs_a_password_and_a_mysql_target(mysql_available, duckdb_settings, monkeypatch):
    mysql = Settings(target="mysql", mysql=mysql_available, schema_prefix="never_created_")
    monkeypatch.delenv("STRATPOS_BI_PASSWORD", raising=False)
    assert ensure_bi_user(mysql) is None  # nothing to create without a password
    monkeypatch.setenv("STRATPOS_BI_PASSWORD", BI_PASSWORD)
    assert ensure_bi_user(duckdb_settings) is None  # DuckDB has no users: BI opens the file read-only
