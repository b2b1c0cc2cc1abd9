"""History older than Binance's retention, from Binance's own asynchronous exports (SPEC §3.2, issue 12).

Binance serves userTrades for 6 months, orders for 90 days and income for 3 months. Older history comes from the
USD-M "download" endpoints (python-binance ``Client.futures_v1_get_{income,order,trade}_asyn`` and ``..._asyn_id``):

* ``GET /fapi/v1/income/asyn``, ``/fapi/v1/order/asyn``, ``/fapi/v1/trade/asyn`` (startTime, endTime at most one
  year apart; weight 1000; "Request Limitation is 5 times per month" for income and trades, 10 for orders)
  answer ``{"avgCostTimestampOfLast30d", "downloadId"}``;
* ``GET .../asyn/id?downloadId=`` (weight 10) answers ``{"downloadId", "status": "completed"|"processing",
  "url", "notified", "expirationTimestamp", "isExpired"}`` — the link expires after 24 h.

:func:`request_export` and :func:`export_link` call them; :func:`download` saves the file. Binance does not document
the file's columns; stratpos reads CSV files whose header names the fields of the matching REST record
(``userTrades``, ``allOrders`` / ``allAlgoOrders`` — a row with an ``algoId`` is a conditional order — and
``income``), which is what the paper exchange's export renders. :func:`load_export_files` (``stratpos ingest
export FILE…``) loads them into the same raw tables as the API, through the same :class:`~ingestion.batch.Batch`
(validation, quarantine with the reason, de-duplication against stored rows): loading a file twice loads nothing
the second time. Cells are typed back from the record models (ids and times as integers, flags as booleans,
decimals as the exact strings Binance sends); an empty cell is an absent field, except for a text field.
"""

from __future__ import annotations

import csv
import io
import logging
import time
import types
import typing
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from ingestion.batch import Batch, BatchStats, new_run_id
from ingestion.binance_client import BinanceApi, BinanceIngestError
from ingestion.records import KINDS
from ingestion.store import RawStore
from stratpos.core.settings import Settings

log = logging.getLogger(__name__)

EXPORT_KINDS = ("income", "order", "trade")
_START = {kind: f"futures_v1_get_{kind}_asyn" for kind in EXPORT_KINDS}
_LINK = {kind: f"futures_v1_get_{kind}_asyn_id" for kind in EXPORT_KINDS}
YEAR_MS = 365 * 86_400_000
BATCH_ROWS = 50_000


class ExportError(ValueError):
    """An export file stratpos cannot read as a whole (the message is one line naming the file)."""


# ----------------------------------------------------------------------------- requesting an export
def request_export(api: BinanceApi, kind: str, start_ms: int, end_ms: int) -> str:
    """Ask Binance for an export of ``kind`` (income | order | trade) over ``[start_ms, end_ms]``; its download id."""
    if kind not in EXPORT_KINDS:
        raise ValueError(f"export kind must be one of {', '.join(EXPORT_KINDS)}")
    if not 0 <= end_ms - start_ms <= YEAR_MS:
        raise ValueError("an export spans at most one year (Binance: 'can not be longer than 1 year')")
    answer = api.call(_START[kind], startTime=start_ms, endTime=end_ms)
    download_id = answer.get("downloadId") if isinstance(answer, dict) else None
    if not download_id:
        raise BinanceIngestError(f"{kind} export: no downloadId in the answer {answer!r}"[:300])
    return str(download_id)


def export_link(
    api: BinanceApi,
    kind: str,
    download_id: str,
    *,
    poll_seconds: float = 30.0,
    timeout_seconds: float = 6 * 3600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll ``.../asyn/id`` until the export is ``completed``; its link (valid 24 h)."""
    waited = 0.0
    while True:
        answer = api.call(_LINK[kind], downloadId=download_id)
        status = answer.get("status") if isinstance(answer, dict) else None
        if status == "completed" and answer.get("url"):
            return str(answer["url"])
        if status != "processing":
            raise BinanceIngestError(f"{kind} export {download_id}: unexpected answer {answer!r}"[:300])
        if waited >= timeout_seconds:
            raise BinanceIngestError(f"{kind} export {download_id}: still processing after {waited:.0f} s")
        sleep(poll_seconds)
        waited += poll_seconds


def download(url: str, dest: Path | str, *, timeout: float = 60.0) -> Path:
    """Save the file behind an export link (a pre-signed link: no key is sent)."""
    import requests

    dest = Path(dest)
    with requests.get(url, timeout=timeout, stream=True) as resp:
        resp.raise_for_status()
        with open(dest, "wb") as fh:
            for chunk in resp.iter_content(1 << 16):
                fh.write(chunk)
    return dest


# ----------------------------------------------------------------------------- reading export files
def _base_types(annotation: Any) -> set[type]:
    """The plain types an annotation admits (through Optional, unions, Annotated and Literal)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return {str}
    if origin is typing.Annotated:
        return _base_types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: set[type] = set()
        for arg in typing.get_args(annotation):
            out |= _base_types(arg)
        return out
    return {annotation} if isinstance(annotation, type) else {str}


def _field_types(kind: str) -> dict[str, set[type]]:
    return {name: _base_types(f.annotation) for name, f in KINDS[kind].model.model_fields.items()}


_TYPES = {kind: _field_types(kind) for kind in ("futures_trades", "futures_orders", "futures_algo_orders", "income")}
_DIGITS = frozenset("0123456789")


def _cell(value: str, admitted: set[type] | None) -> tuple[bool, Any]:
    """(keep, value) of one CSV cell for a field admitting ``admitted`` (None: a field the model does not know)."""
    if admitted is None:  # kept in the payload only: typed the way JSON would have had it
        if value == "":
            return False, None
        if value in ("true", "false"):
            return True, value == "true"
        if value.lstrip("-") and set(value.lstrip("-")) <= _DIGITS and len(value) < 20:
            return True, int(value)
        return True, value
    if str in admitted:
        return (value != "" or type(None) not in admitted), value
    if value == "":
        return False, None
    if bool in admitted and value in ("true", "false"):
        return True, value == "true"
    if int in admitted and value.lstrip("-") and set(value.lstrip("-")) <= _DIGITS:
        return True, int(value)
    if Decimal in admitted:
        return True, value  # Binance sends decimals as strings
    return True, value  # anything else: the model rejects it and the row is quarantined with the reason


def file_kind(header: list[str]) -> str:
    """Which export a CSV header belongs to: income, trade or order."""
    names = set(header)
    if {"incomeType", "tranId"} <= names:
        return "income"
    if {"id", "orderId", "qty"} <= names:
        return "trade"
    if "orderId" in names or "algoId" in names:
        return "order"
    raise ExportError(
        "not a Binance trade, order or income export: the header has none of id+orderId+qty, orderId/algoId, "
        f"incomeType+tranId ({', '.join(header[:12])})"
    )


def _row_kind(file: str, row: dict[str, str]) -> str:
    if file == "income":
        return "income"
    if file == "trade":
        return "futures_trades"
    return "futures_algo_orders" if row.get("algoId") else "futures_orders"


def read_export(path: Path | str) -> tuple[str, list[tuple[str, dict[str, Any], str]]]:
    """(export kind, [(raw kind, record, CSV line as the payload)]) of one export file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: cannot read it ({exc})") from None
    lines = text.splitlines()
    if not lines:
        raise ExportError(f"{path}: empty file")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    try:
        kind = file_kind(header)
    except ExportError as exc:
        raise ExportError(f"{path}: {exc}") from None
    out = []
    for n, cells in enumerate(reader, start=2):
        if not any(cells):
            continue
        raw = dict(zip(header, cells, strict=False))
        row_kind = _row_kind(kind, raw)
        types_of = _TYPES[row_kind]
        record: dict[str, Any] = {}
        for name, value in raw.items():
            keep, typed = _cell(value, types_of.get(name))
            if keep:
                record[name] = typed
        if len(cells) != len(header):
            record["__csv_error__"] = f"line {n}: {len(cells)} cells for {len(header)} columns"
        out.append((row_kind, record, lines[n - 1] if n - 1 < len(lines) else ",".join(cells)))
    return kind, out


def _flush(store: RawStore, batches: dict[str, Batch], totals: dict[str, BatchStats], row_kind: str) -> None:
    batch = batches.pop(row_kind, None)
    if batch is not None:
        totals.setdefault(row_kind, BatchStats(row_kind)).add(batch.commit(store))


def load_export_files(
    paths: Iterable[Path | str],
    settings: Settings,
    *,
    account_id: str = "default",
    run_id: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> list[BatchStats]:
    """Load Binance export files into the raw tables (idempotent); one :class:`BatchStats` per file and kind."""
    run_id = run_id or new_run_id()
    results: list[BatchStats] = []
    with RawStore(settings) as store:
        for path in paths:
            _kind, rows = read_export(path)
            batches: dict[str, Batch] = {}
            totals: dict[str, BatchStats] = {}
            counters: dict[str, int] = {}

            for row_kind, record, line in rows:
                batch = batches.get(row_kind)
                if batch is None:
                    no = counters.get(row_kind, 0)
                    counters[row_kind] = no + 1
                    source = f"export:{account_id}:{Path(path).name}"
                    batch = batches[row_kind] = Batch(row_kind, source, account_id, run_id, no)
                error = record.pop("__csv_error__", None)
                if error:
                    batch.add_rejected(line, f"malformed CSV row ({error})")
                else:
                    batch.add_object(record, line)
                if len(batch) >= batch_rows:
                    _flush(store, batches, totals, row_kind)
            for row_kind in list(batches):
                _flush(store, batches, totals, row_kind)
            for stats in totals.values():
                log.info("export %s: %s", Path(path).name, stats.summary())
                results.append(stats)
    return results
