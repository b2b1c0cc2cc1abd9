"""SPEC §5 on DuckDB: clean sandbox data reconciles; each corruption trips exactly its check.

Every corruption starts from a copy of a clean, built warehouse and changes the raw layer in
one specific way. Most are raw facts that disagree with each other or with the books once
transformed (R2–R5, R7). R1 and R6 hold the books against the raw fills, which only a change
after the transform can make disagree (the books are rebuilt from raw every run): a late fill
and a dropped commission that the books have not seen yet.
"""

from __future__ import annotations

import os
import uuid
from decimal import Decimal as D
from pathlib import Path

import pytest

from ingestion.replay import load_replay
from sandbox.generator import GenerateConfig, generate
from stratpos.cli import main
from stratpos.core.settings import Settings
from stratpos.core.warehouse import drop_schemas
from stratpos.validate import NothingToValidate
from tests.reconciliation.helpers import (
    alert_env,
    alert_payload,
    build,
    copy_duckdb,
    dq_alerts,
    failed_checks,
    failing_keys,
    late_fill,
    late_records,
    move_wallet,
    query,
    transform,
    validate,
)
from tests.reconciliation.receivers import SmtpSink, WebhookReceiver

HEDGE = {"account_id": "default", "position_mode": "hedge"}
ONE_WAY = {"account_id": "default", "position_mode": "one_way"}


@pytest.fixture(scope="module")
def receivers():
    with WebhookReceiver() as webhook, SmtpSink() as smtp:
        yield webhook, smtp


def _replay(tmp_path_factory, mode: str) -> Path:
    out = tmp_path_factory.mktemp(f"replay-{mode}")
    generate(GenerateConfig(out=out, days=2, strategies=4, mode=mode, seed=5))
    return out


@pytest.fixture(scope="module")
def hedge_replay(tmp_path_factory) -> Path:
    return _replay(tmp_path_factory, "hedge")


@pytest.fixture(scope="module")
def clean_hedge(hedge_replay, tmp_path_factory) -> Settings:
    settings = Settings(target="duckdb", duckdb_path=tmp_path_factory.mktemp("clean-hedge") / "w.duckdb")
    build(settings, hedge_replay)
    return settings


@pytest.fixture(scope="module")
def clean_one_way(tmp_path_factory) -> Settings:
    settings = Settings(target="duckdb", duckdb_path=tmp_path_factory.mktemp("clean-one-way") / "w.duckdb")
    build(settings, _replay(tmp_path_factory, "one_way"))
    return settings


def assert_alerted(receivers, report, check_id: str, key: str) -> None:
    """Every channel got this run's alert, naming the check, the key, expected vs observed and the run."""
    webhook, smtp = receivers
    [hook] = [r for r in webhook.on("/hook") if r.body["run_id"] == report.run_id]
    assert hook.headers["Authorization"] == "Bearer secret-webhook-token"
    check = next(c for c in alert_payload(hook)["checks"] if c["check_id"] == check_id)
    assert check["status"] == "failed" and check["failing"] >= 1 and check["event"] == "started failing"
    entry = next(k for k in check["keys"] if k["key"] == key)
    assert entry["expected"] is not None and entry["observed"] is not None
    assert f"{check_id} " in hook.body["title"] and key in hook.body["message"]
    [slack] = [r for r in webhook.on("/slack/T000/B000/secret-slack-token") if report.run_id in r.body["text"]]
    assert f"*{check_id} " in slack.body["text"] and key in slack.body["text"]
    mails = [m for m in smtp.mails if report.run_id in m.subject]  # apprise mails each recipient apart
    assert sorted(r for m in mails for r in m.recipients) == ["desk@example.test", "risk@example.test"]
    for mail in mails:
        assert f"{check_id} started failing" in mail.subject
        assert key in mail.text and f"expected {entry['expected']}, observed {entry['observed']}" in mail.text
        assert mail.auth is not None


def shift_wallet(settings: Settings, row: dict, by_ms: int, sign: int = 1) -> None:
    """The wallet follows an income row moved later by ``by_ms`` (so only the check under test sees it)."""
    moved = {"income": row["income"], "asset": row["asset"]}
    move_wallet(settings, [dict(moved, time=row["income_time_ms"])], -sign)
    move_wallet(settings, [dict(moved, time=row["income_time_ms"] + by_ms)], sign)


def assert_only(report, settings: Settings, check_id: str, key: str) -> None:
    assert failed_checks(report) == {check_id}, report.render()
    assert report.exit_code == 1
    assert key in failing_keys(settings, report.run_id, check_id), report.render()


# --------------------------------------------------------------------------------------------- clean data
def test_clean_sandbox_data_passes_every_check(clean_hedge, clean_one_way, receivers, tmp_path):
    for settings in (clean_hedge, clean_one_way):
        report = validate(settings, tmp_path / settings.duckdb_path.parent.name, *receivers)
        assert failed_checks(report) == set(), report.render()
        assert report.exit_code == 0
        passed = [r.check.check_id for r in report.results if r.status == "passed"]
        assert passed == [*(f"R{i}" for i in range(1, 8)), "R9"]
        # R8: the sandbox trades manually, gets liquidated and over-closes, so linkage warns
        r8 = report.result("R8")
        assert r8.status == "warned" and r8.failures == []
        assert {"unattributed_volume", "over_close"} <= {m.measure for m in r8.mismatches}
        rows = dq_alerts(settings, report.run_id)
        assert len(rows) == len(r8.mismatches) and {r["severity"] for r in rows} == {"warn"}
        # a warning that starts alerts every channel
        webhook, smtp = receivers
        [hook] = [r for r in webhook.on("/hook") if r.body["run_id"] == report.run_id]
        checks = alert_payload(hook)["checks"]
        assert hook.body["status"] == "warned" and hook.body["type"] == "warning"
        assert [(c["check_id"], c["event"]) for c in checks] == [("R8", "started warning")]
        assert any(report.run_id in m.subject for m in smtp.mails)


def test_unattributed_volume_and_over_closes_are_warnings(clean_hedge, tmp_path):
    report = validate(clean_hedge, tmp_path)
    rows = [r for r in dq_alerts(clean_hedge, report.run_id) if r["check_id"] == "R8"]
    buckets = {r["check_key"]: r["observed"] for r in rows if r["measure"] == "unattributed_volume"}
    expected = query(
        clean_hedge,
        "select strategy_position_id, sum(quantity) as q from {marts}.fct_fill_allocations "
        "where is_unattributed = 1 and is_over_close = 0 group by strategy_position_id",
    )
    assert buckets == {r["strategy_position_id"]: r["q"] for r in expected} != {}
    over = {r["check_key"]: r["observed"] for r in rows if r["measure"] == "over_close"}
    flagged = query(
        clean_hedge,
        "select symbol, trade_id, leg_no, quantity from {marts}.fct_fill_allocations where is_over_close = 1",
    )
    assert over == {f"default:{r['symbol']}:{r['trade_id']}:{r['leg_no']}": r["quantity"] for r in flagged} != {}


def test_alert_rows_are_idempotent_per_run_id(clean_hedge, tmp_path):
    first = validate(clean_hedge, tmp_path, run_id="validate-fixed")
    again = validate(clean_hedge, tmp_path, run_id="validate-fixed")
    rows = dq_alerts(clean_hedge, "validate-fixed")
    assert len(rows) == len(first.result("R8").mismatches) == len(again.result("R8").mismatches) > 0


def test_data_docs_show_the_last_validation(clean_hedge, tmp_path):
    docs = tmp_path / "gx_docs"
    validate(clean_hedge, tmp_path, run_id="validate-first")
    report = validate(clean_hedge, tmp_path, run_id="validate-second")
    assert report.docs_index == docs / "index.html" and report.docs_index.is_file()
    pages = sorted(p.relative_to(docs).parts[2] for p in (docs / "validations").rglob("*.html"))
    assert pages == sorted(f"recon_{c.check_id.lower()}_{c.name}" for c in (r.check for r in report.results))
    assert all("validate-second" in str(p) for p in (docs / "validations").rglob("*.html"))


# --------------------------------------------------------------------------------------------- corruptions
def test_r1_a_fill_the_books_have_not_seen(clean_hedge, hedge_replay, receivers, tmp_path):
    """A fill (with its income rows) ingested after the transform: no allocation covers it."""
    settings = copy_duckdb(clean_hedge, tmp_path)
    fill, income = late_fill(hedge_replay, 100, 1000, 10**9)
    load_replay(late_records(tmp_path / "late", HEDGE, futures_trades=[fill], income=income), settings)
    move_wallet(settings, income)  # the wallet saw that income too: only the books are behind
    report = validate(settings, tmp_path, *receivers)
    new_id = fill["id"]
    key = f"default:{fill['symbol']}:{new_id}"
    assert_only(report, settings, "R1", key)
    [row] = report.result("R1").failures
    assert (row.expected, row.observed) == (D(fill["qty"]), 0)
    assert_alerted(receivers, report, "R1", key)


def test_r2_an_order_linked_to_a_position_of_the_other_side_one_way(clean_one_way, receivers, tmp_path):
    """One-way: a SELL entry linked to a buy signal books +q where the exchange went −q."""
    settings = copy_duckdb(clean_one_way, tmp_path)
    [order] = query(
        settings,
        "select symbol, order_id, exchange_position_key from {intermediate}.int_legs_linked "
        "where link_role = 'entry' and side = 'SELL' order by trade_time_ms, trade_id limit 1 offset 40",
    )
    signal = {
        "signal_id": "corrupt_long_1",
        "strategy_id": "corruptor",
        "symbol": order["symbol"],
        "action": "buy",
        "quantity": "1",
        "timestamp": 1767571200000,
    }
    link = {"order_id": order["order_id"], "signal_id": "corrupt_long_1", "role": "entry"}
    load_replay(late_records(tmp_path / "late", ONE_WAY, signals=[signal], order_links=[link]), settings)
    transform(settings)
    report = validate(settings, tmp_path, *receivers)
    key = f"default:{order['exchange_position_key']}"
    assert_only(report, settings, "R2", key)
    # the PnL identity cannot hold on that key either: it is reported, as a warning pointing at R2
    r5 = {m.check_key: m for m in report.result("R5").mismatches}
    assert r5[key].severity == "warn" and "R2" in r5[key].detail
    assert_alerted(receivers, report, "R2", key)


def latest_open_key(settings: Settings, side: str) -> dict:
    """A key of ``side`` the latest positionRisk snapshot shows open (v3 lists open positions only)."""
    return query(
        settings,
        f"select symbol, position_side, snapshot_time_ms from {{raw}}.position_snapshots "
        f"where position_side = '{side}' and abs(position_amt) > 0.01 "
        f"and snapshot_time_ms = "
        f"(select t from (select max(snapshot_time_ms) as t from {{raw}}.position_snapshots) as m) "
        f"order by symbol limit 1",
    )[0]


def test_r3_a_position_risk_amount_changed(clean_hedge, receivers, tmp_path):
    """The latest positionRisk of an open key shows 0.001 more than its fills add up to.

    SPEC §4.1 reads the excess as a position held before the ingested history (an opening
    allocation of 0.001 at the start of the key's first episode, so its quantity agrees): the
    episodes then never return to flat, and that invented position's average (R3's entry price)
    and the episode's realized PnL (R4) contradict the exchange."""
    settings = copy_duckdb(clean_hedge, tmp_path)
    k = latest_open_key(settings, "LONG")
    query(
        settings,
        f"update {{raw}}.position_snapshots set position_amt = position_amt + 0.001 "
        f"where symbol = '{k['symbol']}' and position_side = 'LONG' and snapshot_time_ms = {k['snapshot_time_ms']}",
    )
    transform(settings)
    report = validate(settings, tmp_path, *receivers)
    key = f"default:{k['symbol']}_LONG"
    assert failed_checks(report) == {"R3", "R4"}, report.render()
    assert failing_keys(settings, report.run_id, "R3") == {key}
    assert {m.check_key.rsplit(":", 1)[0] for m in report.result("R4").failures} == {key}
    assert_alerted(receivers, report, "R3", key)


def test_r4_one_realized_pnl_changed(clean_hedge, receivers, tmp_path):
    """One fill's realizedPnl (and its REALIZED_PNL income, so the ledger agrees) off by 0.5."""
    settings = copy_duckdb(clean_hedge, tmp_path)
    [fill] = query(
        settings,
        "select symbol, trade_id, trade_time_ms from {raw}.futures_trades where realized_pnl <> 0 "
        "order by trade_time_ms, symbol limit 1 offset 20",
    )
    [episode] = query(
        settings,
        f"select distinct exchange_position_id from {{marts}}.fct_fill_allocations "
        f"where symbol = '{fill['symbol']}' and trade_id = {fill['trade_id']} and leg_no = 1",
    )
    query(
        settings,
        f"update {{raw}}.futures_trades set realized_pnl = realized_pnl + 0.5 "
        f"where symbol = '{fill['symbol']}' and trade_id = {fill['trade_id']}",
    )
    [ledger] = query(
        settings,
        f"select asset from {{raw}}.income where income_type = 'REALIZED_PNL' "
        f"and symbol = '{fill['symbol']}' and trade_id = '{fill['trade_id']}'",
    )
    query(
        settings,
        f"update {{raw}}.income set income = income + 0.5 "
        f"where income_type = 'REALIZED_PNL' and symbol = '{fill['symbol']}' and trade_id = '{fill['trade_id']}'",
    )
    move_wallet(settings, [{"income": "0.5", "asset": ledger["asset"], "time": fill["trade_time_ms"]}])
    transform(settings)
    report = validate(settings, tmp_path, *receivers)
    assert_only(report, settings, "R4", episode["exchange_position_id"])
    [row] = report.result("R4").failures
    assert abs(row.diff + D("0.5")) <= row.tolerance  # Binance's side grew by 0.5, ours did not
    assert_alerted(receivers, report, "R4", episode["exchange_position_id"])


def test_r5_an_order_linked_to_a_position_of_the_other_side_hedge(clean_hedge, receivers, tmp_path):
    """Hedge: a LONG-key entry linked to a sell signal; quantities still add up, PnL signs do not."""
    settings = copy_duckdb(clean_hedge, tmp_path)
    [order] = query(
        settings,
        "select symbol, order_id, exchange_position_key from {intermediate}.int_legs_linked "
        "where link_role = 'entry' and position_side = 'LONG' order by trade_time_ms, trade_id limit 1 offset 40",
    )
    signal = {
        "signal_id": "corrupt_short_1",
        "strategy_id": "corruptor",
        "symbol": order["symbol"],
        "action": "sell",
        "quantity": "1",
        "timestamp": 1767571200000,
    }
    link = {"order_id": order["order_id"], "signal_id": "corrupt_short_1", "role": "entry"}
    load_replay(late_records(tmp_path / "late", HEDGE, signals=[signal], order_links=[link]), settings)
    transform(settings)
    report = validate(settings, tmp_path, *receivers)
    key = f"default:{order['exchange_position_key']}"
    assert_only(report, settings, "R5", key)
    side = [m for m in report.result("R8").mismatches if m.measure == "side_mismatch"]
    assert [m.check_key for m in side] == [f"default:{order['symbol']}:{order['order_id']}"]
    assert_alerted(receivers, report, "R5", key)


def test_r6_a_commission_dropped_after_the_books_were_built(clean_hedge, receivers, tmp_path):
    """The exchange drops a fill's commission (fill and COMMISSION income); the books still allocate it."""
    settings = copy_duckdb(clean_hedge, tmp_path)
    [fill] = query(
        settings,
        "select symbol, trade_id, commission, trade_time_ms from {raw}.futures_trades "
        "where commission_asset = 'USDT' and commission > 0 order by trade_time_ms, symbol limit 1 offset 30",
    )
    query(
        settings,
        f"update {{raw}}.futures_trades set commission = 0 "
        f"where symbol = '{fill['symbol']}' and trade_id = {fill['trade_id']}",
    )
    query(
        settings,
        f"delete from {{raw}}.income where income_type = 'COMMISSION' "
        f"and symbol = '{fill['symbol']}' and trade_id = '{fill['trade_id']}'",
    )
    # nor did the wallet pay it
    move_wallet(settings, [{"income": fill["commission"], "asset": "USDT", "time": fill["trade_time_ms"]}])
    report = validate(settings, tmp_path, *receivers)
    key = f"default:{fill['symbol']}:{fill['trade_id']}"
    assert_only(report, settings, "R6", key)
    keys = {m.check_key: m for m in report.result("R6").failures}
    assert set(keys) == {key, "default:USDT", f"default:{fill['symbol']}"}
    assert keys[key].diff == fill["commission"]
    assert_alerted(receivers, report, "R6", key)


def test_r7_an_income_row_shifted_by_a_day(clean_hedge, receivers, tmp_path):
    """Income reaches R7 through a staging view (REALIZED_PNL rows feed no model of the books)."""
    settings = copy_duckdb(clean_hedge, tmp_path)
    [row] = query(
        settings,
        "select tran_id, symbol, income, asset, income_time_ms from {raw}.income "
        "where income_type = 'REALIZED_PNL' and income <> 0 order by income_time_ms limit 1 offset 5",
    )
    query(
        settings,
        f"update {{raw}}.income set income_time_ms = income_time_ms + 86400000 where tran_id = {row['tran_id']}",
    )
    shift_wallet(settings, row, 86_400_000)
    report = validate(settings, tmp_path, *receivers)
    day1, day2 = (f"default:{row['symbol']}:{row['asset']}:2026-01-0{d}" for d in (5, 6))
    assert_only(report, settings, "R7", day1)
    diffs = {m.check_key: m.diff for m in report.result("R7").failures}
    assert diffs == {day1: row["income"], day2: -row["income"]}  # fills − income
    assert_alerted(receivers, report, "R7", day2)


# --------------------------------------------------------------------------------------------- robustness, CLI
def test_a_warehouse_never_transformed_has_nothing_to_validate(receivers, tmp_path):
    """No reconciliation relation at all: one line, its own exit code, no dq_alerts rows, nobody alerted."""
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "empty.duckdb")
    webhook, smtp = receivers
    before = (len(webhook.requests), len(smtp.mails))
    with pytest.raises(NothingToValidate, match="nothing to validate yet — run stratpos transform first"):
        validate(settings, tmp_path, *receivers)
    assert (len(webhook.requests), len(smtp.mails)) == before
    tables = query(settings, "select table_name from information_schema.tables")
    assert "dq_alerts" not in {r["table_name"] for r in tables}


def test_cli_validate_before_transform_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("STRATPOS_TARGET", "duckdb")
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "empty.duckdb")
    query(settings, "select 1")  # the warehouse exists (an ingest created it), no transform ran
    monkeypatch.setenv("STRATPOS_DUCKDB_PATH", str(settings.duckdb_path))
    assert main(["validate", "--docs-dir", str(tmp_path / "docs")]) == NothingToValidate.exit_code == 4
    out, err = capsys.readouterr()
    [line] = err.splitlines()
    assert out == "" and line.startswith("stratpos: nothing to validate yet — run stratpos transform first")


def test_cli_validate_exits_0_when_nothing_failed_and_1_otherwise(clean_hedge, monkeypatch, tmp_path, capsys):
    broken = copy_duckdb(clean_hedge, tmp_path / "broken")
    query(broken, "update {raw}.position_snapshots set entry_price = entry_price * 1.01 where position_amt <> 0")
    transform(broken)
    monkeypatch.setenv("STRATPOS_TARGET", "duckdb")
    for settings, code, line in ((clean_hedge, 0, "PASSED  R3"), (broken, 1, "FAILED  R3")):
        monkeypatch.setenv("STRATPOS_DUCKDB_PATH", str(settings.duckdb_path))
        assert main(["validate", "--no-alerts", "--docs-dir", str(tmp_path / "docs")]) == code
        out = capsys.readouterr().out
        assert line in out and "WARNED  R8 linkage" in out
    assert "entry_price: expected" in out


def test_verbose_output_of_a_run_that_alerts_shows_no_url_token_or_password(clean_hedge, tmp_path):
    """``stratpos -v validate`` with every channel configured: alerts go out, the log names no secret."""
    import subprocess
    import sys

    from stratpos.core.settings import PROJECT_ROOT
    from tests.airflow.helpers import stratpos_env

    settings = copy_duckdb(clean_hedge, tmp_path / "copy")
    with WebhookReceiver() as webhook, SmtpSink() as smtp:  # new channels: R8's warning is news to them
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATPOS_")}
        env.update(stratpos_env(settings), **alert_env(webhook, smtp))
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from stratpos.cli import main; sys.exit(main())",
             "-v", "validate", "--docs-dir", str(tmp_path / "docs")],
            env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert len(webhook.requests) == 2 and len(smtp.mails) == 2
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "DEBUG stratpos.alerts: alert of run" in output and "alert via webhook (127.0.0.1): sent" in output
    secrets = [webhook.url("/hook"), "/slack/T000/B000/secret-slack-token", "secret-slack-token",
               "secret-webhook-token", "secret-smtp-password"]  # fmt: skip
    assert [s for s in secrets if s in output] == []


# --------------------------------------------------------------------------------------------- MariaDB
@pytest.fixture(scope="module")
def clean_mariadb(request, hedge_replay):
    """The clean hedge replay on MariaDB (GX validates it through its SQL data source)."""
    mysql = request.getfixturevalue("mysql_available")
    settings = Settings(target="mysql", mysql=mysql, schema_prefix=f"t{uuid.uuid4().hex[:8]}_")
    request.addfinalizer(lambda: drop_schemas(settings))
    build(settings, hedge_replay)
    return settings


def _mismatch_rows(report) -> set[tuple]:
    return {(m.check_id, m.severity, m.check_key, m.measure, m.expected, m.observed) for r in report.results
            for m in r.mismatches}  # fmt: skip


@pytest.mark.mysql
def test_mariadb_clean_data_passes_with_the_same_findings_as_duckdb(clean_mariadb, clean_hedge, receivers, tmp_path):
    report = validate(clean_mariadb, tmp_path / "mariadb", *receivers)
    assert failed_checks(report) == set() and report.exit_code == 0, report.render()
    assert report.result("R8").status == "warned"
    assert len(dq_alerts(clean_mariadb, report.run_id)) == len(report.result("R8").mismatches)
    duckdb_report = validate(clean_hedge, tmp_path / "duckdb")
    assert _mismatch_rows(report) == _mismatch_rows(duckdb_report) != set()
    assert (tmp_path / "mariadb" / "gx_docs" / "index.html").is_file()


@pytest.mark.mysql
def test_mariadb_r1_a_fill_the_books_have_not_seen(clean_mariadb, hedge_replay, receivers, tmp_path):
    fill, income = late_fill(hedge_replay, 200, 2000, 2 * 10**9)
    new_id = fill["id"]
    load_replay(late_records(tmp_path / "late", HEDGE, futures_trades=[fill], income=income), clean_mariadb)
    move_wallet(clean_mariadb, income)
    try:
        report = validate(clean_mariadb, tmp_path, *receivers)
        key = f"default:{fill['symbol']}:{new_id}"
        assert_only(report, clean_mariadb, "R1", key)
        assert_alerted(receivers, report, "R1", key)
    finally:
        query(clean_mariadb, f"delete from {{raw}}.futures_trades where trade_id = {new_id}")
        query(clean_mariadb, f"delete from {{raw}}.income where trade_id = '{new_id}'")
        move_wallet(clean_mariadb, income, -1)


@pytest.mark.mysql
def test_mariadb_r3_a_position_risk_entry_price_changed(clean_mariadb, receivers, tmp_path):
    """The latest positionRisk of an open key shows an entry price 1 % off our average."""
    k = latest_open_key(clean_mariadb, "SHORT")
    where = f"where symbol = '{k['symbol']}' and position_side = 'SHORT' and snapshot_time_ms = {k['snapshot_time_ms']}"
    query(clean_mariadb, "update {raw}.position_snapshots set entry_price = entry_price * 1.01 " + where)
    transform(clean_mariadb)
    try:
        report = validate(clean_mariadb, tmp_path, *receivers)
        key = f"default:{k['symbol']}_SHORT"
        assert_only(report, clean_mariadb, "R3", key)
        [row] = report.result("R3").failures
        assert row.measure == "entry_price"
        assert_alerted(receivers, report, "R3", key)
    finally:
        query(clean_mariadb, "update {raw}.position_snapshots set entry_price = entry_price / 1.01 " + where)
        transform(clean_mariadb)


@pytest.mark.mysql
def test_mariadb_r7_an_income_row_shifted_by_a_day(clean_mariadb, receivers, tmp_path):
    [row] = query(
        clean_mariadb,
        "select tran_id, symbol, income, asset, income_time_ms from {raw}.income where income_type = 'COMMISSION' "
        "order by income_time_ms limit 1 offset 7",
    )
    shift = "update {raw}.income set income_time_ms = income_time_ms + %d where tran_id = " + str(row["tran_id"])
    query(clean_mariadb, shift % 86_400_000)
    shift_wallet(clean_mariadb, row, 86_400_000)
    try:
        report = validate(clean_mariadb, tmp_path, *receivers)
        key = f"default:{row['symbol']}:USDT:2026-01-05"
        assert_only(report, clean_mariadb, "R7", key)
        assert f"default:{row['symbol']}:USDT:2026-01-06" in failing_keys(clean_mariadb, report.run_id, "R7")
        assert_alerted(receivers, report, "R7", key)
    finally:
        query(clean_mariadb, shift % -86_400_000)
        shift_wallet(clean_mariadb, row, 86_400_000, -1)
