"""The pipeline's steps as plain functions: the CLI (`stratpos run`) and the Airflow DAG call these.

Each step takes the SPEC §2 settings, does one thing, and returns a small JSON-able
summary (counts, not data) — what Airflow passes through XCom.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from stratpos.config import Settings

log = logging.getLogger(__name__)


def _summaries(stats) -> list[dict]:
    return [
        {
            "source": s.source,
            "received": s.received,
            "loaded": s.loaded,
            "duplicates": s.duplicates,
            "quarantined": s.quarantined,
            "seconds": round(s.seconds, 2),
        }
        for s in stats
    ]


def discover_symbols(settings: Settings, symbols: Iterable[str] | None = None) -> list[str]:
    """Symbols the next ingestion reads: configured ∪ seen in income, positions, signals and trades."""
    from ingestion.binance_source import discover_symbols as discover

    configured = list(symbols or []) or [s for s in os.environ.get("STRATPOS_SYMBOLS", "").split(",") if s.strip()]
    return discover(settings, symbols=configured)


def ingest_exchange(
    settings: Settings,
    *,
    streams: Iterable[str],
    symbols: Iterable[str] | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    discover: bool = False,
) -> list[dict]:
    """One part of the Binance ingestion: ``streams`` from ``ingestion.binance_source.STREAMS`` (account,
    exchange_info, income, per-symbol orders+trades, positions, balances, klines)."""
    from ingestion.binance_source import ingest_binance

    stats = ingest_binance(
        settings,
        symbols=list(symbols or []),
        since_ms=since_ms,
        until_ms=until_ms,
        streams=tuple(streams),
        discover=discover,
    )
    return _summaries(stats)


def ingest_exchange_all(settings: Settings, *, since_ms: int | None = None, until_ms: int | None = None) -> list[dict]:
    """The whole Binance ingestion in one process (``stratpos run``): every stream, symbols discovered."""
    from ingestion.binance_source import STREAMS

    return ingest_exchange(settings, streams=STREAMS, since_ms=since_ms, until_ms=until_ms, discover=True)


def ingest_signals(settings: Settings, landing: Path | None = None) -> list[dict]:
    """Signal files from the landing folder (``STRATPOS_SIGNALS_LANDING``), each file once."""
    from ingestion.signals import ingest_signal_files

    folder = landing or (
        Path(os.environ["STRATPOS_SIGNALS_LANDING"]) if os.environ.get("STRATPOS_SIGNALS_LANDING") else None
    )
    if folder is None:
        log.info("no signal landing folder configured (STRATPOS_SIGNALS_LANDING); nothing to read")
        return []
    if not folder.is_dir():
        raise FileNotFoundError(f"signal landing folder {folder} does not exist")
    return _summaries(ingest_signal_files(settings, folder))


def ingest_replay(settings: Settings, directory: Path) -> list[dict]:
    """A replay directory (SPEC §3.4)."""
    from ingestion.replay import load_replay

    return _summaries(load_replay(directory, settings))


def transform(settings: Settings, *, full_refresh: bool = False) -> dict:
    """``dbt build``; raises TransformError when a model or test fails."""
    from stratpos.transform import run_dbt

    result = run_dbt(settings, "build", full_refresh=full_refresh, extra_args=["--quiet"])
    return {"seconds": round(result.seconds, 2), "nodes": len(result.nodes), "summary": result.summary()}


def validate(settings: Settings) -> dict:
    """Reconciliation R1–R9 (SPEC §5); raises when a `fail` check failed, after alerting."""
    from stratpos.validate import run_validation

    report = run_validation(settings)
    report.raise_for_failures()
    return report.as_dict()


def alert_failure(context) -> None:
    """Airflow failure callback: tell the alert channels which task of which run failed."""
    from stratpos.alerts import send_task_failure

    send_task_failure(context)
