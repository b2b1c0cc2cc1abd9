"""Running tests/airflow/child.py and reading what Airflow printed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from stratpos.core.settings import PROJECT_ROOT, Settings

CHILD = Path(__file__).with_name("child.py")
_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def stratpos_env(settings: Settings) -> dict[str, str]:
    """The SPEC §2 variables that point a process at ``settings``' warehouse."""
    env = {
        "STRATPOS_TARGET": settings.target,
        "STRATPOS_DUCKDB_PATH": str(settings.duckdb_path),
        "STRATPOS_SCHEMA_PREFIX": settings.schema_prefix,
        "STRATPOS_MYSQL_HOST": settings.mysql.host,
        "STRATPOS_MYSQL_PORT": str(settings.mysql.port),
        "STRATPOS_MYSQL_USER": settings.mysql.user,
    }
    if settings.mysql.password:
        env["STRATPOS_MYSQL_PASSWORD"] = settings.mysql.password.get_secret_value()
    return env


def run_child(command: str, env: dict[str, str], workdir: Path, *args: str, timeout: float = 600) -> tuple[dict, Path]:
    """Run one child command; returns its JSON result and the file holding its output."""
    out, log = workdir / f"{command}.json", workdir / f"{command}.log"
    with open(log, "w", encoding="utf-8") as fh:
        done = subprocess.run(
            [sys.executable, str(CHILD), command, str(out), *args],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    assert done.returncode == 0 and out.exists(), f"child `{command}` exited {done.returncode}:\n{errors_in(log)}"
    return json.loads(out.read_text(encoding="utf-8")), log


def errors_in(log: Path, limit: int = 12_000) -> str:
    """The error lines and tracebacks of an Airflow log (the end of the log if it has none), at most ``limit``."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    picked: list[str] = []
    in_traceback = False
    for line in lines:
        if line.startswith("Traceback") or "[error" in line:
            in_traceback = line.startswith("Traceback")
            picked.append(line)
        elif in_traceback:
            if _LOG_LINE.match(line):
                in_traceback = False
            else:
                picked.append(line)
    text = "\n".join(picked) or "\n".join(lines[-80:])
    return text[-limit:]
