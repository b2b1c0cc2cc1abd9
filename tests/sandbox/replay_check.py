"""Independent re-derivations used by the sandbox tests (deliberately not importing sandbox code).

They re-read the replay files written by the paper exchange and recompute Binance's
accounting and the §3.3 links from scratch, so a bug in the simulator cannot hide
behind itself.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from pathlib import Path

WIDE = Context(prec=80, rounding=ROUND_HALF_UP)


def load(path: Path, name: str) -> list[dict]:
    f = path / name
    if not f.exists():
        return []
    with open(f, encoding="utf-8") as fh:
        return [json.loads(line, parse_float=Decimal) for line in fh if line.strip()]


def latest_versions(rows: list[dict], key: str, stamp: str) -> dict:
    """Latest version per (symbol, ``key``): order and algo ids are sequences per symbol (SPEC §3.2)."""
    out: dict = {}
    for r in rows:
        k = (r["symbol"], r[key])
        if k not in out or r[stamp] >= out[k][stamp]:
            out[k] = r
    return out


def replay_binance(trades: list[dict], openings: dict[str, tuple[Decimal, Decimal]] | None = None):
    """Yield (trade, key, signed qty after, avg after, recomputed realizedPnl) in (time, id) order.

    ``openings`` gives a key's (signed qty, avg) before its first trade (SPEC §4.1), else flat.
    """
    state: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for key, (qty0, avg0) in (openings or {}).items():
        state[key] = [qty0, avg0]
    with localcontext(WIDE):
        for t in sorted(trades, key=lambda t: (t["symbol"], t["time"], t["id"])):
            key = f"{t['symbol']}_{t['positionSide']}"
            qty, avg = state[key]
            q = Decimal(t["qty"]) * (1 if t["side"] == "BUY" else -1)
            p = Decimal(t["price"])
            pnl = Decimal(0)
            while q != 0:
                if qty == 0 or (qty > 0) == (q > 0):
                    new = qty + q
                    avg = ((abs(qty) * avg + abs(q) * p) / abs(new)).quantize(Decimal("1e-18")) if qty else p
                    qty, q = new, Decimal(0)
                else:
                    closing = min(abs(q), abs(qty))
                    direction = 1 if qty > 0 else -1
                    pnl += (p - avg) * closing * direction
                    qty -= closing * direction
                    q += closing * direction
                    if qty == 0:
                        avg = Decimal(0)
            state[key] = [qty, avg]
            yield t, key, qty, avg, pnl.quantize(Decimal("1e-8"))


def opening_states(path: Path) -> dict[str, tuple[Decimal, Decimal]]:
    """SPEC §4.1 from the files alone: per key (signed qty0, avg0) before its first served fill.

    qty0 = latest positionAmt − net signed served fills; avg0 from the first reducing fill of the
    opening episode (p − realizedPnl / (q·dir)) walked back over the increases before it, else the
    latest entryPrice walked back over all of the episode's fills. Exact arithmetic, no rounding.
    """
    trades = sorted(load(path, "futures_trades.jsonl"), key=lambda t: (t["time"], t["id"]))
    snaps = load(path, "position_risk.jsonl")
    if not snaps:
        return {}
    last = max(s["snapshotTime"] for s in snaps)
    latest = {f"{s['symbol']}_{s['positionSide']}": s for s in snaps if s["snapshotTime"] == last}
    by_key: dict[str, list[dict]] = defaultdict(list)
    for t in trades:
        by_key[f"{t['symbol']}_{t['positionSide']}"].append(t)
    out = {}
    with localcontext(WIDE):
        for key, snap in latest.items():
            fills = by_key.get(key, [])
            net = sum((Decimal(t["qty"]) * (1 if t["side"] == "BUY" else -1) for t in fills), Decimal(0))
            qty0 = Decimal(snap["positionAmt"]) - net
            if qty0 == 0:
                continue
            direction = 1 if qty0 > 0 else -1
            qty, increases, avg_at = qty0, [], None
            for t in fills:
                q = Decimal(t["qty"]) * (1 if t["side"] == "BUY" else -1)
                p = Decimal(t["price"])
                if (q > 0) == (qty > 0):
                    increases.append((abs(q), p))
                    qty += q
                    continue
                reduced = min(abs(q), abs(qty))
                avg_at = p - Decimal(t["realizedPnl"]) / (reduced * direction)
                break
            if avg_at is None:
                avg_at = Decimal(snap["entryPrice"])
            size = abs(qty0) + sum((q for q, _ in increases), Decimal(0))
            avg = avg_at
            for q, p in reversed(increases):
                avg = (size * avg - q * p) / (size - q)
                size -= q
            out[key] = (qty0, avg)
    return out


def resolve_links(path: Path) -> dict[tuple[str, int], tuple[str | None, str]]:
    """(symbol, orderId) -> (signal_id, role) by SPEC §3.3 rules, from the files alone."""
    signal_rows = load(path, "signals.jsonl")
    signals = {s.get("signal_id", s.get("id")) for s in signal_rows}
    signal_symbol = {s.get("signal_id", s.get("id")): s.get("symbol") for s in signal_rows}
    by_order, by_client = {}, {}
    for link in load(path, "order_links.jsonl"):
        if "order_id" in link:
            symbol = link.get("symbol") or signal_symbol.get(link["signal_id"])
            by_order[(symbol, int(link["order_id"]))] = (link["signal_id"], link["role"])
        if "client_order_id" in link:
            by_client[link["client_order_id"]] = (link["signal_id"], link["role"])
    codes = {"en": "entry", "tp": "take_profit", "sl": "stop_loss", "cl": "close"}

    def by_convention(cid: str):
        sid, dash, code = cid.rpartition("-")
        if dash and code in codes and sid in signals:
            return sid, codes[code]
        return None

    algo_links = {}
    for a in latest_versions(load(path, "futures_algo_orders.jsonl"), "algoId", "updateTime").values():
        if a["actualOrderId"]:
            found = by_client.get(a["clientAlgoId"]) or by_convention(a["clientAlgoId"])
            if found:
                algo_links[(a["symbol"], int(a["actualOrderId"]))] = found
    out = {}
    for o in latest_versions(load(path, "futures_orders.jsonl"), "orderId", "updateTime").values():
        cid = o["clientOrderId"]
        k = (o["symbol"], o["orderId"])
        link = by_order.get(k) or by_client.get(cid) or by_convention(cid) or algo_links.get(k)
        if link is None:
            if cid.startswith(("autoclose-", "adl_autoclose", "settlement_autoclose-")):
                link = (None, "liquidation")
            else:
                link = (None, "unlinked")
        out[(o["symbol"], o["orderId"])] = link
    return out


def balance_moves_by_income(path) -> int:
    """Check R9 on a replay directory; returns the number of snapshot pairs checked."""
    income = load(path, "income.jsonl")
    by_asset = defaultdict(list)
    for b in load(path, "balances.jsonl"):
        by_asset[b["asset"]].append(b)
    n = 0
    for asset, snaps in by_asset.items():
        snaps.sort(key=lambda b: b["snapshotTime"])
        for prev, cur in itertools.pairwise(snaps):
            moved = sum(
                (
                    Decimal(i["income"])
                    for i in income
                    if i["asset"] == asset and prev["snapshotTime"] < i["time"] <= cur["snapshotTime"]
                ),
                Decimal(0),
            )
            assert Decimal(cur["balance"]) - Decimal(prev["balance"]) == moved, (asset, cur["snapshotTime"])
            n += 1
    return n
