"""A fake Binance USD-M futures REST API on loopback, serving a replay directory (SPEC §7).

The real python-binance ``Client`` talks to it unchanged (see :func:`make_client`): requests are
signed and checked exactly like Binance does (API key header, HMAC-SHA256 over the query string as
sent, ``timestamp``/``recvWindow``), endpoints apply Binance's paging rules (``limit`` caps, 7-day
windows, ``fromId``/``orderId`` paging, latest-``updateTime`` order versions), every response carries
the ``X-MBX-USED-WEIGHT-1M`` header and an exhausted weight budget answers 429 with ``Retry-After``.

Endpoints (method, path, Binance request weight): ``/fapi/v1/ping`` 1, ``/fapi/v1/time`` 1,
``/fapi/v1/exchangeInfo`` 1 (from the replay's ``symbols.jsonl`` when present), signed
``/fapi/v1/userTrades`` 5, ``/fapi/v1/allOrders`` 5, ``/fapi/v1/allAlgoOrders`` 5,
``/fapi/v2/positionRisk`` 5, ``/fapi/v3/positionRisk`` 5, ``/fapi/v1/income`` 30,
``/fapi/v1/positionSide/dual`` 30, ``/fapi/v3/balance`` 5, ``/fapi/v2/balance`` 5, public
``/fapi/v1/klines`` 1/2/5/10 by ``limit``, the key's permissions ``/sapi/v1/account/apiRestrictions`` 1
(:attr:`ServerConfig.api_restrictions`) and the asynchronous history exports ``/fapi/v1/{income,order,trade}/asyn``
1000 and ``.../asyn/id`` 10, whose links (``/_sandbox/exports/<id>.csv``) serve the paper account's records
of the requested span as CSV, retention ignored. Ids are per symbol (SPEC §3.2) and records older than
Binance's retention windows, relative to the data clock, are not served (see :class:`ServerConfig`).

Two test levers exist on top of Binance's behaviour, both reachable in-process and over unsigned
``/_sandbox/...`` admin endpoints (so a separately started ``stratpos sandbox serve`` can be driven):

* the *data clock* (``visible_until``): records later than it do not exist yet, which simulates data
  arriving late at the exchange;
* *faults*: HTTP 5xx, stalls longer than the client's timeout, truncated JSON bodies and bursts of
  ``-1021``, each for the next N requests or with a seeded probability, optionally for one path.

Two readings of Binance's documentation are switchable (:class:`ServerConfig`): whether the 7-day default window
("default the recent 7 days") also applies to a query paged only by ``orderId``/``algoId``/``fromId``
(``id_queries_windowed``), and how many records one page holds at most (``page_cap``: Binance says 1000,
python-binance documents 100 for allAlgoOrders). Every answer carries the data clock in ``X-Sandbox-Data-Clock``
(Binance sends no such header) so a client can compute retention against the paper account's "now".

Only the standard library is used for serving; the replay directory is indexed once at start-up
(:mod:`sandbox.server_data`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
import signal
import socketserver
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from sandbox.instruments import (
    INSTRUMENTS,
    PERPETUAL_DELIVERY_MS,
    QUARTERLY_RE,
    Instrument,
    exchange_info_symbol,
    instrument,
    quarterly_delivery_ms,
)
from sandbox.server_data import (
    ALGO_ORDERS_FILE,
    BALANCES_FILE,
    EXPORT_FILES,
    INCOME_FILE,
    KLINES_FILE,
    ORDERS_FILE,
    POSITION_RISK_FILE,
    TRADES_FILE,
    ReplayData,
    VersionedSeries,
    Visibility,
    as_int,
    export_records,
    parse_span,
    render_csv,
    retention_floor,
)

if TYPE_CHECKING:
    from binance.client import Client

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
DAY_MS = 86_400_000
SEVEN_DAYS_MS = 7 * DAY_MS
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
DATA_CLOCK_HEADER = "X-Sandbox-Data-Clock"
# "Get API Key Permission (USER_DATA)" response example (Binance Wallet docs), as a read-only key answers it.
READ_ONLY_RESTRICTIONS = {
    "ipRestrict": False,
    "createTime": 1698645219000,
    "enableReading": True,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "enableMargin": False,
    "enableFutures": False,
    "permitsUniversalTransfer": False,
    "enableVanillaOptions": False,
    "enableFixApiTrade": False,
    "enableFixReadOnly": True,
    "enableSpotAndMarginTrading": False,
    "enablePortfolioMarginTrading": False,
}
# Binance's own rule for `symbol` ("legal range is '^[A-Z0-9-_.]{1,20}$'"): it admits every USD-M contract
# name, e.g. quarterlies `BTCUSDT_261225`, `ETHBTC`, `1000PEPEUSDT`.
SYMBOL_RE = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
INT_RE = re.compile(r"^-?[0-9]{1,20}$")
INCOME_TYPE_RE = re.compile(r"^[A-Z_]{1,64}$")
FAULT_KINDS = ("http_5xx", "timeout", "malformed", "timestamp")
# USD-M kline intervals (Kline/Candlestick Data, "interval ENUM").
KLINE_INTERVALS = frozenset(
    ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
)

# Binance's wording for the errors the fake API produces (USD-M futures error-code page).
MSG_BAD_KEY = "Invalid API-key, IP, or permissions for action."
MSG_BAD_SIGNATURE = "Signature for this request is not valid."
MSG_RECV_WINDOW = "Timestamp for this request is outside of the recvWindow."
MSG_AHEAD = "Timestamp for this request was 1000ms ahead of the server's time."
MSG_UNKNOWN = "An unknown error occured while processing the request."
MSG_5XX = {
    -1000: MSG_UNKNOWN,
    -1001: "Internal error; unable to process your request. Please try again.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
}


class ApiError(Exception):
    """A Binance-style error answer: HTTP status plus ``{"code", "msg"}`` body."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg


@dataclass
class ServerConfig:
    """Credentials and limits of one fake exchange."""

    api_key: str = "sandbox-api-key"
    api_secret: str = "sandbox-api-secret"
    weight_limit_1m: int = 2400  # request-weight budget per minute window
    retry_after_seconds: int = 5  # sent in Retry-After on 429
    # "fixed": the counter resets at each wall-clock minute, as Binance's REQUEST_WEIGHT/MINUTE limit does;
    # "rolling": the last 60 s, which never resets mid-test (deterministic for tests).
    weight_window: Literal["fixed", "rolling"] = "fixed"
    max_recv_window_ms: int = 60_000
    default_recv_window_ms: int = 5_000  # Binance's default when the client sends no recvWindow
    max_ahead_ms: int = 1_000  # a timestamp further ahead of server time is rejected (-1021)
    timeout_fault_seconds: float = 15.0  # default stall of a "timeout" fault (python-binance waits 10 s)
    # Binance ignores parameters an endpoint does not read; set True to reject them (-1104) and catch
    # typos such as ``fromID`` in client code.
    reject_unknown_params: bool = False
    # Retention relative to the data clock: records older than this are no longer served. A span is
    # "<n>M" (calendar months), "<n>w|d|h|min|s|ms", an int of milliseconds, or None (kept forever).
    # Defaults are Binance's own (USD-M REST docs):
    # - userTrades: "Only support querying trade in the past 6 months"
    retention_trades: int | str | None = "6M"
    # - allOrders and allAlgoOrders: "These orders will not be found: ... order create time + 90 days <
    #   current time"
    retention_orders: int | str | None = "90d"
    # - ... and "order status is CANCELED or EXPIRED AND order has NO filled trade AND created time +
    #   3 days < current time"
    retention_unfilled_orders: int | str | None = "3d"
    # - income: "Income history only contains data for the last three months"
    retention_income: int | str | None = "3M"
    # The key's answer to GET /sapi/v1/account/apiRestrictions (None: a read-only key, READ_ONLY_RESTRICTIONS);
    # overrides are merged in, e.g. {"enableFutures": True} for a key that can trade.
    api_restrictions: dict[str, Any] | None = None
    # True: a userTrades/allOrders/allAlgoOrders query paged only by fromId/orderId/algoId (no startTime/endTime)
    # is still limited to the default window, the 7 days before the data clock. False: it is not.
    id_queries_windowed: bool = False
    # At most this many records per page of userTrades, allOrders, allAlgoOrders and income, whatever `limit`
    # asks (Binance: 1000; python-binance documents "max 100" for allAlgoOrders).
    page_cap: int = 1000
    # /fapi/v1/*/asyn/id answers "processing" this many times per download id before "completed".
    export_processing_polls: int = 1

    def __post_init__(self) -> None:
        for name in ("retention_trades", "retention_orders", "retention_unfilled_orders", "retention_income"):
            parse_span(getattr(self, name))  # fail at construction, not on the first request
        if self.page_cap < 1:
            raise ValueError("page_cap must be >= 1")


@dataclass
class FaultRule:
    """One switchable fault.

    ``kind``: ``http_5xx`` (answer ``status`` with a Binance -1001/-1007 style body), ``timeout`` (stall
    ``delay_seconds`` then answer normally, after the client gave up), ``malformed`` (HTTP 200 with the
    real body truncated) or ``timestamp`` (HTTP 400 ``-1021``). It fires on the next ``count`` matching
    requests, or on each with ``probability`` (drawn from ``random.Random(seed)``), or both (at most
    ``count`` times); with neither it fires on every matching request until cleared. ``path`` restricts
    it to one endpoint path, e.g. ``/fapi/v1/userTrades``.
    """

    kind: str
    count: int | None = None
    probability: float | None = None
    seed: int | None = None
    path: str | None = None
    status: int = 503
    code: int | None = None
    msg: str | None = None
    delay_seconds: float | None = None
    fired: int = field(default=0, init=False)
    _rng: random.Random = field(init=False, repr=False)
    _remaining: int | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if self.count is not None and self.count < 0:
            raise ValueError("count must be >= 0")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.kind == "http_5xx" and not 500 <= self.status <= 599:
            raise ValueError("status of an http_5xx fault must be 5xx")
        self._rng = random.Random(self.seed)
        self._remaining = self.count

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FaultRule:
        """Build a rule from a JSON object; unknown keys are an error (they are usually typos)."""
        allowed = {f.name for f in fields(cls) if f.init}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault option(s): {', '.join(sorted(unknown))}")
        return cls(**dict(spec))

    def matches(self, path: str) -> bool:
        return self.path is None or self.path == path

    def fire(self) -> bool:
        """Decide (and record) whether this rule hits the current request; caller holds the lock."""
        if self._remaining is not None and self._remaining <= 0:
            return False
        if self.probability is not None and self._rng.random() >= self.probability:
            return False
        if self._remaining is not None:
            self._remaining -= 1
        self.fired += 1
        return True

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        out["remaining"] = self._remaining
        return out


class WeightMeter:
    """Request weight used in the current minute window (thread-safe)."""

    def __init__(self, limit: int, window: str, period_s: float = 60.0) -> None:
        if window not in ("fixed", "rolling"):
            raise ValueError("weight_window must be 'fixed' or 'rolling'")
        self.limit = limit
        self.window = window
        self.period_s = period_s
        self._lock = threading.Lock()
        self._bucket = -1
        self._used = 0
        self._events: deque[tuple[float, int]] = deque()

    def _refresh(self, now: float) -> None:
        if self.window == "fixed":
            bucket = int(now // self.period_s)
            if bucket != self._bucket:
                self._bucket, self._used = bucket, 0
        else:
            while self._events and self._events[0][0] <= now - self.period_s:
                self._used -= self._events.popleft()[1]

    def consume(self, weight: int) -> tuple[bool, int]:
        """Spend ``weight`` if the budget allows; returns (allowed, weight used in the window)."""
        with self._lock:
            now = time.time()
            self._refresh(now)
            if self._used + weight > self.limit:
                return False, self._used
            self._used += weight
            if self.window == "rolling":
                self._events.append((now, weight))
            return True, self._used

    def used(self) -> int:
        with self._lock:
            self._refresh(time.time())
            return self._used

    def reset(self) -> None:
        with self._lock:
            self._used = 0
            self._events.clear()


@dataclass
class Response:
    """What the HTTP handler writes back."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    weight: int = 0


class Params:
    """Decoded request parameters with Binance's validation errors."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.values: dict[str, str] = {}
        for key, value in pairs:
            if key in self.values:
                raise ApiError(400, -1101, "Duplicate values for a parameter detected.")
            self.values[key] = value
        self.read: set[str] = {"timestamp", "recvWindow", "signature"}

    def has(self, name: str) -> bool:
        return name in self.values

    def text(self, name: str, *, mandatory: bool = False) -> str | None:
        self.read.add(name)
        value = self.values.get(name)
        if value is None or value == "":
            if mandatory:
                raise ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
            if value == "":
                raise ApiError(400, -1105, f"Parameter '{name}' was empty.")
            return None
        return value

    def integer(self, name: str, *, mandatory: bool = False) -> int | None:
        value = self.text(name, mandatory=mandatory)
        if value is None:
            return None
        if not INT_RE.match(value):
            raise ApiError(
                400,
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
            )
        return int(value)

    def unread(self) -> list[str]:
        return sorted(set(self.values) - self.read)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _error_body(code: int, msg: str) -> bytes:
    return _json({"code": code, "msg": msg})


def _json_array(lines: list[bytes]) -> bytes:
    """Splice stored JSON lines into an array without re-encoding (keeps decimals byte-exact)."""
    return b"[" + b",".join(lines) + b"]"


@dataclass(frozen=True)
class Route:
    """One endpoint: handler, Binance request weight and whether it is SIGNED (USER_DATA).

    ``weight_by`` computes a weight that depends on the request (klines: by ``limit``) from the raw
    query parameters, before they are validated; ``weight`` is the fallback.
    """

    handler: Callable[[SandboxServer, Params], Any]
    weight: int
    signed: bool
    weight_by: Callable[[dict[str, str]], int] | None = None

    def weight_of(self, query: str) -> int:
        if self.weight_by is None:
            return self.weight
        return self.weight_by(dict(parse_qsl(query, keep_blank_values=True)))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stalled "timeout" fault must never block shutdown
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can hang offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like python-binance's requests.Session expects
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK adds ~40 ms to
    # every keep-alive request.
    disable_nagle_algorithm = True
    server_version = "stratpos-sandbox"
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            resp = Response(400, _error_body(-1100, "Illegal characters found in a parameter."))
            self.close_connection = True
        else:
            body = self.rfile.read(length) if length else b""
            resp = self.server.sandbox.dispatch(self.command, self.path, self.headers, body)
        try:
            self.send_response(resp.status)
            headers = {"Content-Type": "application/json;charset=UTF-8", **resp.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            self.wfile.write(resp.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. after a "timeout" fault); nothing left to answer.
            self.close_connection = True
        # Log the path only: the query string carries the signature.
        log.info("%s %s %s %s", self.command, urlsplit(self.path).path, resp.status, resp.weight)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes the request line (query string with signature) to stderr; we log ourselves.
        return


class SandboxServer:
    """The fake exchange: serves ``data_dir`` on ``host:port`` from a background thread."""

    def __init__(
        self,
        data_dir: Path | str,
        host: str = "127.0.0.1",
        port: int = 0,
        config: ServerConfig | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.config = config or ServerConfig()
        self.weights = WeightMeter(self.config.weight_limit_1m, self.config.weight_window)
        self._data: ReplayData | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._faults: list[FaultRule] = []
        self._visible_until: int | None = None
        self._trades_by_order: dict[str, dict[int, list[tuple[int, int]]]] = {}
        self._exchange_symbols: list[dict[str, Any]] = []
        self._listed: frozenset[str] = frozenset()
        self._exports: dict[str, dict[str, Any]] = {}  # downloadId -> kind, span, polls

    # -- lifecycle -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (point python-binance at ``url + "/fapi"``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def data(self) -> ReplayData:
        if self._data is None:
            raise RuntimeError("server not started")
        return self._data

    def start(self) -> SandboxServer:
        """Index the replay directory, bind the socket and serve from a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        started = time.monotonic()
        self._data = ReplayData(self.data_dir)
        self._exchange_symbols = self._build_exchange_symbols()
        self._listed = frozenset(s["symbol"] for s in self._exchange_symbols)
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sandbox-server",
            daemon=True,
        )
        self._thread.start()
        log.info(
            "sandbox exchange serving %s at %s (%s; indexed in %.1fs)",
            self.data_dir,
            self.url,
            ", ".join(f"{k}={v}" for k, v in self._data.counts().items()),
            time.monotonic() - started,
        )
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled "timeout" faults and release the replay files."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._data is not None:
            self._data.close()
            self._data = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test levers ---------------------------------------------------------------------------------

    def set_faults(self, *rules: FaultRule | Mapping[str, Any], **kw: Any) -> list[FaultRule]:
        """Replace every fault rule. ``set_faults(kind="http_5xx", count=2)`` installs one rule; pass
        several :class:`FaultRule` objects or dicts positionally for more. Returns the installed rules."""
        built = [r if isinstance(r, FaultRule) else FaultRule.from_dict(r) for r in rules]
        if kw:
            built.append(FaultRule.from_dict(kw))
        with self._lock:
            self._faults = built
        return built

    def add_fault(self, **kw: Any) -> FaultRule:
        """Append one fault rule to the installed ones."""
        rule = FaultRule.from_dict(kw)
        with self._lock:
            self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        with self._lock:
            self._faults = []

    def faults(self) -> list[dict[str, Any]]:
        """The installed rules with how often each fired."""
        with self._lock:
            return [r.to_dict() for r in self._faults]

    def set_visible_until(self, ms: int | None) -> None:
        """Set the data clock: records later than ``ms`` are invisible. ``None`` restores the default
        (the latest time in the data)."""
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int)):
            raise ValueError("visible_until must be an int (epoch ms) or None")
        with self._lock:
            self._visible_until = ms

    @property
    def visible_until(self) -> int:
        """The effective data clock in epoch ms."""
        with self._lock:
            override = self._visible_until
        if override is not None:
            return override
        latest = self._data.max_time if self._data is not None else None
        return latest if latest is not None else int(time.time() * 1000)

    def retention_floors(self) -> dict[str, int | None]:
        """Per dataset, the earliest time still served at the data clock (Binance's retention)."""
        orders = self._visibility(ORDERS_FILE)
        return {
            "trades": self._visibility(TRADES_FILE).floor,
            "orders": orders.floor,
            "unfilled_canceled_orders": orders.unfilled_floor,
            "income": self._visibility(INCOME_FILE).floor,
        }

    def reset_weight(self) -> None:
        """Forget the request weight used so far."""
        self.weights.reset()

    def state(self) -> dict[str, Any]:
        """What the admin ``GET /_sandbox/state`` reports."""
        with self._lock:
            override = self._visible_until
        return {
            "url": self.url,
            "data_dir": str(self.data_dir),
            "visible_until": self.visible_until,
            "visible_until_override": override,
            "data_max_time": self._data.max_time if self._data else None,
            "used_weight": self.weights.used(),
            "weight_limit_1m": self.config.weight_limit_1m,
            "faults": self.faults(),
            "counts": self._data.counts() if self._data else {},
            # The earliest record time each dataset still serves at the current clock (None: no limit).
            "retention_floors": self.retention_floors(),
        }

    # -- request handling ----------------------------------------------------------------------------

    def dispatch(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one HTTP request; never raises (errors become Binance-style JSON)."""
        split = urlsplit(target)
        path, query = split.path, split.query
        if path.startswith("/_sandbox/exports/") and method == "GET":
            return self._export_file(path)
        if path.startswith("/_sandbox/"):
            return self._admin(method, path, body)
        route = ROUTES.get((method, path))
        weight = route.weight_of(query) if route else 1
        allowed, used = self.weights.consume(weight)
        if not allowed:
            limit = self.config.weight_limit_1m
            msg = (
                f"Too many requests; current limit is {limit} requests per minute. "
                "Please use the websocket for live updates to avoid polling the API."
            )
            return Response(
                429,
                _error_body(-1003, msg),
                {WEIGHT_HEADER: str(used), "Retry-After": str(self.config.retry_after_seconds)},
                0,
            )
        hdrs = {WEIGHT_HEADER: str(used), DATA_CLOCK_HEADER: str(self.visible_until)}
        if route is None:
            return Response(404, _error_body(-1099, "Not found, unauthenticated, or unauthorized."), hdrs, weight)

        fault = self._pick_fault(path)
        if fault is not None and fault.kind == "http_5xx":
            code = fault.code if fault.code is not None else (-1007 if fault.status == 504 else -1001)
            msg = fault.msg or MSG_5XX.get(code, MSG_UNKNOWN)
            return Response(fault.status, _error_body(code, msg), hdrs, weight)
        if fault is not None and fault.kind == "timestamp":
            return Response(400, _error_body(fault.code or -1021, fault.msg or MSG_RECV_WINDOW), hdrs, weight)
        if fault is not None and fault.kind == "timeout":
            delay = fault.delay_seconds if fault.delay_seconds is not None else self.config.timeout_fault_seconds
            # Interruptible, so stop() does not wait for stalled handlers.
            self._stopping.wait(delay)

        try:
            params = Params(parse_qsl(query, keep_blank_values=True) + self._form(headers, body))
            if route.signed:
                self._authenticate(headers, query, body, params)
            result = route.handler(self, params)
            if self.config.reject_unknown_params and params.unread():
                raise ApiError(
                    400,
                    -1104,
                    f"Not all sent parameters were read; read '{len(params.read & set(params.values))}' "
                    f"parameter(s) but was sent '{len(params.values)}'.",
                )
            payload = result if isinstance(result, bytes) else _json(result)
            status = 200
        except ApiError as exc:
            status, payload = exc.status, _error_body(exc.code, exc.msg)
        except Exception:
            # Never leak a traceback to the client; keep it in the server log.
            log.exception("sandbox: unhandled error for %s %s", method, path)
            status, payload = 500, _error_body(-1000, MSG_UNKNOWN)

        if fault is not None and fault.kind == "malformed" and status == 200:
            # Cut the body so it is no longer JSON but never empty (python-binance maps "" to {}).
            payload = payload[: max(1, len(payload) // 2)]
            if payload in (b"[", b"{"):
                payload += b'{"'
        return Response(status, payload, hdrs, weight)

    @staticmethod
    def _form(headers: Mapping[str, str], body: bytes) -> list[tuple[str, str]]:
        if not body:
            return []
        ctype = headers.get("Content-Type", "") or ""
        if "application/x-www-form-urlencoded" not in ctype:
            return []
        return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)

    def _pick_fault(self, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self._faults:
                if rule.matches(path) and rule.fire():
                    return rule
        return None

    def _authenticate(self, headers: Mapping[str, str], query: str, body: bytes, params: Params) -> None:
        """Binance's SIGNED checks: API key, signature over query string + body, timestamp window."""
        api_key = headers.get("X-MBX-APIKEY")
        if not api_key or not hmac.compare_digest(api_key.encode(), self.config.api_key.encode()):
            raise ApiError(401, -2015, MSG_BAD_KEY)
        signature = params.text("signature", mandatory=True)
        timestamp = params.integer("timestamp", mandatory=True)
        recv_window = params.integer("recvWindow")
        if recv_window is None:
            recv_window = self.config.default_recv_window_ms
        if not 0 < recv_window <= self.config.max_recv_window_ms:
            raise ApiError(400, -1131, f"recvWindow must be less than {self.config.max_recv_window_ms}")
        # Binance signs "totalParams": the query string as sent (minus the signature) followed by the body.
        unsigned = "&".join(part for part in query.split("&") if not part.startswith("signature="))
        total = unsigned.encode() + body
        expected = hmac.new(self.config.api_secret.encode(), total, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, (signature or "").lower()):
            raise ApiError(400, -1022, MSG_BAD_SIGNATURE)
        now = int(time.time() * 1000)
        assert timestamp is not None
        if timestamp > now + self.config.max_ahead_ms:
            raise ApiError(400, -1021, MSG_AHEAD)
        if now - timestamp > recv_window:
            raise ApiError(400, -1021, MSG_RECV_WINDOW)

    # -- admin endpoints -----------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> Response:
        """Unsigned controls for tests driving a separately started server; no weight, no faults."""
        try:
            spec = json.loads(body) if body.strip() else {}
        except ValueError:
            return Response(400, _error_body(-1130, "Request body is not valid JSON."))
        try:
            if (method, path) == ("GET", "/_sandbox/state"):
                return Response(200, _json(self.state()))
            if path == "/_sandbox/faults" and method == "GET":
                return Response(200, _json(self.faults()))
            if path == "/_sandbox/faults" and method == "DELETE":
                self.clear_faults()
                return Response(200, _json([]))
            if path == "/_sandbox/faults" and method == "POST":
                if not isinstance(spec, dict):
                    raise ValueError("expected a JSON object")
                rules = spec.get("faults") if "faults" in spec else ([spec] if spec else [])
                if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
                    raise ValueError("'faults' must be a list of objects")
                self.set_faults(*rules)
                return Response(200, _json(self.faults()))
            if (method, path) == ("POST", "/_sandbox/clock"):
                if not isinstance(spec, dict) or "visible_until" not in spec:
                    raise ValueError('expected {"visible_until": <epoch ms> | null}')
                self.set_visible_until(spec["visible_until"])
                return Response(200, _json({"visible_until": self.visible_until}))
            if (method, path) == ("POST", "/_sandbox/reset-weight"):
                self.reset_weight()
                return Response(200, _json({"used_weight": self.weights.used()}))
        except (ValueError, TypeError) as exc:
            return Response(400, _error_body(-1130, str(exc)))
        return Response(404, _error_body(-1099, "Not found, unauthenticated, or unauthorized."))

    # -- endpoint helpers ----------------------------------------------------------------------------

    def _symbol(self, params: Params, *, mandatory: bool) -> str | None:
        symbol = params.text("symbol", mandatory=mandatory)
        if symbol is None:
            return None
        if not SYMBOL_RE.match(symbol):
            raise ApiError(
                400,
                -1100,
                "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.",
            )
        if symbol not in self._listed:
            raise ApiError(400, -1121, "Invalid symbol.")
        return symbol

    def _limit(self, params: Params, default: int, cap: int, *, paged: bool = False) -> int:
        """``limit`` capped at ``cap`` (Binance silently caps an oversized limit); for the paged history
        endpoints also at :attr:`ServerConfig.page_cap`."""
        limit = params.integer("limit")
        if limit is not None and limit <= 0:
            raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        limit = default if limit is None else min(limit, cap)
        return min(limit, self.config.page_cap) if paged else limit

    @staticmethod
    def _reject_from_id_with_window(from_id: int | None, start: int | None, end: int | None) -> None:
        """userTrades: ``fromId`` cannot be sent with ``startTime``/``endTime``."""
        if from_id is not None and (start is not None or end is not None):
            extra = "startTime" if start is not None else "endTime"
            raise ApiError(400, -1106, f"Parameter '{extra}' sent when not required.")

    @staticmethod
    def _window(start: int | None, end: int | None, clock: int, max_span: int) -> tuple[int, int]:
        """Binance's 7-day window rules: at most ``max_span`` between start and end; one side given ->
        the other is ``max_span`` away; neither -> the ``max_span`` before the data clock."""
        if start is not None and end is not None:
            if start > end:
                raise ApiError(400, -1023, "Start time is greater than end time.")
            if end - start > max_span:
                raise ApiError(400, -1127, f"More than {max_span // 3_600_000} hours between startTime and endTime.")
            return start, end
        if start is not None:
            return start, start + max_span
        if end is not None:
            return end - max_span, end
        return clock - max_span, clock

    def _paged(
        self,
        file_name: str,
        series: VersionedSeries | None,
        params: Params,
        key_param: str,
        *,
        with_page: bool = False,
    ) -> bytes:
        """Shared rules of userTrades / allOrders / allAlgoOrders over one symbol's series."""
        key = params.integer(key_param)
        start, end = params.integer("startTime"), params.integer("endTime")
        limit = self._limit(params, 500, 1000, paged=True)
        page = params.integer("page") if with_page else None
        if page is not None and page < 1:
            raise ApiError(400, -1130, "Data sent for parameter 'page' is not valid.")
        offset = (page - 1) * limit if page else 0
        vis = self._visibility(file_name)
        clock = vis.clock
        if key_param == "fromId":
            self._reject_from_id_with_window(key, start, end)
        if series is None:
            # Still validate the window so a bad request fails the same way with or without data.
            if key is None or start is not None or end is not None:
                self._window(start, end, clock, SEVEN_DAYS_MS)
            return b"[]"
        if key is not None and start is None and end is None and not self.config.id_queries_windowed:
            versions = series.from_key(key, vis, limit, offset)
        elif key is not None and start is None and end is None:
            # the other reading: the default window (the recent 7 days) applies to id-paged queries too
            recent = series.in_window(clock - SEVEN_DAYS_MS, clock, vis)
            versions = [v for v in recent if self._key_of(series, v) >= key]
            versions = versions[offset : offset + limit]
        else:
            lo, hi = self._window(start, end, clock, SEVEN_DAYS_MS)
            versions = series.in_window(lo, hi, vis)
            if key is not None:
                versions = [v for v in versions if self._key_of(series, v) >= key]
            if start is None and key is None and page is None:
                # No explicit start: Binance returns the most recent records of the window.
                versions = versions[-limit:]
            else:
                versions = versions[offset : offset + limit]
        return _json_array(self.data.lines(file_name, series.offs, series.lens, versions))

    def _visibility(self, file_name: str) -> Visibility:
        """The data clock plus the retention floors that apply to one file (SPEC §3.2, §7)."""
        clock = self.visible_until
        cfg = self.config
        if file_name == TRADES_FILE:
            return Visibility(clock, retention_floor(clock, cfg.retention_trades))
        if file_name in (ORDERS_FILE, ALGO_ORDERS_FILE):
            return Visibility(
                clock,
                retention_floor(clock, cfg.retention_orders),
                retention_floor(clock, cfg.retention_unfilled_orders),
            )
        if file_name == INCOME_FILE:
            return Visibility(clock, retention_floor(clock, cfg.retention_income))
        return Visibility(clock)

    @staticmethod
    def _key_of(series: VersionedSeries, version: int) -> int:
        return series.keys[bisect_right(series.vstart, version) - 1]

    def _trades_of_order(self, symbol: str, order_id: int, vis: Visibility) -> list[tuple[int, int]]:
        """(trade id, version) of one order's visible trades; the orderId index is built on first use.

        The index is per symbol: another symbol's order with the same number is another order."""
        series = self.data.trades.get(symbol)
        if series is None:
            return []
        with self._lock:
            index = self._trades_by_order.get(symbol)
        if index is None:
            index = {}
            for pos, key in enumerate(series.keys):
                for ver in range(series.vstart[pos], series.vstart[pos + 1]):
                    rec = json.loads(self.data.read(TRADES_FILE, series.offs[ver], series.lens[ver]))
                    oid = as_int(rec.get("orderId"))
                    if oid is not None:
                        index.setdefault(oid, []).append((key, ver))
            with self._lock:
                self._trades_by_order[symbol] = index
        out: dict[int, int] = {}
        for key, ver in index.get(order_id, []):
            t = series.vtimes[ver]
            if t <= vis.clock and (vis.floor is None or t >= vis.floor):
                out[key] = ver  # versions ascend in time, so the last visible one wins
        return sorted(out.items())

    def _build_exchange_symbols(self) -> list[dict[str, Any]]:
        """exchangeInfo ``symbols[]``: the replay's ``symbols.jsonl`` objects verbatim when it has one, plus
        a generated entry for every other symbol the data (or, without ``symbols.jsonl``, the paper
        exchange's instrument list) knows.

        With ``symbols.jsonl`` the replay states what this exchange lists, so a paper-exchange instrument
        it leaves out is not listed (``-1121``), as ingestion's tests of that file expect."""
        infos = self.data.symbol_infos
        names = set(self.data.symbols) if infos else set(INSTRUMENTS) | set(self.data.symbols)
        missing = sorted(names - set(infos))
        if infos and missing:
            log.warning("%s lists no exchange info for %s; serving generated entries", "symbols.jsonl", missing)
        out = [infos[sym] if sym in infos else _generated_symbol_info(sym) for sym in sorted(names)]
        return out

    # -- endpoints -----------------------------------------------------------------------------------

    def ep_ping(self, params: Params) -> Any:
        return {}

    def ep_time(self, params: Params) -> Any:
        return {"serverTime": int(time.time() * 1000)}

    def ep_exchange_info(self, params: Params) -> Any:
        limit = self.config.weight_limit_1m
        margin_assets = sorted(
            {str(s.get("marginAsset") or s.get("quoteAsset")) for s in self._exchange_symbols} - {"None", ""}
        )
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": limit},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [
                {"asset": asset, "marginAvailable": True, "autoAssetExchange": "-10000" if asset == "USDT" else "0"}
                for asset in margin_assets
            ],
            "symbols": self._exchange_symbols,
        }

    def ep_user_trades(self, params: Params) -> Any:
        symbol = self._symbol(params, mandatory=True)
        assert symbol is not None
        order_id = params.integer("orderId")
        if order_id is None:
            return self._paged(TRADES_FILE, self.data.trades.get(symbol), params, "fromId")
        # orderId narrows the answer to one order's trades; fromId, the window and limit still apply.
        from_id = params.integer("fromId")
        start, end = params.integer("startTime"), params.integer("endTime")
        limit = self._limit(params, 500, 1000, paged=True)
        self._reject_from_id_with_window(from_id, start, end)
        vis = self._visibility(TRADES_FILE)
        window = None if start is None and end is None else self._window(start, end, vis.clock, SEVEN_DAYS_MS)
        series = self.data.trades.get(symbol)
        if series is None:
            return b"[]"
        versions = [
            ver
            for key, ver in self._trades_of_order(symbol, order_id, vis)
            if (from_id is None or key >= from_id) and (window is None or window[0] <= series.vtimes[ver] <= window[1])
        ]
        return _json_array(self.data.lines(TRADES_FILE, series.offs, series.lens, versions[:limit]))

    def ep_all_orders(self, params: Params) -> Any:
        symbol = self._symbol(params, mandatory=True)
        assert symbol is not None
        return self._paged(ORDERS_FILE, self.data.orders.get(symbol), params, "orderId")

    def ep_all_algo_orders(self, params: Params) -> Any:
        symbol = self._symbol(params, mandatory=True)
        assert symbol is not None
        return self._paged(ALGO_ORDERS_FILE, self.data.algo_orders.get(symbol), params, "algoId", with_page=True)

    def _position_rows(self, params: Params) -> list[dict[str, Any]]:
        symbol = self._symbol(params, mandatory=False)
        rows = []
        for _sym, _side, off, length in self.data.positions.latest(self.visible_until, symbol):
            row = json.loads(self.data.read(POSITION_RISK_FILE, off, length))
            row.pop("snapshotTime", None)
            rows.append(row)
        return rows

    def ep_position_risk_v2(self, params: Params) -> Any:
        return self._position_rows(params)

    def ep_position_risk_v3(self, params: Params) -> Any:
        rows = self._position_rows(params)
        # v3 lists only symbols that hold a position, but then every side of such a symbol.
        open_symbols = {r.get("symbol") for r in rows if _nonzero(r.get("positionAmt"))}
        return [r for r in rows if r.get("symbol") in open_symbols]

    def ep_income(self, params: Params) -> Any:
        symbol = self._symbol(params, mandatory=False)
        income_type = params.text("incomeType")
        if income_type is not None and not INCOME_TYPE_RE.match(income_type):
            raise ApiError(400, -1130, "Data sent for parameter 'incomeType' is not valid.")
        start, end = params.integer("startTime"), params.integer("endTime")
        page = params.integer("page")
        if page is not None and page < 1:
            raise ApiError(400, -1130, "Data sent for parameter 'page' is not valid.")
        limit = self._limit(params, 100, 1000, paged=True)
        vis = self._visibility(INCOME_FILE)
        clock = vis.clock
        if start is not None and end is not None and start > end:
            raise ApiError(400, -1023, "Start time is greater than end time.")
        # USD-M documents no maximum window for income, only "the recent 7-day data" when neither
        # bound is sent; a single bound leaves the other side open.
        if start is None and end is None:
            start, end = clock - SEVEN_DAYS_MS, clock
        lo = start if start is not None else -(2**62)
        if vis.floor is not None:
            lo = max(lo, vis.floor)  # older income is past Binance's retention
        hi = min(end if end is not None else clock, clock)
        rows = self.data.income.query(symbol, income_type, lo, hi, ((page or 1) - 1) * limit, limit)
        store = self.data.income
        return _json_array([self.data.read(INCOME_FILE, store.offs[i], store.lens[i]) for i in rows])

    def ep_api_restrictions(self, params: Params) -> Any:
        """``GET /sapi/v1/account/apiRestrictions``: the key's permissions (:attr:`ServerConfig.api_restrictions`)."""
        return {**READ_ONLY_RESTRICTIONS, **(self.config.api_restrictions or {})}

    def _export_start(self, kind: str, params: Params) -> Any:
        """``GET /fapi/v1/{kind}/asyn``: startTime and endTime mandatory, at most one year apart (Binance)."""
        start, end = params.integer("startTime", mandatory=True), params.integer("endTime", mandatory=True)
        assert start is not None and end is not None
        if start > end:
            raise ApiError(400, -1023, "Start time is greater than end time.")
        if end - start > 366 * DAY_MS:
            raise ApiError(400, -1127, "The time between startTime and endTime can not be longer than 1 year.")
        with self._lock:
            download_id = str(546975389218332672 + len(self._exports))
            self._exports[download_id] = {"kind": kind, "start": start, "end": end, "polls": 0}
        return {"avgCostTimestampOfLast30d": 7241837, "downloadId": download_id}

    def _export_link(self, kind: str, params: Params) -> Any:
        """``GET /fapi/v1/{kind}/asyn/id``: "processing" first, then "completed" with the link (valid 24 h)."""
        download_id = params.text("downloadId", mandatory=True)
        with self._lock:
            job = self._exports.get(str(download_id))
            if job is None or job["kind"] != kind:
                raise ApiError(400, -1130, "Data sent for parameter 'downloadId' is not valid.")
            job["polls"] += 1
            ready = job["polls"] > self.config.export_processing_polls
        if not ready:
            return {
                "downloadId": download_id,
                "status": "processing",
                "url": "",
                "notified": False,
                "expirationTimestamp": -1,
                "isExpired": None,
            }
        return {
            "downloadId": download_id,
            "status": "completed",
            "url": f"{self.url}/_sandbox/exports/{download_id}.csv",
            "notified": True,
            "expirationTimestamp": int(time.time() * 1000) + DAY_MS,
            "isExpired": None,
        }

    def _export_file(self, path: str) -> Response:
        """The file behind a download link (unsigned, like Binance's pre-signed links): CSV."""
        download_id = path.rsplit("/", 1)[-1].removesuffix(".csv")
        with self._lock:
            job = self._exports.get(download_id)
        if job is None or job["polls"] <= self.config.export_processing_polls:
            return Response(404, _error_body(-1099, "Not found, unauthenticated, or unauthorized."))
        records = export_records(self.data_dir, job["kind"], job["start"], job["end"], self.visible_until)
        return Response(200, render_csv(records), {"Content-Type": "text/csv;charset=UTF-8"})

    def ep_income_asyn(self, params: Params) -> Any:
        return self._export_start("income", params)

    def ep_order_asyn(self, params: Params) -> Any:
        return self._export_start("order", params)

    def ep_trade_asyn(self, params: Params) -> Any:
        return self._export_start("trade", params)

    def ep_income_asyn_id(self, params: Params) -> Any:
        return self._export_link("income", params)

    def ep_order_asyn_id(self, params: Params) -> Any:
        return self._export_link("order", params)

    def ep_trade_asyn_id(self, params: Params) -> Any:
        return self._export_link("trade", params)

    def ep_position_mode(self, params: Params) -> Any:
        return {"dualSidePosition": self.data.account.get("position_mode", "hedge") == "hedge"}

    def ep_balance(self, params: Params) -> Any:
        """``GET /fapi/v3/balance`` (and v2, same shape): the wallet as it is at the data clock.

        Binance answers with the balance of *now*. The replay holds snapshots, so each asset's latest
        snapshot at or before the clock is rolled forward by the income of that asset after it: the
        wallet ``balance`` changes exactly by the income records (SPEC §5 R9), so ``balance`` and
        ``crossWalletBalance`` get that sum and ``updateTime`` the last such income's time. Fields that
        depend on margin and marks (``crossUnPnl``, ``availableBalance``, ``maxWithdrawAmount``) stay
        the snapshot's. Our ``snapshotTime`` is not served.
        """
        clock = self.visible_until
        rows = []
        for asset, snap_time, off, length in self.data.balances.latest(clock):
            row = json.loads(self.data.read(BALANCES_FILE, off, length))
            row.pop("snapshotTime", None)
            later = self.data.income.of_asset(asset, snap_time, clock)
            if later:
                store = self.data.income
                delta = Decimal(0)
                for i in later:
                    rec = json.loads(self.data.read(INCOME_FILE, store.offs[i], store.lens[i]))
                    try:
                        delta += Decimal(str(rec.get("income")))
                    except InvalidOperation:
                        log.warning("income tranId %s has no decimal amount; not in the balance", rec.get("tranId"))
                for name in ("balance", "crossWalletBalance"):
                    if name in row:
                        row[name] = format(Decimal(str(row[name])) + delta, "f")
                row["updateTime"] = max(as_int(row.get("updateTime")) or 0, store.times[later[-1]])
            rows.append(row)
        return rows

    def ep_klines(self, params: Params) -> Any:
        """``GET /fapi/v1/klines`` (public): arrays exactly as stored in ``klines.jsonl``.

        Kline/Candlestick Data: "limit: Default 500; max 1500." and "If startTime and endTime are not
        sent, the most recent klines are returned." Only intervals present in the replay have data;
        another valid interval answers ``[]``.
        """
        symbol = self._symbol(params, mandatory=True)
        assert symbol is not None
        interval = params.text("interval", mandatory=True)
        if interval not in KLINE_INTERVALS:
            raise ApiError(400, -1120, "Invalid interval.")
        start, end = params.integer("startTime"), params.integer("endTime")
        limit = self._limit(params, 500, 1500)
        if start is not None and end is not None and start > end:
            raise ApiError(400, -1023, "Start time is greater than end time.")
        series = self.data.klines.get((symbol, interval))
        if series is None:
            return b"[]"
        rows = []
        for i in series.query(start, end, self.visible_until, limit):
            rec = json.loads(self.data.read(KLINES_FILE, series.offs[i], series.lens[i]))
            rows.append(_json(rec["kline"]))
        return _json_array(rows)


def _klines_weight(query: dict[str, str]) -> int:
    """Kline/Candlestick Data weight "based on parameter LIMIT": [1,100) 1, [100,500) 2, [500,1000] 5,
    > 1000 10 (an unreadable limit is charged as the default 500; the request then fails)."""
    try:
        limit = int(query.get("limit") or 500)
    except ValueError:
        limit = 500
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


# Quote assets of USD-M contracts, longest first so `...FDUSD` is not read as `...USD`.
_QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "BTC")


def _generated_symbol_info(symbol: str) -> dict[str, Any]:
    """An exchangeInfo ``symbols[]`` entry for a symbol the replay has no ``symbols.jsonl`` line for.

    A contract of the paper exchange (its instruments and their quarterlies) is rendered exactly as the
    generator writes it to ``symbols.jsonl``; anything else is rendered the same way from a generic
    contract: tick 0.01, step 0.001, its quote (= margin) asset read off the name and, for
    ``PAIR_yymmdd``, a quarterly delivered at 08:00 UTC of that date.
    """
    try:
        return exchange_info_symbol(instrument(symbol))
    except ValueError:
        pass
    pair, contract_type, delivery = symbol, "PERPETUAL", PERPETUAL_DELIVERY_MS
    quarterly = QUARTERLY_RE.match(symbol)
    if quarterly:
        pair, contract_type, delivery = quarterly["pair"], "CURRENT_QUARTER", quarterly_delivery_ms(quarterly["yymmdd"])
    quote = next((q for q in _QUOTE_ASSETS if pair.endswith(q) and len(pair) > len(q)), "USDT")
    generic = Instrument(
        symbol=symbol,
        base_asset=pair.removesuffix(quote),
        tick_size=Decimal("0.01"),
        step_size=Decimal("0.001"),
        start_price=Decimal(1),
        daily_vol=0.0,
        min_qty=Decimal("0.001"),
        typical_notional=Decimal(0),
        quote_asset=quote,
        margin_asset=quote,
        contract_type=contract_type,
        delivery_date=delivery,
        pair=pair,
    )
    return exchange_info_symbol(generic)


def _nonzero(value: Any) -> bool:
    try:
        return Decimal(str(value)) != 0
    except (InvalidOperation, ValueError):
        return False


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/fapi/v1/ping"): Route(SandboxServer.ep_ping, 1, False),
    ("GET", "/fapi/v1/time"): Route(SandboxServer.ep_time, 1, False),
    ("GET", "/fapi/v1/exchangeInfo"): Route(SandboxServer.ep_exchange_info, 1, False),
    ("GET", "/fapi/v1/userTrades"): Route(SandboxServer.ep_user_trades, 5, True),
    ("GET", "/fapi/v1/allOrders"): Route(SandboxServer.ep_all_orders, 5, True),
    ("GET", "/fapi/v1/allAlgoOrders"): Route(SandboxServer.ep_all_algo_orders, 5, True),
    ("GET", "/fapi/v2/positionRisk"): Route(SandboxServer.ep_position_risk_v2, 5, True),
    ("GET", "/fapi/v3/positionRisk"): Route(SandboxServer.ep_position_risk_v3, 5, True),
    ("GET", "/fapi/v1/income"): Route(SandboxServer.ep_income, 30, True),
    ("GET", "/fapi/v1/positionSide/dual"): Route(SandboxServer.ep_position_mode, 30, True),
    # Futures Account Balance V3 / V2: "Request Weight 5" each (python-binance 1.0.37's
    # futures_account_balance calls v3).
    ("GET", "/fapi/v3/balance"): Route(SandboxServer.ep_balance, 5, True),
    ("GET", "/fapi/v2/balance"): Route(SandboxServer.ep_balance, 5, True),
    ("GET", "/fapi/v1/klines"): Route(SandboxServer.ep_klines, 5, False, _klines_weight),
    # Get API Key Permission: "Request Weight(IP) 1"
    ("GET", "/sapi/v1/account/apiRestrictions"): Route(SandboxServer.ep_api_restrictions, 1, True),
    # USD-M "Get Download Id For Futures Transaction/Order/Trade History": "Request Weight 1000"; "... Download
    # Link by Id": "Request Weight 10"
    ("GET", "/fapi/v1/income/asyn"): Route(SandboxServer.ep_income_asyn, 1000, True),
    ("GET", "/fapi/v1/order/asyn"): Route(SandboxServer.ep_order_asyn, 1000, True),
    ("GET", "/fapi/v1/trade/asyn"): Route(SandboxServer.ep_trade_asyn, 1000, True),
    ("GET", "/fapi/v1/income/asyn/id"): Route(SandboxServer.ep_income_asyn_id, 10, True),
    ("GET", "/fapi/v1/order/asyn/id"): Route(SandboxServer.ep_order_asyn_id, 10, True),
    ("GET", "/fapi/v1/trade/asyn/id"): Route(SandboxServer.ep_trade_asyn_id, 10, True),
}
assert set(EXPORT_FILES) == {"income", "order", "trade"}


def make_client(url: str, api_key: str | None, api_secret: str | None, **kwargs: Any) -> Client:
    """A real python-binance ``Client`` pointed at a sandbox server (``url`` without ``/fapi``).

    ``kwargs`` go to ``Client`` (e.g. ``requests_params={"timeout": 2}``); no ping is sent at creation.
    """
    from binance.client import Client

    client = Client(api_key, api_secret, ping=False, **kwargs)
    client.FUTURES_URL = url.rstrip("/") + "/fapi"
    client.MARGIN_API_URL = url.rstrip("/") + "/sapi"  # GET /sapi/v1/account/apiRestrictions
    return client


def serve_forever(
    data_dir: Path | str,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    config: ServerConfig | None = None,
) -> None:
    """Serve ``data_dir`` until interrupted (the CLI's ``stratpos sandbox serve``).

    Logs one line per request (method, path, status, weight) — never the query string, so neither
    the signature nor the secret ever reaches the log.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)  # the per-request lines are this entry point's contract
    config = config or ServerConfig()
    # A process started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: install it (and treat SIGTERM the same) so
    # Ctrl-C, `kill -INT` and `kill` always stop the server cleanly.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    server = SandboxServer(data_dir, host, port, config).start()
    log.info("api key %s; point python-binance at FUTURES_URL=%s/fapi; Ctrl-C stops", config.api_key, server.url)
    try:
        while server._thread is not None and server._thread.is_alive():
            server._thread.join(0.5)
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.stop()
