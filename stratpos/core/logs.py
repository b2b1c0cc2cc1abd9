"""Logging set up once, before any third-party library is imported; progress bars only on a terminal.

The CLI calls :func:`configure_logging` first thing. Libraries stratpos drives (Great Expectations,
Cosmos, Airflow, dbt, SQLAlchemy, urllib3, …) log only errors unless ``verbose``; stratpos's own
loggers log at INFO (DEBUG with ``verbose``). Levels set on a logger before the library is
imported stay in effect, because its loggers are children of these names.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

THIRD_PARTY = (
    "great_expectations",
    "cosmos",
    "airflow",
    "dbt",
    "dbt_common",
    "urllib3",
    "requests",
    "binance",
    "sqlalchemy",
    "alembic",
    "asyncio",
    "filelock",
    "fsspec",
    "httpx",
    "httpcore",
    "nats",
    "apprise",
    "matplotlib",
    "numexpr",
    "PIL",
    "py.warnings",
    "snowplow_tracker",
    "openlineage",
    "tzlocal",
    "celery",
    "kombu",
)
OWN = ("stratpos", "ingestion", "expectations", "sandbox", "dags")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(verbose: bool = False, stream=None) -> None:
    """Root handler on stderr; third-party loggers at ERROR (WARNING with ``verbose``)."""
    # usage statistics off before the libraries read their settings
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "stratpos", False)]:
        root.removeHandler(old)  # ours from an earlier call; handlers others installed (pytest's) stay
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.stratpos = True
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in OWN:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.WARNING if verbose else logging.ERROR)
    logging.captureWarnings(True)
    if not verbose:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(great_expectations|cosmos|airflow)\b.*")


def progress_enabled(stream=None) -> bool:
    """Progress bars are drawn only when stderr is a terminal (never into logs or pipes)."""
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def minutes_progress(label: str):
    """A ``(done, total)`` callback drawing a tqdm bar of simulated minutes, or None off a terminal."""
    if not progress_enabled():
        return None
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="min", desc=label, leave=False, mininterval=0.5)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def bytes_progress():
    """A ``(label, done, total)`` callback drawing one tqdm bar per source, or None off a terminal."""
    if not progress_enabled():
        return None
    from tqdm import tqdm

    bars: dict = {}

    def update(label: str, done: int, total: int) -> None:
        bar = bars.get(label)
        if bar is None:
            bar = bars[label] = tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update
