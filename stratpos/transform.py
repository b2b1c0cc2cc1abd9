"""``stratpos transform``: run the dbt project (``dbt build``) against the configured warehouse.

The CLI and the Airflow DAG both call :func:`run_dbt`. dbt reads its profile from the
SPEC §2 settings through environment variables, which this module sets for the
invocation; telemetry is off and nothing reaches the dbt Hub. A build also writes the
dbt documentation site (offline) and, on MySQL/MariaDB, refreshes the read-only BI user.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from stratpos.core.errors import StratposError
from stratpos.core.settings import PROJECT_ROOT, Settings
from stratpos.core.warehouse import ensure_schemas

log = logging.getLogger(__name__)
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


class TransformError(StratposError, RuntimeError):
    """dbt failed; the message lists the failing nodes and their errors."""


@dataclass
class NodeResult:
    name: str
    resource_type: str
    status: str
    seconds: float
    message: str = ""


@dataclass
class TransformResult:
    success: bool
    seconds: float
    nodes: list[NodeResult] = field(default_factory=list)

    @property
    def failures(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status in ("error", "fail", "runtime error")]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.status] = counts.get(n.status, 0) + 1
        parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        return f"dbt {'succeeded' if self.success else 'FAILED'} in {self.seconds:.1f} s ({parts})"


def dbt_env(settings: Settings) -> dict[str, str]:
    """Environment variables the committed profiles.yml reads."""
    return settings.to_env(warehouse_only=True) | {"DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DO_NOT_TRACK": "1"}


@contextmanager
def _environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def default_target_path(settings: Settings) -> Path:
    """One dbt target directory per warehouse, so runs against different warehouses never share
    compiled SQL or the partial-parse manifest (dbt writes both there): on MariaDB per schema
    prefix, on DuckDB per database file (its name plus a digest of its absolute path)."""
    name = settings.target + (f"-{settings.schema_prefix.rstrip('_')}" if settings.schema_prefix else "")
    if settings.target == "duckdb":
        path = Path(settings.duckdb_path).expanduser().resolve()
        name += f"-{path.stem}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    return DBT_PROJECT_DIR / "target" / name


def run_dbt(
    settings: Settings,
    command: str = "build",
    *,
    full_refresh: bool = False,
    select: str | None = None,
    extra_args: list[str] | None = None,
    on_node: Callable[[NodeResult], None] | None = None,
    target_path: Path | None = None,
    docs: bool = True,
) -> TransformResult:
    """Run ``dbt <command>`` in-process; raises :class:`TransformError` when dbt fails.

    ``command`` may be two words (``"docs generate"``). A successful ``build`` is followed by
    the documentation site (:func:`generate_docs` from the build's own manifest; ``docs=False``
    skips it) and, on MySQL/MariaDB, by the read-only BI user (:func:`stratpos.bi.ensure_bi_user`).
    """
    ensure_schemas(settings)  # first: an unreachable server is one line before dbt is even imported
    from dbt.cli.main import dbtRunner

    target_path = target_path or default_target_path(settings)
    args = [*command.split(), "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    args += ["--target-path", str(target_path)]
    if full_refresh and command in ("build", "run", "seed"):
        args.append("--full-refresh")
    if select:
        args += ["--select", select]
    args += extra_args or []
    nodes: list[NodeResult] = []

    def callback(event) -> None:
        if event.info.name != "NodeFinished":
            return
        r = event.data.run_result
        node = NodeResult(
            name=event.data.node_info.node_name,
            resource_type=event.data.node_info.resource_type,
            status=str(r.status),
            seconds=round(float(r.execution_time or 0.0), 2),
            message=(r.message or "").strip(),
        )
        nodes.append(node)
        if on_node:
            on_node(node)

    started = time.perf_counter()
    with _environment(dbt_env(settings)):
        res = dbtRunner(callbacks=[callback]).invoke(args)
    result = TransformResult(bool(res.success), time.perf_counter() - started, nodes)
    if not res.success:
        details = "; ".join(f"{n.resource_type} {n.name}: {n.message[:500]}" for n in result.failures)
        if res.exception is not None:
            details = f"{details}; {res.exception}" if details else str(res.exception)
        raise TransformError(f"dbt {command} failed: {details or 'see dbt output'}")
    if command == "build":
        if docs:
            _docs_after_build(settings, target_path)
        _refresh_bi_user(settings)
    return result


def _docs_after_build(settings: Settings, target_path: Path | None) -> None:
    """The docs from the manifest the build just compiled (well under a second)."""
    try:
        generate_docs(settings, target_path=target_path, compile=False)
    except TransformError:
        # dbt-duckdb builds its catalog only on a connection a compile (or the build) opened;
        # when the build ran nothing there is none, so compile once.
        generate_docs(settings, target_path=target_path)


def generate_docs(settings: Settings, *, target_path: Path | None = None, compile: bool = True) -> Path:
    """``dbt docs generate --static``: manifest, catalog and a self-contained ``static_index.html``.

    Works offline (the site ships with dbt-core). ``compile=False`` reuses the manifest a
    build just wrote to the target directory instead of compiling the project again.
    Returns the target directory.
    """
    args = ["--static", "--quiet"] + ([] if compile else ["--no-compile"])
    run_dbt(settings, "docs generate", extra_args=args, target_path=target_path)
    return target_path or default_target_path(settings)


def _refresh_bi_user(settings: Settings) -> None:
    from stratpos.bi import BIUserError, ensure_bi_user

    try:
        ensure_bi_user(settings)
    except BIUserError as exc:
        raise TransformError(str(exc)) from None


def source_freshness(settings: Settings, *, target_path: Path | None = None) -> list[str]:
    """``dbt source freshness`` on the raw sources that have a freshness rule (``_sources.yml``: the
    snapshots every ingestion run takes, by their ``loaded_at``). Returns one warning line per stale
    source (or one line when the check could not run); never raises: stale raw data is a warning,
    not a failed transform."""
    nodes: list[NodeResult] = []
    try:
        run_dbt(settings, "source freshness", extra_args=["--quiet"], on_node=nodes.append, target_path=target_path)
    except TransformError as exc:
        if not any(n.status in ("warn", "error") for n in nodes):
            return [f"source freshness not checked: {str(exc).splitlines()[0][:300]}"]
    return [
        f"stale raw data: raw.{n.name} has no load within its freshness warn_after (dbt source freshness)"
        for n in nodes
        if n.status not in ("pass", "success")
    ]
