"""The HTML report (stratpos/report/): built from a sandbox warehouse and from an empty one,
with reconciliation results from the caller or from ``audit.dq_alerts``, and rendered by headless
Chromium to prove the charts are drawn.

Expected numbers come from SQL on the marts (exact DECIMAL sums), not from the report code, which
only reads mart columns.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import zlib
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ingestion.replay import load_replay
from ingestion.store import RawStore
from sandbox.generator import GenerateConfig, generate
from sandbox.instruments import DEFAULT_SYMBOLS
from stratpos.core.settings import PROJECT_ROOT, Settings
from stratpos.core.warehouse import duckdb_connection, ensure_schemas, mysql_connection
from stratpos.report import build_report
from stratpos.transform import run_dbt

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
CHROMIUM_TIMEOUT = 60
ARTIFACTS = PROJECT_ROOT / "artifacts"
CHARTS = ("equity", "outcomes", "attribution")


# --------------------------------------------------------------------------- helpers
class _Page(HTMLParser):
    """What the tests look at: leaderboard rows, charts and their marks, episodes, checks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.leaderboard: dict[tuple[str, str], list[str]] = {}  # (strategy, margin asset) → cells
        self.totals: list[list[str]] = []  # the footer row of each leaderboard table
        self.charts: list[dict] = []  # {"kind", "asset", "drawn", "marks", "lines"}
        self.episodes: list[str] = []
        self.checks: list[str] = []
        self._row: tuple[str, str] | list[str] | None = None
        self._cell: list[str] | None = None
        self._svg: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-strategy" in a:
            self._row = (a["data-strategy"], a.get("data-asset") or "")
            self.leaderboard[self._row] = []
        elif tag == "tr" and "total" in (a.get("class") or "").split():
            self._row = []
            self.totals.append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "svg" and "data-chart" in a:
            self._svg = {
                "kind": a["data-chart"],
                "asset": a.get("data-asset"),
                "drawn": a.get("data-drawn"),
                "marks": 0,
                "lines": 0,
            }
            self.charts.append(self._svg)
        elif tag in ("path", "rect") and self._svg is not None:
            self._svg["marks"] += 1
            self._svg["lines"] += "line" in (a.get("class") or "").split()
        elif tag == "div" and "data-episode" in a:
            self.episodes.append(a["data-episode"])
        elif tag == "tr" and "data-check" in a:
            self.checks.append(a["data-check"])

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._row is not None:
            cells = self._row if isinstance(self._row, list) else self.leaderboard[self._row]
            cells.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "svg":
            self._svg = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def of(self, kind: str) -> list[dict]:
        return [c for c in self.charts if c["kind"] == kind]


def parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


def money(value, asset: str = "USDT") -> str:
    """Cents for USDT, 8 places (a satoshi) for BTC."""
    places = 2 if asset == "USDT" else 8
    q = Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{abs(q) if q == 0 else q:,.{places}f}"


def query(settings: Settings, sql: str) -> list[tuple]:
    if settings.target == "duckdb":
        with duckdb_connection(settings, read_only=True) as con:
            return con.execute(sql).fetchall()
    with mysql_connection(settings) as con, con.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def execute(settings: Settings, statements: list[str]) -> None:
    if settings.target == "duckdb":
        with duckdb_connection(settings) as con:
            for s in statements:
                con.execute(s)
    else:
        with mysql_connection(settings) as con, con.cursor() as cur:
            for s in statements:
                cur.execute(s)


def assert_self_contained(page: str) -> None:
    lowered = page.lower()
    assert "http://" not in lowered and "https://" not in lowered
    assert not re.search(r"<script[^>]*\bsrc\s*=", lowered)
    assert not re.search(r"<link[^>]*\bhref\s*=", lowered)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:|//)", lowered)
    assert "@import" not in lowered
    assert not re.search(r"<(img|iframe|object|embed)\b", lowered)


# --------------------------------------------------------------------------- the sandbox warehouse
@pytest.fixture(scope="module")
def sandbox_warehouse(tmp_path_factory) -> Settings:
    """A DuckDB warehouse built from a 2-day, 4-strategy paper account that also trades ETHBTC
    (margined in BTC), once for this module.

    Like the ``duckdb_settings`` fixture, but module-scoped: the structure and the browser test
    share one build.
    """
    root = tmp_path_factory.mktemp("report-sandbox")
    generate(GenerateConfig(out=root / "replay", days=2, strategies=4, seed=5, symbols=(*DEFAULT_SYMBOLS, "ETHBTC")))
    settings = Settings(target="duckdb", duckdb_path=root / "warehouse.duckdb")
    logging.getLogger("ingestion").setLevel(logging.WARNING)
    load_replay(root / "replay", settings)
    run_dbt(settings, "build", extra_args=["--quiet"])
    return settings


@pytest.fixture(scope="module")
def sandbox_report(sandbox_warehouse: Settings, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report-out") / "report.html"
    assert build_report(sandbox_warehouse, out) == out
    return out


def test_report_structure_matches_the_marts(sandbox_warehouse: Settings, sandbox_report: Path):
    page = sandbox_report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert_self_contained(page)
    doc = parse(page)

    # 1. leaderboard: one table per margin asset, one row per strategy with positions in it (the
    #    bucket included, as "unattributed"); amounts are that asset's only
    expected = {
        (sid, asset): (n, closed, net, opened)
        for sid, asset, n, closed, net, opened in query(
            sandbox_warehouse,
            "select strategy_id, margin_asset, count(*), sum(case when status = 'closed' then 1 else 0 end), "
            "sum(realized_pnl_net), sum(case when open_quantity <> 0 then 1 else 0 end) "
            "from marts.strategy_positions group by strategy_id, margin_asset",
        )
    }
    assert len({sid for sid, _ in expected}) == 5 and ("unattributed", "USDT") in expected
    assert set(doc.leaderboard) == set(expected)
    for (sid, asset), (n, closed, net, opened) in expected.items():
        # strategy, positions, closed, win rate, net, fees, other fees, funding, other income, open, unrealized
        cells = doc.leaderboard[(sid, asset)]
        assert cells[0] == sid
        assert cells[1] == f"{n:,}" and cells[2] == f"{int(closed):,}" and cells[9] == f"{int(opened):,}"
        assert cells[4] == money(net, asset), (sid, asset)
    # profit factor, max drawdown and Sharpe of each strategy are strategy_performance's, rounded
    for sid, asset, pf, dd, sharpe in query(
        sandbox_warehouse,
        "select strategy_id, margin_asset, profit_factor, max_drawdown, sharpe_ratio from marts.strategy_performance",
    ):
        cells = doc.leaderboard[(sid, asset)]
        assert cells[11] == ("—" if pf is None else money(pf)), (sid, asset)
        assert cells[12] == money(dd, asset), (sid, asset)
        assert cells[13] == ("—" if sharpe is None else money(Decimal(repr(sharpe)))), (sid, asset)
    assert any(c[13] != "—" for c in doc.leaderboard.values())  # a 2-day account has Sharpe ratios
    assert doc.leaderboard[("unattributed", "USDT")][12:] == ["—", "—"]  # a bucket has no daily curve
    assert '<tbody class="bucket"><tr data-strategy="unattributed" data-asset="USDT" data-account="default">' in page
    # one table, one footer total and one line of KPI cards per margin asset: USDT first, then BTC
    totals = query(
        sandbox_warehouse,
        "select margin_asset, sum(realized_pnl_net), sum(fees) from marts.strategy_positions group by margin_asset",
    )
    assert sorted(a for a, _, _ in totals) == ["BTC", "USDT"]
    by_asset = {a: (net, fees) for a, net, fees in totals}
    assert len(doc.totals) == 2
    for (asset, (net, fees)), footer in zip(sorted(by_asset.items(), reverse=True), doc.totals, strict=True):
        assert footer[0] == f"{asset} total" and footer[4] == money(net, asset) and footer[5] == money(fees, asset)
        assert f"<th>net realized PnL ({asset})</th>" in page
        kpis = page.split(f'<div class="kpis" data-asset="{asset}"')[1].split("</div></div></div>")[0]
        assert f"{money(net, asset)} {asset}" in kpis and f"net realized PnL · {asset}" in kpis
    # the BTC figures, to the satoshi, are the BTC positions' alone (a USDT amount added would show)
    assert (
        doc.totals[1][4] == money(by_asset["BTC"][0], "BTC") != money(by_asset["BTC"][0] + by_asset["USDT"][0], "BTC")
    )

    # 2. equity: a chart per margin asset, one line per strategy with a daily curve in it, ending
    #    at the curve's last cumulative net PnL
    charts = {c["asset"]: c for c in doc.of("equity")}
    lines = dict(
        query(
            sandbox_warehouse,
            "select margin_asset, count(distinct strategy_id) from marts.strategy_daily_pnl group by margin_asset",
        )
    )
    assert set(charts) == set(lines) == {"USDT", "BTC"}
    for asset, n in lines.items():
        assert charts[asset]["lines"] == n and charts[asset]["marks"] > n
        assert f"cumulative net PnL ({asset})" in page
    for sid, asset, final in query(
        sandbox_warehouse,
        "select strategy_id, margin_asset, cumulative_net_pnl from marts.strategy_daily_pnl d where pnl_date = "
        "(select max(pnl_date) from marts.strategy_daily_pnl e where e.strategy_id = d.strategy_id "
        "and e.margin_asset = d.margin_asset)",
    ):
        assert f"<title>{sid}: {money(final, asset)} {asset} after " in page
    assert "end of UTC day" in page

    # 3. outcomes: a chart per margin asset, one segment per (strategy, close reason) with closes
    segments = dict(
        query(
            sandbox_warehouse,
            "select margin_asset, count(*) from marts.strategy_close_reasons where closes > 0 group by 1",
        )
    )
    outcomes = {c["asset"]: c for c in doc.of("outcomes")}
    assert set(outcomes) == set(segments)
    for asset, n in segments.items():
        svg = page.split(f'data-chart="outcomes" data-asset="{asset}"')[1].split("</svg>")[0]
        assert len(re.findall(r'<rect class="bar"', svg)) == n
        assert outcomes[asset]["marks"] > n  # plus the legend keys

    # 4. attribution: the top 5 episodes shared by two or more strategies, in order, each with a chart
    top = [
        r[0]
        for r in query(
            sandbox_warehouse,
            "select exchange_position_id from marts.multi_strategy_positions "
            "group by exchange_position_id, contribution_count, episode_peak_quantity "
            "order by contribution_count desc, episode_peak_quantity desc, exchange_position_id limit 5",
        )
    ]
    assert len(top) == 5
    assert doc.episodes == top
    assert len(doc.of("attribution")) == 5
    assert all(c["marks"] >= 3 for c in doc.charts)

    # 5. account income per asset (mart account_pnl), each asset on its own row, amounts as in the mart
    income = query(
        sandbox_warehouse,
        "select asset, sum(total_income), sum(strategy_income), sum(account_level_income) from marts.account_pnl "
        "group by asset",
    )
    assert {"USDT", "BTC"} <= {a for a, *_ in income}
    for asset, total, strategy, account_level in income:
        row = page.split(f'<tr data-income-asset="{asset}">')[1].split("</tr>")[0]
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
        assert cells[:4] == [asset, money(total, asset), money(strategy, asset), money(account_level, asset)]

    # 6. no validation given and no dq_alerts table
    assert "No validation run recorded" in page


def test_report_in_headless_chromium(sandbox_report: Path, tmp_path: Path):
    chromium = _chromium()
    url = sandbox_report.resolve().as_uri()
    dom = _run_chromium(chromium, tmp_path, ["--dump-dom", url]).stdout
    assert "</html>" in dom, "chromium printed no DOM"
    doc = parse(dom)
    assert len({sid for sid, _ in doc.leaderboard}) == 5
    for kind in CHARTS:
        charts = doc.of(kind)
        assert charts, f"no {kind} chart in the rendered DOM"
        for c in charts:
            assert c["marks"] >= 1
            # set by the page's script from getBBox() after layout: marks with a non-empty box
            assert c["drawn"] is not None and int(c["drawn"]) >= 1, c

    shot = tmp_path / "report-screenshot.png"
    _run_chromium(chromium, tmp_path, [f"--screenshot={shot}", "--window-size=1400,2400", url])
    assert shot.exists(), "chromium wrote no screenshot"
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "report-screenshot.png")
    shutil.copyfile(sandbox_report, ARTIFACTS / "report.html")
    _assert_busy_png(shot, 1400, 2400)


# --------------------------------------------------------------------------- empty and reconciliation
def test_empty_warehouse_renders(warehouse_settings: Settings, tmp_path: Path):
    with RawStore(warehouse_settings):  # the raw tables, and nothing in them
        pass
    run_dbt(warehouse_settings, "build", extra_args=["--quiet"])
    out = build_report(warehouse_settings, tmp_path / "empty.html")
    page = out.read_text(encoding="utf-8")
    assert "No positions yet." in page
    assert "No validation run recorded" in page
    assert_self_contained(page)
    doc = parse(page)
    assert doc.charts == [] and doc.leaderboard == {}


def test_a_warehouse_without_the_performance_marts_says_so(warehouse_settings: Settings, tmp_path: Path):
    """A warehouse built before the performance marts existed (strategy_positions only): the report
    names the missing marts and the command that builds them, and computes nothing from positions."""
    ensure_schemas(warehouse_settings)
    q = "`" if warehouse_settings.target == "mysql" else '"'
    table = f"{q}{warehouse_settings.schema('marts')}{q}.{q}strategy_positions{q}"
    execute(
        warehouse_settings,
        [
            f"create table {table} (strategy_position_id varchar(64), strategy_id varchar(64), "
            "realized_pnl_net decimal(38,18))",
            f"insert into {table} values ('P1', 's1', 2.5)",
        ],
    )
    page = build_report(warehouse_settings, tmp_path / "old.html").read_text()
    assert parse(page).leaderboard == {}
    assert "No positions yet (marts strategy_performance, account_performance" in page
    assert "run `stratpos transform`" in page and "2.50" not in page


def test_validation_argument_is_rendered_and_escaped(warehouse_settings: Settings, tmp_path: Path):
    ensure_schemas(warehouse_settings)  # no marts at all
    validation = {
        "run_id": "run-42",
        "checks": [
            {"check": "R1", "severity": "fail", "status": "passed", "mismatches": 0, "worst": []},
            {
                "check": "R5",
                "severity": "fail",
                "status": "failed",
                "mismatches": 2,
                "worst": [
                    {
                        "key": "<script>alert(1)</script>",
                        "expected": Decimal("1.000000000000000001"),
                        "observed": Decimal("1"),
                        "diff": Decimal("-1E-18"),
                    }
                ],
            },
            {"check": "R8", "severity": "warn", "status": "warned", "mismatches": 7, "worst": []},
        ],
    }
    page = build_report(warehouse_settings, tmp_path / "v.html", title="A & B", validation=validation).read_text()
    doc = parse(page)
    assert doc.checks == ["R1", "R5", "R8"]
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "1.000000000000000001" in page and "-0.000000000000000001" in page  # exact, no exponent
    assert "<title>A &amp; B</title>" in page
    for badge in ("1 passed", "1 warned", "1 failed"):
        assert badge in page
    assert "run-42" in page and "No positions yet" in page


@pytest.mark.parametrize("layout", ["reconciliation_models", "short_names"])
def test_latest_dq_alerts_run_is_read(warehouse_settings: Settings, tmp_path: Path, layout: str):
    ensure_schemas(warehouse_settings)
    audit = warehouse_settings.schema("audit")
    q = "`" if warehouse_settings.target == "mysql" else '"'
    table = f"{q}{audit}{q}.{q}dq_alerts{q}"
    if layout == "reconciliation_models":  # the columns of dbt_project/models/reconciliation, plus run and time
        columns = "check_id varchar(16), check_name varchar(40), severity varchar(8), check_key varchar(200), "
        names = ("'R2', 'open_quantity', 'fail'", "'R8', 'linkage', 'warn'")
    else:
        columns = f"{q}check{q} varchar(16), severity varchar(8), {q}key{q} varchar(200), "
        names = ("'R2', 'fail'", "'R8', 'warn'")
    r2, r8 = names
    execute(
        warehouse_settings,
        [
            f"create table {table} ({columns}expected decimal(38,18), observed decimal(38,18), "
            "diff decimal(38,18), run_id varchar(40), created_at timestamp)",
            f"insert into {table} values "
            f"({r2}, 'old-run-key', 1, 2, 1, 'run-1', '2026-01-01 00:00:00'), "
            f"({r2}, 'BTCUSDT_LONG', 0.5, 0.4, -0.1, 'run-2', '2026-01-02 00:00:00'), "
            f"({r2}, 'ETHUSDT_SHORT', 2, 5, 3, 'run-2', '2026-01-02 00:00:00'), "
            f"({r8}, 'signal S9 has no fills', null, null, null, 'run-2', '2026-01-02 00:00:00')",
        ],
    )
    page = build_report(warehouse_settings, tmp_path / "a.html").read_text()
    doc = parse(page)
    assert doc.checks == ["R2", "R8"]
    assert "run-2" in page and "old-run-key" not in page
    recon = page.split('id="reconciliation"')[1]
    # worst first: |3| before |-0.1|
    assert recon.index("ETHUSDT_SHORT") < recon.index("BTCUSDT_LONG")
    assert "1 failed" in recon and "1 warned" in recon
    assert ("open_quantity" in recon) == (layout == "reconciliation_models")


# --------------------------------------------------------------------------- chromium
def _chromium() -> Path:
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"{CHROMIUM} not found (apt-get install -y chromium)"
    if os.environ.get("REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"REQUIRE_CHROMIUM=1 but {reason}")
    pytest.skip(f"{reason}; set REQUIRE_CHROMIUM=1 to make this fail")


def _run_chromium(chromium: Path, tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile and no background network; killed after 60 s."""
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    cmd = [str(chromium), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the browser and its child processes
        proc.communicate()
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT} s: {' '.join(cmd)}")
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err[-2000:]}"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _assert_busy_png(path: Path, width: int, height: int) -> None:
    """A real screenshot: the right size, > 20 KB, and many rows that differ from the row above.

    A one-colour page of this size compresses to ~15 KB and, filtered, uses a handful of byte values.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert len(data) > 20_000, f"screenshot is only {len(data)} bytes"
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert header is not None
    w, h, depth, colour_type = header[:4]
    assert (w, h) == (width, height)
    assert depth == 8 and colour_type in (2, 6), header
    raw = zlib.decompress(bytes(idat))
    stride = 1 + w * (3 if colour_type == 2 else 4)
    assert len(raw) == h * stride
    assert len(set(raw)) >= 64, "the image looks like a single colour"
    # filter 2 (Up) with an all-zero row = the row repeats the one above; count rows that do not
    changing = sum(
        1 for i in range(h) if raw[i * stride] != 2 or raw[i * stride + 1 : (i + 1) * stride].count(0) != stride - 1
    )
    assert changing >= h // 10, f"only {changing} of {h} rows differ from the row above"


# --------------------------------------------------------------------------- the demo's result
def test_demo_result_is_short_and_read_from_the_marts(sandbox_warehouse: Settings, tmp_path: Path):
    """``stratpos demo``'s result (leaderboard, R1–R9, paths) on the 4-strategy, 2-asset account: a line
    per strategy_performance row with the mart's figures, every check, the report and docs paths —
    and few lines (the whole demo must stay under 60)."""
    from io import StringIO

    from rich.console import Console

    from stratpos.demo import print_result

    checks = [
        {"check": f"R{i}", "name": f"check{i}", "severity": "fail", "status": "passed", "mismatches": 0}
        for i in range(1, 10)
    ]
    checks[7] = {"check": "R8", "name": "linkage", "severity": "warn", "status": "warned", "mismatches": 12}
    docs, gx = tmp_path / "dbt" / "static_index.html", tmp_path / "gx" / "index.html"
    validation = {"run_id": "run-7", "checks": checks, "docs": str(gx)}
    console = Console(file=StringIO(), width=140, record=True)
    report = print_result(
        console, sandbox_warehouse, tmp_path, validation, docs=docs, logs=[tmp_path / "logs" / "demo.log"]
    )
    text = console.export_text()
    lines = text.splitlines()
    assert len(lines) <= 40, text  # + the 8 step lines of run_demo
    assert report.exists() and str(report) in text and str(docs) in text and str(gx) in text
    assert "R8 linkage: warned (12 mismatches, severity warn)" in text
    assert sum(1 for line in lines if re.match(r"\s+R\d ", line)) == 9
    rows = {tuple(c.strip() for c in line.split("│")[1:3]): line for line in lines if line.count("│") > 3}
    expected = query(
        sandbox_warehouse,
        "select strategy_id, margin_asset, realized_pnl_net, positions_closed, profit_factor "
        "from marts.strategy_performance",
    )
    assert set(rows) == {(sid, asset) for sid, asset, *_ in expected}  # no unattributed line
    for sid, asset, net, closed, pf in expected:
        cells = [c.strip() for c in rows[(sid, asset)].split("│")[1:-1]]
        net_text = money(net, asset) if asset == "USDT" else money(net, asset).rstrip("0").rstrip(".")
        assert cells[3] == str(closed) and cells[7] == net_text, (sid, asset, cells)
        assert cells[9] == ("—" if pf is None else money(pf)), (sid, asset, cells)


def test_make_demo_then_make_report(sandbox_warehouse: Settings, tmp_path: Path, monkeypatch):
    """`make report` after `make demo`: with no warehouse configured and none at the default path,
    the report is of the demo's warehouse (and says so); a configured path is never replaced."""
    from stratpos.core.settings import load_settings
    from stratpos.report import ReportError, report_settings

    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "stratpos.duckdb").symlink_to(sandbox_warehouse.duckdb_path)
    default = tmp_path / "warehouse" / "stratpos.duckdb"
    monkeypatch.setattr("stratpos.demo.DEMO_DIR", demo)
    monkeypatch.setattr("stratpos.report.DEFAULT_DUCKDB_PATH", default)

    chosen, note = report_settings(Settings(target="duckdb", duckdb_path=default))
    assert chosen.duckdb_path == demo / "stratpos.duckdb" and "demo's warehouse" in note
    page = build_report(chosen, tmp_path / "r.html").read_text()
    assert len(parse(page).leaderboard) >= 5

    configured = load_settings({"STRATPOS_DUCKDB_PATH": str(default)})  # set by the user: kept
    assert report_settings(configured) == (configured, None)
    with pytest.raises(ReportError, match=r"no DuckDB warehouse at .*`make demo`"):
        build_report(configured, tmp_path / "r2.html")
