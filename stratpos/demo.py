"""``stratpos demo`` / ``make demo``: the whole pipeline on a paper account, in one command.

1. simulate a multi-strategy Binance USD-M account (the paper exchange, SPEC §7);
2. serve it as a fake Binance API on loopback;
3. run the real Airflow DAG ``stratpos_hourly`` once with ``dag.test()`` (SQLite metadata DB)
   into DuckDB: ingestion through python-binance, dbt through Cosmos, reconciliation;
4. print the strategy leaderboard (per margin asset: amounts of different assets are never
   added) and the reconciliation status;
5. write a self-contained HTML report.

``fetch_all`` (a python-binance read of the whole account) is kept for the round-trip test.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from stratpos.warehouse import fetch_rows

WEEK_MS = 7 * 24 * 3600 * 1000


def fetch_all(client, symbols: list[str], start_ms: int, end_ms: int) -> dict[str, int]:
    """Read the account through python-binance the way ingestion will: fromId pages, 7-day windows."""
    counts: dict[str, int] = defaultdict(int)
    for symbol in symbols:
        from_id = 0
        while True:
            page = client.futures_account_trades(symbol=symbol, fromId=from_id, limit=1000)
            counts["trades"] += len(page)
            if len(page) < 1000:
                break
            from_id = page[-1]["id"] + 1
        next_order = 0
        seen: set[int] = set()
        while True:
            page = client.futures_get_all_orders(symbol=symbol, orderId=next_order, limit=1000)
            seen.update(o["orderId"] for o in page)
            if len(page) < 1000:
                break
            next_order = page[-1]["orderId"] + 1
        counts["orders"] += len(seen)
    window = start_ms
    while window <= end_ms:
        upper = min(window + WEEK_MS - 1, end_ms)
        page_no = 1
        while True:
            page = client.futures_income_history(startTime=window, endTime=upper, limit=1000, page=page_no)
            counts["income"] += len(page)
            if len(page) < 1000:
                break
            page_no += 1
        window = upper + 1
    counts["positions"] = len(client.futures_position_information())
    return dict(counts)


STABLE_ASSETS = ("USDT", "USDC", "BUSD", "FDUSD")


def _amount(value: Decimal, asset: str) -> str:
    """An amount with its asset: cents for stablecoins, up to 8 decimals (satoshis) otherwise."""
    if asset in STABLE_ASSETS:
        return f"{value:,.2f} {asset}"
    text = f"{value:,.8f}".rstrip("0").rstrip(".")
    return f"{'0' if text in ('-0', '') else text} {asset}"


def leaderboard(rows: list[dict]) -> Table:
    """Per-strategy and margin-asset summary of marts.strategy_positions rows (exact Decimal sums).

    Amounts are in the contracts' margin asset (USDT, BTC …) and never added across assets: a
    strategy trading USDT- and BTC-margined contracts gets a line per asset, each labelled.
    """
    stats: dict[tuple[str, str], dict] = defaultdict(lambda: defaultdict(Decimal))
    for r in rows:
        asset = r.get("margin_asset") or f"unknown:{r['symbol']}"
        s = stats[(r["strategy_id"], asset)]
        s["positions"] += 1
        if r["realized_pnl_net"] is None:  # an other-asset fee or income without a conversion price
            s["unpriced"] += 1
            net = None
        else:
            net = Decimal(str(r["realized_pnl_net"]))
            s["net"] += net
        s["unrealized"] += Decimal(str(r["unrealized_pnl"] or 0))
        if r["status"] == "closed":
            if net is not None:
                s["wins" if net > 0 else "losses" if net < 0 else "even"] += 1
            s[r["close_reason"]] += 1
    table = Table(title="Strategy leaderboard per margin asset (marts.strategy_positions)")
    columns = ("strategy", "asset", "positions", "win rate", "TP", "SL", "manual", "external", "liq.")
    for col in (*columns, "net PnL", "unrealized"):
        table.add_column(col, justify="left" if col in ("strategy", "asset") else "right")
    order = sorted(stats.items(), key=lambda kv: (kv[0][1] != "USDT", kv[0][1], -kv[1]["net"], kv[0][0]))
    for (name, asset), s in order:
        decided = s["wins"] + s["losses"]
        rate = f"{s['wins'] / decided:.0%}" if decided else "-"
        table.add_row(
            name,
            asset,
            str(int(s["positions"])),
            rate,
            *(str(int(s[k])) for k in ("take_profit", "stop_loss", "manual", "external", "liquidation")),
            _amount(s["net"], asset) + (f" ({int(s['unpriced'])} unpriced)" if s["unpriced"] else ""),
            _amount(s["unrealized"], asset),
        )
    return table


def _airflow_env(home: Path, server_url: str, duckdb_path: Path) -> dict[str, str]:
    from stratpos.config import PROJECT_ROOT

    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "DO_NOT_TRACK": "1",
        "STRATPOS_TARGET": "duckdb",
        "STRATPOS_DUCKDB_PATH": str(duckdb_path),
        "STRATPOS_SCHEMA_PREFIX": "",
        "STRATPOS_BINANCE_BASE_URL": server_url,
        "STRATPOS_DAG_RETRIES": "0",
    }


def run_dag_once(since: str) -> dict:
    """Parse the real DAG and run it once with ``dag.test()``; returns task states and the validation XCom."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    run = bag.get_dag("stratpos_hourly").test(run_conf={"since": since})
    states = {
        f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state)
        for ti in run.get_task_instances()
    }
    validation = None
    for ti in run.get_task_instances():
        if ti.task_id == "validate" and str(ti.state) == "success":
            validation = ti.xcom_pull(task_ids="validate")
    return {"state": str(run.state), "tasks": states, "validation": validation}


def run_demo(out: Path, days: float = 7, seed: int = 42) -> int:
    import logging
    import shutil
    import subprocess
    import sys

    from sandbox.generator import GenerateConfig, generate
    from sandbox.server import SandboxServer, ServerConfig
    from stratpos.cli import _progress_bar
    from stratpos.config import load_settings
    from stratpos.report import build_report

    logging.getLogger("sandbox.server").setLevel(logging.WARNING)
    console = Console(width=max(Console().width, 120))
    out = out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    replay, home, duckdb_path = out / "replay", out / "airflow", out / "stratpos.duckdb"
    cfg = GenerateConfig(out=replay, days=days, seed=seed, progress=_progress_bar("simulating"))
    summary = generate(cfg)
    console.print(
        f"[bold]1. paper account[/] {replay}: {summary.fills:,} fills, {summary.signals:,} signals, "
        f"{summary.positions:,} strategy positions in the ground truth"
    )
    with SandboxServer(replay, config=ServerConfig(weight_limit_1m=100_000)) as server:
        console.print(f"[bold]2. fake Binance API[/] at {server.url}")
        env = _airflow_env(home, server.url, duckdb_path)
        os.environ.update(env)
        # the trade engine's side of the account — its signals and explicit order links — comes
        # from the signal source, not from Binance: load those two files as a small replay
        source = out / "signal_source"
        source.mkdir()
        for name in ("account.json", "signals.jsonl", "order_links.jsonl"):
            shutil.copy(replay / name, source / name)
        from stratpos.pipeline import ingest_replay

        for st in ingest_replay(load_settings(), source):
            console.print(f"   signal source {st['source']}: {st['loaded']:,} loaded")
        migrate = subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "db", "migrate"], capture_output=True, text=True
        )
        if migrate.returncode != 0:
            console.print(migrate.stderr[-2000:])
            raise RuntimeError("airflow db migrate failed")
        console.print("[bold]3. running DAG stratpos_hourly with dag.test()[/] (ingest → dbt via Cosmos → validate)")
        started = time.perf_counter()
        result = run_dag_once(cfg.start.isoformat())
        console.print(f"   DAG run {result['state']} in {time.perf_counter() - started:.0f} s")
    failed = {k: v for k, v in result["tasks"].items() if v != "success"}
    for name, state in sorted(failed.items()):
        console.print(f"   [red]{name}: {state}[/]")
    settings = load_settings()
    rows = fetch_rows(settings, "marts", "strategy_positions")
    console.print(leaderboard(rows))
    validation = result["validation"]
    console.print("[bold]4. reconciliation[/] " + _validation_line(validation))
    report = build_report(settings, out / "report.html", title="stratpos demo", validation=validation)
    console.print(f"[bold]5. report[/] {report}")
    ok = result["state"] == "success" and not failed
    console.print("[green]demo complete[/]" if ok else "[red]the DAG run did not succeed; see the task states above[/]")
    return 0 if ok else 1


def _validation_line(validation: dict | None) -> str:
    if not validation:
        return "no validation result (the validate task did not succeed)"
    checks = validation.get("checks", [])
    failed = [c["check"] for c in checks if c.get("status") == "failed"]
    warned = [c["check"] for c in checks if c.get("status") == "warned"]
    passed = [c["check"] for c in checks if c.get("status") == "passed"]
    return f"passed {', '.join(passed) or '-'}; warned {', '.join(warned) or '-'}; failed {', '.join(failed) or '-'}"
