"""The reconciliation checks of SPEC §5: what each one compares, its severity and tolerance.

Each check is a dbt model in ``dbt_project/models/reconciliation`` that selects one row per
mismatch with the columns of :data:`MISMATCH_COLUMNS`; an empty relation means the check
holds. This registry is the one place the Python side learns the checks' names.
"""

from __future__ import annotations

from dataclasses import dataclass

# the columns every mismatch relation has, in this order
MISMATCH_COLUMNS = (
    "check_id",
    "check_name",
    "severity",
    "check_key",
    "measure",
    "expected",
    "observed",
    "diff",
    "tolerance",
    "detail",
)
SEVERITIES = ("fail", "warn")


@dataclass(frozen=True)
class Check:
    check_id: str
    name: str
    severity: str
    title: str
    tolerance: str

    @property
    def relation(self) -> str:
        """The dbt model (in the audit schema) that holds this check's mismatch rows."""
        return f"recon_{self.check_id.lower()}_{self.name}"

    @property
    def suite_name(self) -> str:
        """``<layer>.<entity>``: the audit relation the suite validates."""
        return f"audit.{self.relation}"


CHECKS: tuple[Check, ...] = (
    Check(
        "R1",
        "fill_coverage",
        "fail",
        "each fill's allocations sum to its quantity; no allocation without a fill",
        "1e-9",
    ),
    Check(
        "R2",
        "open_quantity",
        "fail",
        "per key, the open quantity of its strategy positions (buckets included) = exchange current quantity",
        "1e-9",
    ),
    Check(
        "R3",
        "exchange_positions",
        "fail",
        "latest positionRisk positionAmt / entryPrice = our quantity / average entry price",
        "qty 1e-9, price 1e-6 relative",
    ),
    Check(
        "R4",
        "episode_realized_pnl",
        "fail",
        "per episode, our average-rule realized PnL = Σ Binance realizedPnl",
        "1e-8 per fill",
    ),
    Check(
        "R5",
        "pnl_identity",
        "fail",
        "per key at mark M, Σ strategy (realized + unrealized) = exchange realized + unrealized",
        "1e-8 per fill",
    ),
    Check(
        "R6",
        "commission",
        "fail",
        "allocated commission = fill commission, signed (per fill, per asset, margin-asset fees per symbol)",
        "1e-9",
    ),
    Check(
        "R7",
        "income",
        "fail",
        "per symbol and UTC day, fill realizedPnl / signed commission = REALIZED_PNL / −COMMISSION income",
        "1e-8 per fill",
    ),
    Check(
        "R8",
        "linkage",
        "warn",
        "unattributed volume, over-closes, signals without fills, order side vs signal side",
        "—",
    ),
    Check(
        "R9",
        "wallet_balance",
        "fail",
        "per account and asset, Δ wallet balance between consecutive balance snapshots = Σ income between them",
        "1e-8",
    ),
)


def check_by_id(check_id: str) -> Check:
    """The check named ``check_id`` (``R1`` … ``R9``, case-insensitive)."""
    for check in CHECKS:
        if check.check_id == check_id.upper():
            return check
    raise KeyError(f"unknown check {check_id!r}; checks are {', '.join(c.check_id for c in CHECKS)}")
