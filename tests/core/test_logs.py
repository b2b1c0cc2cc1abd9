"""Quiet by default: third-party loggers silenced before their import, progress bars only on a terminal."""

from __future__ import annotations

import io
import subprocess
import sys


def test_third_party_loggers_are_silenced_before_import_and_own_loggers_speak():
    code = """
import io, logging, sys
from stratpos.core.logs import configure_logging
buf = io.StringIO()
configure_logging(False, stream=buf)
assert "great_expectations" not in sys.modules and "cosmos" not in sys.modules
import great_expectations  # a library that logs on import and while registering its functions
logging.getLogger("great_expectations.expectations.registry").warning("noise from GX")
logging.getLogger("cosmos.operators").warning("noise from Cosmos")
logging.getLogger("urllib3.connectionpool").warning("noise from urllib3")
logging.getLogger("stratpos.pipeline").info("a stratpos step")
logging.getLogger("great_expectations").error("a real GX error")
print(buf.getvalue())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    out = proc.stdout
    assert "noise" not in out
    assert "INFO stratpos.pipeline: a stratpos step" in out
    assert "ERROR great_expectations: a real GX error" in out


def test_verbose_lets_library_warnings_and_own_debug_through():
    import logging

    from stratpos.core.logs import configure_logging

    buf = io.StringIO()
    try:
        configure_logging(True, stream=buf)
        logging.getLogger("cosmos.operators").warning("cosmos warning")
        logging.getLogger("stratpos.x").debug("own debug")
        logging.getLogger("cosmos.operators").info("cosmos info")
    finally:
        configure_logging(False)
    text = buf.getvalue()
    assert "cosmos warning" in text and "own debug" in text and "cosmos info" not in text


def test_progress_bars_only_on_a_terminal(monkeypatch):
    from stratpos.core import logs

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert logs.progress_enabled() is False
    assert logs.minutes_progress("x") is None and logs.bytes_progress() is None
    monkeypatch.setattr(sys, "stderr", Tty())
    assert logs.progress_enabled() is True
    update = logs.bytes_progress()
    update("file.jsonl", 10, 20)
    update("file.jsonl", 20, 20)
    assert "file.jsonl" in sys.stderr.getvalue()
