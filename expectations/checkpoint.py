"""The reconciliation checkpoint: the suites of :mod:`expectations.suites` run against the audit relations.

GX objects are built here, when a run starts, in an ephemeral context (nothing is read from
or written to a GX project directory). Each mismatch relation is read once by the caller
(:func:`stratpos.validate.read_relations`) and validated as a pandas DataFrame, GX's supported
in-memory path, on both warehouses:

- the rows GX judges and the rows written to ``audit.dq_alerts`` are then the same snapshot;
- a relation is evaluated once per run. On MySQL/MariaDB a GX SQL data source ran several metric
  queries per relation, each re-evaluating the reconciliation view over the whole history:
  703 s of ``stratpos validate`` after 20 days of 30 strategies x 10 symbols, where reading the
  nine views once takes about 60 s (``stratpos bench hourly``);
- DuckDB has no GX SQL dialect at all. Through duckdb-engine its SQLAlchemy engine loses every
  metric query's result: it fetches after closing the connection, whose transaction then ends
  with a ROLLBACK, and duckdb-engine's cursors share the DuckDB connection, which drops a
  pending result on the next statement.

The suites are the same on both. One Checkpoint per check (a DataFrame is bound to a run
through batch parameters, and each check has its own), all in one context, so the data
docs site built at the end shows exactly this validation.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expectations.checks import CHECKS, Check
from expectations.suites import FAILED, check_status, reconciliation_suite

# GX reads this when it is first imported, which happens below, after this module's import
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

log = logging.getLogger(__name__)
DOCS_SITE = "stratpos_local"
SITE_ENTRIES = ("index.html", "validations", "expectations", "static")


@dataclass
class SuiteOutcome:
    """What GX said about one check."""

    check: Check
    status: str
    reasons: list[str] = field(default_factory=list)


@dataclass
class CheckpointOutcome:
    outcomes: dict[str, SuiteOutcome]
    docs_index: Path | None = None


def quiet_gx() -> None:
    """GX logs every registration and metric at INFO/DEBUG (hundreds of lines a run, even under
    ``-v``); the run's own per-check summary says what matters. Called before GX is imported."""
    for name in ("great_expectations", "great_expectations.expectations.registry", "gx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _context(docs_dir: Path | None):
    quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,  # no usage statistics, whatever the environment says
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    if docs_dir is not None:
        context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def _pandas_batch_definitions(context, checks: list[Check]) -> dict[str, Any]:
    source = context.data_sources.add_pandas(name="warehouse")
    out = {}
    for check in checks:
        asset = source.add_dataframe_asset(name=check.relation)
        out[check.check_id] = asset.add_batch_definition_whole_dataframe(name="whole_relation")
    return out


def run_checkpoint(
    frames: Mapping[str, Any],
    *,
    checks: list[Check] | None = None,
    docs_dir: Path | None = None,
    run_name: str | None = None,
) -> CheckpointOutcome:
    """Validate every check's mismatch relation; build the data docs of this run into ``docs_dir``.

    ``frames``: check id → pandas DataFrame of the relation's rows.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    checks = list(CHECKS if checks is None else checks)
    context = _context(docs_dir)
    batch_definitions = _pandas_batch_definitions(context, checks) if checks else {}

    run_id = RunIdentifier(run_name=run_name) if run_name else None
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": ["check_key"]}
    outcomes: dict[str, SuiteOutcome] = {}
    for check in checks:
        suite = context.suites.add(reconciliation_suite(check))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=check.relation, data=batch_definitions[check.check_id], suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"reconciliation_{check.check_id.lower()}",
                validation_definitions=[definition],
                result_format=result_format,
            )
        )
        try:
            result = checkpoint.run(batch_parameters={"dataframe": frames[check.check_id]}, run_id=run_id)
        except Exception as exc:  # a relation GX cannot even load is a failed check, not a crash
            log.warning("GX could not validate %s: %s", check.relation, exc)
            outcomes[check.check_id] = SuiteOutcome(check, FAILED, [f"GX could not run: {type(exc).__name__}: {exc}"])
            continue
        suite_result = next(iter(result.run_results.values()))
        status, reasons = check_status(suite_result)
        outcomes[check.check_id] = SuiteOutcome(check, status, reasons)

    docs_index = None
    if docs_dir is not None:
        _clear_site(docs_dir)  # the site shows the last validation only
        urls = context.build_data_docs(site_names=[DOCS_SITE])
        docs_index = docs_dir / "index.html"
        log.debug("GX data docs: %s", urls.get(DOCS_SITE, docs_index))
    return CheckpointOutcome(outcomes, docs_index)


def _clear_site(docs_dir: Path) -> None:
    """Remove what an earlier build wrote (only GX's own files: the folder may hold others)."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    for name in SITE_ENTRIES:
        path = docs_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
