"""Great Expectations for SPEC §5: one suite per reconciliation check, and the checkpoint that runs them.

The reconciliation rules themselves are dbt models of mismatch rows
(``dbt_project/models/reconciliation``, schema ``{prefix}audit``); the suites here assert
that those relations hold no failing rows and report them. Importing this package does
not import Great Expectations: GX objects are built when a run starts.
"""

from expectations.checks import CHECKS, MISMATCH_COLUMNS, Check, check_by_id

__all__ = ["CHECKS", "MISMATCH_COLUMNS", "Check", "check_by_id"]
