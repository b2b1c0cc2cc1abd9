"""``stratpos demo`` / ``make demo``: the paper exchange end to end, as far as stratpos goes today.

It simulates a multi-strategy account, serves it as a fake Binance API on loopback,
reads every trade, order, income row and position back through the real
python-binance client (paging with ``fromId`` and 7-day windows), checks that
nothing was lost on the way, and prints the per-strategy books the pipeline must
reproduce (the ground truth of SPEC §4).
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

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


def leaderboard(rows: list[dict]) -> Table:
    stats: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
    for r in rows:
        s = stats[r["strategy_id"]]
        s["positions"] += 1
        net = Decimal(r["realized_pnl_net"])
        s["net"] += net
        s["unrealized"] += Decimal(r["unrealized_pnl"])
        if r["status"] == "closed":
            s["wins" if net > 0 else "losses" if net < 0 else "even"] += 1
            s[r["close_reason"]] += 1
    table = Table(title="Strategy leaderboard (ground truth the pipeline must reproduce)")
    for col in (
        "strategy",
        "positions",
        "win rate",
        "TP",
        "SL",
        "manual",
        "external",
        "liq.",
        "net PnL",
        "unrealized",
    ):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for name, s in sorted(stats.items(), key=lambda kv: -kv[1]["net"]):
        decided = s["wins"] + s["losses"]
        rate = f"{s['wins'] / decided:.0%}" if decided else "-"
        table.add_row(
            name,
            str(int(s["positions"])),
            rate,
            *(str(int(s[k])) for k in ("take_profit", "stop_loss", "manual", "external", "liquidation")),
            f"{s['net']:.2f}",
            f"{s['unrealized']:.2f}",
        )
    return table


def run_demo(out: Path, days: float = 7, seed: int = 42) -> int:
    import logging

    from sandbox.generator import GenerateConfig, generate
    from sandbox.server import SandboxServer, ServerConfig, make_client
    from stratpos.cli import _progress_bar

    logging.getLogger("sandbox.server").setLevel(logging.WARNING)  # one line per request is for `serve`
    console = Console(width=max(Console().width, 120))
    cfg = GenerateConfig(out=out, days=days, seed=seed, progress=_progress_bar("simulating"))
    summary = generate(cfg)
    console.print(
        f"[bold]paper account[/] {out}: {summary.fills:,} fills, {summary.signals:,} signals, "
        f"{summary.positions:,} strategy positions (incl. buckets)"
    )
    config = ServerConfig(weight_limit_1m=100_000)
    with SandboxServer(out, config=config) as server:
        client = make_client(server.url, config.api_key, config.api_secret)
        start_ms = int(cfg.start.timestamp() * 1000)
        end_ms = start_ms + int(days * 24 * 3600 * 1000)
        symbols = [s["symbol"] for s in client.futures_exchange_info()["symbols"]]
        got = fetch_all(client, symbols, start_ms, end_ms)
    console.print(
        f"read back through python-binance from {server.url}: " + ", ".join(f"{k} {v:,}" for k, v in got.items())
    )
    with open(out / "futures_orders.jsonl", encoding="utf-8") as fh:
        expected_orders = len({json.loads(line)["orderId"] for line in fh})
    ok = got["trades"] == summary.fills and got["income"] == summary.income and got["orders"] == expected_orders
    with open(out / "expected_strategy_positions.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    console.print(leaderboard(rows))
    if ok:
        console.print("[green]round trip complete: every fill, order and income row came back exactly once[/]")
        return 0
    console.print(f"[red]round trip lost data: expected {summary.fills} fills / {summary.income} income rows[/]")
    return 1
