"""One actionable line on stderr, no traceback (unless -v), through the installed console script."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stratpos.cli import build_parser
from stratpos.core.settings import variable_fields

STRATPOS = shutil.which("stratpos", path=str(Path(sys.executable).parent))
MARIADB_DOWN = (
    "stratpos: cannot connect to MariaDB at 127.0.0.1:{port} — is it running? "
    "check STRATPOS_MYSQL_HOST/STRATPOS_MYSQL_PORT"
)


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STRATPOS_", "BINANCE_", "AIRFLOW"))}
    return subprocess.run(
        [STRATPOS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=base | env,
    )


def one_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["ingest", "replay", "."], ["transform"], ["validate", "--no-docs"]])
def test_unreachable_mysql_is_one_line(tmp_path, command):
    port = _closed_port()
    proc = run(tmp_path, *command, STRATPOS_TARGET="mysql", STRATPOS_MYSQL_PORT=str(port))
    assert proc.returncode == 3
    assert one_line(proc) == MARIADB_DOWN.format(port=port)


def test_verbose_adds_the_traceback(tmp_path):
    port = _closed_port()
    proc = run(tmp_path, "-v", "transform", STRATPOS_TARGET="mysql", STRATPOS_MYSQL_PORT=str(port))
    assert proc.returncode == 3
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == MARIADB_DOWN.format(port=port)


@pytest.mark.parametrize("command", [["ingest", "replay", "."], ["transform"], ["validate", "--no-docs"]])
def test_missing_duckdb_folder_is_an_error_not_a_new_warehouse(tmp_path, command):
    path = tmp_path / "typo" / "stratpos.duckdb"
    proc = run(tmp_path, *command, STRATPOS_DUCKDB_PATH=str(path))
    assert proc.returncode == 3
    line = one_line(proc)
    assert line.startswith(
        f"stratpos: the DuckDB warehouse folder {path.parent} does not exist — check STRATPOS_DUCKDB_PATH"
    )
    assert not path.parent.exists()
    assert "creating a new DuckDB warehouse" not in proc.stdout


def test_transform_without_a_warehouse_says_to_ingest_first(tmp_path):
    path = tmp_path / "stratpos.duckdb"
    proc = run(tmp_path, "transform", STRATPOS_DUCKDB_PATH=str(path))
    assert proc.returncode == 3
    assert one_line(proc) == (
        f"stratpos: no DuckDB warehouse at {path} — run `stratpos ingest` first, or check STRATPOS_DUCKDB_PATH"
    )
    assert not path.exists()


def test_ingest_creates_the_warehouse_and_says_so(tmp_path):
    replay = tmp_path / "replay"
    replay.mkdir()
    path = tmp_path / "new.duckdb"
    proc = run(tmp_path, "ingest", "replay", str(replay), STRATPOS_DUCKDB_PATH=str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(f"creating a new DuckDB warehouse at {path}") == 1
    assert path.is_file()
    again = run(tmp_path, "ingest", "replay", str(replay), STRATPOS_DUCKDB_PATH=str(path))
    assert again.returncode == 0, again.stderr
    assert "creating a new DuckDB warehouse" not in again.stdout


def test_ingest_binance_without_keys_names_the_sandbox_it_could_not_reach(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    proc = run(tmp_path, "ingest", "binance", STRATPOS_SANDBOX_URL=url, STRATPOS_DUCKDB_PATH=str(tmp_path / "w.duckdb"))
    assert proc.returncode == 3
    line = one_line(proc)
    assert line.startswith("stratpos: no Binance key is set (BINANCE_API_KEY/BINANCE_API_SECRET), so stratpos used")
    assert f"the paper exchange at {url} — it is not reachable" in line
    assert not (tmp_path / "w.duckdb").exists()


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_unreadable_time_is_one_line(tmp_path, option):
    proc = run(tmp_path, "ingest", "binance", option, "foo")
    assert proc.returncode == 2
    assert one_line(proc) == (
        f"stratpos: {option}: cannot read 'foo' — use an ISO date (2026-11-01), 'yesterday', or a duration such as 2d"
    )


def test_bad_setting_is_one_line(tmp_path):
    proc = run(tmp_path, "config", STRATPOS_MYSQL_PORT="70000")
    assert proc.returncode == 2
    assert one_line(proc) == "stratpos: STRATPOS_MYSQL_PORT must be a TCP port (1-65535), got '70000'"


def test_config_shows_every_setting_and_its_origin_never_a_secret(tmp_path):
    (tmp_path / ".env").write_text(
        "STRATPOS_SCHEMA_PREFIX=acme_\nSTRATPOS_ALERT_SMTP_PASSWORD=mail-pw-1\nBINANCE_API_SECRET=bn-secret-2\n",
        encoding="utf-8",
    )
    proc = run(
        tmp_path,
        "config",
        STRATPOS_TARGET="mysql",
        STRATPOS_MYSQL_PASSWORD="hunter2",
        BINANCE_API_KEY="bn-key-3",
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for secret in ("hunter2", "mail-pw-1", "bn-secret-2", "bn-key-3"):
        assert secret not in out + proc.stderr
    rows = {m[1]: (m[2], m[3]) for m in re.finditer(r"^  (\S+)\s+(.*?)\s+\[(.+)\]$", out, re.MULTILINE)}
    assert set(rows) == set(variable_fields())
    assert rows["STRATPOS_TARGET"] == ("mysql", "environment")
    assert rows["STRATPOS_SCHEMA_PREFIX"] == ("acme_", ".env file")
    assert rows["STRATPOS_MYSQL_PASSWORD"] == ("set", "environment")
    assert rows["STRATPOS_ALERT_SMTP_PASSWORD"] == ("set", ".env file")
    assert rows["BINANCE_API_SECRET"] == ("set", ".env file")
    assert rows["BINANCE_API_KEY"] == ("set", "environment")
    assert rows["STRATPOS_BI_PASSWORD"] == ("unset", "default")
    assert rows["STRATPOS_MYSQL_HOST"] == ("127.0.0.1", "default")
    assert "acme_marts" in out


def _parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_help_texts_cite_no_spec_sections():
    helps = [p.format_help() for p in _parsers(build_parser())]
    assert len(helps) > 10
    assert [h.splitlines()[0] for h in helps if "SPEC" in h or "§" in h] == []


def test_env_file_settings_reach_the_binance_client(tmp_path):
    """A sandbox URL set only in .env is the one ingest binance uses (and names when it is down)."""
    url = f"http://127.0.0.1:{_closed_port()}"
    (tmp_path / ".env").write_text(f"STRATPOS_SANDBOX_URL={url}\n", encoding="utf-8")
    proc = run(tmp_path, "ingest", "binance", STRATPOS_DUCKDB_PATH=str(tmp_path / "w.duckdb"))
    assert proc.returncode == 3
    assert f"the paper exchange at {url} — it is not reachable" in one_line(proc)
