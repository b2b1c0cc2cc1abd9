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

import contextlib
import ctypes
import json
import logging
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from ingestion.batch import Batch, BatchStats, Oversized, new_run_id, read_lines
from ingestion.store import RawStore
from stratpos.core.settings import Settings

log = logging.getLogger(__name__)

# load order: accounts and signals first so that a partial load is still coherent
REPLAY_SOURCES = (
    ("symbols", "symbols.jsonl"),  # exchangeInfo symbols[] (margin assets), our extension of §3.4
    ("signals", "signals.jsonl"),
    ("order_links", "order_links.jsonl"),
    ("futures_orders", "futures_orders.jsonl"),
    ("futures_algo_orders", "futures_algo_orders.jsonl"),
    ("futures_trades", "futures_trades.jsonl"),
    ("position_risk", "position_risk.jsonl"),
    ("income", "income.jsonl"),
    ("balances", "balances.jsonl"),
    ("klines", "klines.jsonl"),
)
DEFAULT_BATCH = 50_000
PARALLEL_MIN_BYTES = 64 * 1024 * 1024  # replays smaller than this load in one process
MAX_WORKERS = 2


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


def default_workers(directory: Path) -> int:
    """Worker processes worth starting for ``directory``: none for small replays (start-up costs more)."""
    size = sum(p.stat().st_size for _, name in REPLAY_SOURCES if (p := directory / name).exists())
    return 0 if size < PARALLEL_MIN_BYTES else max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def load_replay(
    directory: Path,
    settings: Settings,
    *,
    batch_size: int = DEFAULT_BATCH,
    run_id: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    store: RawStore | None = None,
    workers: int | None = None,
) -> list[BatchStats]:
    """Load every file of ``directory``; returns one summed :class:`BatchStats` per source.

    ``workers``: processes that parse and validate batches while this one merges them
    (0: all in this process; None: chosen by the replay's size, see :func:`default_workers`).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ReplayError(f"{directory} is not a directory")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be 0 or more, got {workers}")
    run_id = run_id or new_run_id()
    account = read_account(directory)
    own = store is None
    store = store or RawStore(settings)
    results: list[BatchStats] = []
    workers = default_workers(directory) if workers is None else workers
    pool = None
    failed = True
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
        if workers:
            # forkserver: workers start from a clean process, not a copy of one holding warehouse connections;
            # each worker dies with its parent (see _die_with_parent)
            pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_die_with_parent,
                initargs=(os.getpid(),),
            )
        with _signals_end_the_load() if pool is not None else contextlib.nullcontext():
            for kind, filename in REPLAY_SOURCES:
                path = directory / filename
                if not path.exists():
                    continue
                loader = _FileLoad(store, kind, path, account_id, run_id, batch_size, progress, pool, workers)
                results.append(loader.run())
        failed = False
    finally:
        if pool is not None:
            if failed:  # interrupted or failed: the workers' batches are not wanted any more
                _stop_workers(pool)
            pool.shutdown(wait=not failed, cancel_futures=True)
        if own:
            store.close()
    return results


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(loader_pid: int) -> None:
    """Worker initializer: the worker exits as soon as the loading process ``loader_pid`` is gone.

    A worker's parent is the forkserver, which cannot notice the loader's death while workers live (each
    holds the forkserver's liveness pipe): so each worker watches the loader itself — on Linux through a
    pidfd (readable when the process exits, even on SIGKILL), elsewhere by polling — and also asks the
    kernel (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill it if the forkserver goes first.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        fd = os.pidfd_open(loader_pid)
    except (AttributeError, OSError):  # no pidfd (not Linux >= 5.3), or the loader is gone already
        fd = None
    threading.Thread(target=_exit_with, args=(loader_pid, fd), name="stratpos-loader-watch", daemon=True).start()


def _exit_with(pid: int, fd: int | None) -> None:
    if fd is not None:
        select.select([fd], [], [])  # readable once the process has exited
    else:
        while _alive(pid):
            time.sleep(1)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _signals_end_the_load():
    """While workers run, SIGTERM ends the load like Ctrl-C (SIGINT) does: an exception unwinds it, so
    ``load_replay`` stops the workers (only the main thread can set handlers; elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes now (a load that failed or was interrupted)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.terminate()


def _prepare(
    kind: str, source: str, account_id: str, run_id: str, batch_no: int, lines: list[bytes | Oversized]
) -> Batch:
    """Worker side: parse and validate lines into a sealed batch."""
    batch = Batch(kind, source, account_id, run_id, batch_no)
    for line in lines:
        batch.add_line(line)
    return batch.seal()


class _FileLoad:
    """One file in batches of ``batch_size`` records, one transaction each, in file order.

    Without a pool, this process parses a batch and a background thread commits the previous
    one (validation holds the GIL; DuckDB and the MySQL client release it while they work).
    With a pool, worker processes parse and validate up to ``workers`` batches ahead while
    this process merges them. Either way batches commit one at a time and in file order; a
    failed commit stops the file and its error is raised here (batches parsed after it are
    dropped: nothing of them was written, a re-run loads them). The stats' seconds are the
    file's wall time, commits included.
    """

    def __init__(self, store, kind, path: Path, account_id, run_id, batch_size, progress, pool, workers):
        self.store, self.kind, self.path = store, kind, path
        self.account_id, self.run_id, self.batch_size = account_id, run_id, batch_size
        self.progress, self.pool, self.workers = progress, pool, workers
        self.source = f"replay:{path.parent.name}/{path.name}"
        self.size = path.stat().st_size
        self.total = BatchStats(kind)
        self.batch_no = 0
        self.pending: deque[tuple[Future, int]] = deque()  # (future of a batch or its stats, bytes read up to it)

    def run(self) -> BatchStats:
        started = time.perf_counter()
        with (
            self.store.load_lock(self.source),
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="stratpos-commit") as committer,
        ):
            self.committer = committer
            try:
                self._read()
                while self.pending:
                    self._settle()
            finally:
                for future, _ in self.pending:  # an error: cancel what is queued, let a running commit end
                    future.cancel()
                for future, _ in self.pending:
                    if not future.cancelled():
                        future.exception()
        self.total.seconds = time.perf_counter() - started
        if self.progress:
            self.progress(self.kind, self.size, self.size)
        log.info(self.total.summary())
        return self.total

    def _read(self) -> None:
        lines: list[bytes] = []
        batch = None if self.pool else self._new_batch()
        done = 0
        with open(self.path, "rb") as fh:
            for size, line in read_lines(fh):  # a line over the limit comes as Oversized, never whole
                done += size
                if not isinstance(line, Oversized) and not line.strip():
                    continue
                if batch is None:
                    lines.append(line)
                    if len(lines) >= self.batch_size:
                        self._submit_lines(lines, done)
                        lines = []
                else:
                    batch.add_line(line)
                    if len(batch) >= self.batch_size:
                        self._submit_batch(batch, done)
                        batch = self._new_batch()
        if batch is None and (lines or self.batch_no == 0):
            self._submit_lines(lines, done)
        elif batch is not None and (len(batch) or self.batch_no == 0):
            self._submit_batch(batch, done)

    def _new_batch(self) -> Batch:
        return Batch(self.kind, self.source, self.account_id, self.run_id, self.batch_no)

    def _submit_lines(self, lines: list[bytes], done: int) -> None:
        while len(self.pending) > self.workers:  # bounded look-ahead: memory stays flat
            self._settle()
        args = (self.kind, self.source, self.account_id, self.run_id, self.batch_no)
        self.pending.append((self.pool.submit(_prepare, *args, lines), done))
        self.batch_no += 1

    def _submit_batch(self, batch: Batch, done: int) -> None:
        while self.pending:
            self._settle()
        self.pending.append((self.committer.submit(batch.commit, self.store), done))
        self.batch_no += 1

    def _settle(self) -> None:
        """Wait for the oldest batch: commit it if a worker prepared it, count its stats."""
        future, done = self.pending.popleft()
        result = future.result()
        stats = result.commit(self.store) if isinstance(result, Batch) else result
        self.total.add(stats)
        if self.progress:
            self.progress(self.kind, done, self.size)
