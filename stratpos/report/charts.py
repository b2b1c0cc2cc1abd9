"""The report's charts: inline SVG built from mart rows (no scripts, fonts or external files).

Floats appear only as pixel coordinates; every value a chart labels is a mart's, formatted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from stratpos.report.data import BUCKET, REASONS, Episode
from stratpos.report.format import dec, esc, money, ms, pct, sign_class, utc

REASON_LABELS = {
    "take_profit": "take-profit",
    "stop_loss": "stop-loss",
    "manual": "manual close",
    "external": "external",
    "liquidation": "liquidation",
}
REASON_COLOURS = {
    "take_profit": "#2e9e5b",
    "stop_loss": "#d64545",
    "manual": "#4c78a8",
    "external": "#e8a33d",
    "liquidation": "#6b3fa0",
}
# Strategies get colours in sorted-id order, so a strategy keeps its colour in every chart.
STRATEGY_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#d62728",
    "#393b79",
    "#637939",
    "#843c39",
)
BUCKET_COLOUR = "#8a8f98"
ZERO = Decimal(0)


def colours(strategies: Sequence[str]) -> dict[str, str]:
    names = sorted({s for s in strategies if s != BUCKET})
    out = {s: STRATEGY_PALETTE[i % len(STRATEGY_PALETTE)] for i, s in enumerate(names)}
    out[BUCKET] = BUCKET_COLOUR
    return out


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values covering [lo, hi] (the axis domain is the first to the last tick)."""
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    step = _nice_step(hi - lo, target)
    start, end = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(start, end + 1)]


def _tick_label(value: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    places = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if step == 2.5 * 10 ** math.floor(math.log10(step)) and step < 10:
        places += 1
    text = f"{value:,.{places}f}"
    return "0" if text.strip("-0.,") == "" else text.replace("-", "−")


_DAY_MS = 86_400_000
_TIME_STEPS_MS = [m * 60_000 for m in (1, 5, 15, 30, 60, 120, 180, 360, 720)] + [
    d * _DAY_MS for d in (1, 2, 7, 14, 28, 91, 182, 364)
]


def _time_ticks(t0: int, t1: int, target: int = 8) -> tuple[list[int], str]:
    step = next((s for s in _TIME_STEPS_MS if (t1 - t0) / s <= target), _TIME_STEPS_MS[-1])
    first = -(-t0 // step) * step
    ticks = list(range(first, t1 + 1, step))
    fmt = "%Y-%m-%d" if step >= 28 * _DAY_MS else "%b %d" if step >= _DAY_MS else "%b %d %H:%M"
    return ticks, fmt


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def _svg_open(kind: str, width: int, height: int, label: str, asset: str | None = None) -> str:
    tag = f' data-asset="{esc(asset)}"' if asset else ""
    return (
        f'<svg class="chart" data-chart="{kind}"{tag} viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{esc(label)}">'
    )


def _step_path(points: list[tuple[float, float]], x_end: float) -> str:
    """A step line through ``points`` (pixels), decimated to at most a few vertices per half pixel."""
    if not points:
        return ""
    parts = [f"M{_f(points[0][0])},{_f(points[0][1])}"]
    last_y = points[0][1]
    i = 1
    while i < len(points):
        x = points[i][0]
        bucket = round(x * 2)
        ys = []
        while i < len(points) and round(points[i][0] * 2) == bucket:
            ys.append(points[i][1])
            i += 1
        parts.append(f"H{_f(x)}")
        for y in dict.fromkeys((min(ys), max(ys), ys[-1]) if len(ys) > 2 else tuple(ys)):
            if y != last_y:
                parts.append(f"V{_f(y)}")
                last_y = y
    parts.append(f"H{_f(x_end)}")
    return "".join(parts)


# --------------------------------------------------------------------------- charts
def equity_series(curves: dict[str, list[dict]]) -> dict[str, list[tuple[int, Decimal]]]:
    """strategy_daily_pnl rows as chart points: 0 at the start of a strategy's first day, then its
    cumulative_net_pnl at the end of each day."""
    series = {}
    for name, days in curves.items():
        if not days:
            continue
        start = _day_ms(days[0]["pnl_date"])
        series[name] = [(start, ZERO)] + [
            (_day_ms(d["pnl_date"]) + _DAY_MS, dec(d["cumulative_net_pnl"]) or ZERO) for d in days
        ]
    return series


def _day_ms(value) -> int:
    return int(ms(value))


def equity_svg(series: dict[str, list[tuple[int, Decimal]]], palette: dict[str, str], asset: str) -> str:
    width, height = 1120, 420
    left, right, top, bottom = 84, 230, 18, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    t0 = min(s[0][0] for s in series.values())
    t1 = max(s[-1][0] for s in series.values())
    values = [float(v) for s in series.values() for _, v in s] + [0.0]
    yt = _nice_ticks(min(values), max(values))
    y_lo, y_hi = yt[0], yt[-1]

    def x(t: int) -> float:
        return left + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return top + (y_hi - v) / (y_hi - y_lo) * plot_h

    out = [_svg_open("equity", width, height, f"cumulative net PnL per strategy in {asset}", asset)]
    out.append(f'<rect class="plot-bg" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}"/>')
    for v in yt:
        cls = "zero" if abs(v) < 1e-12 else "grid"
        out.append(f'<line class="{cls}" x1="{left}" x2="{left + plot_w}" y1="{_f(y(v))}" y2="{_f(y(v))}"/>')
        out.append(
            f'<text class="tick" x="{left - 8}" y="{_f(y(v) + 4)}" text-anchor="end">{esc(_tick_label(v, yt))}</text>'
        )
    ticks, fmt = _time_ticks(t0, t1)
    for t in ticks:
        out.append(f'<line class="grid" x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{top}" y2="{top + plot_h}"/>')
        out.append(f'<line class="axis" x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{top + plot_h}" y2="{top + plot_h + 5}"/>')
        out.append(
            f'<text class="tick" x="{_f(x(t))}" y="{top + plot_h + 20}" text-anchor="middle">{esc(utc(t, fmt))}</text>'
        )
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    out.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>')
    out.append(
        f'<text class="axis-title" x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">end of UTC day</text>'
    )
    out.append(
        f'<text class="axis-title" transform="translate(18 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">'
        f"cumulative net PnL ({esc(asset)})</text>"
    )
    order = sorted(series, key=lambda s: (-series[s][-1][1], s))
    for name in order:
        pts = [(x(t), y(float(v))) for t, v in series[name]]
        final = series[name][-1][1]
        out.append(
            f'<path class="line" d="{_step_path(pts, x(t1))}" stroke="{palette.get(name, BUCKET_COLOUR)}">'
            f"<title>{esc(name)}: {money(final, asset)} {esc(asset)} after {len(series[name]) - 1} days</title></path>"
        )
    lx, ly = left + plot_w + 24, top + 8
    out.append(f'<text class="legend-title" x="{lx}" y="{ly}">strategy · final</text>')
    for i, name in enumerate(order):
        yy = ly + 24 + i * 24
        final = series[name][-1][1]
        out.append(
            f'<path class="legend-line" d="M{lx},{yy - 4}h22" stroke="{palette.get(name, BUCKET_COLOUR)}"/>'
            f'<text class="legend" x="{lx + 30}" y="{yy}">{esc(name)}</text>'
            f'<text class="legend-value {sign_class(final, asset)}" x="{width - 8}" y="{yy}" '
            f'text-anchor="end">{money(final, asset)} {esc(asset)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def outcomes_svg(rows: list[dict], palette: dict[str, str], asset: str) -> str:
    """One bar per strategy (strategy_close_reasons rows of one margin asset), a segment per reason."""
    width, row_h, bar_h = 1120, 34, 22
    left, right, top = 170, 150, 44
    height = top + row_h * len(rows) + 44
    plot_w = width - left - right
    most = max(r["closed"] for r in rows)
    ticks = _nice_ticks(0, most, 8)
    ticks = [t for t in ticks if t >= 0 and t == int(t)] or [0, 1]
    x_max = ticks[-1] or 1

    def x(n: float) -> float:
        return left + n / x_max * plot_w

    out = [_svg_open("outcomes", width, height, f"close reasons of closed positions per strategy in {asset}", asset)]
    lx = left
    for reason in REASONS:
        label = REASON_LABELS[reason]
        out.append(
            f'<rect class="key" x="{lx}" y="8" width="12" height="12" rx="2" fill="{REASON_COLOURS[reason]}"/>'
            f'<text class="legend" x="{lx + 18}" y="18">{esc(label)}</text>'
        )
        lx += 30 + 7.5 * len(label) + 20
    axis_y = top + row_h * len(rows)
    for t in ticks:
        out.append(f'<line class="grid" x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{top - 4}" y2="{axis_y}"/>')
        out.append(f'<text class="tick" x="{_f(x(t))}" y="{axis_y + 18}" text-anchor="middle">{int(t)}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}"/>')
    out.append(
        f'<text class="axis-title" x="{left + plot_w / 2}" y="{axis_y + 38}" text-anchor="middle">'
        "closed positions</text>"
    )
    for i, r in enumerate(rows):
        name = r["strategy_id"]
        y0 = top + i * row_h + (row_h - bar_h) / 2
        out.append(
            f'<rect class="key" x="{left - 150}" y="{_f(y0 + 6)}" width="10" height="10" rx="2" '
            f'fill="{palette.get(name, BUCKET_COLOUR)}"/>'
            f'<text class="label" x="{left - 134}" y="{_f(y0 + bar_h / 2 + 4.5)}">{esc(name)}</text>'
        )
        acc = 0
        for reason in REASONS:
            cell = r["reasons"].get(reason)
            n = cell["closes"] if cell else 0
            if not n:
                continue
            x0, w = x(acc), x(acc + n) - x(acc)
            out.append(
                f'<rect class="bar" x="{_f(x0)}" y="{_f(y0)}" width="{_f(max(w, 0.5))}" height="{bar_h}" '
                f'fill="{REASON_COLOURS[reason]}"><title>{esc(name)} · {esc(REASON_LABELS[reason])}: {n} '
                f"of {r['closed']} ({pct(cell['rate'])})</title></rect>"
            )
            if w >= 26:
                out.append(
                    f'<text class="in-bar" x="{_f(x0 + w / 2)}" y="{_f(y0 + bar_h / 2 + 4.5)}" '
                    f'text-anchor="middle">{n}</text>'
                )
            acc += n
        tp = r["reasons"].get("take_profit")
        label = f"{r['closed']} · TP {pct(tp['rate'])}" if tp else str(r["closed"])
        out.append(f'<text class="bar-total" x="{_f(x(acc) + 8)}" y="{_f(y0 + bar_h / 2 + 4.5)}">{label}</text>')
    out.append("</svg>")
    return "".join(out)


def attribution_items(episode: Episode) -> list[tuple[str, Decimal, Decimal]]:
    """(strategy, attributed PnL, Binance PnL) per strategy of the episode, then the bucket's."""
    items = [
        (str(r["strategy_id"]), dec(r["attributed_pnl"]) or ZERO, dec(r["exchange_realized_pnl"]) or ZERO)
        for r in episode.rows
    ]
    head = episode.head
    bucket_pnl, rest = dec(head["episode_unattributed_pnl"]), dec(head["episode_unattributed_exchange_pnl"]) or ZERO
    if bucket_pnl is not None or rest != 0:
        items.append((BUCKET, bucket_pnl or ZERO, rest))
    return items


def attribution_svg(episode: Episode, palette: dict[str, str], asset: str) -> str:
    items = attribution_items(episode)
    width, left, right, top = 460, 112, 20, 34
    group_h, bar_h = 40, 13
    height = top + group_h * len(items) + 44
    plot_w = width - left - right
    values = [float(v) for _, a, b in items for v in (a, b)] + [0.0]
    ticks = _nice_ticks(min(values), max(values), 5)
    lo, hi = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    out = [
        _svg_open("attribution", width, height, f"attributed vs Binance realized PnL per strategy in {asset}", asset)
    ]
    out.append(
        f'<rect class="key" x="{left}" y="8" width="12" height="12" rx="2" fill="#5b6474"/>'
        f'<text class="legend" x="{left + 18}" y="18">attributed (own entry)</text>'
        f'<rect class="key pale" x="{left + 168}" y="8" width="12" height="12" rx="2" fill="#5b6474" '
        f'fill-opacity="0.3" stroke="#5b6474"/>'
        f'<text class="legend" x="{left + 186}" y="18">Binance (average entry)</text>'
    )
    axis_y = top + group_h * len(items)
    for t in ticks:
        cls = "zero" if abs(t) < 1e-12 else "grid"
        out.append(f'<line class="{cls}" x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{top - 4}" y2="{axis_y}"/>')
        out.append(
            f'<text class="tick" x="{_f(x(t))}" y="{axis_y + 16}" text-anchor="middle">'
            f"{esc(_tick_label(t, ticks))}</text>"
        )
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}"/>')
    out.append(
        f'<text class="axis-title" x="{left + plot_w / 2}" y="{axis_y + 36}" text-anchor="middle">'
        f"realized PnL ({esc(asset)})</text>"
    )
    for i, (name, attributed, binance) in enumerate(items):
        gy = top + i * group_h + 6
        out.append(f'<text class="label" x="{left - 10}" y="{_f(gy + bar_h + 4)}" text-anchor="end">{esc(name)}</text>')
        colour = palette.get(name, BUCKET_COLOUR)
        for j, (kind, value) in enumerate((("attributed", attributed), ("Binance", binance))):
            v = float(value)
            x0, x1 = sorted((x(0.0), x(v)))
            pale = ' fill-opacity="0.3" stroke-width="1"' if j else ""
            out.append(
                f'<rect class="bar" x="{_f(x0)}" y="{_f(gy + j * (bar_h + 2))}" width="{_f(max(x1 - x0, 1))}" '
                f'height="{bar_h}" fill="{colour}" stroke="{colour}"{pale}>'
                f"<title>{esc(name)} · {kind}: {money(value, asset)} {esc(asset)}</title></rect>"
            )
    out.append("</svg>")
    return "".join(out)
