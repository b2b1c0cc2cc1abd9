"""The one settings object: sources and their precedence, validation, secrets, to_env."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from stratpos.core.errors import ConfigError, StratposError
from stratpos.core.settings import (
    DEFAULT_DUCKDB_PATH,
    Settings,
    load_settings,
    secret_variables,
    variable_fields,
)


def test_every_variable_read_in_the_code_is_a_setting():
    """The ad-hoc variables of before (alerts, Binance, BI, DAG, signals…) all have a field."""
    names = set(variable_fields())
    for var in (
        "STRATPOS_TARGET",
        "STRATPOS_DUCKDB_PATH",
        "STRATPOS_MYSQL_HOST",
        "STRATPOS_MYSQL_PORT",
        "STRATPOS_MYSQL_USER",
        "STRATPOS_MYSQL_PASSWORD",
        "STRATPOS_MYSQL_FLAVOR",
        "STRATPOS_MYSQL_TMP_TABLE_MB",
        "STRATPOS_SCHEMA_PREFIX",
        "STRATPOS_DUCKDB_INGEST_MEMORY",
        "STRATPOS_SYMBOLS",
        "STRATPOS_ACCOUNTS",
        "STRATPOS_SIGNALS_LANDING",
        "BINANCE_API_KEY",
        "BINANCE_API_SECRET",
        "STRATPOS_BINANCE_BASE_URL",
        "STRATPOS_BINANCE_ENDPOINT",
        "STRATPOS_BINANCE_ALLOW_TRADING_KEY",
        "STRATPOS_SANDBOX_URL",
        "STRATPOS_ALERT_SLACK_WEBHOOK",
        "STRATPOS_ALERT_WEBHOOK_URL",
        "STRATPOS_ALERT_WEBHOOK_TOKEN",
        "STRATPOS_ALERT_SMTP_HOST",
        "STRATPOS_ALERT_SMTP_PORT",
        "STRATPOS_ALERT_SMTP_USER",
        "STRATPOS_ALERT_SMTP_PASSWORD",
        "STRATPOS_ALERT_SMTP_FROM",
        "STRATPOS_ALERT_SMTP_TO",
        "STRATPOS_ALERT_SMTP_SECURITY",
        "STRATPOS_BI_USER",
        "STRATPOS_BI_HOST",
        "STRATPOS_BI_PASSWORD",
        "STRATPOS_DAG_RETRIES",
        "STRATPOS_DAG_RETRY_DELAY_SECONDS",
        "STRATPOS_GX_DOCS_DIR",
    ):
        assert var in names, var
    assert {
        "STRATPOS_MYSQL_PASSWORD",
        "BINANCE_API_KEY",
        "BINANCE_API_SECRET",
        "STRATPOS_ALERT_SLACK_WEBHOOK",
        "STRATPOS_ALERT_SMTP_PASSWORD",
        "STRATPOS_BI_PASSWORD",
    } <= secret_variables()
    assert "STRATPOS_MYSQL_HOST" not in secret_variables()


def test_nested_mysql_settings_keep_their_variable_names():
    s = load_settings(
        {
            "STRATPOS_MYSQL_HOST": "db.internal",
            "STRATPOS_MYSQL_PORT": "3307",
            "STRATPOS_MYSQL_FLAVOR": "MySQL",
            "STRATPOS_MYSQL_PASSWORD": "pw",
        }
    )
    assert (s.mysql.host, s.mysql.port, s.mysql.flavor) == ("db.internal", 3307, "mysql")
    assert isinstance(s.mysql.password, SecretStr) and s.mysql.password.get_secret_value() == "pw"


def test_lists_booleans_and_numbers_from_text():
    s = load_settings(
        {
            "STRATPOS_SYMBOLS": " btcusdt, ETHUSDT ,,",
            "STRATPOS_ACCOUNTS": "desk_a,desk_b",
            "STRATPOS_BINANCE_ALLOW_TRADING_KEY": "1",
            "STRATPOS_DAG_RETRIES": "0",
            "STRATPOS_ALERT_SMTP_SECURITY": "SSL",
            "STRATPOS_TARGET": " MySQL ",
        }
    )
    assert s.symbols == ("BTCUSDT", "ETHUSDT")
    assert s.accounts == ("desk_a", "desk_b")
    assert s.binance_allow_trading_key is True
    assert s.dag_retries == 0
    assert s.alert_smtp_security == "ssl"
    assert s.target == "mysql"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STRATPOS_ACCOUNTS": "Desk-A"}, "STRATPOS_ACCOUNTS 'Desk-A' is not an account id"),
        ({"STRATPOS_ACCOUNTS": "a,a"}, "STRATPOS_ACCOUNTS lists a more than once"),
        ({"STRATPOS_DAG_RETRIES": "two"}, "STRATPOS_DAG_RETRIES must be an integer, got 'two'"),
        ({"STRATPOS_ALERT_SMTP_PORT": "0"}, "STRATPOS_ALERT_SMTP_PORT must be a TCP port (1-65535)"),
        ({"STRATPOS_BINANCE_ENDPOINT": "prod"}, "STRATPOS_BINANCE_ENDPOINT must be one of binance, testnet or custom"),
        ({"STRATPOS_TARGET": "postgres"}, "STRATPOS_TARGET must be one of duckdb or mysql, got 'postgres'"),
        ({"STRATPOS_BI_USER": "bi'; drop"}, "STRATPOS_BI_USER may hold only letters"),
    ],
)
def test_bad_values_are_one_line_naming_the_variable(env, expected):
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert message.startswith(expected), message
    assert "\n" not in message
    assert isinstance(caught.value, StratposError) and caught.value.exit_code == 2


def test_a_bad_secret_is_named_but_never_echoed():
    with pytest.raises(ConfigError) as caught:
        load_settings({"STRATPOS_MYSQL_PORT": "x", "STRATPOS_MYSQL_PASSWORD": "hunter2"})
    assert "hunter2" not in str(caught.value)


def test_secrets_never_appear_in_repr_describe_or_rows():
    s = load_settings(
        {
            "STRATPOS_MYSQL_PASSWORD": "hunter2",
            "BINANCE_API_KEY": "key-abc",
            "BINANCE_API_SECRET": "secret-xyz",
            "STRATPOS_ALERT_SLACK_WEBHOOK": "https://hooks.slack.com/services/T/B/tok",
            "STRATPOS_TARGET": "mysql",
        }
    )
    shown = repr(s) + s.describe() + repr(s.rows())
    for secret in ("hunter2", "key-abc", "secret-xyz", "/T/B/tok"):
        assert secret not in shown
    rows = {var: (value, origin) for var, value, origin in s.rows()}
    assert rows["STRATPOS_MYSQL_PASSWORD"] == ("set", "environment")
    assert rows["BINANCE_API_KEY"] == ("set", "environment")
    assert rows["STRATPOS_BI_PASSWORD"] == ("unset", "default")
    assert set(rows) == set(variable_fields())


def test_env_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "STRATPOS_SCHEMA_PREFIX=fromfile_\nSTRATPOS_TARGET=mysql\nSTRATPOS_MYSQL_PASSWORD='s3cret'\nUNRELATED=1\n",
        encoding="utf-8",
    )
    s = load_settings({"STRATPOS_TARGET": "duckdb"}, env_file=env_file)
    assert s.schema_prefix == "fromfile_"
    assert s.target == "duckdb"
    assert s.mysql.password.get_secret_value() == "s3cret"
    origins = s.origins
    assert origins["STRATPOS_SCHEMA_PREFIX"] == ".env file"
    assert origins["STRATPOS_TARGET"] == "environment"
    assert origins["STRATPOS_MYSQL_HOST"] == "default"


def test_process_environment_over_env_file_of_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("STRATPOS_SCHEMA_PREFIX=dotenv_\nSTRATPOS_DAG_RETRIES=5\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for var in list(variable_fields()):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STRATPOS_DAG_RETRIES", "1")
    s = load_settings()
    assert (s.schema_prefix, s.dag_retries) == ("dotenv_", 1)
    assert (s.origins["STRATPOS_SCHEMA_PREFIX"], s.origins["STRATPOS_DAG_RETRIES"]) == (".env file", "environment")


def test_settings_built_directly_read_no_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STRATPOS_TARGET", "mysql")
    monkeypatch.setenv("STRATPOS_SCHEMA_PREFIX", "leak_")
    s = Settings(duckdb_path=tmp_path / "w.duckdb")
    assert (s.target, s.schema_prefix) == ("duckdb", "")


def test_to_env_is_absolute_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(
        {
            "STRATPOS_DUCKDB_PATH": "w/stratpos.duckdb",
            "STRATPOS_MYSQL_PASSWORD": "p@ss",
            "STRATPOS_SYMBOLS": "BTCUSDT,ETHUSDT",
            "STRATPOS_BINANCE_ALLOW_TRADING_KEY": "true",
        }
    )
    env = s.to_env()
    assert env["STRATPOS_DUCKDB_PATH"] == str(tmp_path / "w" / "stratpos.duckdb")
    assert Path(env["STRATPOS_DUCKDB_PATH"]).is_absolute()
    assert env["STRATPOS_MYSQL_PASSWORD"] == "p@ss"
    again = load_settings(env)
    assert again.model_dump() == s.model_dump()
    dbt = s.to_env(warehouse_only=True)
    assert set(dbt) == {
        "STRATPOS_TARGET",
        "STRATPOS_DUCKDB_PATH",
        "STRATPOS_DUCKDB_TRANSFORM_MEMORY",
        "STRATPOS_SCHEMA_PREFIX",
        "STRATPOS_MYSQL_HOST",
        "STRATPOS_MYSQL_PORT",
        "STRATPOS_MYSQL_USER",
        "STRATPOS_MYSQL_PASSWORD",
        "STRATPOS_MYSQL_FLAVOR",
        "STRATPOS_MYSQL_TMP_TABLE_MB",
    }
    assert "STRATPOS_MYSQL_PASSWORD" not in s.to_env(warehouse_only=True, secrets=False)


def test_default_duckdb_path_is_absolute_in_the_project():
    s = load_settings({})
    assert s.duckdb_path == DEFAULT_DUCKDB_PATH and s.duckdb_path.is_absolute()
    assert s.to_env()["STRATPOS_DUCKDB_PATH"] == str(DEFAULT_DUCKDB_PATH)


def test_gx_docs_go_beside_the_warehouse(tmp_path):
    duck = load_settings({"STRATPOS_DUCKDB_PATH": str(tmp_path / "books.duckdb")})
    assert duck.gx_docs_path == tmp_path / "books_gx_docs"
    mysql = load_settings({"STRATPOS_TARGET": "mysql", "STRATPOS_SCHEMA_PREFIX": "acme_"})
    assert mysql.gx_docs_path.name == "acme_mysql_gx_docs"
    assert mysql.gx_docs_path != load_settings({"STRATPOS_TARGET": "mysql"}).gx_docs_path
    chosen = load_settings({"STRATPOS_GX_DOCS_DIR": str(tmp_path / "docs")})
    assert chosen.gx_docs_path == tmp_path / "docs"


def test_with_overrides_validates_and_keeps_the_rest(tmp_path):
    s = load_settings({"STRATPOS_SCHEMA_PREFIX": "a_", "STRATPOS_DUCKDB_PATH": str(tmp_path / "a.duckdb")})
    other = s.with_overrides(duckdb_path=tmp_path / "b.duckdb")
    assert (other.schema_prefix, other.duckdb_path) == ("a_", tmp_path / "b.duckdb")
    assert other.gx_docs_path == tmp_path / "b_gx_docs"
    with pytest.raises(ConfigError, match="STRATPOS_SCHEMA_PREFIX"):
        s.with_overrides(schema_prefix="a-b")


def test_export_env_file_reaches_modules_that_read_the_environment(tmp_path, monkeypatch):
    """The CLI exports .env first: the Binance client and dbt, which read os.environ, see its values."""
    import os

    from stratpos.core import settings as settings_module

    (tmp_path / ".env").write_text(
        "STRATPOS_SANDBOX_URL=http://from-file:1\nSTRATPOS_DAG_RETRIES=9\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    for var in list(variable_fields()):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STRATPOS_DAG_RETRIES", "3")
    monkeypatch.setattr(settings_module, "_EXPORTED", set())
    try:
        assert settings_module.export_env_file() == ["STRATPOS_SANDBOX_URL"]
        assert os.environ["STRATPOS_SANDBOX_URL"] == "http://from-file:1"
        s = load_settings()
        assert (s.sandbox_url, s.dag_retries) == ("http://from-file:1", 3)
        assert s.origins["STRATPOS_SANDBOX_URL"] == ".env file"
        assert s.origins["STRATPOS_DAG_RETRIES"] == "environment"
    finally:
        os.environ.pop("STRATPOS_SANDBOX_URL", None)
