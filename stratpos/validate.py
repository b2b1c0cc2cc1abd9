"""``stratpos validate``: prove that the attribution reconciles (SPEC §5), and say so loudly when it does not.

One run:

1. reads every reconciliation relation (``{prefix}audit.recon_r1_…`` … ``recon_r8_…``, dbt
   views of mismatch rows built by ``stratpos transform``);
2. validates them with the GX suites of :mod:`expectations` through the reconciliation
   checkpoint, and builds the GX data docs of this validation;
3. writes every mismatch to ``{prefix}audit.dq_alerts`` (idempotent per run id: a re-run of
   the same run id replaces its rows);
4. tells every configured channel what changed since it last heard (:mod:`stratpos.alerts`:
   a check that starts failing, a new failing key, a recovery; standing warnings once a day).

GX alone decides each check's status (:func:`expectations.suites.check_status`); this module
only reads, writes and reports. A warehouse without any reconciliation relation (never
transformed) raises :class:`NothingToValidate`: nothing is written, nobody is alerted.

The CLI and the Airflow DAG both call :func:`run_validation`; its report renders the
per-check summary and gives the exit code (0 when nothing failed, 1 otherwise).
"""

from __future__ import annotations

import logging
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from expectations.checks import CHECKS, MISMATCH_COLUMNS, Check
from expectations.suites import FAILED, PASSED, WARNED
from stratpos.core.ddl import Column, Table
from stratpos.core.errors import StratposError
from stratpos.core.settings import PROJECT_ROOT, Settings
from stratpos.core.warehouse import duckdb_connection, ensure_schemas, mysql_connection

log = logging.getLogger(__name__)

DEFAULT_DOCS_DIR = PROJECT_ROOT / "warehouse" / "gx_docs"
WORST_KEYS = 5
_RANK = {PASSED: 0, WARNED: 1, FAILED: 2}

DQ_ALERTS = Table(
    "dq_alerts",
    "audit",
    (
        Column("run_id", "str", size=64),
        Column("check_id", "str", size=8),
        Column("check_key", "str", size=255),
        Column("measure", "str", size=64),
        Column("check_name", "str", size=64, nullable=False),
        Column("severity", "str", size=8, nullable=False),
        Column("expected", "dec"),
        Column("observed", "dec"),
        Column("diff", "dec"),
        Column("tolerance", "dec"),
        Column("detail", "text"),
        Column("target", "str", size=16, nullable=False),
        Column("alerted_at", "ts", nullable=False),
    ),
    ("run_id", "check_id", "check_key", "measure"),
)


@dataclass(frozen=True)
class Mismatch:
    """One row of a reconciliation relation."""

    check_id: str
    check_name: str
    severity: str
    check_key: str
    measure: str
    expected: Decimal | None
    observed: Decimal | None
    diff: Decimal | None
    tolerance: Decimal | None
    detail: str | None

    def describe(self) -> str:
        """``key measure: expected X, observed Y (diff Z)`` with exact, unpadded decimals."""
        return (
            f"{self.check_key} {self.measure}: expected {_num(self.expected)}, observed {_num(self.observed)}"
            f" (diff {_num(self.diff)})"
        )


@dataclass
class CheckResult:
    check: Check
    status: str
    mismatches: list[Mismatch] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def failures(self) -> list[Mismatch]:
        return [m for m in self.mismatches if m.severity == "fail"]

    @property
    def warnings(self) -> list[Mismatch]:
        return [m for m in self.mismatches if m.severity != "fail"]

    def worst(self, n: int = WORST_KEYS) -> list[Mismatch]:
        """Failing rows first, then by the size of the difference."""
        return sorted(
            self.mismatches,
            key=lambda m: (m.severity != "fail", -abs(m.diff or 0), m.check_key, m.measure),
        )[:n]


@dataclass
class ValidationReport:
    run_id: str
    target: str
    started_at: datetime
    results: list[CheckResult]
    docs_index: Path | None = None
    deliveries: list = field(default_factory=list)

    @property
    def status(self) -> str:
        return max((r.status for r in self.results), key=_RANK.__getitem__, default=PASSED)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAILED]

    @property
    def warned(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == WARNED]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def result(self, check_id: str) -> CheckResult:
        return next(r for r in self.results if r.check.check_id == check_id)

    def raise_for_failures(self) -> None:
        """Raise :class:`ValidationFailed` when a ``fail`` check failed (an Airflow task should fail then)."""
        if self.failed:
            raise ValidationFailed(self)

    def as_dict(self, worst: int = WORST_KEYS) -> dict:
        """The run as plain JSON values (an XCom; the ``validation`` argument of ``stratpos.report``)."""
        return {
            "run_id": self.run_id,
            "target": self.target,
            "status": self.status,
            "at": self.started_at.isoformat(),
            "docs": str(self.docs_index) if self.docs_index else None,
            "checks": [
                {
                    "check": r.check.check_id,
                    "name": r.check.name,
                    "severity": r.check.severity,
                    "status": r.status,
                    "mismatches": len(r.mismatches),
                    "failing": len(r.failures),
                    "error": r.error,
                    "worst": [
                        {
                            "key": m.check_key,
                            "measure": m.measure,
                            "severity": m.severity,
                            "expected": _num(m.expected),
                            "observed": _num(m.observed),
                            "diff": _num(m.diff),
                        }
                        for m in r.worst(worst)
                    ],
                }
                for r in self.results
            ],
            "alerts": [{"channel": d.channel, "ok": d.ok, "error": d.error} for d in self.deliveries],
        }

    def render(self) -> str:
        """The summary the CLI prints: one line per check (with its worst key), then the result."""
        lines = []
        for r in self.results:
            if r.error:
                detail = f"not validated: {r.error}"
            elif r.mismatches:
                worst = r.worst(1)[0]
                detail = f"{len(r.failures)} failing, {len(r.warnings)} warning; worst {worst.describe()}"
            else:
                detail = "no mismatches"
            lines.append(f"  {r.status.upper():<7} {r.check.check_id} {r.check.name:<22} {detail}")
        lines.append(f"validation {self.run_id} on {self.target}: {self.status.upper()}")
        if self.docs_index:
            lines.append(f"GX data docs: {self.docs_index}")
        for d in self.deliveries:
            lines.append(f"alert via {d.channel}: {'sent' if d.ok else 'FAILED: ' + d.error}")
        return "\n".join(lines)


class NothingToValidate(StratposError, RuntimeError):
    """No reconciliation relation exists yet (``stratpos transform`` never ran on this warehouse):
    not a reconciliation failure — its own exit code, nothing written, nobody alerted."""

    exit_code = 4

    def __init__(self, warehouse: str):
        super().__init__(f"nothing to validate yet — run stratpos transform first ({warehouse})")


class ValidationFailed(RuntimeError):
    """A ``fail`` check failed; ``report`` holds the run (its mismatches are in ``audit.dq_alerts``)."""

    def __init__(self, report: ValidationReport):
        names = ", ".join(f"{r.check.check_id} {r.check.name}" for r in report.failed)
        super().__init__(f"reconciliation failed ({names}); run {report.run_id}, see audit.dq_alerts")
        self.report = report


def _num(value: Decimal | None) -> str:
    """A decimal as plain digits without trailing zeros (``0.024``, not ``0.024000000000000000``)."""
    return "null" if value is None else format(Decimal(value).normalize(), "f")


def new_validation_run_id() -> str:
    from stratpos.core.runid import new_run_id

    return f"validate-{new_run_id()}"


# --------------------------------------------------------------------------------------------- warehouse
def _relation(settings: Settings, name: str) -> str:
    schema = settings.schema("audit")
    return f'"{schema}"."{name}"' if settings.target == "duckdb" else f"`{schema}`.`{name}`"


def _read_mismatches(cur, settings: Settings, check: Check) -> list[Mismatch]:
    cols = ", ".join(MISMATCH_COLUMNS)
    cur.execute(f"select {cols} from {_relation(settings, check.relation)}")
    return [Mismatch(*row) for row in cur.fetchall()]


def read_relations(settings: Settings, checks: list[Check]) -> dict[str, list[Mismatch] | Exception]:
    """Every check's mismatch rows, or the error that prevented reading them (e.g. not built yet)."""
    out: dict[str, list[Mismatch] | Exception] = {}
    if settings.target == "duckdb":
        import duckdb

        with duckdb_connection(settings) as con:
            for check in checks:
                try:
                    out[check.check_id] = _read_mismatches(con.cursor(), settings, check)
                except duckdb.Error as exc:
                    out[check.check_id] = exc
    else:
        import pymysql

        with mysql_connection(settings) as con:
            for check in checks:
                try:
                    with con.cursor() as cur:
                        out[check.check_id] = _read_mismatches(cur, settings, check)
                except pymysql.MySQLError as exc:
                    out[check.check_id] = exc
    return out


def write_alert_rows(settings: Settings, run_id: str, results: list[CheckResult], at: datetime) -> int:
    """Replace this run's rows of ``audit.dq_alerts`` with its mismatches (and checks that could not run)."""
    rows = []
    naive = at.astimezone(UTC).replace(tzinfo=None)
    for r in results:
        for m in r.mismatches:
            rows.append(
                (run_id, m.check_id, m.check_key[:255], m.measure, m.check_name, m.severity, m.expected, m.observed,
                 m.diff, m.tolerance, m.detail, settings.target, naive)
            )  # fmt: skip
        if r.error:
            rows.append(
                (run_id, r.check.check_id, "*", "error", r.check.name, "fail", None, None, None, None, r.error[:2000],
                 settings.target, naive)
            )  # fmt: skip
    table = DQ_ALERTS.qualified(settings)
    cols = ", ".join(DQ_ALERTS.column_names)
    ensure_schemas(settings)
    if settings.target == "duckdb":
        with duckdb_connection(settings) as con:
            con.execute(DQ_ALERTS.ddl(settings))
            con.execute("begin transaction")
            try:
                con.execute(f"delete from {table} where run_id = ?", [run_id])
                if rows:
                    marks = ", ".join("?" for _ in DQ_ALERTS.columns)
                    con.executemany(f"insert into {table} ({cols}) values ({marks})", rows)
                con.execute("commit")
            except Exception:
                con.execute("rollback")
                raise
    else:
        with mysql_connection(settings) as con:
            with con.cursor() as cur:
                cur.execute(DQ_ALERTS.ddl(settings))
            con.begin()
            try:
                with con.cursor() as cur:
                    cur.execute(f"delete from {table} where run_id = %s", (run_id,))
                    if rows:
                        marks = ", ".join("%s" for _ in DQ_ALERTS.columns)
                        cur.executemany(f"insert into {table} ({cols}) values ({marks})", rows)
                con.commit()
            except Exception:
                con.rollback()
                raise
    return len(rows)


# --------------------------------------------------------------------------------------------- the run
def _frames(read: dict[str, list[Mismatch] | Exception]) -> dict:
    import pandas as pd

    frames = {}
    for check_id, rows in read.items():
        records = [] if isinstance(rows, Exception) else [astuple(m) for m in rows]
        frames[check_id] = pd.DataFrame.from_records(records, columns=list(MISMATCH_COLUMNS))
    return frames


def run_validation(
    settings: Settings,
    *,
    run_id: str | None = None,
    send_alerts: bool = True,
    channels: list | None = None,
    docs_dir: Path | None = DEFAULT_DOCS_DIR,
    checks: list[Check] | None = None,
) -> ValidationReport:
    """Validate the reconciliation relations, record the mismatches and alert; returns the report.

    ``channels`` overrides the alert channels of the configuration (:func:`stratpos.alerts.load_channels`);
    ``docs_dir=None`` skips the data docs.
    """
    from expectations.checkpoint import run_checkpoint

    checks = list(CHECKS if checks is None else checks)
    run_id = run_id or new_validation_run_id()
    started = datetime.now(UTC)
    read = read_relations(settings, checks)
    missing = [c for c in checks if isinstance(read[c.check_id], Exception)]
    if checks and len(missing) == len(checks):
        # no reconciliation relation at all: the warehouse was never transformed — not a failure
        raise NothingToValidate(settings.describe())
    gx_checks = [c for c in checks if c not in missing]
    outcome = run_checkpoint(
        _frames({c.check_id: read[c.check_id] for c in gx_checks}),
        checks=gx_checks,
        docs_dir=settings.gx_docs_path if docs_dir is DEFAULT_DOCS_DIR else docs_dir,  # beside the warehouse
        run_name=run_id,
    )

    results = []
    for check in checks:
        rows = read[check.check_id]
        if isinstance(rows, Exception):
            error = f"cannot read {_relation(settings, check.relation)} (run `stratpos transform`?): {rows}"
            results.append(CheckResult(check, FAILED, [], [], error.replace("\n", " ")[:500]))
            continue
        gx = outcome.outcomes[check.check_id]  # GX alone decides the status; the rows are for the record
        results.append(CheckResult(check, gx.status, rows, gx.reasons))

    report = ValidationReport(run_id, settings.target, started, results, outcome.docs_index)
    written = write_alert_rows(settings, run_id, results, started)
    log.debug("validation %s: %s, %d rows in audit.dq_alerts", run_id, report.status, written)

    if send_alerts:
        from stratpos.alerts import load_channels, notify_changes

        if channels is None:
            channels = load_channels(settings)
        report.deliveries = notify_changes(settings, report, channels, now=started)
    return report
