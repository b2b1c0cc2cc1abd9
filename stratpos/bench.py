"""``stratpos bench``: wall time, throughput and peak memory of pipeline stages.

Each measurement runs in a fresh child process so its peak RSS is its own, not the
benchmark driver's; the peak summed RSS of that process and its descendants (the
ingest's worker processes) is sampled as well. Stages:

- ``generate``: the paper exchange simulating an account (fills/s);
- ``ingest``: a replay directory loaded into a fresh DuckDB file and a fresh MySQL/MariaDB
  schema prefix (fills/s of the trades source, records/s overall);
- ``transform``: ``dbt build`` (full refresh) on what ``ingest`` loaded, per target.

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
    from stratpos.config import load_settings

    base = load_settings()
    if target == "duckdb":
        return base.with_overrides(target="duckdb", duckdb_path=workdir / "bench.duckdb", schema_prefix="")
    return base.with_overrides(target="mysql", schema_prefix=BENCH_PREFIX)


def _ingest(workdir: Path, opts: dict) -> dict:
    from ingestion.replay import load_replay
    from stratpos.warehouse import drop_schemas

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


def _run_child(stage: str, workdir: Path, opts: dict) -> dict:
    args = ", ".join(repr(a) for a in (stage, str(workdir), json.dumps(opts)))
    code = f"from stratpos.bench import _child; _child({args})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"bench stage {stage} failed (exit {proc.returncode})")
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("BENCH "))
    return json.loads(line[len("BENCH ") :])


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
