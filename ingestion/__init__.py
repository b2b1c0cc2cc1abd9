"""Ingestion: every source into the raw layer exactly once (SPEC §3)."""
