"""Load a replay directory (SPEC §3.4) into the raw layer.

Files are streamed in batches (``batch_size`` lines each, one transaction per batch),
so a million fills need a bounded amount of memory, and a failed batch can simply be
re-run: loads are idempotent by primary key.

``account.json`` is loaded first (into ``raw.accounts``); its ``account_id`` is the
account of every record of the directory. An ``account.json`` that is not a valid
account object is quarantined and the load stops with :class:`ReplayError`, since the
account of every other record would be a guess.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from ingestion.batch import Batch, BatchStats, new_run_id
from ingestion.store import RawStore
from stratpos.config import Settings

log = logging.getLogger(__name__)

# load order: accounts and signals first so that a partial load is still coherent
REPLAY_SOURCES = (
    ("signals", "signals.jsonl"),
    ("order_links", "order_links.jsonl"),
    ("futures_orders", "futures_orders.jsonl"),
    ("futures_algo_orders", "futures_algo_orders.jsonl"),
    ("futures_trades", "futures_trades.jsonl"),
    ("position_risk", "position_risk.jsonl"),
    ("income", "income.jsonl"),
)
DEFAULT_BATCH = 50_000


class ReplayError(ValueError):
    """The directory is not a usable replay directory; the message says why."""


def read_account(directory: Path) -> dict:
    path = directory / "account.json"
    if not path.exists():
        return {"account_id": "default", "position_mode": "hedge"}
    try:
        account = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(account, dict):
        raise ReplayError(f"{path} must hold a JSON object, got {type(account).__name__}")
    return account


def load_replay(
    directory: Path,
    settings: Settings,
    *,
    batch_size: int = DEFAULT_BATCH,
    run_id: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    store: RawStore | None = None,
) -> list[BatchStats]:
    """Load every file of ``directory``; returns one summed :class:`BatchStats` per source."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReplayError(f"{directory} is not a directory")
    run_id = run_id or new_run_id()
    account = read_account(directory)
    own = store is None
    store = store or RawStore(settings)
    results: list[BatchStats] = []
    try:
        store.open()
        acct = Batch("account", f"replay:{directory.name}/account.json", "default", run_id)
        acct.add_object(account, json.dumps(account))
        stats = acct.commit(store)
        results.append(stats)
        if stats.quarantined:
            reason = acct.quarantined_rows[0]["reason"]
            raise ReplayError(f"{directory / 'account.json'} cannot be used (quarantined): {reason}")
        account_id = str(account["account_id"])
        for kind, filename in REPLAY_SOURCES:
            path = directory / filename
            if not path.exists():
                continue
            results.append(_load_file(store, kind, path, account_id, run_id, batch_size, progress))
    finally:
        if own:
            store.close()
    return results


def _load_file(store, kind, path: Path, account_id, run_id, batch_size, progress) -> BatchStats:
    source = f"replay:{path.parent.name}/{path.name}"
    total = BatchStats(kind)
    size = path.stat().st_size
    batch_no = 0
    batch = Batch(kind, source, account_id, run_id, batch_no)
    done = 0
    with open(path, "rb") as fh:
        for line in fh:
            done += len(line)
            if not line.strip():
                continue
            batch.add_line(line)
            if len(batch) >= batch_size:
                total.add(batch.commit(store))
                if progress:
                    progress(kind, done, size)
                batch_no += 1
                batch = Batch(kind, source, account_id, run_id, batch_no)
    if len(batch) or batch_no == 0:
        total.add(batch.commit(store))
    if progress:
        progress(kind, size, size)
    log.info(total.summary())
    return total
