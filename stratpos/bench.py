"""``stratpos bench``: wall time, throughput and peak memory of pipeline stages.

Each stage runs in a fresh child process so its peak RSS is its own, not the
benchmark driver's. Later stages (ingest, transform) add themselves to STAGES.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from sandbox.instruments import INSTRUMENTS


def _generate_stage(workdir: Path, days: float, strategies: int, symbols: int) -> dict:
    from sandbox.generator import GenerateConfig, generate

    chosen = tuple(list(INSTRUMENTS)[:symbols])
    started = time.perf_counter()
    summary = generate(GenerateConfig(out=workdir / "replay", days=days, strategies=strategies, symbols=chosen, seed=7))
    seconds = time.perf_counter() - started
    return {
        "stage": "generate",
        "days": days,
        "strategies": strategies,
        "symbols": len(chosen),
        "fills": summary.fills,
        "rows_written": sum(v for k, v in summary.files.items() if not k.startswith("_")) + summary.positions,
        "seconds": round(seconds, 2),
        "fills_per_second": round(summary.fills / seconds) if seconds else None,
    }


STAGES = {"generate": _generate_stage}


def _child(stage: str, workdir: str, days: float, strategies: int, symbols: int) -> None:
    result = STAGES[stage](Path(workdir), days, strategies, symbols)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def run_bench(stage: str, workdir: Path, days: float, strategies: int, symbols: int) -> int:
    """Run ``stage`` in a child process and print its measurements (JSON and a summary line)."""
    if symbols > len(INSTRUMENTS) or symbols < 1:
        raise ValueError(f"--symbols must be between 1 and {len(INSTRUMENTS)}")
    workdir.mkdir(parents=True, exist_ok=True)
    args = ", ".join(repr(a) for a in (stage, str(workdir), days, strategies, symbols))
    code = f"from stratpos.bench import _child; _child({args})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        return proc.returncode
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=2))
    (workdir / f"bench-{stage}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"{stage}: {result['fills']:,} fills in {result['seconds']} s "
        f"({result['fills_per_second']:,} fills/s), peak RSS {result['peak_rss_mb']} MB"
    )
    return 0
