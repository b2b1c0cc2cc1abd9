"""``stratpos bench``: wall time, throughput and peak memory of pipeline stages.

Each measurement runs in a fresh child process so its peak RSS is its own, not the
benchmark driver's; the peak summed RSS of that process and its descendants (the
ingest's worker processes) is sampled as well. Stages:

- ``generate``: the paper exchange simulating an account (fills/s);
- ``ingest``: a replay directory loaded into a fresh DuckDB file and a fresh MySQL/MariaDB
  schema prefix (fills/s of the trades source, records/s overall);
- ``transform``: ``dbt build`` (full refresh) on what ``ingest`` loaded, per target.
- ``hourly`` (:func:`run_hourly_bench`): what one hourly run costs after a history of N days,
  against the same run after a 2-day history (issue 14: the hourly run should cost what the hour
  brought, not what the account ever did).

Results are printed and written to ``{workdir}/bench-{stage}.json``.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from sandbox.instruments import INSTRUMENTS

BENCH_PREFIX = "bench_"


def _generate(workdir: Path, opts: dict) -> dict:
    from sandbox.generator import GenerateConfig, generate

    chosen = tuple(list(INSTRUMENTS)[: opts["symbols"]])
    out = Path(opts.get("replay") or workdir / "replay")
    started = time.perf_counter()
    summary = generate(
        GenerateConfig(out=out, days=opts["days"], strategies=opts["strategies"], symbols=chosen, seed=7)
    )
    seconds = time.perf_counter() - started
    return {
        "stage": "generate",
        "replay": str(out),
        "days": opts["days"],
        "strategies": opts["strategies"],
        "symbols": len(chosen),
        "fills": summary.fills,
        "seconds": round(seconds, 2),
        "fills_per_second": round(summary.fills / seconds) if seconds else None,
    }


def _settings(workdir: Path, target: str):
    from stratpos.core.settings import load_settings

    base = load_settings()
    if target == "duckdb":
        return base.with_overrides(target="duckdb", duckdb_path=workdir / "bench.duckdb", schema_prefix="")
    return base.with_overrides(target="mysql", schema_prefix=BENCH_PREFIX)


def _ingest(workdir: Path, opts: dict) -> dict:
    from ingestion.replay import load_replay
    from stratpos.core.warehouse import drop_schemas

    settings = _settings(workdir, opts["target"])
    if settings.target == "duckdb":
        settings.duckdb_path.unlink(missing_ok=True)
    else:
        drop_schemas(settings)
    started = time.perf_counter()
    stats = load_replay(Path(opts["replay"]), settings)
    seconds = time.perf_counter() - started
    trades = next(s for s in stats if s.source == "futures_trades")
    records = sum(s.received for s in stats)
    return {
        "stage": "ingest",
        "target": settings.target,
        "fills": trades.received,
        "fills_per_second": round(trades.received / trades.seconds) if trades.seconds else None,
        "records": records,
        "records_per_second": round(records / seconds) if seconds else None,
        "seconds": round(seconds, 2),
        "sources": {s.source: {"received": s.received, "seconds": round(s.seconds, 2)} for s in stats},
    }


def _transform(workdir: Path, opts: dict) -> dict:
    from stratpos.transform import run_dbt

    settings = _settings(workdir, opts["target"])
    result = run_dbt(settings, "build", full_refresh=True, extra_args=["--quiet"])
    slowest = sorted(result.nodes, key=lambda n: -n.seconds)[:5]
    return {
        "stage": "transform",
        "target": settings.target,
        "seconds": round(result.seconds, 2),
        "nodes": len(result.nodes),
        "slowest": {n.name: n.seconds for n in slowest},
    }


STAGES = {"generate": _generate, "ingest": _ingest, "transform": _transform}


class _TreeRss:
    """Samples the summed RSS of this process and all its descendants (ingest worker processes)."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = 0
        for p in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._sample())

    def __enter__(self) -> _TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _child(stage: str, workdir: str, opts_json: str) -> None:
    with _TreeRss() as tree:
        result = STAGES[stage](Path(workdir), json.loads(opts_json))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["peak_rss_tree_mb"] = round(max(tree.peak, result["peak_rss_mb"] * 1024 * 1024) / 1024 / 1024, 1)
    print("BENCH " + json.dumps(result))


def _run_child(stage: str, workdir: Path, opts: dict, env: dict[str, str] | None = None) -> dict:
    args = ", ".join(repr(a) for a in (stage, str(workdir), json.dumps(opts)))
    code = f"from stratpos.bench import _child; _child({args})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    # the child's whole output (its log lines: budget waits, retries, dbt) beside the results, the last run's
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{stage}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise RuntimeError(f"bench stage {stage} failed (exit {proc.returncode})")
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("BENCH "))
    result = json.loads(line[len("BENCH ") :])
    print(f"  [{stage}: {result.get('seconds')} s]", file=sys.stderr, flush=True)
    return result


def run_bench(
    stage: str,
    workdir: Path,
    *,
    days: float = 30,
    strategies: int = 10,
    symbols: int = 8,
    replay: Path | None = None,
    targets: tuple[str, ...] = ("duckdb", "mysql"),
) -> int:
    """Run ``stage`` in child processes and print its measurements."""
    if not 1 <= symbols <= len(INSTRUMENTS):
        raise ValueError(f"--symbols must be between 1 and {len(INSTRUMENTS)}")
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    if stage == "generate":
        opts = {"days": days, "strategies": strategies, "symbols": symbols, "replay": str(replay) if replay else None}
        results.append(_run_child("generate", workdir, opts))
    else:
        replay = replay or workdir / "replay"
        if stage == "ingest" and not (replay / "futures_trades.jsonl").exists():
            raise ValueError(f"{replay} holds no replay; run `stratpos bench generate` or pass --replay")
        for target in targets:
            results.append(_run_child(stage, workdir, {"target": target, "replay": str(replay)}))
    (workdir / f"bench-{stage}.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    for r in results:
        if r["stage"] == "generate":
            print(
                f"generate: {r['fills']:,} fills in {r['seconds']} s ({r['fills_per_second']:,} fills/s), "
                f"peak RSS {r['peak_rss_mb']} MB"
            )
        elif r["stage"] == "ingest":
            print(
                f"ingest {r['target']}: {r['fills']:,} fills at {r['fills_per_second']:,} fills/s; "
                f"{r['records']:,} records in {r['seconds']} s ({r['records_per_second']:,}/s); "
                f"peak RSS {r['peak_rss_mb']} MB (with its worker processes: {r['peak_rss_tree_mb']} MB)"
            )
        else:
            slow = ", ".join(f"{k} {v} s" for k, v in r["slowest"].items())
            print(
                f"transform {r['target']}: dbt build {r['seconds']} s, peak RSS {r['peak_rss_mb']} MB (slowest: {slow})"
            )
    return 0


# ----------------------------------------------------------------------------------- hourly run
HOUR_MS = 3_600_000
HOURLY_STAGES = ("ingest", "transform", "validate")


def _signal_ms(value) -> int:
    """A signal's timestamp (epoch ms as a number or digits, or ISO 8601) in epoch ms."""
    from datetime import datetime

    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    return int(datetime.fromisoformat(value).timestamp() * 1000)


def _split_signals(replay: Path, out: Path, cuts: tuple[int, ...]) -> list[Path]:
    """``replay``'s signals cut at ``cuts`` into one landing file per span (the base, then each hour)."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"signals-{i}.jsonl" for i in range(len(cuts) + 1)]
    handles = [f.open("w", encoding="utf-8") for f in files]
    try:
        with (replay / "signals.jsonl").open(encoding="utf-8") as src:
            for line in src:
                if line.strip():
                    ms = _signal_ms(json.loads(line)["timestamp"])
                    handles[sum(ms > c for c in cuts)].write(line)
    finally:
        for h in handles:
            h.close()
    return files


def _hourly_env(workdir: Path, target: str, days: float, server_url: str, landing: Path) -> dict[str, str]:
    """The child processes' environment: the bench warehouse, the fake exchange, the signal landing."""
    import os

    name = f"h{days:g}".replace(".", "_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STRATPOS_"))}
    env.update(
        {
            "STRATPOS_TARGET": target,
            "STRATPOS_DUCKDB_PATH": str(workdir / f"hourly-{name}.duckdb"),
            "STRATPOS_SCHEMA_PREFIX": "" if target == "duckdb" else f"{BENCH_PREFIX}{name}_",
            "STRATPOS_BINANCE_BASE_URL": server_url,
            "STRATPOS_SIGNALS_LANDING": str(landing),
            "STRATPOS_DAG_RETRIES": "0",
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            "GX_ANALYTICS_ENABLED": "False",
        }
    )
    for key in ("STRATPOS_MYSQL_HOST", "STRATPOS_MYSQL_PORT", "STRATPOS_MYSQL_USER", "STRATPOS_MYSQL_PASSWORD"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _airflow_env(home: Path) -> dict[str, str]:
    from stratpos.core.settings import PROJECT_ROOT

    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    }


def _hourly_base(workdir: Path, opts: dict) -> dict:
    """The history before the measured hours: order links, signals, the exchange up to the cut, a full build."""
    from stratpos.core.settings import load_settings
    from stratpos.core.warehouse import drop_schemas
    from stratpos.pipeline import ingest_exchange_all, ingest_replay, ingest_signals
    from stratpos.transform import run_dbt

    settings = load_settings()
    if settings.target == "duckdb":
        settings.duckdb_path.unlink(missing_ok=True)
    else:
        drop_schemas(settings)
    started = time.perf_counter()
    if opts.get("links"):
        ingest_replay(settings, Path(opts["links"]))
    ingest_signals(settings)
    stats = ingest_exchange_all(settings, since_ms=opts["since_ms"], until_ms=opts["until_ms"])
    ingested = time.perf_counter() - started
    build = run_dbt(settings, "build", full_refresh=True, extra_args=["--quiet"], docs=False)
    fills = sum(s["loaded"] for s in stats if s["source"] == "futures_trades")
    return {
        "stage": "hourly_base",
        "target": settings.target,
        "fills": fills,
        "ingest_seconds": round(ingested, 2),
        "build_seconds": round(build.seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _hourly_ingest(workdir: Path, opts: dict) -> dict:
    from stratpos.core.settings import load_settings
    from stratpos.pipeline import ingest_exchange_all, ingest_signals

    settings = load_settings()
    started = time.perf_counter()
    stats = ingest_signals(settings) + ingest_exchange_all(settings, until_ms=opts["until_ms"])
    return {
        "stage": "hourly_ingest",
        "target": settings.target,
        "fills": sum(s["loaded"] for s in stats if s["source"] == "futures_trades"),
        "records": sum(s["loaded"] for s in stats),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _hourly_transform(workdir: Path, opts: dict) -> dict:
    from stratpos.core.settings import load_settings
    from stratpos.transform import run_dbt

    settings = load_settings()
    result = run_dbt(settings, "build", extra_args=["--quiet"], docs=False)
    slowest = sorted(result.nodes, key=lambda n: -n.seconds)[:8]
    return {
        "stage": "hourly_transform",
        "target": settings.target,
        "seconds": round(result.seconds, 2),
        "node_seconds": round(sum(n.seconds for n in result.nodes), 2),
        "slowest": {n.name: n.seconds for n in slowest},
        "nodes": {n.name: n.seconds for n in result.nodes},
    }


def _hourly_validate(workdir: Path, opts: dict) -> dict:
    from stratpos.core.settings import load_settings
    from stratpos.validate import run_validation

    settings = load_settings()
    started = time.perf_counter()
    report = run_validation(settings, send_alerts=False, docs_dir=None)
    return {
        "stage": "hourly_validate",
        "target": settings.target,
        "seconds": round(time.perf_counter() - started, 2),
        "status": report.status,
        "failing": {c["check"]: c["failing"] for c in report.as_dict()["checks"] if c["failing"] or c["error"]},
    }


def _hourly_dag(workdir: Path, opts: dict) -> dict:
    """One ``dag.test()`` of ``stratpos_hourly`` (Airflow's environment is set by the parent)."""
    import os

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    started = time.perf_counter()
    run = bag.get_dag("stratpos_hourly").test(run_conf={"since": opts["since"]})
    seconds = time.perf_counter() - started
    tis = run.get_task_instances()
    groups: dict[str, float] = {}
    for ti in tis:
        group = "dbt" if ti.task_id.startswith("dbt.") else "validate" if ti.task_id == "validate" else "ingest"
        groups[group] = round(groups.get(group, 0.0) + (ti.duration or 0.0), 2)
    return {
        "stage": "hourly_dag",
        "state": str(run.state),
        "seconds": round(seconds, 2),
        "tasks": len(tis),
        "failed": sorted(ti.task_id for ti in tis if str(ti.state) != "success"),
        "task_seconds": groups,
        # every task instance's own duration (mapped ones by index), the profile of the run
        "task_durations": {
            ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): round(ti.duration or 0.0, 2) for ti in tis
        },
    }


STAGES.update(
    {
        "hourly_base": _hourly_base,
        "hourly_ingest": _hourly_ingest,
        "hourly_transform": _hourly_transform,
        "hourly_validate": _hourly_validate,
        "hourly_dag": _hourly_dag,
    }
)


def _account(workdir: Path, days: float, strategies: int, symbols: int) -> Path:
    """The paper account of this size, generated once and reused (a ``.complete`` marker names its size)."""
    from sandbox.generator import GenerateConfig, generate

    replay = workdir / f"account-{days:g}d-{strategies}x{symbols}"
    marker = replay / ".complete"
    if not marker.exists():
        import shutil

        shutil.rmtree(replay, ignore_errors=True)
        chosen = tuple(list(INSTRUMENTS)[:symbols])
        generate(GenerateConfig(out=replay, days=days, strategies=strategies, symbols=chosen, seed=7))
        marker.write_text(json.dumps({"days": days, "strategies": strategies, "symbols": symbols}) + "\n")
    return replay


def _migrated_airflow(workdir: Path) -> Path:
    """An Airflow metadata database (SQLite) migrated once and reused by every DAG measurement."""
    import os
    import shutil

    template = workdir / "airflow-template"
    if not (template / ".migrated").exists():
        shutil.rmtree(template, ignore_errors=True)
        template.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")} | _airflow_env(template)
        airflow = Path(sys.executable).with_name("airflow")
        done = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed: {done.stderr[-2000:]}")
        (template / ".migrated").touch()
    return template / "airflow.db"


def _hourly_history(
    workdir: Path, target: str, days: float, strategies: int, symbols: int, dag: bool
) -> dict[str, dict]:
    """Load all but the account's last two hours, then measure one hourly run through the CLI's
    functions (ingest, transform, validate) on the second-to-last hour and the whole ``dag.test()``
    on the last hour (each a child process, its peak RSS its own)."""
    import logging
    import shutil

    from sandbox.generator import DEFAULT_START
    from sandbox.server import SandboxServer, ServerConfig

    logging.getLogger("sandbox.server").setLevel(logging.WARNING)
    replay = _account(workdir, days, strategies, symbols)
    run_dir = workdir / f"run-{target}-{days:g}d"
    shutil.rmtree(run_dir, ignore_errors=True)
    landing, links = run_dir / "landing", run_dir / "links"
    landing.mkdir(parents=True)
    out: dict[str, dict] = {}
    with SandboxServer(replay, config=ServerConfig(weight_limit_1m=1_000_000)) as server:
        end = server.visible_until
        cuts = (end - 2 * HOUR_MS, end - HOUR_MS)
        signal_files = _split_signals(replay, run_dir / "signals", cuts)
        if (replay / "order_links.jsonl").exists():  # explicit links come from the trade engine's side
            links.mkdir()
            for name in ("account.json", "order_links.jsonl"):
                shutil.copy(replay / name, links / name)
        env = _hourly_env(workdir, target, days, server.url, landing)
        shutil.copy(signal_files[0], landing)
        server.set_visible_until(cuts[0])
        since_ms = int(DEFAULT_START.timestamp() * 1000)
        base_opts = {"since_ms": since_ms, "until_ms": cuts[0], "links": str(links) if links.exists() else None}
        out["base"] = _run_child("hourly_base", workdir, base_opts, env)
        shutil.copy(signal_files[1], landing)
        server.set_visible_until(cuts[1])
        out["ingest"] = _run_child("hourly_ingest", workdir, {"until_ms": cuts[1]}, env)
        out["transform"] = _run_child("hourly_transform", workdir, {}, env)
        out["validate"] = _run_child("hourly_validate", workdir, {}, env)
        if dag:
            home = run_dir / "airflow"
            home.mkdir()
            shutil.copy(_migrated_airflow(workdir), home / "airflow.db")
            shutil.copy(signal_files[2], landing)
            server.set_visible_until(end)
            dag_opts = {"since": DEFAULT_START.isoformat()}
            out["dag"] = _run_child("hourly_dag", workdir, dag_opts, env | _airflow_env(home))
    return out


def run_hourly_bench(
    workdir: Path,
    *,
    history_days: float,
    baseline_days: float = 2,
    strategies: int = 10,
    symbols: int = 8,
    targets: tuple[str, ...] = ("duckdb", "mysql"),
    dag: bool = True,
) -> int:
    """``stratpos bench hourly``: the hourly run after ``history_days`` against the same after
    ``baseline_days``, per target; prints each stage, the ratio and the peak RSS."""
    if not 1 <= symbols <= len(INSTRUMENTS):
        raise ValueError(f"--symbols must be between 1 and {len(INSTRUMENTS)}")
    if history_days < 0.25 or baseline_days < 0.25:
        raise ValueError("--history-days and the baseline must be at least 0.25 (six hours)")
    workdir = Path(workdir).resolve()  # Airflow refuses a relative SQLite path (the default workdir is one)
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for target in targets:
        for days in dict.fromkeys((baseline_days, history_days)):
            key = f"{target}/{days:g}d"
            results[key] = _hourly_history(workdir, target, days, strategies, symbols, dag)
            r = results[key]
            dag_line = ""
            if "dag" in r:
                d = r["dag"]
                dag_line = (
                    f"; dag.test() {d['seconds']} s ({d['state']}, {d['tasks']} tasks; "
                    + ", ".join(f"{k} {v} s" for k, v in d["task_seconds"].items())
                    + f"), peak RSS {d['peak_rss_tree_mb']} MB"
                )
            print(
                f"hourly {key}: history {r['base']['fills']:,} fills (loaded+built in {r['base']['seconds']} s); "
                f"hour: {r['ingest']['fills']:,} fills, ingest {r['ingest']['seconds']} s, "
                f"transform {r['transform']['seconds']} s (nodes {r['transform'].get('node_seconds')} s), "
                f"validate {r['validate']['seconds']} s, "
                f"peak RSS {max(r[s]['peak_rss_tree_mb'] for s in HOURLY_STAGES)} MB" + dag_line
            )
            slow = ", ".join(f"{k} {v} s" for k, v in list(r["transform"]["slowest"].items())[:5])
            print(f"  slowest dbt nodes: {slow}")
        if baseline_days != history_days:
            small, big = results[f"{target}/{baseline_days:g}d"], results[f"{target}/{history_days:g}d"]
            parts = [(s, big[s]["seconds"], small[s]["seconds"]) for s in HOURLY_STAGES]
            tv = [r["transform"]["seconds"] + r["validate"]["seconds"] for r in (big, small)]
            parts.append(("transform+validate", *tv))
            if "dag" in big:
                parts.append(("dag.test()", big["dag"]["seconds"], small["dag"]["seconds"]))
            ratios = ", ".join(f"{name} {b / s:.2f}x" if s else f"{name} n/a" for name, b, s in parts)
            print(f"ratio {target} {history_days:g}d / {baseline_days:g}d: {ratios}")
    (workdir / "bench-hourly.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def run_nats_bench(
    workdir: Path, *, messages: int = 100_000, targets: tuple[str, ...] = ("duckdb",), servers: str | None = None
) -> int:
    """``stratpos bench nats``: publish ``messages`` signals to a throw-away JetStream stream, then time
    ``ingest_nats`` (fetch, validate, commit, ack) into a fresh warehouse per target; the stream is deleted."""
    import asyncio
    import uuid

    from ingestion.nats_source import connect, ingest_nats, nats_settings
    from sandbox.publish import publish_messages
    from stratpos.core.warehouse import drop_schemas

    workdir.mkdir(parents=True, exist_ok=True)
    results = {}
    stream = f"BENCH{uuid.uuid4().hex[:8]}"
    base = _settings(workdir, "duckdb")
    cfg = nats_settings(
        base,
        servers=tuple(servers.split(",")) if servers else None,
        stream=stream,
        signals_subject=f"{stream}.signals.>",
        links_subject=f"{stream}.links.>",
        durable="bench",
    )
    t0 = 1767571322398
    payloads = [
        json.dumps(
            {
                "signal_id": f"b{i:07d}",
                "strategy_id": f"s{i % 10}",
                "symbol": ("BTCUSDT", "ETHUSDT", "SOLUSDT")[i % 3],
                "action": "buy" if i % 2 else "sell",
                "quantity": "0.01",
                "price": str(40000 + i % 1000),
                "timestamp": t0 + i * 1000,
                "confidence": 0.5,
            }
        ).encode()
        for i in range(messages)
    ]
    try:
        published = publish_messages(cfg, {"signals": payloads})
        print(f"nats: published {messages:,} signals in {published.seconds:.1f} s")
        for target in targets:
            settings = _settings(workdir, target)
            if target == "duckdb":
                settings.duckdb_path.unlink(missing_ok=True)
            else:
                drop_schemas(settings)
            consumer = cfg.with_overrides(durable=f"bench{target}")
            started = time.perf_counter()
            result = ingest_nats(settings, consumer, kinds=("signals",))
            seconds = time.perf_counter() - started
            st = result.stats["signals"]
            results[target] = {
                "messages": st.received,
                "loaded": st.loaded,
                "seconds": round(seconds, 2),
                "messages_per_s": round(st.received / seconds) if seconds else None,
                "batch_size": cfg.batch_size,
            }
            print(
                f"nats ingest {target}: {st.received:,} messages ({st.loaded:,} loaded) in {seconds:.1f} s = "
                f"{results[target]['messages_per_s']:,} messages/s (batch {cfg.batch_size}, committed then acked)"
            )
    finally:

        async def drop() -> None:
            nc = await connect(cfg)
            try:
                await nc.jetstream().delete_stream(stream)
            finally:
                await nc.close()

        asyncio.run(drop())
    (workdir / "bench-nats.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0
