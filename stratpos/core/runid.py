"""Run ids: sortable by time, unique across processes (``20261130T201530-1a2b3c4d``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def new_run_id(prefix: str = "") -> str:
    """A new id: UTC time to the second, then 8 random hex digits; ``prefix`` is put in front."""
    return f"{prefix}{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
