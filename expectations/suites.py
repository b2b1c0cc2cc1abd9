"""Expectation suites of the reconciliation checks: one suite per check, the same on every warehouse.

A mismatch relation is a list of reasons why a check does not hold. Its suite asserts:

1. the relation has exactly the mismatch columns (a contract the alerts rely on) — fail;
2. no row has severity ``fail`` — fail (the check's failing mismatches);
3. the relation is empty — warn (mismatches that are only warnings, e.g. R8).

Each expectation carries GX's native severity (``critical`` for 1 and 2, ``warning`` for 3):
GX's validation result is the single source of a check's status — :func:`check_status` maps its
worst failed severity (``get_max_severity_failure``) to passed / warned / failed, nothing else.
"""

from __future__ import annotations

from typing import Any

from expectations.checks import CHECKS, MISMATCH_COLUMNS, Check

PASSED, WARNED, FAILED = "passed", "warned", "failed"


def reconciliation_suite(check: Check):
    """The ExpectationSuite of one check (a new GX object on every call)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    suite = gx.ExpectationSuite(
        name=check.suite_name,
        meta={"check_id": check.check_id, "severity": check.severity, "tolerance": check.tolerance},
    )
    suite.add_expectation(
        gxe.ExpectTableColumnsToMatchSet(
            column_set=list(MISMATCH_COLUMNS),
            exact_match=True,
            severity=FailureSeverity.CRITICAL,
            meta={"rule": "the relation has the mismatch columns"},
        )
    )
    suite.add_expectation(
        gxe.ExpectColumnValuesToNotBeInSet(
            column="severity",
            value_set=["fail"],
            severity=FailureSeverity.CRITICAL,
            meta={"rule": f"{check.check_id}: {check.title}"},
        )
    )
    suite.add_expectation(
        gxe.ExpectTableRowCountToEqual(
            value=0,
            severity=FailureSeverity.WARNING,
            meta={"rule": f"{check.check_id} has no mismatches, not even warnings"},
        )
    )
    return suite


def all_suites() -> list:
    """Every check's suite, R1 … R9."""
    return [reconciliation_suite(c) for c in CHECKS]


def check_status(validation_result: Any) -> tuple[str, list[str]]:
    """passed / warned / failed for one suite's validation result, with the reasons.

    The status is GX's: its worst failed severity (``critical`` → failed, ``warning`` or ``info``
    → warned); success → passed. An expectation that raised (e.g. the relation is missing) did
    not succeed and counts with its own severity — the column-set expectation is critical.
    """
    from great_expectations.expectations.metadata_types import FailureSeverity

    reasons: list[str] = []
    for r in validation_result.results:
        if r.success:
            continue
        config = r.expectation_config
        raised = _raised(r.exception_info)
        if raised:
            reasons.append(f"{config.type} raised: {raised[0].get('exception_message', '')[:300]}")
        else:
            reasons.append(f"{config.type}: {(config.meta or {}).get('rule', '')}")
    if validation_result.success:
        return PASSED, reasons
    worst = validation_result.get_max_severity_failure()
    return (FAILED if worst in (FailureSeverity.CRITICAL, None) else WARNED), reasons


def _raised(exception_info: Any) -> list[dict]:
    """Exceptions an expectation raised: GX reports one dict, or one dict per metric."""
    if not isinstance(exception_info, dict):
        return []
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    return [e for e in infos if isinstance(e, dict) and e.get("raised_exception")]
