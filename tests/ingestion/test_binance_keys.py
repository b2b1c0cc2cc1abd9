"""Keys that go nowhere else, keys that cannot trade (issue 12), and two run-level fixes of issue 16.

Against the paper exchange's fake API through the real python-binance client: it serves
``GET /sapi/v1/account/apiRestrictions`` with configurable permissions.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingestion.binance_client import (
    SANDBOX_API_KEY,
    TESTNET_BASE_URL,
    BinanceApi,
    BinanceIngestError,
    RetryPolicy,
    keyed_credentials,
    resolve_credentials,
)
from ingestion.binance_source import ingest_binance
from ingestion.store import RawStore
from sandbox.generator import GenerateConfig, generate
from sandbox.server import SandboxServer, ServerConfig, make_client
from stratpos.core.errors import ConfigError
from stratpos.core.settings import Settings

START = datetime(2026, 1, 5, tzinfo=UTC)
SINCE = int(START.timestamp() * 1000) - 86_400_000
KEY, SECRET = "real-key-7f3a9c", "real-secret-2b8e4d"
KEYS = {"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET}


@pytest.fixture(scope="module")
def account(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("keys") / "acct"
    generate(GenerateConfig(out=out, days=1, strategies=2, symbols=("BTCUSDT",), start=START, seed=3))
    return out


def _count(settings: Settings, table: str) -> int:
    with RawStore(settings) as store:
        return store.count(table)


# ----------------------------------------------------------------------------- where a key may go
def test_a_key_with_a_base_url_but_no_opt_in_is_refused_in_one_line():
    with pytest.raises(BinanceIngestError) as err:
        resolve_credentials({**KEYS, "STRATPOS_BINANCE_BASE_URL": "http://sandbox:8765"})
    message = str(err.value)
    assert message.startswith("refusing to send the Binance API key (env) to http://sandbox:8765")
    assert "\n" not in message and KEY not in message and SECRET not in message
    # no base URL: Binance itself
    creds = resolve_credentials(KEYS)
    assert (creds.base_url, creds.endpoint, creds.real_key) == (None, "binance", True)


def test_the_opt_in_points_a_key_elsewhere_and_says_so(caplog):
    caplog.set_level(logging.WARNING)
    creds = resolve_credentials(
        {**KEYS, "STRATPOS_BINANCE_BASE_URL": "http://h:1", "STRATPOS_BINANCE_ENDPOINT": "custom"}
    )
    assert (creds.base_url, creds.endpoint) == ("http://h:1", "custom")
    assert any("GOES TO http://h:1, NOT TO BINANCE" in m for m in caplog.messages)
    testnet = resolve_credentials({**KEYS, "STRATPOS_BINANCE_ENDPOINT": "testnet"})
    assert (testnet.base_url, testnet.endpoint) == (TESTNET_BASE_URL, "testnet")
    with pytest.raises(BinanceIngestError, match="STRATPOS_BINANCE_ENDPOINT=custom needs STRATPOS_BINANCE_BASE_URL"):
        resolve_credentials({**KEYS, "STRATPOS_BINANCE_ENDPOINT": "custom"})
    with pytest.raises(ConfigError, match="STRATPOS_BINANCE_ENDPOINT must be one of binance, testnet or custom"):
        resolve_credentials({**KEYS, "STRATPOS_BINANCE_ENDPOINT": "prod"})


def test_without_a_key_the_sandbox_is_used():
    creds = resolve_credentials({"STRATPOS_SANDBOX_URL": "http://sandbox:8765"})
    assert (creds.api_key, creds.base_url, creds.endpoint, creds.real_key) == (
        SANDBOX_API_KEY,
        "http://sandbox:8765",
        "sandbox",
        False,
    )
    # the historical variable still points a keyless run at the paper exchange
    assert resolve_credentials({"STRATPOS_BINANCE_BASE_URL": "http://127.0.0.1:9"}).base_url == "http://127.0.0.1:9"


# ----------------------------------------------------------------------------- what a key may do
def _keyed_api(srv: SandboxServer, *, allow: bool = False) -> BinanceApi:
    creds = keyed_credentials(KEY, SECRET, base_url=srv.url, endpoint="custom", allow_trading_key=allow)
    return BinanceApi.for_credentials(
        creds, timeout=5, retry=RetryPolicy(attempts=2, base_wait=0.001), sleep=lambda s: None
    )


def _server(account: Path, **restrictions) -> SandboxServer:
    config = ServerConfig(
        api_key=KEY, api_secret=SECRET, weight_limit_1m=1_000_000, api_restrictions=restrictions or None
    )
    return SandboxServer(account, config=config)


def test_a_key_that_can_trade_or_withdraw_is_refused(account, tmp_path, caplog):
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "w.duckdb")
    with _server(account, enableFutures=True, enableWithdrawals=True) as srv:
        with pytest.raises(BinanceIngestError) as err:
            ingest_binance(settings, client=_keyed_api(srv), since_ms=SINCE)
        message = str(err.value)
        assert message.startswith("refusing the Binance API key: it has enableFutures, enableWithdrawals")
        assert "STRATPOS_BINANCE_ALLOW_TRADING_KEY=1" in message and "\n" not in message
        assert _count(settings, "futures_trades") == 0  # nothing was read with it

        # the operator's explicit opt-in: used, with a warning
        caplog.set_level(logging.WARNING)
        ingest_binance(settings, client=_keyed_api(srv, allow=True), since_ms=SINCE)
        assert _count(settings, "futures_trades") > 0
        assert any("enableFutures, enableWithdrawals; used anyway" in m for m in caplog.messages)


def test_a_read_only_key_is_accepted(account, tmp_path):
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "w.duckdb")
    with _server(account) as srv:
        api = _keyed_api(srv)
        ingest_binance(settings, client=api, since_ms=SINCE)
        assert api.key_restrictions["enableReading"] is True and api.key_restrictions["enableFutures"] is False
        assert _count(settings, "futures_trades") > 0


# ----------------------------------------------------------------------------- issue 16
def _sandbox_api(srv: SandboxServer, timeout: float = 5.0, attempts: int = 2) -> BinanceApi:
    client = make_client(srv.url, srv.config.api_key, srv.config.api_secret, requests_params={"timeout": timeout})
    return BinanceApi(client, retry=RetryPolicy(attempts=attempts, base_wait=0.001), sleep=lambda s: None)


def test_snapshots_are_taken_when_an_earlier_stream_failed(account, tmp_path):
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "w.duckdb")
    with SandboxServer(account, config=ServerConfig(weight_limit_1m=1_000_000)) as srv:
        srv.set_faults(kind="http_5xx", path="/fapi/v1/userTrades")  # every userTrades request fails
        with pytest.raises(BinanceIngestError, match=r"GET /fapi/v1/userTrades \(symbol BTCUSDT\): gave up"):
            ingest_binance(settings, client=_sandbox_api(srv), since_ms=SINCE)
    assert _count(settings, "position_snapshots") > 0
    assert _count(settings, "balance_snapshots") > 0
    with RawStore(settings) as store:
        statuses = dict(store.fetchall(f"select source, status from {store.table('ingestion_runs')}"))
    assert statuses["binance:default:trades:BTCUSDT"] == "failed"
    assert statuses["binance:default:position_risk"] == statuses["binance:default:balances"] == "ok"


def test_clock_offset_comes_from_the_successful_time_round_trip(account):
    with SandboxServer(account) as srv:
        # the first /fapi/v1/time stalls past the client's timeout; the retry answers at once
        srv.set_faults(kind="timeout", count=1, delay_seconds=3.0, path="/fapi/v1/time")
        api = _sandbox_api(srv, timeout=1.5)
        api.sync_time()
        assert api.stats["timeouts"] == 1 and api.stats["time_syncs"] == 1
        # server and client share this machine's clock: the offset is the half round trip of one quick request,
        # not half of the 1.5 s lost to the stalled attempt (which once put the clock ~750 ms ahead)
        assert abs(api.client.timestamp_offset) < 300
        assert api.call("futures_account_trades", symbol="BTCUSDT", limit=1) is not None
        assert api.stats["http_400"] == 0  # no -1021 spent on a skewed clock


def test_snapshots_are_stamped_on_the_exchanges_clock(account):
    """A snapshot describes the exchange's now, the clock its income and fills carry (SPEC §5 R3, R9)."""
    import time

    from binance.client import Client

    # Binance: our clock plus python-binance's timestamp_offset (server time - local time, set by sync_time)
    client = Client("k", "s", ping=False)
    client.timestamp_offset = 3_600_000  # our clock an hour behind Binance's
    api = BinanceApi(client)
    before = int(time.time() * 1000) + 3_600_000
    assert before <= api.now_ms() <= int(time.time() * 1000) + 3_600_000
    # the paper exchange stands still at its data clock, which every answer carries
    with SandboxServer(account) as srv:
        srv.set_visible_until(srv.visible_until - 86_400_000)
        api = _sandbox_api(srv)
        api.sync_time()
        assert api.now_ms() == srv.visible_until
