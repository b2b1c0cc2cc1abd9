"""``stratpos demo`` / ``make demo``: the whole pipeline on a paper account, in one command.

1. simulate a multi-strategy Binance USD-M account (the paper exchange, SPEC §7);
2. serve it as a fake Binance API on loopback;
3. run the real Airflow DAG ``stratpos_hourly`` once with ``dag.test()`` (SQLite metadata DB)
   into DuckDB: ingestion through python-binance, dbt through Cosmos, reconciliation;
4. build the dbt documentation site of the demo warehouse;
5. print the result — the strategy leaderboard read from the mart ``strategy_performance`` (one
   line per strategy and margin asset: amounts of different assets are never added) and the
   status of each reconciliation check — and write the self-contained HTML report.

Quiet by design (under 60 lines): the steps, the result and the paths of the report, the docs
and the logs. Airflow, Cosmos, dbt and GX write to ``{out}/logs/`` (their paths are printed);
progress bars appear only on a terminal. The demo computes no metric: it prints mart columns.

``fetch_all`` (a python-binance read of the whole account) is kept for the round-trip test.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from stratpos.core.settings import PROJECT_ROOT
from stratpos.report.format import number, pct, ratio

WEEK_MS = 7 * 24 * 3600 * 1000
DEMO_DIR = PROJECT_ROOT / "warehouse" / "demo"


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


# --------------------------------------------------------------------------- the result, from the marts
LEADERBOARD_COLUMNS = (
    ("strategy", "strategy_id"),
    ("asset", "margin_asset"),
    ("positions", "positions_total"),
    ("closed", "positions_closed"),
    ("win rate", "win_rate"),
    ("TP", "take_profit_closes"),
    ("SL", "stop_loss_closes"),
    ("net PnL", "realized_pnl_net"),
    ("max DD", "max_drawdown"),
    ("PF", "profit_factor"),
    ("Sharpe", "sharpe_ratio"),
    ("unrealized", "unrealized_pnl"),
)


def leaderboard(rows: list[dict]) -> Table:
    """The strategy leaderboard: ``marts.strategy_performance`` rows as they are, one line per
    account, strategy and margin asset; every amount is in the line's asset (never added across
    assets). Win rate, profit factor (PF), max drawdown (max DD) and Sharpe are the mart's."""
    several = len({r["account_id"] for r in rows}) > 1
    table = Table(title="Strategy leaderboard per margin asset (marts.strategy_performance)")
    for label, _ in LEADERBOARD_COLUMNS:
        table.add_column(label, justify="left" if label in ("strategy", "asset") else "right", no_wrap=True)
    for r in rows:
        asset = str(r["margin_asset"])
        unpriced = int(r.get("unpriced_positions") or 0)
        net = number(r["realized_pnl_net"], asset) + (f" ({unpriced} unpriced)" if unpriced else "")
        table.add_row(
            f"{r['account_id']}/{r['strategy_id']}" if several else str(r["strategy_id"]),
            asset,
            f"{int(r['positions_total']):,}",
            f"{int(r['positions_closed']):,}",
            pct(r["win_rate"], 0),
            str(int(r["take_profit_closes"])),
            str(int(r["stop_loss_closes"])),
            net,
            number(r["max_drawdown"], asset),
            ratio(r["profit_factor"]),
            ratio(r["sharpe_ratio"]),
            number(r["unrealized_pnl"], asset),
        )
    return table


def read_leaderboard(settings) -> list[dict]:
    """``marts.strategy_performance``, USDT first, best net PnL first within an asset."""
    from stratpos.report.data import open_warehouse
    from stratpos.report.format import asset_order

    with open_warehouse(settings) as db:
        rows = db.mart("strategy_performance", order="account_id, realized_pnl_net desc, strategy_id")
    order = asset_order(str(r["margin_asset"]) for r in rows)
    return sorted(rows, key=lambda r: (str(r["account_id"]), order.index(str(r["margin_asset"]))))


def validation_lines(validation: dict | None) -> list[str]:
    """One line per reconciliation check (R1–R9): status, severity and mismatches, as ``validate`` reported."""
    if not validation:
        return ["no validation result (the validate task did not succeed)"]
    lines = []
    for c in validation.get("checks", []):
        name = f" {c['name']}" if c.get("name") else ""
        found = c.get("mismatches") or 0
        lines.append(
            f"   {c.get('check')}{name}: {c.get('status')}"
            + (f" ({found:,} mismatches, severity {c.get('severity')})" if found else "")
        )
    return lines or ["no checks reported"]


def print_result(
    console: Console, settings, out: Path, validation: dict | None, *, docs: Path | None, logs: list[Path]
) -> Path:
    """The demo's result: the leaderboard, the checks, then the report (written to ``out``), docs
    and log paths. Returns the report's path."""
    from stratpos.report import build_report

    console.print(leaderboard(read_leaderboard(settings)))
    console.print("[bold]5. reconciliation[/] (run " + str((validation or {}).get("run_id", "—")) + ")")
    for line in validation_lines(validation):
        console.print(line, markup=False)
    report = build_report(settings, out / "report.html", title="stratpos demo", validation=validation)
    console.print(f"[bold]6. report[/]       {report}", soft_wrap=True)
    console.print(f"   dbt docs      {docs or '—'}", soft_wrap=True)
    gx_docs = (validation or {}).get("docs")
    console.print(f"   GX data docs  {gx_docs or '— (the validate task did not build them)'}", soft_wrap=True)
    console.print(f"   logs          {', '.join(str(p) for p in logs)}", soft_wrap=True)
    console.print(f"   warehouse     {settings.describe()}", soft_wrap=True)
    return report


# --------------------------------------------------------------------------- quiet running
@contextmanager
def output_to(log: Path) -> Iterator[object]:
    """Everything written to file descriptors 1 and 2 — Python, C libraries, child processes,
    Airflow/Cosmos/dbt/GX loggers — goes to ``log``; yields a stream on the real stdout."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    real = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with open(log, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        file_handler = logging.FileHandler(log, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.handlers = [file_handler]
        root.setLevel(logging.INFO)
        try:
            yield real
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            root.handlers, root.level = handlers, level
            file_handler.close()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            real.close()


def progress_bar(label: str, stream) -> Callable[[int, int], None] | None:
    """A progress bar on ``stream`` when it is a terminal; none otherwise (no frames in logs or pipes)."""
    if not stream.isatty():
        return None
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="min", desc=label, leave=False, mininterval=0.5, file=stream)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


# --------------------------------------------------------------------------- the demo
def _airflow_env(home: Path, server_url: str, duckdb_path: Path) -> dict[str, str]:
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


def run_demo(out: Path, days: float = 7, seed: int = 42, strategies: int | None = None) -> int:
    """The demo into ``out`` (re-created); prints the steps, the result and the paths (under 60 lines)."""
    import shutil

    out = out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    logs = out / "logs"
    logs.mkdir(parents=True)
    log = logs / "demo.log"
    with output_to(log) as real:
        console = Console(file=real, width=max(Console(file=real).width, 140), highlight=False)
        try:
            return _demo(console, real, out, log, days=days, seed=seed, strategies=strategies)
        except Exception as exc:  # the details are in the log; the terminal gets one line and its path
            logging.getLogger(__name__).exception("demo failed")
            console.print(
                f"[red]demo failed: {type(exc).__name__}: {str(exc)[:300]}[/] (details: {log})", soft_wrap=True
            )
            return 1


def _demo(console: Console, real, out: Path, log: Path, *, days: float, seed: int, strategies: int | None) -> int:
    import shutil
    import subprocess

    from sandbox.generator import GenerateConfig, generate
    from sandbox.server import SandboxServer, ServerConfig
    from stratpos.core.settings import load_settings
    from stratpos.pipeline import ingest_replay
    from stratpos.transform import generate_docs

    replay, home, duckdb_path = out / "replay", out / "airflow", out / "stratpos.duckdb"
    console.print(f"stratpos demo → {out}  (logs of Airflow, Cosmos, dbt and GX: {log})")
    extra = {"strategies": strategies} if strategies else {}
    cfg = GenerateConfig(out=replay, days=days, seed=seed, progress=progress_bar("simulating", real), **extra)
    summary = generate(cfg)
    console.print(
        f"[bold]1. paper account[/] {replay}: {summary.fills:,} fills, {summary.signals:,} signals, "
        f"{summary.positions:,} strategy positions in the ground truth"
    )
    with SandboxServer(replay, config=ServerConfig(weight_limit_1m=100_000)) as server:
        console.print(f"[bold]2. fake Binance API[/] at {server.url}")
        os.environ.update(_airflow_env(home, server.url, duckdb_path))
        # the trade engine's side of the account — its signals and explicit order links — comes
        # from the signal source, not from Binance: load those two files as a small replay
        source = out / "signal_source"
        source.mkdir()
        for name in ("account.json", "signals.jsonl", "order_links.jsonl"):
            if (replay / name).exists():  # an account without explicit links has no links file
                shutil.copy(replay / name, source / name)
        loaded = ", ".join(f"{st['source']} {st['loaded']:,}" for st in ingest_replay(load_settings(), source))
        console.print(f"   signal source loaded: {loaded}")
        airflow = Path(sys.executable).with_name("airflow")
        migrate = subprocess.run([str(airflow), "db", "migrate"], stdout=sys.stdout, stderr=subprocess.STDOUT)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate exited {migrate.returncode}")
        console.print("[bold]3. DAG stratpos_hourly[/] with dag.test(): ingest → dbt via Cosmos → validate …")
        started = time.perf_counter()
        result = run_dag_once(cfg.start.isoformat())
        console.print(f"   DAG run {result['state']} in {time.perf_counter() - started:.0f} s")
    failed = {k: v for k, v in result["tasks"].items() if v != "success"}
    for name, state in sorted(failed.items())[:10]:
        console.print(f"   [red]{name}: {state}[/]")
    if len(failed) > 10:
        console.print(f"   [red]… and {len(failed) - 10} more tasks did not succeed[/]")
    settings = load_settings()
    started = time.perf_counter()
    docs = generate_docs(settings, target_path=out / "dbt") / "static_index.html"
    console.print(f"[bold]4. dbt docs[/] built in {time.perf_counter() - started:.0f} s")
    print_result(console, settings, out, result["validation"], docs=docs, logs=[log, home / "logs"])
    ok = result["state"] == "success" and not failed
    console.print("[green]demo complete[/]" if ok else "[red]the DAG run did not succeed; see the task states above[/]")
    return 0 if ok else 1
