"""``stratpos demo`` stays quiet: third-party output goes to its log, the terminal gets the steps.

The demo's result (leaderboard, checks, paths) is tested on a built warehouse in
tests/report/test_report.py; the whole demo (minutes: a real DAG run) only with STRATPOS_DEMO_TEST=1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stratpos.core.settings import PROJECT_ROOT

NOISY = r"""
import logging, os, subprocess, sys, warnings
from pathlib import Path
from stratpos.demo import output_to

logging.basicConfig(level=logging.INFO)  # like the CLI: a root handler on stderr
log = Path(sys.argv[1])
with output_to(log) as real:
    print("noise: print")
    print("noise: stderr", file=sys.stderr)
    logging.getLogger("airflow.task").warning("noise: airflow logger")
    warnings.warn("noise: a warning")
    os.write(2, b"noise: C-level write\n")
    subprocess.run(["echo", "noise: child process"], check=True)
    real.write("the one line\n")
logging.getLogger("stratpos").info("after: logged again")
"""


def test_output_goes_to_the_log_and_the_terminal_gets_only_the_result(tmp_path: Path):
    log = tmp_path / "demo.log"
    proc = subprocess.run(
        [sys.executable, "-c", NOISY, str(log)], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "the one line\n"
    assert "noise" not in proc.stderr and "after: logged again" in proc.stderr  # handlers restored
    kept = log.read_text()
    for what in ("print", "stderr", "airflow logger", "a warning", "C-level write", "child process"):
        assert f"noise: {what}" in kept, what


def test_progress_bar_only_on_a_terminal(tmp_path: Path):
    from stratpos.demo import progress_bar

    with open(tmp_path / "out.txt", "w") as stream:
        assert progress_bar("simulating", stream) is None
    leader, follower = os.openpty()  # a terminal: a bar that draws on it
    with os.fdopen(follower, "w") as tty:
        update = progress_bar("simulating", tty)
        assert update is not None
        update(5, 10)
        update(10, 10)
    assert b"simulating" in os.read(leader, 4096)
    os.close(leader)


@pytest.mark.skipif(
    os.environ.get("STRATPOS_DEMO_TEST") != "1", reason="the whole demo takes minutes: set STRATPOS_DEMO_TEST=1"
)
def test_the_whole_demo_prints_under_60_lines(tmp_path: Path):
    out = tmp_path / "demo"
    stratpos = Path(sys.executable).with_name("stratpos")
    proc = subprocess.run(
        [str(stratpos), "demo", "--out", str(out), "--days", "1", "--strategies", "2", "--seed", "3"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=3600,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert len(text.splitlines()) < 60, text
    for path in (out / "report.html", out / "dbt" / "static_index.html", out / "logs" / "demo.log"):
        assert str(path) in text and path.exists(), path
    assert "GX data docs  /" in text
