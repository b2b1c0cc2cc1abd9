"""The paper exchange shaped like a real account (SPEC §3.2, §4.1, §4.5, §7).

Generated output is checked for every shape the real-account preset promises and against
independent re-derivations from the replay files alone (replay_check.py): the wallet
balance moves by exactly the income, the opening state recovered by SPEC §4.1's rule
replays to Binance's own numbers, and the ground truth reconciles (R2, R5, R6, funding
and position-caused income totals).
"""

from __future__ import annotations

import filecmp
import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from sandbox.generator import GenerateConfig, generate
from tests.sandbox.replay_check import (
    balance_moves_by_income,
    latest_versions,
    load,
    opening_states,
    replay_binance,
    resolve_links,
)

DAY = 86_400_000
POSITION_INCOME = ("INSURANCE_CLEAR", "COMMISSION_REBATE", "API_REBATE", "FEE_RETURN", "DELIVERED_SETTELMENT")


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real-account")
    generate(GenerateConfig(out=out, days=3, strategies=5, seed=5, real_account=True))
    return out


def hs_ms(path: Path) -> int:
    """The served history's start, as the config computed it (a quarter into the run)."""
    cfg = GenerateConfig(out=path, days=3, strategies=5, seed=5, real_account=True)
    return cfg.history_start_ms


# --------------------------------------------------------------------------- shapes
def test_ids_are_per_symbol_sequences_that_overlap(real):
    trades = load(real, "futures_trades.jsonl")
    orders = load(real, "futures_orders.jsonl")
    algos = load(real, "futures_algo_orders.jsonl")
    for rows, field in ((trades, "id"), (orders, "orderId"), (algos, "algoId")):
        symbols_of = defaultdict(set)
        for r in rows:
            symbols_of[r[field]].add(r["symbol"])
        shared = [n for n, syms in symbols_of.items() if len(syms) > 1]
        assert len(shared) > 20, f"{field}: the same number on two symbols should be common"
    # within a symbol a trade id is unique
    assert len({(t["symbol"], t["id"]) for t in trades}) == len(trades)


def test_signed_commission_rebates_and_bnb_fees(real):
    trades = load(real, "futures_trades.jsonl")
    income = load(real, "income.jsonl")
    rebates = [t for t in trades if D(t["commission"]) < 0]
    assert rebates and all(t["maker"] for t in rebates)
    commission_income = {(i["symbol"], i["tradeId"]): D(i["income"]) for i in income if i["incomeType"] == "COMMISSION"}
    for t in trades:
        if D(t["commission"]) != 0:
            assert commission_income[(t["symbol"], str(t["id"]))] == -D(t["commission"])
    bnb = [t for t in trades if t["commissionAsset"] == "BNB"]
    assert bnb, "some fees are paid in BNB"
    closes = {k["kline"][0]: D(k["kline"][4]) for k in load(real, "klines.jsonl") if k["symbol"] == "BNBUSDT"}
    for t in bnb:
        minute = t["time"] // 60_000 * 60_000
        assert minute in closes, "every minute with a BNB fee has its BNBUSDT kline"
        # Binance's 10 % BNB discount on the taker/maker fee, converted at the minute's close
        rate = D("0.0002") if t["maker"] else D("0.0005")
        expected = (D(t["quoteQty"]) * rate * D("0.9") / closes[minute]).quantize(D("1e-8"))
        assert D(t["commission"]) == expected
    k = load(real, "klines.jsonl")[0]
    assert k["interval"] == "1m" and len(k["kline"]) == 12 and k["kline"][6] == k["kline"][0] + 59_999


def test_symbols_margin_assets_and_the_btc_margined_contract(real):
    symbols = {s["symbol"]: s for s in load(real, "symbols.jsonl")}
    traded = {t["symbol"] for t in load(real, "futures_trades.jsonl")}
    assert traded | {"BNBUSDT"} <= set(symbols)
    quarterly = [s for s in symbols.values() if s["contractType"] == "CURRENT_QUARTER"]
    assert len(quarterly) == 1 and quarterly[0]["symbol"].startswith("BTCUSDT_")
    assert quarterly[0]["marginAsset"] == "USDT" and quarterly[0]["status"] == "DELIVERED"
    assert symbols["ETHBTC"]["marginAsset"] == "BTC" and symbols["ETHBTC"]["quoteAsset"] == "BTC"
    for t in load(real, "futures_trades.jsonl"):
        assert t["marginAsset"] == symbols[t["symbol"]]["marginAsset"]
        if t["symbol"] == "ETHBTC":
            assert t["commissionAsset"] == "BTC"
    eth_btc_income = {i["incomeType"] for i in load(real, "income.jsonl") if i["symbol"] == "ETHBTC"}
    assert {"REALIZED_PNL", "COMMISSION"} <= eth_btc_income
    assert all(i["asset"] == "BTC" for i in load(real, "income.jsonl") if i["symbol"] == "ETHBTC")


def test_quarterly_is_delivered_inside_the_run(real):
    quarterly = next(s for s in load(real, "symbols.jsonl") if s["contractType"] == "CURRENT_QUARTER")
    q, delivery = quarterly["symbol"], quarterly["deliveryDate"]
    orders = [o for o in load(real, "futures_orders.jsonl") if o["symbol"] == q]
    settlement = [o for o in orders if o["clientOrderId"].startswith("settlement_autoclose-")]
    assert settlement and all(o["time"] == delivery and o["status"] == "FILLED" for o in settlement)
    trades = [t for t in load(real, "futures_trades.jsonl") if t["symbol"] == q]
    assert max(t["time"] for t in trades) == delivery, "nothing trades after delivery"
    fee = [i for i in load(real, "income.jsonl") if i["incomeType"] == "DELIVERED_SETTELMENT"]
    assert len(fee) == 1 and fee[0]["symbol"] == q and fee[0]["time"] == delivery and D(fee[0]["income"]) < 0
    assert not [i for i in load(real, "income.jsonl") if i["symbol"] == q and i["incomeType"] == "FUNDING_FEE"]
    last = max(s["snapshotTime"] for s in load(real, "position_risk.jsonl"))
    assert all(
        D(s["positionAmt"]) == 0
        for s in load(real, "position_risk.jsonl")
        if s["symbol"] == q and s["snapshotTime"] == last
    )


def test_every_income_type_and_liquidation_clearance(real):
    income = load(real, "income.jsonl")
    kinds = {i["incomeType"] for i in income}
    assert {"TRANSFER", "INSURANCE_CLEAR", "DELIVERED_SETTELMENT", "FUNDING_FEE"} <= kinds
    assert kinds & {"COMMISSION_REBATE", "API_REBATE", "FEE_RETURN"}
    assert all(len(str(i["tranId"])) == 19 for i in income)
    transfers = [D(i["income"]) for i in income if i["incomeType"] == "TRANSFER"]
    assert all(i["symbol"] == "" for i in income if i["incomeType"] == "TRANSFER")
    assert transfers and all(x != 0 for x in transfers)
    orders = latest_versions(load(real, "futures_orders.jsonl"), "orderId", "updateTime")
    liquidations = [o for o in orders.values() if o["clientOrderId"].startswith("autoclose-")]
    clears = [i for i in income if i["incomeType"] == "INSURANCE_CLEAR"]
    assert liquidations and clears and all(D(i["income"]) < 0 for i in clears)
    for c in clears:
        # the nearest preceding liquidation order of the symbol, 1 ms before
        prior = [o for o in liquidations if o["symbol"] == c["symbol"] and o["updateTime"] < c["time"]]
        nearest = max(prior, key=lambda o: o["updateTime"])
        assert nearest["updateTime"] == c["time"] - 1
        assert D(c["income"]) == -(D(nearest["cumQuote"]) * D("0.005")).quantize(D("1e-8"))


def test_algo_orders_run_triggered_then_finished(real):
    algos = load(real, "futures_algo_orders.jsonl")
    by_id = defaultdict(list)
    for a in algos:
        by_id[(a["symbol"], a["algoId"])].append(a)
    paths = set()
    for versions in by_id.values():
        versions.sort(key=lambda a: a["updateTime"])
        assert len({a["updateTime"] for a in versions}) == len(versions), "each version is a later update"
        statuses = tuple(a["algoStatus"] for a in versions)
        paths.add(statuses)
        for a in versions:
            assert isinstance(a["actualOrderId"], str)
            assert (a["actualOrderId"] == "") == (a["algoStatus"] in ("NEW", "TRIGGERING", "CANCELED", "EXPIRED"))
    assert ("NEW", "TRIGGERED", "FINISHED") in paths and ("NEW", "TRIGGERING", "TRIGGERED", "FINISHED") in paths
    assert ("NEW", "CANCELED") in paths


# --------------------------------------------------------------------------- served history
def test_replay_holds_only_what_binance_still_serves(real):
    hs = hs_ms(real)
    for name, field in (
        ("futures_trades.jsonl", "time"),
        ("income.jsonl", "time"),
        ("futures_orders.jsonl", "updateTime"),
        ("futures_algo_orders.jsonl", "updateTime"),
        ("position_risk.jsonl", "snapshotTime"),
        ("balances.jsonl", "snapshotTime"),
    ):
        rows = load(real, name)
        assert rows and min(r[field] for r in rows) >= hs, name
    # the account was trading before: some keys are open when the served history starts
    assert any(qty != 0 for qty, _ in opening_states(real).values())
    # signals are the strategies' own records: all of them are there
    first_signal = min(load(real, "signals.jsonl"), key=lambda s: str(s["timestamp"]))
    assert first_signal


def test_opening_state_replays_to_binance_numbers(real):
    """SPEC §4.1 from the files alone: (qty0, avg0) then the served fills give every realizedPnl (R4) and
    the latest snapshot's positionAmt and entryPrice (R3)."""
    trades = load(real, "futures_trades.jsonl")
    openings = opening_states(real)
    fills = defaultdict(int)
    replayed = {}
    for t, key, qty, avg, pnl in replay_binance(trades, openings):
        fills[key] += 1
        assert abs(D(t["realizedPnl"]) - pnl) <= D("1e-8") * fills[key], (key, t["id"])
        replayed[key] = (qty, avg)
    snaps = load(real, "position_risk.jsonl")
    last = max(s["snapshotTime"] for s in snaps)
    for s in snaps:
        if s["snapshotTime"] != last:
            continue
        key = f"{s['symbol']}_{s['positionSide']}"
        qty, avg = replayed.get(key, openings.get(key, (D(0), D(0))))
        assert qty == D(s["positionAmt"]), key
        if qty:
            assert abs(avg - D(s["entryPrice"])) <= D("1e-6") * D(s["entryPrice"]), key


def test_balance_moves_by_exactly_the_income(real):
    balances = load(real, "balances.jsonl")
    income = load(real, "income.jsonl")
    assert {"USDT", "BTC", "BNB"} <= {b["asset"] for b in balances}
    assert balance_moves_by_income(real) > 100
    # income after the last snapshot would be unreconcilable: the run ends with a snapshot
    last = max(b["snapshotTime"] for b in balances)
    assert max(i["time"] for i in income) <= last


# --------------------------------------------------------------------------- ground truth
def test_ground_truth_reconciles_on_a_real_account(real):
    rows = load(real, "expected_strategy_positions.jsonl")
    trades = load(real, "futures_trades.jsonl")
    income = load(real, "income.jsonl")
    snaps = load(real, "position_risk.jsonl")
    margin = {s["symbol"]: s["marginAsset"] for s in load(real, "symbols.jsonl")}
    last = max(s["snapshotTime"] for s in snaps)
    final = {f"{s['symbol']}_{s['positionSide']}": s for s in snaps if s["snapshotTime"] == last}

    # R2: per key, open quantities (buckets included) = the latest snapshot
    open_by_key = defaultdict(lambda: D(0))
    for r in rows:
        signed_already = r["is_unattributed"] and r["exchange_position_key"].endswith("_BOTH")  # BOTH buckets
        sign = -1 if r["side"] == "SHORT" and not signed_already else 1
        open_by_key[r["exchange_position_key"]] += D(r["open_quantity"]) * sign
    for key, snap in final.items():
        assert open_by_key[key] == D(snap["positionAmt"]), key

    # R5: per symbol, Σ strategy realized + unrealized = Binance realized + unrealized
    fills = defaultdict(int)
    for t in trades:
        fills[t["symbol"]] += 1
    for symbol in {s["symbol"] for s in final.values()}:
        ours = sum(D(r["realized_pnl"]) + D(r["unrealized_pnl"]) for r in rows if r["symbol"] == symbol)
        binance = sum(D(t["realizedPnl"]) for t in trades if t["symbol"] == symbol) + sum(
            D(s["unRealizedProfit"]) for s in final.values() if s["symbol"] == symbol
        )
        assert abs(ours - binance) <= D("1e-8") * (fills[symbol] + 2), symbol

    # R6 per asset: margin-asset commission in `fees`, every asset in `fees_by_asset`
    paid = defaultdict(lambda: D(0))
    for t in trades:
        paid[t["commissionAsset"]] += D(t["commission"])
    by_asset = defaultdict(lambda: D(0))
    for r in rows:
        for asset, amount in r["fees_by_asset"].items():
            by_asset[asset] += D(amount)
    assert set(by_asset) == {a for a, x in paid.items() if x != 0} and {"USDT", "BTC", "BNB"} <= set(by_asset)
    for asset, amount in paid.items():
        assert abs(by_asset[asset] - amount) <= D("1e-9"), asset
    margin_paid = sum(D(t["commission"]) for t in trades if t["commissionAsset"] == margin[t["symbol"]])
    assert abs(sum(D(r["fees"]) for r in rows) - margin_paid) <= D("1e-9")
    assert any(D(r["fees"]) < 0 for r in rows), "a position living on maker rebates has negative fees"

    # other_fees: BNB shares converted at the minute's close
    closes = {k["kline"][0]: D(k["kline"][4]) for k in load(real, "klines.jsonl")}
    converted = sum(
        D(t["commission"]) * closes[t["time"] // 60_000 * 60_000] for t in trades if t["commissionAsset"] == "BNB"
    )
    assert converted > 0 and abs(sum(D(r["other_fees"]) for r in rows) - converted) <= D("1e-12")

    # funding and position-caused income: what the ground truth holds + what stays account-level
    funding = sum(D(i["income"]) for i in income if i["incomeType"] == "FUNDING_FEE")
    caused = sum(D(i["income"]) for i in income if i["incomeType"] in POSITION_INCOME)
    held_funding = sum(D(r["funding_fees"]) for r in rows)
    held_other = sum(D(r["other_income"]) for r in rows)
    assert held_other != 0 and held_funding != 0
    assert held_other == caused, "every liquidation, rebate day and delivery has positions to carry it"
    assert held_funding + unallocated_funding(real, rows) == funding

    for r in rows:
        net = D(r["realized_pnl"]) - D(r["fees"]) - D(r["other_fees"]) + D(r["funding_fees"]) + D(r["other_income"])
        assert D(r["realized_pnl_net"]) == net
        assert r["fees_by_asset"] == dict(sorted(r["fees_by_asset"].items()))


def unallocated_funding(path: Path, rows: list[dict]) -> D:
    """Funding no served position carries: on a symbol where no ground-truth position is open at its time.

    "Open" is re-derived from the served fills and the opening state: a symbol is held by the books
    at time t once one of its keys has had a served fill (its opening state begins there) and while
    any such key is not flat.
    """
    trades = sorted(load(path, "futures_trades.jsonl"), key=lambda t: (t["time"], t["id"]))
    openings = opening_states(path)
    events = defaultdict(list)  # symbol -> [(time, key, signed qty after)]
    for t, key, qty, _, _ in replay_binance(trades, openings):
        events[t["symbol"]].append((t["time"], key, qty))
    for e in events.values():
        e.sort(key=lambda x: x[0])
    total = D(0)
    for i in load(path, "income.jsonl"):
        if i["incomeType"] != "FUNDING_FEE":
            continue
        held = {}
        for time, key, qty in events.get(i["symbol"], []):
            if time > i["time"]:
                break
            held[key] = qty
        if not any(held.values()):
            total += D(i["income"])
    return total


def test_links_resolve_per_symbol_in_the_ground_truth(real):
    """Entry quantities per position = fills of the orders §3.3 links to it, ids matched per symbol."""
    links = resolve_links(real)
    entry = defaultdict(lambda: D(0))
    for t in load(real, "futures_trades.jsonl"):
        sid, role = links[(t["symbol"], t["orderId"])]
        if role == "entry":
            entry[sid] += D(t["qty"])
    rows = [r for r in load(real, "expected_strategy_positions.jsonl") if not r["is_unattributed"]]
    assert {r["strategy_position_id"]: D(r["entry_quantity"]) for r in rows} == dict(entry)
    named = [x for x in load(real, "order_links.jsonl") if "symbol" in x]
    assert named, "some link records name their symbol"


def test_one_way_account_with_history_reconciles(tmp_path):
    """The same shapes in one-way mode (BOTH keys: zero crossings, signed buckets), no preset."""
    cfg = GenerateConfig(
        out=tmp_path,
        days=2.5,
        strategies=4,
        seed=11,
        mode="one_way",
        history_start=datetime(2026, 1, 5, 20, tzinfo=UTC),
        rebates=True,
        account_income=True,
        symbols=("BTCUSDT", "ETHUSDT", "ETHBTC", "BTCUSDT_260107"),
    )
    generate(cfg)
    assert all(s["positionSide"] == "BOTH" for s in load(tmp_path, "position_risk.jsonl"))
    assert any(qty != 0 for qty, _ in opening_states(tmp_path).values())
    test_opening_state_replays_to_binance_numbers(tmp_path)
    test_balance_moves_by_exactly_the_income(tmp_path)
    test_quarterly_is_delivered_inside_the_run(tmp_path)
    test_ground_truth_reconciles_on_a_real_account(tmp_path)


def test_same_args_give_identical_real_account_files(tmp_path):
    cfg = {"days": 2, "strategies": 3, "seed": 8, "real_account": True}
    generate(GenerateConfig(out=tmp_path / "a", **cfg))
    generate(GenerateConfig(out=tmp_path / "b", **cfg))
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert {"balances.jsonl", "klines.jsonl", "symbols.jsonl", "expected_strategy_positions.jsonl"} <= set(names)
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == len(names)


def test_default_generation_writes_the_new_files_without_real_account_shapes(tmp_path):
    generate(GenerateConfig(out=tmp_path, days=1, strategies=3, seed=4, symbols=("BTCUSDT", "ETHUSDT")))
    assert load(tmp_path, "balances.jsonl") and load(tmp_path, "klines.jsonl")
    assert {s["symbol"] for s in load(tmp_path, "symbols.jsonl")} == {"BTCUSDT", "ETHUSDT", "BNBUSDT"}
    assert all(D(t["commission"]) >= 0 for t in load(tmp_path, "futures_trades.jsonl"))
    kinds = {i["incomeType"] for i in load(tmp_path, "income.jsonl")}
    assert kinds <= {"REALIZED_PNL", "COMMISSION", "FUNDING_FEE"}
    assert not (tmp_path / "account.json").read_text().count("history")
    json.loads((tmp_path / "account.json").read_text())


def test_history_start_must_fall_inside_the_run(tmp_path):
    start = datetime(2026, 1, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="history-start"):
        GenerateConfig(out=tmp_path, days=1, start=start, history_start=datetime(2026, 1, 7, tzinfo=UTC)).validate()


def test_cli_generate_with_history_start_and_rebates(tmp_path, capsys):
    from stratpos.cli import main

    out = tmp_path / "cli"
    args = ["sandbox", "generate", "--out", str(out), "--days", "1", "--strategies", "3", "--quiet"]
    args += ["--symbols", "BTCUSDT", "ETHBTC", "--history-start", "2026-01-05T06:00", "--rebates", "--account-income"]
    assert main(args) == 0
    assert "served history starts 2026-01-05T06:00:00+00:00" in capsys.readouterr().out
    hs = int(datetime(2026, 1, 5, 6, tzinfo=UTC).timestamp() * 1000)
    assert min(t["time"] for t in load(out, "futures_trades.jsonl")) >= hs
    assert {s["symbol"]: s["marginAsset"] for s in load(out, "symbols.jsonl")}["ETHBTC"] == "BTC"
    assert any(D(t["commission"]) < 0 for t in load(out, "futures_trades.jsonl"))
    assert any(i["incomeType"] == "TRANSFER" for i in load(out, "income.jsonl"))
