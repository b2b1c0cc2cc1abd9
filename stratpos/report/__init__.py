"""``stratpos report``: one self-contained HTML page of the marts (SPEC §4, §5, §6).

The page has no external resources (no CDN, fonts, scripts or stylesheets): CSS is inline and
every chart is an inline SVG, so the file can be mailed, archived or opened offline. Sections:
KPIs, the strategy leaderboard (with profit factor, max drawdown and Sharpe), equity curves,
TP/SL/… outcomes, attribution of the largest shared positions, income per asset and the latest
reconciliation.

The report computes no metric: every figure is a column of a mart (``data`` reads them,
``charts`` draws them, ``page`` lays them out; ``format`` only rounds for display). Money is
per margin asset (SPEC §4.3): every amount is labelled with its asset and nothing adds two
assets. Money stays :class:`~decimal.Decimal` from the warehouse to the page.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from stratpos.core.settings import DEFAULT_DUCKDB_PATH, PROJECT_ROOT, Settings
from stratpos.report.data import ReportError, load, open_warehouse
from stratpos.report.page import render

__all__ = ["DEFAULT_OUT", "ReportError", "build_report", "main_report"]

DEFAULT_OUT = PROJECT_ROOT / "warehouse" / "report.html"


def build_report(
    settings: Settings,
    out_path: Path,
    *,
    title: str = "stratpos report",
    validation: dict | None = None,
    top_shared: int = 5,
) -> Path:
    """Write the HTML report of the warehouse marts to ``out_path`` and return the path.

    ``validation`` is a reconciliation run (``{"run_id", "checks": [{"check", "severity", "status",
    "mismatches", "worst": [{"key", "expected", "observed", "diff"}]}]}``); without it the latest
    run in ``{audit}.dq_alerts`` is shown, if that table exists.
    """
    out_path = Path(out_path)
    with open_warehouse(settings) as db:
        data = load(db, top_shared=top_shared, with_alerts=validation is None)
    page = render(settings, data, title=title, validation=validation, top_shared=top_shared)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # write next to the target, then rename: a reader never sees half a report
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_path


def report_settings(settings: Settings) -> tuple[Settings, str | None]:
    """The warehouse to report on: the configured one; when none is configured (the default DuckDB
    file, not set in the environment or .env) and it does not exist but ``make demo`` built its own,
    the demo's — with a line saying so."""
    from stratpos.demo import DEMO_DIR

    demo = DEMO_DIR / "stratpos.duckdb"
    configured = settings.origins.get("STRATPOS_DUCKDB_PATH", "default") != "default"
    path = settings.duckdb_path
    fallback = settings.target == "duckdb" and not configured and path == DEFAULT_DUCKDB_PATH
    if fallback and not path.exists() and demo.exists():
        note = f"no warehouse at {path}: reporting on the demo's warehouse {demo} (STRATPOS_DUCKDB_PATH to choose)"
        return settings.with_overrides(duckdb_path=demo), note
    return settings, None


def main_report(out: str | None = None) -> int:
    """``stratpos report [--out PATH]``: write the report (default ``warehouse/report.html``), print its path."""
    from stratpos.core.settings import ConfigError, load_settings
    from stratpos.core.warehouse import WarehouseUnavailable

    try:
        settings, note = report_settings(load_settings())
        if note:
            print(note, file=sys.stderr)
        path = build_report(settings, Path(out) if out else DEFAULT_OUT)
    except (ReportError, WarehouseUnavailable, ConfigError) as exc:
        print(f"stratpos report: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
