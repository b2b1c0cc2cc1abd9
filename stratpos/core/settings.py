"""Every setting of stratpos in one typed object, read from the environment and a ``.env`` file.

Ingestion, dbt (through :meth:`Settings.to_env`), GX, the Airflow DAG and the CLI all ask this
module, so a setting means the same thing everywhere. Variables keep the names they always had
(``STRATPOS_…``; the Binance key is ``BINANCE_API_KEY``/``BINANCE_API_SECRET``). Secrets are
:class:`~pydantic.SecretStr`: never printed, shown by ``stratpos config`` as ``set``/``unset``.

``load_settings()`` reads the process environment (which wins) and the ``.env`` file of the
working directory; ``load_settings(mapping)`` reads only the mapping (tests). ``Settings(...)``
built directly holds exactly what it is given plus the defaults: it reads no environment.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from stratpos.core.errors import ConfigError

TARGETS = ("duckdb", "mysql")
LAYERS = ("raw", "staging", "intermediate", "marts", "audit")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DUCKDB_PATH = PROJECT_ROOT / "warehouse" / "stratpos.duckdb"
ENV_PREFIX = "STRATPOS_"
ENV_FILE = ".env"
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
_PREFIX = re.compile(r"^[A-Za-z0-9_]*$")
_ACCOUNT_ID = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")
# the mapping load_settings() reads; Settings(...) built directly reads none
_LOADING: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("stratpos_env", default=None)


class MySQLSettings(BaseModel):
    """The MySQL/MariaDB server of the ``mysql`` target (``STRATPOS_MYSQL_*``)."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    host: str = Field("127.0.0.1", description="MySQL/MariaDB server host")
    port: int = Field(3306, ge=1, le=65535, description="MySQL/MariaDB server port")
    user: str = Field("root", description="MySQL/MariaDB user of the pipeline")
    password: SecretStr = Field(SecretStr(""), description="password of that user")
    flavor: Literal["mariadb", "mysql"] = Field(
        "mariadb", description="dbt adapter type of the MySQL target: `mariadb` or `mysql`"
    )
    tmp_table_mb: int = Field(
        512,
        ge=16,
        le=65536,
        description="in-memory temporary table limit of the pipeline's sessions, MiB (`tmp_table_size` and "
        "`max_heap_table_size`; the server default of 16 spills large GROUP BYs and derived tables to disk)",
    )

    @field_validator("flavor", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    def describe(self) -> str:
        """user@host:port, safe to print."""
        return f"{self.user}@{self.host}:{self.port}"


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """Every stratpos setting. Field descriptions are the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_ignore_empty=True,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    # --- warehouse
    target: Literal["duckdb", "mysql"] = Field("duckdb", description="warehouse: `duckdb` or `mysql` (MySQL/MariaDB)")
    duckdb_path: Path = Field(
        DEFAULT_DUCKDB_PATH,
        description="DuckDB warehouse file (relative: to the working directory); its folder must exist",
    )
    duckdb_ingest_memory: str = Field(
        "256MB", description="DuckDB `memory_limit` of the ingestion connection (dbt's is its own)"
    )
    duckdb_transform_memory: str = Field(
        "1GB",
        description="DuckDB `memory_limit` of dbt's connection (`stratpos transform`, the DAG's dbt tasks); "
        "beyond it DuckDB spills to a temporary folder beside the warehouse",
    )
    load_lock_wait_seconds: int = Field(
        600,
        ge=0,
        description="how long a load waits for another load of the same warehouse (DuckDB file lock) or source "
        "(MySQL named lock) before it stops with a clear error",
    )
    schema_prefix: str = Field("", description="prefix of every schema (MySQL: database), e.g. `acme_`")
    mysql: MySQLSettings = Field(default_factory=MySQLSettings, description="MySQL/MariaDB server")
    gx_docs_dir: Path | None = Field(
        None,
        description="where `validate` writes the GX data docs; default: beside the DuckDB file "
        "(`<name>_gx_docs/`), or `warehouse/<prefix>mysql_gx_docs/` on MySQL",
    )
    # --- sources
    accounts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="comma-separated Binance account ids (Airflow connections `binance_<id>`); empty: `default`"
    )
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="comma-separated symbols to read besides the discovered ones"
    )
    signals_landing: Path | None = Field(
        None, description="folder of signal files (`*.jsonl`, `*.csv`, `*.parquet`) loaded each once; none: no signals"
    )
    binance_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("BINANCE_API_KEY", "binance_api_key"),
        description="read-only Binance key (or the Airflow connection `binance_default`); none: the sandbox",
    )
    binance_api_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("BINANCE_API_SECRET", "binance_api_secret"),
        description="its secret",
    )
    binance_base_url: str | None = Field(
        None,
        description="API host: the paper exchange when no key is set; with a key only with `STRATPOS_BINANCE_ENDPOINT`",
    )
    binance_endpoint: Literal["binance", "testnet", "custom"] = Field(
        "binance", description="where a real key may go: `binance`, `testnet` or `custom` (`STRATPOS_BINANCE_BASE_URL`)"
    )
    binance_allow_trading_key: bool = Field(False, description="`1`: accept a key that can trade or withdraw")
    sandbox_url: str = Field("http://127.0.0.1:8765", description="the paper exchange used without a key")
    # --- alerts
    alert_slack_webhook: SecretStr | None = Field(None, description="Slack incoming-webhook URL")
    alert_webhook_url: SecretStr | None = Field(None, description="generic webhook URL (JSON POST)")
    alert_webhook_token: SecretStr | None = Field(None, description="bearer token of the generic webhook")
    alert_smtp_host: str | None = Field(None, description="SMTP server of e-mail alerts")
    alert_smtp_port: int | None = Field(
        None, ge=1, le=65535, description="SMTP port (default by security: 25, 587, 465)"
    )
    alert_smtp_user: str | None = Field(None, description="SMTP login")
    alert_smtp_password: SecretStr | None = Field(None, description="SMTP password")
    alert_smtp_from: str | None = Field(None, description="sender address")
    alert_smtp_to: str | None = Field(None, description="comma-separated recipients")
    alert_smtp_security: Literal["none", "starttls", "ssl"] | None = Field(
        None, description="`none`, `starttls` or `ssl` (default by port)"
    )
    alert_digest_hours: float = Field(
        24, gt=0, description="how often a failure or warning that goes on is told again (one digest of them all)"
    )
    # --- BI and Airflow
    bi_user: str = Field("stratpos_bi", description="read-only BI user on MySQL/MariaDB (`SELECT` on the marts)")
    bi_host: str = Field("localhost", description="host part of the BI user (`%` only when configured: any host)")
    bi_password: SecretStr | None = Field(None, description="its password; unset: no BI user is created")
    dag_retries: int = Field(2, ge=0, description="task retries of the hourly DAG (read when the DAG is parsed)")
    dag_retry_delay_seconds: int = Field(120, ge=0, description="seconds between those retries")
    # --- NATS JetStream: signals and order links from the trade engine's bus (ingestion/nats_source.py)
    nats_servers: str = Field(
        "",
        description="comma-separated NATS server URLs (or the Airflow connection `nats_default`); empty: the DAG "
        "reads no bus, `stratpos ingest nats` uses nats://127.0.0.1:4222",
    )
    nats_creds_file: Path | None = Field(None, description="NATS credentials file (`.creds`: JWT and NKey seed)")
    nats_token: SecretStr | None = Field(None, description="NATS token")
    nats_user: str | None = Field(None, description="NATS user (with `STRATPOS_NATS_PASSWORD`)")
    nats_password: SecretStr | None = Field(None, description="NATS password")
    nats_stream: str = Field("STRATPOS", description="JetStream stream holding the signals and order links")
    nats_signals_subject: str = Field("stratpos.signals.>", description="subject (filter) of the signals")
    nats_links_subject: str = Field("stratpos.order_links.>", description="subject (filter) of the order links")
    nats_durable: str = Field("stratpos", description="durable consumer name prefix (`<name>_signals`, …)")
    nats_batch_size: int = Field(1000, ge=1, description="messages per fetch and commit")
    nats_wait_seconds: float = Field(2.0, gt=0, description="longest wait of one fetch")
    nats_ack_wait_seconds: float = Field(
        30.0, gt=0, description="seconds before JetStream redelivers a fetched, unacknowledged message"
    )

    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        mapping = _LOADING.get()
        if mapping is None:
            return (init_settings,)
        return (init_settings, _MappingSource(settings_cls, mapping))

    # ------------------------------------------------------------------ validation
    @field_validator("target", "binance_endpoint", "alert_smtp_security", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "schema_prefix", "duckdb_ingest_memory", "duckdb_transform_memory", "bi_user", "bi_host", mode="before"
    )
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("duckdb_path", "gx_docs_dir", "signals_landing")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        value = value.expanduser()
        return value if value.is_absolute() else (Path.cwd() / value).resolve()

    @field_validator("schema_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError("may hold only letters, digits and _")
        return value

    @field_validator("duckdb_ingest_memory", "duckdb_transform_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not _MEMORY.match(value):
            raise ValueError("must be a size such as 256MB or 2GB")
        return value

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> Any:
        value = _csv(value)
        return tuple(s.upper() for s in value) if isinstance(value, (tuple, list)) else value

    @field_validator("accounts", mode="before")
    @classmethod
    def _accounts_csv(cls, value: Any) -> Any:
        return _csv(value)

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if not _ACCOUNT_ID.match(a)]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))} is not an account id (lower-case letters, digits, _; at most 32; "
                "it names the Airflow connection binance_<account>)"
            )
        dupes = sorted({a for a in value if value.count(a) > 1})
        if dupes:
            raise ValueError(f"lists {', '.join(dupes)} more than once")
        return value

    @field_validator("bi_user")
    @classmethod
    def _bi_user(cls, value: str) -> str:
        if len(value) > 80 or not all(c.isalnum() or c in "_-." for c in value):
            raise ValueError("may hold only letters, digits, _ - . (at most 80)")
        return value

    # ------------------------------------------------------------------ derived values
    def schema(self, layer: str) -> str:
        """The schema (MySQL: database) that holds ``layer``, e.g. ``schema('raw')``."""
        if layer not in LAYERS:
            raise ConfigError(f"unknown layer {layer!r}; layers are {', '.join(LAYERS)}")
        return f"{self.schema_prefix}{layer}"

    @property
    def schemas(self) -> dict[str, str]:
        return {layer: self.schema(layer) for layer in LAYERS}

    @property
    def gx_docs_path(self) -> Path:
        """Where GX data docs of this warehouse go: ``gx_docs_dir``, else beside the warehouse."""
        if self.gx_docs_dir is not None:
            return self.gx_docs_dir
        if self.target == "duckdb":
            return self.duckdb_path.with_name(f"{self.duckdb_path.stem}_gx_docs")
        return PROJECT_ROOT / "warehouse" / f"{self.schema_prefix}mysql_gx_docs"

    @property
    def origins(self) -> dict[str, str]:
        """Variable -> ``environment`` / ``.env file`` / ``default`` (filled by :func:`load_settings`)."""
        return dict(self._origins)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and validated (e.g. another DuckDB file or prefix)."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        try:
            copy = type(self).model_validate(values | changes)
        except ValidationError as exc:
            raise _config_error(exc, {}) from None
        copy._origins = dict(self._origins)
        return copy

    def describe(self) -> str:
        """One line naming the warehouse, safe to print (no password)."""
        where = str(self.duckdb_path) if self.target == "duckdb" else self.mysql.describe()
        prefix = f", schema prefix {self.schema_prefix!r}" if self.schema_prefix else ""
        return f"{self.target} at {where}{prefix}"

    def to_env(self, *, warehouse_only: bool = False, secrets: bool = True) -> dict[str, str]:
        """These settings as environment variables for dbt, Cosmos and child processes.

        Paths are absolute, so dbt run from a copy of the project (Cosmos) reads the same DuckDB file.
        ``warehouse_only``: the variables the dbt profile reads, nothing else. ``secrets=False`` leaves
        the secrets out (for values Airflow stores and renders, such as an operator's ``env``).
        """
        env: dict[str, str] = {}
        hidden = secret_variables() if not secrets else frozenset()
        for var, value in self.variables().items():
            if (warehouse_only and var not in _WAREHOUSE_VARIABLES) or var in hidden:
                continue
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, bool):
                value = "1" if value else "0"
            env[var] = str(value)
        return env

    def variables(self) -> dict[str, Any]:
        """Variable name -> its value in these settings (secrets stay :class:`SecretStr`)."""
        out: dict[str, Any] = {}
        for var, (name, sub) in variable_fields().items():
            value = getattr(self, name)
            out[var] = getattr(value, sub) if sub else value
        return out

    def rows(self) -> list[tuple[str, str, str]]:
        """(variable, shown value, origin) of every setting; secrets as ``set``/``unset``."""
        rows = []
        for var, value in self.variables().items():
            if var in secret_variables():
                shown = "set" if value is not None and value.get_secret_value() else "unset"
            elif value is None:
                shown = "(none)"
            elif isinstance(value, bool):
                shown = "1" if value else "0"
            elif isinstance(value, tuple):
                shown = ",".join(value) or "(empty)"
            elif value == "":
                shown = "(empty)"
            else:
                shown = str(value)
            origin = self._origins.get(var, "default")
            if var == "STRATPOS_GX_DOCS_DIR" and value is None:
                shown, origin = str(self.gx_docs_path), "derived"
            rows.append((var, shown, origin))
        return rows


_WAREHOUSE_VARIABLES = frozenset(
    {
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
)


def secret_variables() -> frozenset[str]:
    """The variables that hold secrets (never printed)."""
    out = set()
    for var, (name, sub) in variable_fields().items():
        info = MySQLSettings.model_fields[sub] if sub else Settings.model_fields[name]
        if info.annotation is SecretStr or SecretStr in get_args(info.annotation):
            out.add(var)
    return frozenset(out)


class _MappingSource(EnvSettingsSource):
    """The environment source, over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], mapping: Mapping[str, str]) -> None:
        self._mapping = mapping
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._mapping, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _env_name(name: str, info) -> str:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{ENV_PREFIX}{name.upper()}"


def variable_fields() -> dict[str, tuple[str, str | None]]:
    """Variable name -> (Settings field, MySQLSettings field or None), in declaration order."""
    out: dict[str, tuple[str, str | None]] = {}
    for name, info in Settings.model_fields.items():
        if name == "mysql":
            for sub in MySQLSettings.model_fields:
                out[f"{ENV_PREFIX}MYSQL_{sub.upper()}"] = (name, sub)
        else:
            out[_env_name(name, info)] = (name, None)
    return out


def variable_table() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting: the README's configuration table."""
    rows = []
    for var, (name, sub) in variable_fields().items():
        info = MySQLSettings.model_fields[sub] if sub else Settings.model_fields[name]
        default = info.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        if isinstance(default, Path):
            default = default.relative_to(PROJECT_ROOT) if default.is_relative_to(PROJECT_ROOT) else default
        if isinstance(default, bool):
            default = "1" if default else "0"
        shown = "empty" if default in ("", ()) else "none" if default is None else f"`{default}`"
        rows.append((var, shown, info.description or ""))
    return rows


TABLE_BEGIN = "<!-- settings table: generated by scripts/settings_table.py from stratpos.core.settings -->"
TABLE_END = "<!-- end of settings table -->"


def markdown_table() -> str:
    """The README's configuration table (between :data:`TABLE_BEGIN` and :data:`TABLE_END`)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    pipe = "\\|"  # a | inside a cell
    lines += [f"| `{var}` | {default} | {meaning.replace('|', pipe)} |" for var, default, meaning in variable_table()]
    return "\n".join(lines)


def _config_error(exc: ValidationError, env: Mapping[str, str]) -> ConfigError:
    """The first validation error as one line naming the variable and the value it had."""
    names = {(name, sub): var for var, (name, sub) in variable_fields().items()}
    aliases = {
        str(info.validation_alias.choices[0]).lower(): name
        for name, info in Settings.model_fields.items()
        if isinstance(info.validation_alias, AliasChoices)
    }
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        field = aliases.get(loc[0].lower(), loc[0]) if loc else ""
        sub = loc[1] if len(loc) > 1 and field == "mysql" else None
        var = names.get((field, sub)) or names.get((field, None)) or (loc[0] if loc else "settings")
        message = err["msg"].removeprefix("Value error, ")
        raw = next((v for k, v in env.items() if k.upper() == var), err.get("input"))
        if isinstance(raw, SecretStr) or "PASSWORD" in var or "SECRET" in var or "TOKEN" in var:
            raw = "…"
        if err["type"] == "int_parsing":
            message = "must be an integer"
        elif err["type"] == "literal_error":
            message = f"must be one of {err.get('ctx', {}).get('expected', '')}".replace("'", "")
        elif var in ("STRATPOS_MYSQL_PORT", "STRATPOS_ALERT_SMTP_PORT") and err["type"].startswith(("greater", "less")):
            message = "must be a TCP port (1-65535)"
        lines.append(f"{var} {message}, got {raw!r}")
    return ConfigError(lines[0] if len(lines) == 1 else f"{lines[0]} (and {len(lines) - 1} more)")


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


_EXPORTED: set[str] = set()  # variables export_env_file() put into os.environ (their origin stays ".env file")


def export_env_file(path: Path | str = ENV_FILE) -> list[str]:
    """Put the ``.env`` file's variables into ``os.environ`` where the environment has none.

    The CLI does this first, so a library or child process that reads the environment (dbt, the
    Binance client, Airflow) sees the same values as :func:`load_settings`. Returns the names set.
    """
    added = []
    for name, value in _read_env_file(Path(path)).items():
        if name not in os.environ:
            os.environ[name] = value
            _EXPORTED.add(name.upper())
            added.append(name)
    return added


def load_settings(env: Mapping[str, str] | None = None, *, env_file: Path | str | None = None) -> Settings:
    """Every setting from ``env`` (default: the process environment over the working directory's ``.env``).

    A mapping given explicitly is read alone (no ``.env``) unless ``env_file`` is given too. A value
    stratpos cannot use raises :class:`ConfigError` naming the variable.
    """
    exported: set[str] = set()
    if env is None:
        env = os.environ
        env_file = ENV_FILE if env_file is None else env_file
        exported = _EXPORTED
    dotenv = _read_env_file(Path(env_file)) if env_file is not None else {}
    upper_env = {k.upper() for k, v in env.items() if v not in (None, "")} - exported
    upper_dotenv = {k.upper() for k, v in dotenv.items() if v not in (None, "")}
    merged = {
        **dotenv,
        **{k: v for k, v in env.items() if k.upper().startswith(ENV_PREFIX) or k.upper().startswith("BINANCE_")},
    }
    token = _LOADING.set(merged)
    try:
        settings = Settings()
    except ValidationError as exc:
        raise _config_error(exc, merged) from None
    finally:
        _LOADING.reset(token)
    origins = {}
    for var in variable_fields():
        if var in upper_env:
            origins[var] = "environment"
        elif var in upper_dotenv:
            origins[var] = ".env file"
        else:
            origins[var] = "default"
    settings._origins = origins
    return settings
