"""The report's page template: sections of mart rows, CSS and the layout self-check script."""

from __future__ import annotations

from datetime import UTC, datetime

from stratpos.core.settings import Settings
from stratpos.report.charts import (
    BUCKET_COLOUR,
    REASON_LABELS,
    attribution_items,
    attribution_svg,
    colours,
    equity_series,
    equity_svg,
    outcomes_svg,
)
from stratpos.report.data import BUCKET, INCOME_COLUMNS, REASONS, Book, Episode, ReportData
from stratpos.report.format import (
    count,
    esc,
    exact,
    money,
    money_td,
    ms,
    num,
    pct,
    ratio,
    sign_class,
    utc,
)


def _book_title(book: Book, several_accounts: bool) -> str:
    return f"{book.asset}-margined" + (f" · account {book.account_id}" if several_accounts else "")


# --------------------------------------------------------------------------- KPIs and leaderboard
def _kpi_grid(cards: list[tuple[str, str, str]], asset: str | None = None) -> str:
    body = "".join(
        f'<div class="kpi"><div class="label">{esc(label)}</div><div class="value {cls}">{value}</div></div>'
        for label, value, cls in cards
    )
    tag = f' data-asset="{esc(asset)}"' if asset else ""
    return f'<div class="kpis"{tag} style="grid-template-columns:repeat({len(cards)},1fr)">{body}</div>'


def _kpis(data: ReportData) -> str:
    """Counts of the warehouse, then one line of cards per account and margin asset (the
    account_performance totals: amounts of different assets are never added)."""
    cards = [
        ("strategies", f"{len(data.strategies):,}", ""),
        ("margin assets", esc(", ".join(dict.fromkeys(b.asset for b in data.books))), ""),
    ]
    if data.episode_count is not None:
        cards.insert(1, ("exchange episodes", f"{data.episode_count:,}", ""))
    if len(data.accounts) > 1:
        cards.insert(0, ("accounts", f"{len(data.accounts):,}", ""))
    out = [_kpi_grid(cards)]
    several = len(data.accounts) > 1
    unpriced = []
    for b in data.books:
        t = b.total or {}
        a = b.asset
        label = f"{a} · {b.account_id}" if several else a
        money_cards = [
            (f"{name} · {label}", f"{money(t.get(col), a)} {esc(a)}", sign_class(t.get(col), a) if signed else "")
            for name, col, signed in (
                ("net realized PnL", "realized_pnl_net", True),
                ("unrealized PnL", "unrealized_pnl", True),
                ("fees", "fees", False),
                ("other fees", "other_fees", False),
                ("funding", "funding_fees", True),
                ("other income", "other_income", True),
            )
        ]
        cards = [
            (f"positions · {label}", count(t.get("positions_total")), ""),
            (f"win rate · {label}", pct(t.get("win_rate")), ""),
            (f"profit factor · {label}", ratio(t.get("profit_factor")), ""),
            *money_cards,
        ]
        out.append(_kpi_grid(cards, a))
        if t.get("unpriced_positions"):
            unpriced.append(f"{int(t['unpriced_positions']):,} in {label}")
    note = (
        '<p class="note">Account totals (mart account_performance, the unattributed bucket included), one line '
        "per margin asset: amounts in different assets are never added. Other fees = commission paid in another "
        "asset (BNB …) converted to the margin asset at the fill minute's close; other income = insurance "
        "clearance, rebates, fee returns and delivery settlements attributed to positions. Win rate = wins / "
        "(wins + losses) of closed positions by net realized PnL; profit factor = gross profit / |gross loss|.</p>"
    )
    if unpriced:
        note += (
            f'<p class="note">Position(s) without a net PnL yet ({esc("; ".join(unpriced))}): a fee or income in '
            "another asset had no conversion price (see R8). They are counted, but left out of the amounts.</p>"
        )
    return "".join(out) + note


_LEADER_HEAD = (
    ("positions", None),
    ("closed", None),
    ("win rate", None),
    ("net realized PnL", "asset"),
    ("fees", "asset"),
    ("other fees", "asset"),
    ("funding", "asset"),
    ("other income", "asset"),
    ("open positions", None),
    ("unrealized PnL", "asset"),
    ("profit factor", None),
    ("max drawdown", "asset"),
    ("Sharpe (daily, ×√365)", None),
)


def _leader_cells(r: dict, label: str, colour: str | None, asset: str) -> str:
    """A strategy_performance or account_performance row; the latter has no drawdown or Sharpe."""
    swatch = f'<span class="swatch" style="background:{colour}"></span>' if colour else ""
    return (
        f'<td class="name">{swatch}{esc(label)}</td>'
        f"<td>{count(r.get('positions_total'))}</td><td>{count(r.get('positions_closed'))}</td>"
        f"<td>{pct(r.get('win_rate'))}</td>"
        f"{money_td(r.get('realized_pnl_net'), asset)}<td>{money(r.get('fees'), asset)}</td>"
        f"<td>{money(r.get('other_fees'), asset)}</td>"
        f"{money_td(r.get('funding_fees'), asset)}{money_td(r.get('other_income'), asset)}"
        f"<td>{count(r.get('positions_holding'))}</td>{money_td(r.get('unrealized_pnl'), asset)}"
        f"<td>{ratio(r.get('profit_factor'))}</td><td>{money(r.get('max_drawdown'), asset)}</td>"
        f"<td>{ratio(r.get('sharpe_ratio'))}</td>"
    )


def _leaderboard_table(book: Book, palette: dict[str, str], several_accounts: bool) -> str:
    """The leaderboard of one account and margin asset: every amount column is in its asset."""
    a = esc(book.asset)
    head = "".join(f"<th>{esc(name)}{f' ({a})' if unit else ''}</th>" for name, unit in _LEADER_HEAD)
    body = "".join(
        f'<tr data-strategy="{esc(r["strategy_id"])}" data-asset="{a}" data-account="{esc(book.account_id)}">'
        f"{_leader_cells(r, str(r['strategy_id']), palette[str(r['strategy_id'])], book.asset)}</tr>"
        for r in book.strategies
    )
    parts = [
        f'<h3 class="asset">{esc(_book_title(book, several_accounts))}</h3><div class="chart-wrap">'
        f'<table class="leaderboard" data-asset="{a}"><thead><tr><th class="name">strategy</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody>"
    ]
    if book.bucket is not None:
        parts.append(
            f'<tbody class="bucket"><tr data-strategy="{BUCKET}" data-asset="{a}" '
            f'data-account="{esc(book.account_id)}">{_leader_cells(book.bucket, BUCKET, BUCKET_COLOUR, book.asset)}'
            "</tr></tbody>"
        )
    if book.total is not None:
        parts.append(
            f'<tfoot><tr class="total">{_leader_cells(book.total, f"{book.asset} total", None, book.asset)}'
            "</tr></tfoot>"
        )
    parts.append("</table></div>")
    return "".join(parts)


def _leaderboard_section(data: ReportData, palette: dict[str, str]) -> str:
    several = len(data.accounts) > 1
    return (
        '<section id="leaderboard"><h2>Strategy leaderboard</h2>'
        + "".join(_leaderboard_table(b, palette, several) for b in data.books)
        + '<p class="note">Marts strategy_performance (one row per strategy) and account_performance (the bucket '
        "and the total), one table per margin asset: a strategy trading contracts of several margin assets has a "
        "row in each, and amounts of different assets are never added. Closed = every entry exited; open "
        "positions = positions still holding quantity. Max drawdown = the largest fall of the strategy's "
        "cumulative daily net PnL from its running peak (the curve starting at 0); Sharpe = mean / sample "
        "standard deviation of its daily net PnL over its active days (idle days count as 0), × √365 (crypto "
        "trades every day), shown with 2 or more days. The unattributed row is the bucket: liquidations, "
        "manual trades and other bots' fills (SPEC §4.2).</p>"
        "</section>"
    )


# --------------------------------------------------------------------------- curves and outcomes
def _equity_section(data: ReportData, palette: dict[str, str]) -> str:
    several = len(data.accounts) > 1
    charts = []
    for b in data.books:
        series = equity_series(b.curves)
        if series:
            charts.append(
                f'<h3 class="asset">{esc(_book_title(b, several))}</h3>'
                f'<div class="chart-wrap">{equity_svg(series, palette, b.asset)}</div>'
            )
    if not charts:
        return '<p class="empty">No strategy activity yet.</p>'
    return "".join(charts) + (
        '<p class="note">One chart per margin asset: each strategy\'s cumulative net PnL (realized − fees − other '
        "fees + funding + other income) at the end of each UTC day of its active span (mart strategy_daily_pnl) "
        "— the curve its max drawdown and Sharpe ratio are measured on. Realized PnL is booked on the day of "
        "each exit.</p>"
    )


def _outcomes_section(data: ReportData, palette: dict[str, str]) -> str:
    several = len(data.accounts) > 1
    parts = []
    for b in data.books:
        if not b.outcomes:
            continue
        head = "".join(f"<th>{esc(REASON_LABELS[r])}</th>" for r in REASONS)
        body = "".join(
            f'<tr><td class="name"><span class="swatch" style="background:{palette[o["strategy_id"]]}"></span>'
            f"{esc(o['strategy_id'])}</td>"
            + "".join(
                f"<td>{o['reasons'][k]['closes']}<span class='muted'> · {pct(o['reasons'][k]['rate'])}</span></td>"
                if k in o["reasons"]
                else "<td>0</td>"
                for k in REASONS
            )
            + f"<td>{o['closed']:,}</td></tr>"
            for o in b.outcomes
        )
        parts.append(
            f'<h3 class="asset">{esc(_book_title(b, several))}</h3>'
            f'<div class="chart-wrap">{outcomes_svg(b.outcomes, palette, b.asset)}</div>'
            f'<details><summary>counts and hit rates</summary><table class="compact"><thead><tr>'
            f'<th class="name">strategy</th>{head}<th>closed</th></tr></thead><tbody>{body}</tbody></table></details>'
        )
    if not parts:
        return '<p class="empty">No closed positions yet.</p>'
    return "".join(parts) + (
        '<p class="note">Mart strategy_close_reasons: how each strategy\'s closed positions in a margin asset '
        "closed, and the hit rate of each reason (closes / closed positions).</p>"
    )


# --------------------------------------------------------------------------- attribution
def _episode_block(ep: Episode, palette: dict[str, str]) -> str:
    """One shared episode; it trades one symbol, so every amount is in that symbol's margin asset."""
    e = ep.head
    asset = str(e.get("margin_asset") or f"unknown:{e['symbol']}")
    status = str(e["episode_status"])
    opened = utc(ms(e["opened_at"]))
    when = (
        f"{opened} → {utc(ms(e['closed_at']))} UTC"
        if e.get("closed_at") is not None
        else f"opened {opened} UTC, still open"
    )
    meta = (
        f"{when} · peak quantity {num(e['episode_peak_quantity'])} · average entry {num(e['episode_avg_price'], 4)} · "
        f"{int(e['contribution_count'])} contributions of {int(e['strategy_count'])} strategies · Binance realized "
        f"PnL {money(e['episode_realized_pnl'], asset)} {asset}"
    )
    rows = [
        f'<tr><td class="name"><span class="swatch" style="background:{palette[str(r["strategy_id"])]}">'
        f"</span>{esc(r['strategy_id'])}</td><td>{count(r['strategy_positions'])}</td>"
        f"<td>{num(r['contribution_quantity'])}</td><td>{num(r['contribution_entry_price'], 4)}</td>"
        f"{money_td(r['attributed_pnl'], asset)}{money_td(r['exchange_realized_pnl'], asset)}"
        f"{money_td(r['averaging_effect'], asset)}</tr>"
        for r in ep.rows
    ]
    bucket = [i for i in attribution_items(ep) if i[0] == BUCKET]
    if bucket:
        rows.append(
            f'<tr class="bucket"><td class="name"><span class="swatch" style="background:{BUCKET_COLOUR}"></span>'
            f"{BUCKET}</td><td></td><td></td><td></td>{money_td(e['episode_unattributed_pnl'], asset)}"
            f"{money_td(e['episode_unattributed_exchange_pnl'], asset)}<td></td></tr>"
        )
    foot = (
        '<tfoot><tr><td class="name">strategies</td><td></td>'
        f"<td>{num(e['episode_contributed_quantity'])}</td><td></td>"
        f"{money_td(e['episode_attributed_pnl'], asset)}{money_td(e['episode_exchange_realized_pnl'], asset)}"
        f"{money_td(e['episode_averaging_effect'], asset)}</tr></tfoot>"
    )
    a = esc(asset)
    table = (
        '<table class="compact"><thead><tr><th class="name">strategy</th><th>positions</th><th>quantity</th>'
        f"<th>entry VWAP</th><th>attributed PnL ({a})</th><th>Binance PnL ({a})</th>"
        f"<th>averaging effect ({a})</th></tr></thead><tbody>{''.join(rows)}</tbody>{foot}</table>"
    )
    title = f"{e['symbol']} {e['side']} · {e['exchange_position_id']} · {asset}"
    return (
        f'<div class="episode" data-episode="{esc(e["exchange_position_id"])}">'
        f'<h3>{esc(title)} <span class="badge {"passed" if status == "closed" else "open"}">{esc(status)}</span></h3>'
        f'<p class="meta">{esc(meta)}</p><div class="episode-grid"><div>{table}</div>'
        f'<div class="chart-wrap">{attribution_svg(ep, palette, asset)}</div></div></div>'
    )


def _attribution_section(data: ReportData, palette: dict[str, str], top: int) -> str:
    if not data.episodes:
        return '<p class="empty">No exchange position has been entered by two or more strategies yet.</p>'
    intro = (
        f'<p class="note">The {len(data.episodes)} exchange position episodes entered by two or more strategies '
        f"with the most strategy positions (top {top}; mart multi_strategy_positions). Attributed PnL is measured "
        "from each strategy's own entry price; Binance books every exit against the position's average entry. "
        "The averaging effect (Binance − attributed) is what averaging moved between strategies; once an episode "
        "is closed the two totals agree.</p>"
    )
    return intro + "".join(_episode_block(ep, palette) for ep in data.episodes)


# --------------------------------------------------------------------------- income and reconciliation
def _income_section(income: list[dict]) -> str:
    columns = [(c, label) for c, label in INCOME_COLUMNS if c in income[0]]
    head = "".join(f"<th>{esc(label)}</th>" for _, label in columns)
    body = "".join(
        f'<tr data-income-asset="{esc(r["asset"])}"><td class="name">{esc(r["asset"])}</td>'
        + "".join(money_td(r[c], str(r["asset"])) for c, _ in columns)
        + "</tr>"
        for r in income
    )
    return (
        f'<div class="chart-wrap"><table class="compact income"><thead><tr><th class="name">asset</th>{head}</tr>'
        f"</thead><tbody>{body}</tbody></table></div>"
        '<p class="note">Binance\'s income history per asset, natively (nothing converted): what the strategy '
        "books hold of it (their fills' realizedPnl and commission, funding and the §4.5 income attributed to "
        "positions) and the account-level rest (transfers, bonuses, income no position could be given). The "
        "two add up to all income (mart account_pnl).</p>"
    )


def _reconciliation_section(validation: dict | None, source: str) -> str:
    if validation is None:
        return f'<p class="empty">No validation run recorded (no table {esc(source)}).</p>'
    checks = validation.get("checks") or []
    run = validation.get("run_id")
    where = esc(validation.get("source") or "the validation run")
    if not checks:
        if validation.get("empty"):
            return f'<p class="empty">No validation run recorded: {where} holds no alerts.</p>'
        return f'<p class="empty">Run {esc(run)}: no checks reported.</p>'
    counts = {s: sum(1 for c in checks if str(c.get("status")) == s) for s in ("passed", "warned", "failed")}
    when = f" at {esc(validation['at'])}" if validation.get("at") is not None else ""
    summary = (
        f'<p class="summary">Run <code>{esc(run)}</code>{when}: '
        + " · ".join(f'<span class="badge {s}">{n} {s}</span>' for s, n in counts.items())
        + "</p>"
    )
    if validation.get("source") and not validation.get("from_argument"):
        summary += f'<p class="note">Read from {where}, which records mismatches only: checks not listed passed.</p>'
    rows = []
    for c in checks:
        status = str(c.get("status") or "")
        worst = c.get("worst") or []
        detail = "".join(
            f"<tr><td class='name'>{esc(w.get('key'))}</td><td>{esc(exact(w.get('expected')))}</td>"
            f"<td>{esc(exact(w.get('observed')))}</td><td>{esc(exact(w.get('diff')))}</td></tr>"
            for w in worst
        )
        detail_html = (
            '<table class="worst"><thead><tr><th class="name">key</th><th>expected</th><th>observed</th>'
            f"<th>diff</th></tr></thead><tbody>{detail}</tbody></table>"
            if detail
            else '<span class="muted">—</span>'
        )
        status_cls = status if status in ("passed", "warned", "failed") else "open"
        rows.append(
            f'<tr data-check="{esc(c.get("check"))}"><td class="name"><strong>{esc(c.get("check"))}</strong>'
            + (f' <span class="muted">{esc(c["name"])}</span>' if c.get("name") else "")
            + "</td>"
            f"<td class='name'>{esc(c.get('severity'))}</td>"
            f"<td class='name'><span class='badge {status_cls}'>{esc(status)}</span></td>"
            f"<td>{esc(c.get('mismatches', 0))}</td><td class='name'>{detail_html}</td></tr>"
        )
    return (
        summary + '<table class="checks"><thead><tr><th class="name">check</th><th class="name">severity</th>'
        '<th class="name">status</th>'
        f'<th>mismatches</th><th class="name">worst mismatches</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


CSS = """
:root{--ink:#1d2433;--muted:#5b6474;--line:#e2e6ed;--bg:#f4f6f9;--card:#fff;--pos:#17804a;--neg:#c0392b}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 "Segoe UI",system-ui,-apple-system,"Helvetica Neue",Arial,"Liberation Sans","DejaVu Sans",sans-serif}
main{max-width:1240px;margin:0 auto;padding:28px 32px 56px}
header h1{font-size:26px;margin:0 0 2px;letter-spacing:-.01em}
header .sub{color:var(--muted);margin:0}
.kpis{display:grid;gap:12px;margin:18px 0 6px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:11px 14px}
.kpi .label{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.kpi .value{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums;margin-top:2px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:18px 0}
section>h2{font-size:17px;margin:0 0 10px}
h3{font-size:15px;margin:0 0 2px}
h3.asset{margin:14px 0 6px;color:var(--muted)}
.kpis[data-asset] .kpi .value{font-size:17px}
table.leaderboard th{white-space:normal;vertical-align:bottom}
table.leaderboard td,table.leaderboard th{padding:6px 8px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600;text-align:right;
border-bottom:2px solid var(--line);padding:6px 10px;white-space:nowrap}
td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th.name,td.name{text-align:left}
table.compact td,table.compact th{padding:4px 8px}
tbody.bucket td,tr.bucket td{color:var(--muted);font-style:italic;background:#fafbfc}
tfoot td{font-weight:600;border-top:2px solid var(--line);border-bottom:none}
.pos{color:var(--pos)} .neg{color:var(--neg)} .muted{color:var(--muted)}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:8px}
.note{color:var(--muted);font-size:12.5px;margin:8px 0 0}
.empty{color:var(--muted);font-style:italic;margin:6px 0}
.chart-wrap{overflow-x:auto}
svg.chart{display:block;max-width:100%;height:auto;font-family:inherit}
svg .plot-bg{fill:#fcfdfe}
svg .grid{stroke:#e8ebf0;stroke-width:1}
svg .zero{stroke:#9aa3b2;stroke-width:1.2}
svg .axis{stroke:#9aa3b2;stroke-width:1}
svg .tick{font-size:11.5px;fill:var(--muted)}
svg .axis-title{font-size:12.5px;fill:var(--ink);font-weight:600}
svg .line{fill:none;stroke-width:2;stroke-linejoin:round}
svg .legend-line{fill:none;stroke-width:3}
svg .legend,svg .label{font-size:12.5px;fill:var(--ink)}
svg .legend-title{font-size:11px;fill:var(--muted);text-transform:uppercase;letter-spacing:.05em}
svg .legend-value{font-size:12.5px;fill:var(--ink);font-variant-numeric:tabular-nums}
svg .legend-value.pos{fill:var(--pos)} svg .legend-value.neg{fill:var(--neg)}
svg .in-bar{font-size:11px;fill:#fff;font-weight:600}
svg .bar-total{font-size:12px;fill:var(--muted)}
.episode{border-top:1px solid var(--line);padding:14px 0 4px}
.episode .meta{color:var(--muted);font-size:12.5px;margin:0 0 8px}
.episode-grid{display:grid;grid-template-columns:minmax(0,1fr) 460px;gap:24px;align-items:start}
table.compact th{white-space:normal;vertical-align:bottom}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:11.5px;font-weight:600;vertical-align:1px}
.badge.passed{background:#e2f3e9;color:#17804a} .badge.warned{background:#fff3d3;color:#8a6100}
.badge.failed{background:#fde3df;color:#b3261e} .badge.open{background:#e6eefb;color:#2d5aa8}
table.checks td{vertical-align:top}
table.worst{width:auto;font-size:12px} table.worst td,table.worst th{padding:2px 8px}
details{margin-top:10px} summary{cursor:pointer;color:var(--muted);font-size:12.5px}
code{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:24px}
@media print{body{background:#fff}section{break-inside:avoid;border:none;padding:8px 0}}
"""

# A layout self-check: counts the chart marks that got a non-empty box once the page is laid out
# (a headless-browser test reads `data-drawn`); the page works without it.
SCRIPT = """
document.querySelectorAll('svg[data-chart]').forEach(function (svg) {
  var n = 0;
  svg.querySelectorAll('path, rect').forEach(function (el) {
    var b = el.getBBox();
    if (b.width > 0 || b.height > 0) n += 1;
  });
  svg.setAttribute('data-drawn', String(n));
});
"""


def render(settings: Settings, data: ReportData, *, title: str, validation: dict | None, top_shared: int) -> str:
    """The whole page from the mart rows in ``data``."""
    palette = colours(data.strategies)
    first, last = ms(data.first_entry), ms(data.last_exit)
    span = f"{utc(first)} → {utc(last)} UTC · " if first is not None else ""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sub = f"{span}{settings.describe()} · generated {generated}"
    sections = []
    if not data.books:
        missing = (
            f" (marts {', '.join(data.missing)} not built yet: run `stratpos transform`)" if not data.built else ""
        )
        sections.append(
            '<section id="leaderboard"><h2>Strategy leaderboard</h2>'
            f'<p class="empty">No positions yet{esc(missing)}.</p></section>'
        )
    else:
        sections.append(_kpis(data))
        sections.append(_leaderboard_section(data, palette))
        sections.append(f'<section id="equity"><h2>Equity curves</h2>{_equity_section(data, palette)}</section>')
        sections.append(
            f'<section id="outcomes"><h2>How positions closed</h2>{_outcomes_section(data, palette)}</section>'
        )
        sections.append(
            '<section id="attribution"><h2>Attribution of the largest shared positions</h2>'
            f"{_attribution_section(data, palette, top_shared)}</section>"
        )
    if data.income:
        income = _income_section(data.income)
        sections.append(f'<section id="income"><h2>Account income per asset</h2>{income}</section>')
    if validation is not None:
        validation = {**validation, "from_argument": True}
    recon = _reconciliation_section(
        validation if validation is not None else data.alerts, f"{settings.schema('audit')}.dq_alerts"
    )
    sections.append(f'<section id="reconciliation"><h2>Reconciliation</h2>{recon}</section>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f'<header><h1>{esc(title)}</h1><p class="sub">{esc(sub)}</p></header>'
        + "".join(sections)
        + "<footer>stratpos · books rebuilt from signals, orders and fills; Binance is the referee.</footer>"
        f"</main><script>{SCRIPT}</script></body></html>\n"
    )
