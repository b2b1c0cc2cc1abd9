"""The python-binance client for ingestion: credentials, request weight and retries (SPEC §2, §3.2, §9).

* :func:`resolve_credentials` finds the read-only key: ``BINANCE_API_KEY``/``BINANCE_API_SECRET``, else the
  Airflow connection ``binance_default`` (login = key, password = secret, extra ``{"base_url": …,
  "endpoint": …}``), else the paper exchange (sandbox key, ``STRATPOS_BINANCE_BASE_URL`` or
  ``STRATPOS_SANDBOX_URL``, default ``http://127.0.0.1:8765``).
  A real key only ever goes to Binance (``fapi.binance.com``) unless the operator sets a base URL *and*
  ``STRATPOS_BINANCE_ENDPOINT=testnet|custom`` (logged as a warning at start); a key with a base URL and
  without that opt-in is refused.
* :func:`build_client` makes the real python-binance ``Client`` for them (no ping, bounded timeout).
* :func:`check_key_permissions` (run by :meth:`BinanceApi.prepare` for every real key) reads the key's
  permissions (``GET /sapi/v1/account/apiRestrictions``) and refuses a key that can trade, withdraw or move
  funds unless ``STRATPOS_BINANCE_ALLOW_TRADING_KEY=1``.
* :class:`BinanceApi` wraps a client: every call goes through a tenacity retry loop (``Retry-After`` on
  429/418, exponential backoff on 5xx, timeouts, connection errors and malformed bodies, a server-time
  resync on ``-1021``), tracks ``X-MBX-USED-WEIGHT-1M`` and sleeps to the next minute before a request
  once ~80 % of the weight budget is used. Failures end in :class:`BinanceIngestError`, naming the
  endpoint and symbol and never the key, the secret or a request signature.

Secrets: the key and secret of every client built or wrapped here are registered with a log filter on
urllib3's loggers (whose DEBUG lines carry signed URLs) and scrubbed from every message this module makes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from binance.exceptions import BinanceAPIException, BinanceRequestException
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

if TYPE_CHECKING:
    from binance.client import Client

log = logging.getLogger(__name__)

ENV_API_KEY = "BINANCE_API_KEY"
ENV_API_SECRET = "BINANCE_API_SECRET"
ENV_BASE_URL = "STRATPOS_BINANCE_BASE_URL"
ENV_ENDPOINT = "STRATPOS_BINANCE_ENDPOINT"  # binance (default) | testnet | custom: where a real key may go
ENV_SANDBOX_URL = "STRATPOS_SANDBOX_URL"  # the paper exchange for runs without a key (never gets a real key)
ENV_ALLOW_TRADING_KEY = "STRATPOS_BINANCE_ALLOW_TRADING_KEY"  # 1: accept a key that can trade/withdraw
ENDPOINTS_ALLOWED = ("binance", "testnet", "custom")
# python-binance's own testnet URL for USD-M futures (binance/base_client.py FUTURES_TESTNET_URL)
TESTNET_BASE_URL = "https://testnet.binancefuture.com"
AIRFLOW_CONN_ID = "binance_default"
SANDBOX_API_KEY = "sandbox-api-key"
SANDBOX_API_SECRET = "sandbox-api-secret"
SANDBOX_BASE_URL = "http://127.0.0.1:8765"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_WEIGHT_LIMIT = 2400
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"

# python-binance method (+ conditional flag) -> the REST endpoint it calls, for messages
ENDPOINTS = {
    "futures_time": "GET /fapi/v1/time",
    "futures_ping": "GET /fapi/v1/ping",
    "futures_exchange_info": "GET /fapi/v1/exchangeInfo",
    "futures_account_trades": "GET /fapi/v1/userTrades",
    "futures_get_all_orders": "GET /fapi/v1/allOrders",
    "futures_get_all_orders+conditional": "GET /fapi/v1/allAlgoOrders",
    "futures_income_history": "GET /fapi/v1/income",
    "futures_position_information": "GET /fapi/v3/positionRisk",
    "futures_get_position_mode": "GET /fapi/v1/positionSide/dual",
    "futures_account_balance": "GET /fapi/v3/balance",
    "futures_klines": "GET /fapi/v1/klines",
    "get_account_api_permissions": "GET /sapi/v1/account/apiRestrictions",
    "futures_v1_get_income_asyn": "GET /fapi/v1/income/asyn",
    "futures_v1_get_income_asyn_id": "GET /fapi/v1/income/asyn/id",
    "futures_v1_get_order_asyn": "GET /fapi/v1/order/asyn",
    "futures_v1_get_order_asyn_id": "GET /fapi/v1/order/asyn/id",
    "futures_v1_get_trade_asyn": "GET /fapi/v1/trade/asyn",
    "futures_v1_get_trade_asyn_id": "GET /fapi/v1/trade/asyn/id",
}
# The answer of the paper exchange carries its data clock (what "now" is for its records) in this header;
# Binance never sends it. Only Binance's retention windows are computed from it (see binance_source).
DATA_CLOCK_HEADER = "X-Sandbox-Data-Clock"


class BinanceIngestError(RuntimeError):
    """A Binance request failed for good; the message names endpoint and symbol, never credentials."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        symbol: str | None = None,
        status_code: int | None = None,
        code: int | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.symbol = symbol
        self.status_code = status_code
        self.code = code
        self.attempts = attempts


# ----------------------------------------------------------------------------- secrets
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_SIGNATURE_RE = re.compile(r"(signature=)[^&\s'\"<>]+", re.IGNORECASE)
_APIKEY_HEADER_RE = re.compile(r"(X-MBX-APIKEY['\"]?\s*[:=]\s*['\"]?)[^'\",}\s]+", re.IGNORECASE)


def register_secret(*values: str | None) -> None:
    """Remember values (API key, secret) that must never appear in a log line or error message."""
    with _SECRETS_LOCK:
        _SECRETS.update(v for v in values if v and len(v) >= 4)


def scrub(text: str) -> str:
    """``text`` without registered secrets, request signatures or API-key headers."""
    if not text:
        return text
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    text = _SIGNATURE_RE.sub(r"\1***", text)
    return _APIKEY_HEADER_RE.sub(r"\1***", text)


class _ScrubFilter(logging.Filter):
    """Rewrites records of third-party loggers that print signed request URLs (urllib3 at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTERED_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "binance.base_client", "binance.client")


def _install_log_filter() -> None:
    for name in _FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ScrubFilter) for f in logger.filters):
            logger.addFilter(_ScrubFilter())


_install_log_filter()


# ----------------------------------------------------------------------------- credentials
@dataclass(frozen=True)
class BinanceCredentials:
    """Where to read from and with which key; ``repr`` never shows the key or secret.

    ``endpoint``: ``binance`` (the key goes to Binance only), ``testnet`` / ``custom`` (the operator pointed
    the key at ``base_url`` on purpose) or ``sandbox`` (no key: the paper exchange's public test key).
    ``allow_trading_key``: accept a key whose permissions include trading or withdrawals.
    """

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    base_url: str | None = None  # None: Binance itself; else e.g. the sandbox's http://127.0.0.1:8765
    origin: str = "sandbox"  # env | airflow:<conn_id> | sandbox
    endpoint: str = "sandbox"
    allow_trading_key: bool = False

    def describe(self) -> str:
        return f"{self.origin} ({self.base_url or 'fapi.binance.com'})"

    @property
    def real_key(self) -> bool:
        return self.endpoint != "sandbox"


def _airflow_connection(conn_id: str, env: Mapping[str, str]):
    """The Airflow connection, when running under Airflow (or its env-var connection is set) and it exists."""
    env_var = f"AIRFLOW_CONN_{conn_id.upper()}"
    if "airflow" not in sys.modules and env_var not in env:
        return None  # importing Airflow outside Airflow is slow and creates AIRFLOW_HOME; don't
    try:
        from airflow.sdk import BaseHook
    except Exception:  # Airflow missing or broken: no connection
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:
        log.debug("no Airflow connection %s (%s)", conn_id, type(exc).__name__)
        return None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def keyed_credentials(
    api_key: str,
    api_secret: str,
    *,
    base_url: str | None = None,
    endpoint: str | None = None,
    origin: str = "env",
    allow_trading_key: bool = False,
) -> BinanceCredentials:
    """Credentials of a real key (one account): Binance itself, or ``base_url`` when ``endpoint`` opts in.

    A key never goes to another host by accident: ``base_url`` without ``endpoint`` = ``testnet`` or
    ``custom`` is refused with a one-line :class:`BinanceIngestError`; ``testnet`` without a base URL uses
    Binance's futures testnet. The chosen host is logged as a warning whenever it is not Binance.
    """
    register_secret(api_key, api_secret)
    base = (base_url or "").strip() or None
    mode = (endpoint or "").strip().lower() or "binance"
    if mode not in ENDPOINTS_ALLOWED:
        raise BinanceIngestError(f"{ENV_ENDPOINT}={endpoint!r} is not one of {', '.join(ENDPOINTS_ALLOWED)}")
    if mode == "binance":
        if base:
            raise BinanceIngestError(
                f"refusing to send the Binance API key ({origin}) to {base}: a base URL ({ENV_BASE_URL} or the "
                f'connection\'s extra "base_url") is set without {ENV_ENDPOINT}=testnet|custom (extra "endpoint"); '
                "unset it to read Binance itself"
            )
        return BinanceCredentials(api_key, api_secret, None, origin, "binance", allow_trading_key)
    if mode == "custom" and not base:
        raise BinanceIngestError(f"{ENV_ENDPOINT}=custom needs {ENV_BASE_URL} (the host the key may go to)")
    base = base or TESTNET_BASE_URL
    log.warning(
        "BINANCE API KEY (%s) GOES TO %s, NOT TO BINANCE: %s=%s was set on purpose", origin, base, ENV_ENDPOINT, mode
    )
    return BinanceCredentials(api_key, api_secret, base, origin, mode, allow_trading_key)


def resolve_credentials(env: Mapping[str, str] | None = None, conn_id: str = AIRFLOW_CONN_ID) -> BinanceCredentials:
    """Environment first, then the Airflow connection, then the paper exchange (SPEC §2).

    Reads ``BINANCE_API_KEY``/``BINANCE_API_SECRET``, ``STRATPOS_BINANCE_BASE_URL``,
    ``STRATPOS_BINANCE_ENDPOINT``, ``STRATPOS_SANDBOX_URL`` and ``STRATPOS_BINANCE_ALLOW_TRADING_KEY`` through
    the core settings (``env``: a mapping read alone; default: the process environment over ``.env``); see
    :func:`keyed_credentials` for where a real key may go.
    """
    from stratpos.core.settings import load_settings

    settings = load_settings(env)  # None: the process environment over .env; a mapping: read alone
    env = os.environ if env is None else env
    base_env = (settings.binance_base_url or "").strip() or None
    endpoint_env = settings.binance_endpoint
    allow = settings.binance_allow_trading_key
    key = settings.binance_api_key.get_secret_value().strip() if settings.binance_api_key else ""
    secret = settings.binance_api_secret.get_secret_value().strip() if settings.binance_api_secret else ""
    if key or secret:
        if not (key and secret):
            missing = ENV_API_SECRET if key else ENV_API_KEY
            raise BinanceIngestError(f"{missing} is not set (both {ENV_API_KEY} and {ENV_API_SECRET} are needed)")
        return keyed_credentials(
            key, secret, base_url=base_env, endpoint=endpoint_env, origin="env", allow_trading_key=allow
        )
    conn = _airflow_connection(conn_id, env)
    if conn is not None and conn.login and conn.password:
        extra = {}
        try:
            extra = conn.extra_dejson or {}
        except Exception:
            log.warning("Airflow connection %s: extra is not valid JSON; ignoring it", conn_id)
        base = str(extra.get("base_url") or "").strip() or base_env
        endpoint = str(extra.get("endpoint") or "").strip() or endpoint_env
        allow = allow or _truthy(str(extra.get("allow_trading_key") or ""))
        return keyed_credentials(
            conn.login,
            conn.password,
            base_url=base,
            endpoint=endpoint,
            origin=f"airflow:{conn_id}",
            allow_trading_key=allow,
        )
    sandbox = base_env or settings.sandbox_url.strip() or SANDBOX_BASE_URL
    return BinanceCredentials(SANDBOX_API_KEY, SANDBOX_API_SECRET, sandbox, "sandbox", "sandbox")


def build_client(credentials: BinanceCredentials | None = None, *, timeout: float = DEFAULT_TIMEOUT_S) -> Client:
    """A python-binance ``Client`` for ``credentials`` (default: :func:`resolve_credentials`); sends nothing."""
    from binance.client import Client

    creds = credentials or resolve_credentials()
    register_secret(creds.api_key, creds.api_secret)
    client = Client(creds.api_key, creds.api_secret, ping=False, requests_params={"timeout": timeout})
    if creds.base_url:
        base = creds.base_url.rstrip("/")
        root = base.removesuffix("/fapi")
        client.FUTURES_URL = root + "/fapi"
        client.MARGIN_API_URL = root + "/sapi"  # the key-permission check (apiRestrictions) goes there too
    log.info("binance client: %s", creds.describe())
    return client


# ----------------------------------------------------------------------------- key permissions
# GET /sapi/v1/account/apiRestrictions ("Get API Key Permission (USER_DATA)", Binance Wallet docs; python-binance
# Client.get_account_api_permissions). Its answer: ipRestrict, createTime, enableReading, enableWithdrawals ("This
# option allows you to withdraw via API"), enableInternalTransfer ("transfer funds between your master account and
# your sub account"), permitsUniversalTransfer, enableMargin, enableFutures, enableVanillaOptions,
# enableFixApiTrade, enableFixReadOnly, enableSpotAndMarginTrading ("Spot and margin trading"),
# enablePortfolioMarginTrading. Reading needs none of the others.
KEY_TRADING_PERMISSIONS = (
    "enableFutures",
    "enableSpotAndMarginTrading",
    "enableMargin",
    "enableVanillaOptions",
    "enablePortfolioMarginTrading",
    "enableFixApiTrade",
)
KEY_FUNDS_PERMISSIONS = ("enableWithdrawals", "enableInternalTransfer", "permitsUniversalTransfer")


def key_permission_problems(restrictions: Any) -> list[str]:
    """What is wrong with a key for read-only ingestion, from its apiRestrictions answer ([] = fine)."""
    if not isinstance(restrictions, dict):
        return [f"unreadable apiRestrictions answer ({type(restrictions).__name__})"]
    problems = [name for name in (*KEY_TRADING_PERMISSIONS, *KEY_FUNDS_PERMISSIONS) if restrictions.get(name) is True]
    if restrictions.get("enableReading") is False:
        problems.append("enableReading is false")
    return problems


# ----------------------------------------------------------------------------- retries and weight
@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in total per request, exponential waits ``base_wait * 2**n`` up to
    ``max_wait`` seconds; a ``Retry-After`` longer than ``max_retry_after`` (an IP ban) is not waited out."""

    attempts: int = 6
    base_wait: float = 0.5
    max_wait: float = 30.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")


_TRANSIENT_REQUEST_ERRORS = (
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def _retry_after(exc: BinanceAPIException) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def endpoint_of(method: str, params: Mapping[str, Any]) -> str:
    name = method + ("+conditional" if params.get("conditional") else "")
    return ENDPOINTS.get(name, method)


def describe_error(exc: BaseException) -> str:
    """A short, scrubbed description of a request failure."""
    if isinstance(exc, BinanceAPIException):
        return scrub(f"HTTP {exc.status_code}, code {exc.code}: {exc.message}")
    if isinstance(exc, BinanceRequestException):
        return "malformed response body (not JSON)"
    if isinstance(exc, requests.exceptions.Timeout):
        return "request timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return scrub(f"connection failed: {exc}")[:500]  # requests puts the signed URL in the message
    return scrub(f"{type(exc).__name__}: {exc}")


class BinanceApi:
    """A python-binance ``Client`` with retries, a request-weight budget and scrubbed errors.

    ``sleep`` and ``clock`` are injectable so tests can run retries and budget waits instantly;
    ``weight_limit`` overrides the limit that :meth:`prepare` reads from exchangeInfo.
    ``check_key``: whether :meth:`prepare` checks the key's permissions (default: for every key but the
    paper exchange's public test key); ``allow_trading_key`` accepts a key that can trade or move funds.
    """

    def __init__(
        self,
        client: Client,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        weight_limit: int | None = None,
        budget_fraction: float = 0.8,
        check_key: bool | None = None,
        allow_trading_key: bool = False,
    ) -> None:
        self.client = client
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._fixed_limit = weight_limit
        self.weight_limit = weight_limit or DEFAULT_WEIGHT_LIMIT
        self._limit_known = weight_limit is not None  # set by prepare() once exchangeInfo's limit is read
        self.budget_fraction = budget_fraction
        self.used_weight: int | None = None
        self.exchange_info: Any = None  # the exchangeInfo answer read by prepare()
        self._weight_minute: int | None = None
        self.stats: Counter[str] = Counter()
        self.check_key = getattr(client, "API_KEY", None) != SANDBOX_API_KEY if check_key is None else check_key
        self.allow_trading_key = allow_trading_key
        self.key_restrictions: Any = None  # the apiRestrictions answer read by prepare()
        self.data_clock_ms: int | None = None  # the paper exchange's data clock (DATA_CLOCK_HEADER), else None
        register_secret(getattr(client, "API_KEY", None), getattr(client, "API_SECRET", None))

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT_S, **kw):
        return cls.for_credentials(resolve_credentials(env), timeout=timeout, **kw)

    @classmethod
    def for_credentials(cls, creds: BinanceCredentials, *, timeout: float = DEFAULT_TIMEOUT_S, **kw) -> BinanceApi:
        """The API of one account's credentials; a real key's permissions are checked by :meth:`prepare`
        (not on the testnet, which has no ``/sapi`` endpoints)."""
        kw.setdefault("check_key", creds.endpoint in ("binance", "custom"))
        kw.setdefault("allow_trading_key", creds.allow_trading_key)
        if creds.endpoint == "testnet":
            log.info("binance testnet: the key's permissions are not checked (the testnet has no /sapi)")
        return cls(build_client(creds, timeout=timeout), **kw)

    # -- set-up ----------------------------------------------------------------------------------------
    def prepare(self) -> int:
        """Sync the clock with the server, check the key's permissions (see :meth:`verify_key`) and read the
        weight limit; returns the server time (ms)."""
        server_ms = self.sync_time()
        if self.check_key and self.key_restrictions is None:
            self.verify_key()
        if self._fixed_limit is None:
            info = self.exchange_info = self.call("futures_exchange_info")
            for rule in info.get("rateLimits", []) if isinstance(info, dict) else []:
                if rule.get("rateLimitType") == "REQUEST_WEIGHT" and rule.get("interval") == "MINUTE":
                    with contextlib.suppress(KeyError, TypeError, ValueError):
                        self.weight_limit = int(rule["limit"]) // max(1, int(rule.get("intervalNum", 1)))
            self._limit_known = True
        return server_ms

    def verify_key(self) -> dict:
        """Refuse a key that can trade or move funds (one-line :class:`BinanceIngestError` saying which
        permission) unless ``allow_trading_key``; returns the apiRestrictions answer."""
        try:
            restrictions = self.call("get_account_api_permissions")
        except BinanceIngestError as exc:
            if exc.code in (-2014, -2015) or exc.status_code == 401:
                raise  # a wrong or revoked key: that is the error to show
            if not self.allow_trading_key:
                raise BinanceIngestError(
                    f"refusing the Binance API key: its permissions could not be checked ({exc}); set "
                    f"{ENV_ALLOW_TRADING_KEY}=1 to use it unchecked",
                    endpoint=exc.endpoint,
                    status_code=exc.status_code,
                    code=exc.code,
                    attempts=exc.attempts,
                ) from None
            log.warning("the Binance API key's permissions could not be checked (%s); using it anyway", exc)
            self.key_restrictions = {}
            return {}
        problems = key_permission_problems(restrictions)
        if problems and not self.allow_trading_key:
            raise BinanceIngestError(
                f"refusing the Binance API key: it has {', '.join(problems)} (GET /sapi/v1/account/apiRestrictions); "
                f"ingestion needs a read-only key (only 'Enable Reading'), or set {ENV_ALLOW_TRADING_KEY}=1",
                endpoint=ENDPOINTS["get_account_api_permissions"],
            )
        if problems:
            log.warning("the Binance API key has %s; used anyway (%s=1)", ", ".join(problems), ENV_ALLOW_TRADING_KEY)
        self.key_restrictions = restrictions
        return restrictions

    def sync_time(self) -> int:
        """Set ``client.timestamp_offset = server time - local time``; returns the server time (ms).

        The offset comes from the round trip of the attempt that succeeded: a timed-out or failed first
        attempt (and the retry wait) does not skew the midpoint."""
        trip: dict[str, float] = {}

        def timed() -> Any:
            trip["before"] = time.time()
            answer = self.client.futures_time()
            trip["after"] = time.time()
            return answer

        result = self.call("futures_time", _sync=False, _fn=timed)
        server_ms = int(result["serverTime"])
        self.client.timestamp_offset = server_ms - int((trip["before"] + trip["after"]) / 2 * 1000)
        self.stats["time_syncs"] += 1
        return server_ms

    def now_ms(self) -> int:
        """The exchange's "now" in epoch ms, the time a snapshot just read describes.

        Binance: the local clock plus ``client.timestamp_offset`` (server time - local time, set by
        :meth:`sync_time`), so a snapshot is stamped on the same clock as the income and fills it is
        compared with (SPEC §5 R3, R9). The paper exchange's world stands still at its data clock, which
        every answer carries (``DATA_CLOCK_HEADER``): a snapshot it serves describes that instant."""
        if self.data_clock_ms is not None:
            return self.data_clock_ms
        return int(time.time() * 1000) + int(getattr(self.client, "timestamp_offset", 0) or 0)

    # -- calls -----------------------------------------------------------------------------------------
    def call(self, method: str, _sync: bool = True, _fn: Callable[..., Any] | None = None, **params: Any) -> Any:
        """``client.<method>(**params)`` with retries; raises :class:`BinanceIngestError` when it gives up."""
        endpoint = endpoint_of(method, params)
        symbol = params.get("symbol")
        fn = _fn or getattr(self.client, method)
        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            sleep=self._sleep,
            before_sleep=lambda state: self._before_retry(state, endpoint, symbol, _sync),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(fn, params)
        except Exception as exc:
            attempts = int(retrying.statistics.get("attempt_number", 1))
            raise self._error(exc, endpoint, symbol, attempts) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, fn: Callable[..., Any], params: Mapping[str, Any]) -> Any:
        self._respect_budget()
        self.stats["requests"] += 1
        try:
            result = fn(**dict(params))
        except BinanceAPIException as exc:
            self._observe(getattr(exc, "response", None))
            self.stats[f"http_{exc.status_code}"] += 1
            raise
        except BinanceRequestException:
            self._observe(getattr(self.client, "response", None))
            self.stats["malformed"] += 1
            raise
        except _TRANSIENT_REQUEST_ERRORS as exc:
            self.stats["timeouts" if isinstance(exc, requests.exceptions.Timeout) else "connection_errors"] += 1
            raise
        self._observe(getattr(self.client, "response", None))
        return result

    def _observe(self, response: requests.Response | None) -> None:
        if response is None:
            return
        clock = response.headers.get(DATA_CLOCK_HEADER)
        if clock is not None and clock.strip().isdigit():
            self.data_clock_ms = int(clock)
        value = response.headers.get(WEIGHT_HEADER)
        if value is None:
            return
        try:
            self.used_weight = int(value)
        except ValueError:
            return
        self._weight_minute = int(self._clock() // 60)

    def _respect_budget(self) -> None:
        """Before a request: past ~80 % of the minute's weight, wait for the next minute window."""
        if self.used_weight is None or self.used_weight < self.budget_fraction * self.weight_limit:
            return
        if not self._limit_known:
            # prepare() has not read the limit yet (its time and exchangeInfo requests weigh 1 each): the
            # default is Binance's, and a server with a larger limit must not be waited on by that guess
            return
        now = self._clock()
        if self._weight_minute != int(now // 60):
            return  # the window in which that weight was used is over
        wait = 60.0 - now % 60.0 + 0.05
        self.stats["budget_sleeps"] += 1
        log.info(
            "binance request weight %d of %d used this minute; waiting %.1f s for the next window",
            self.used_weight,
            self.weight_limit,
            wait,
        )
        self._sleep(wait)
        self.used_weight = None

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, BinanceAPIException):
            if exc.status_code in (418, 429):
                after = _retry_after(exc)
                return after is None or after <= self.retry.max_retry_after
            return exc.status_code >= 500 or exc.status_code == 408 or exc.code == -1021
        return isinstance(exc, (BinanceRequestException, *_TRANSIENT_REQUEST_ERRORS))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, BinanceAPIException):
            if exc.status_code in (418, 429):
                after = _retry_after(exc)
                return after if after is not None else 60.0
            if exc.code == -1021:
                return 0.0  # the clock was resynced; no reason to wait
        return min(self.retry.max_wait, self.retry.base_wait * 2 ** (state.attempt_number - 1))

    def _before_retry(self, state: RetryCallState, endpoint: str, symbol: str | None, sync: bool) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.stats["retries"] += 1
        log.warning(
            "%s%s: %s; retry %d of %d in %.2f s",
            endpoint,
            f" {symbol}" if symbol else "",
            describe_error(exc) if exc else "failed",
            state.attempt_number,
            self.retry.attempts - 1,
            wait,
        )
        if isinstance(exc, BinanceAPIException) and exc.status_code in (418, 429):
            self.used_weight = None  # Retry-After covers the budget; don't wait twice
        if sync and isinstance(exc, BinanceAPIException) and exc.code == -1021:
            try:
                self.sync_time()
                log.info("binance server time offset is now %d ms", self.client.timestamp_offset)
            except BinanceIngestError as err:
                log.warning("could not resync the server time: %s", err)

    def _error(self, exc: BaseException, endpoint: str, symbol: str | None, attempts: int) -> BinanceIngestError:
        where = endpoint + (f" (symbol {symbol})" if symbol else "")
        how = f"gave up after {attempts} attempts" if self._retryable(exc) else "failed"
        status = exc.status_code if isinstance(exc, BinanceAPIException) else None
        code = exc.code if isinstance(exc, BinanceAPIException) else None
        return BinanceIngestError(
            scrub(f"{where}: {how}: {describe_error(exc)}"),
            endpoint=endpoint,
            symbol=symbol,
            status_code=status,
            code=code,
            attempts=attempts,
        )


def weight_snapshot(api: BinanceApi) -> str:
    """One line for logs: weight used of limit, requests and retries so far."""
    return json.dumps(
        {"used_weight": api.used_weight, "weight_limit": api.weight_limit, **dict(sorted(api.stats.items()))}
    )
