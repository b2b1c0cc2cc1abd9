"""Paging that cannot lose data (issue 12): every reading of Binance's paging rules, over 40 days of data.

Binance documents a 7-day window for ``userTrades``, ``allOrders`` and ``allAlgoOrders`` ("the query time period
must be less than 7 days, default the recent 7 days") without saying whether a query paged only by
``fromId``/``orderId``/``algoId`` escapes it, and python-binance documents ``allAlgoOrders`` as "max 100" where
Binance says 1000. The paper exchange serves each reading (``id_queries_windowed``, ``page_cap``); ingestion must
read the whole account under all of them — on a first run 40 days back, and after a 10-day outage — with nothing
lost or duplicated: the raw tables equal the replay files loaded by the replay loader.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingestion.batch import new_run_id
from ingestion.binance_client import BinanceApi, RetryPolicy
from ingestion.binance_source import ingest_binance, retention_floors
from ingestion.export import ExportError, download, export_link, load_export_files, request_export
from ingestion.replay import load_replay
from ingestion.store import RawStore
from sandbox.generator import GenerateConfig, generate
from sandbox.server import SandboxServer, ServerConfig, make_client
from stratpos.cli import main as cli_main
from stratpos.core.settings import Settings
from tests.ingestion.test_binance_source import COMPARED, table_rows

DAY = 86_400_000
START = datetime(2026, 1, 5, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
DAYS = 40
MODES = [(windowed, cap) for windowed in (False, True) for cap in (100, 1000)]
# paging only: canceled orders without a fill vanish after 3 days at Binance (test_binance_export covers that)
NO_RETENTION = {f"retention_{k}": None for k in ("trades", "orders", "unfilled_orders", "income")}


@pytest.fixture(scope="module")
def account40(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("paging") / "acct"
    generate(
        GenerateConfig(
            out=out,
            days=DAYS,
            strategies=3,
            symbols=("BTCUSDT", "ETHUSDT"),
            start=START,
            seed=7,
            entry_every_minutes=600,
        )
    )
    return out


@pytest.fixture(scope="module")
def expected40(account40: Path, tmp_path_factory) -> dict[str, set[tuple]]:
    settings = Settings(target="duckdb", duckdb_path=tmp_path_factory.mktemp("replay40") / "replay.duckdb")
    load_replay(account40, settings)
    return {name: table_rows(settings, name) for name in COMPARED}


@pytest.fixture(scope="module")
def data_end(account40: Path) -> int:
    times = []
    for name, field in (("futures_trades", "time"), ("income", "time"), ("futures_orders", "updateTime")):
        with open(account40 / f"{name}.jsonl", encoding="utf-8") as fh:
            times += [json.loads(line)[field] for line in fh if line.strip()]
    return max(times)


def _api(srv: SandboxServer) -> BinanceApi:
    client = make_client(srv.url, srv.config.api_key, srv.config.api_secret, requests_params={"timeout": 5})
    return BinanceApi(client, retry=RetryPolicy(attempts=3, base_wait=0.001, max_wait=0.01), sleep=lambda s: None)


def _run(settings: Settings, srv: SandboxServer, until: int) -> dict:
    stats = ingest_binance(
        settings, client=_api(srv), since_ms=START_MS - DAY, until_ms=until, page_limit=1000, batch_size=2_000
    )
    return {s.source: s for s in stats}


def _assert_equal(settings: Settings, expected: dict[str, set[tuple]]) -> None:
    for name in COMPARED:
        got = table_rows(settings, name)
        assert got == expected[name], f"{name}: {len(expected[name] - got)} missing, {len(got - expected[name])} extra"


@pytest.mark.parametrize(("windowed", "cap"), MODES, ids=[f"windowed={w}-cap={c}" for w, c in MODES])
def test_every_paging_mode_reads_the_whole_account(windowed, cap, account40, expected40, data_end, tmp_path):
    config = ServerConfig(weight_limit_1m=10_000_000, id_queries_windowed=windowed, page_cap=cap, **NO_RETENTION)
    with SandboxServer(account40, config=config) as srv:
        # the switches do what they say: an id-paged query from the first trade sees only the last 7 days when
        # the window applies to it, and no page is longer than the cap
        client = _api(srv).client
        first = client.futures_account_trades(symbol="BTCUSDT", startTime=START_MS, endTime=START_MS + 7 * DAY - 1)
        by_id = client.futures_account_trades(symbol="BTCUSDT", fromId=first[0]["id"], limit=1000)
        assert len(first) <= cap and len(by_id) <= cap
        assert (min(t["time"] for t in by_id) >= data_end - 7 * DAY) is windowed

        # a first run 40 days back
        first_run = Settings(target="duckdb", duckdb_path=tmp_path / "first.duckdb")
        stats = _run(first_run, srv, data_end)
        _assert_equal(first_run, expected40)
        assert stats["futures_trades"].duplicates == 0 and stats["futures_trades"].quarantined == 0

        # a run at day 30, then nothing for 10 days (an outage longer than a window), then the end
        outage = Settings(target="duckdb", duckdb_path=tmp_path / "outage.duckdb")
        trades_loaded = 0
        for clock in (START_MS + 30 * DAY, None):
            srv.set_visible_until(clock)
            stats = _run(outage, srv, data_end)
            assert stats["futures_trades"].duplicates == 0  # trades are never re-read
            trades_loaded += stats["futures_trades"].loaded
        _assert_equal(outage, expected40)
        assert trades_loaded == len(expected40["futures_trades"])


# ----------------------------------------------------------------------------- past retention: exports
def _audit(settings: Settings, run_id: str) -> list[tuple]:
    with RawStore(settings) as store:
        return store.fetchall(
            f"select source, status, message from {store.table('ingestion_runs')} where run_id = ? order by source",
            [run_id],
        )


def test_a_backfill_past_retention_warns_and_the_export_fills_the_gap(
    account40, expected40, data_end, tmp_path, caplog, capsys, monkeypatch
):
    """Binance's own retention (orders 90 days, canceled orders without a fill 3 days, income 3 months), 70 days
    after the account's last record: the API run is cut at retention (warned, audited), Binance's exports of the
    older part (requested, polled and downloaded through the fake API) fill it, and the result is the account."""
    caplog.set_level(logging.WARNING)
    clock = data_end + 70 * DAY
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "backfill.duckdb")
    with SandboxServer(account40, config=ServerConfig(weight_limit_1m=10_000_000)) as srv:
        srv.set_visible_until(clock)
        api = _api(srv)
        run_id = new_run_id()
        ingest_binance(settings, client=api, since_ms=START_MS - DAY, until_ms=clock, run_id=run_id, batch_size=2_000)
        notes = [r for r in _audit(settings, run_id) if r[0] == "binance:default:retention"]
        assert [r[1] for r in notes] == ["warning"]
        assert "orders and algo orders" in notes[0][2] and "income (income history)" in notes[0][2]
        assert "trades" not in notes[0][2]  # 6 months: all still served
        assert any("stratpos ingest export" in m for m in caplog.messages)
        for name in ("futures_orders", "income"):
            assert table_rows(settings, name) < expected40[name], name  # the gap is real

        floors = retention_floors(clock)
        files = []
        for kind, start, end in (
            ("order", START_MS - DAY, clock),  # canceled orders without a fill are gone after 3 days at any age
            ("income", START_MS - DAY, floors["income"] + DAY),
            ("trade", START_MS - DAY, START_MS + 10 * DAY),  # already read through the API: duplicates only
        ):
            download_id = request_export(api, kind, start, end)
            url = export_link(api, kind, download_id, poll_seconds=0.01, sleep=lambda s: None)
            files.append(download(url, tmp_path / f"{kind}.csv"))
        first = {s.source: s for s in load_export_files(files, settings)}
        assert first["futures_orders"].loaded > 0 and first["income"].loaded > 0
        assert first["futures_trades"].loaded == 0 and first["futures_trades"].duplicates > 0
        assert all(s.quarantined == 0 for s in first.values())
        # the same files again, through the CLI: nothing loaded twice
        monkeypatch.setenv("STRATPOS_TARGET", "duckdb")
        monkeypatch.setenv("STRATPOS_DUCKDB_PATH", str(settings.duckdb_path))
        assert cli_main(["ingest", "export", *map(str, files)]) == 0
        summaries = [line for line in capsys.readouterr().out.splitlines() if ": received " in line]
        assert len(summaries) == 4 and all("= loaded 0 + " in line and "quarantined 0" in line for line in summaries)
    _assert_equal(settings, expected40)


def test_an_unreadable_export_file_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ExportError, match=r"x.csv: not a Binance trade, order or income export"):
        load_export_files([bad], Settings(target="duckdb", duckdb_path=tmp_path / "w.duckdb"))


# ----------------------------------------------------------------------------- a millisecond fuller than a page
@pytest.mark.parametrize("windowed", [False, True], ids=["id-queries-unwindowed", "id-queries-windowed"])
def test_a_millisecond_holding_more_than_a_page_is_read_whole(windowed, tmp_path):
    """25 fills and 25 income rows in one millisecond, pages of 10: moving the start time cannot get past that
    millisecond, so it is read on by trade id (userTrades) and by page number (income)."""
    from tests.ingestion import documented as doc

    t = doc.T0 + 1_000
    trades = [doc.trade("BTCUSDT", i, 500 + i, t, commission="0.01") for i in range(1, 26)]
    trades += [doc.trade("BTCUSDT", 26 + i, 600 + i, t + 1_000, commission="0.01") for i in range(3)]
    income = [doc.income("BTCUSDT", "COMMISSION", "-0.01", "USDT", t, 9_000_000 + i, str(i)) for i in range(1, 26)]
    out = tmp_path / "acct"
    out.mkdir()
    (out / "account.json").write_text(json.dumps({"account_id": "default", "position_mode": "hedge"}))
    for name, records in (("futures_trades.jsonl", trades), ("income.jsonl", income)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "w.duckdb")
    config = ServerConfig(weight_limit_1m=1_000_000, page_cap=10, id_queries_windowed=windowed)
    with SandboxServer(out, config=config) as srv:
        stats = {
            s.source: s
            for s in ingest_binance(
                settings, client=_api(srv), symbols=["BTCUSDT"], since_ms=doc.T0 - DAY, until_ms=doc.T0 + DAY
            )
        }
    assert (stats["futures_trades"].received, stats["futures_trades"].loaded) == (28, 28)
    assert (stats["income"].received, stats["income"].loaded) == (25, 25)
    with RawStore(settings) as store:
        assert store.count("futures_trades") == 28 and store.count("income") == 25


def test_a_run_after_an_outage_longer_than_retention_is_cut_and_told(account40, data_end, tmp_path, caplog):
    """The watermark is older than Binance's retention when the next run comes: that run starts at the limit,
    warns and audits, instead of asking for what Binance no longer has."""
    caplog.set_level(logging.WARNING)
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "w.duckdb")
    with SandboxServer(account40, config=ServerConfig(weight_limit_1m=10_000_000)) as srv:
        srv.set_visible_until(START_MS + 10 * DAY)
        first = new_run_id()
        ingest_binance(settings, client=_api(srv), since_ms=START_MS - DAY, until_ms=data_end, run_id=first)
        assert [r for r in _audit(settings, first) if r[0] == "binance:default:retention"] == []
        clock = data_end + 100 * DAY  # nothing ran for more than 90 days
        srv.set_visible_until(clock)
        later = new_run_id()
        ingest_binance(settings, client=_api(srv), until_ms=clock, run_id=later)
    notes = [r for r in _audit(settings, later) if r[0] == "binance:default:retention"]
    assert {r[1] for r in notes} == {"warning"}
    text = " ".join(r[2] for r in notes)
    assert "orders (allOrders)" in text and "income (income history)" in text and "stratpos ingest export" in text
    assert "trades" not in text  # 6 months: still served from the watermark on
