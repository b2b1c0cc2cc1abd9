"""Settings of SPEC §2, read from the environment in one place.

Every part of stratpos (ingestion, dbt profiles, GX, Airflow tasks, the CLI) asks this
module for the warehouse target, paths, the MySQL server and the schema names, so a
setting means the same thing everywhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote_plus

TARGETS = ("duckdb", "mysql")
LAYERS = ("raw", "staging", "intermediate", "marts", "audit")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


class ConfigError(ValueError):
    """A setting has a value stratpos cannot use; the message names the variable."""


@dataclass(frozen=True)
class MySQLSettings:
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)  # never printed

    def sqlalchemy_url(self, database: str | None = None) -> str:
        """A SQLAlchemy URL (PyMySQL driver); the password is URL-quoted, never logged."""
        auth = quote_plus(self.user) + (f":{quote_plus(self.password)}" if self.password else "")
        db = f"/{database}" if database else ""
        return f"mysql+pymysql://{auth}@{self.host}:{self.port}{db}?charset=utf8mb4"

    def describe(self) -> str:
        """host:port and user, safe to print."""
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    target: str = "duckdb"
    duckdb_path: Path = PROJECT_ROOT / "warehouse" / "stratpos.duckdb"
    mysql: MySQLSettings = field(default_factory=MySQLSettings)
    schema_prefix: str = ""
    # DuckDB memory for the ingestion connection: staging a batch needs little, and DuckDB's own
    # default (80 % of RAM, mostly block cache) would make a loader look like it holds gigabytes
    duckdb_ingest_memory: str = "256MB"

    def schema(self, layer: str) -> str:
        """The schema (MySQL: database) that holds ``layer``, e.g. ``schema('raw')``."""
        if layer not in LAYERS:
            raise ConfigError(f"unknown layer {layer!r}; layers are {', '.join(LAYERS)}")
        return f"{self.schema_prefix}{layer}"

    @property
    def schemas(self) -> dict[str, str]:
        return {layer: self.schema(layer) for layer in LAYERS}

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)

    def describe(self) -> str:
        """One line naming the warehouse, safe to print (no password)."""
        where = str(self.duckdb_path) if self.target == "duckdb" else self.mysql.describe()
        prefix = f", schema prefix {self.schema_prefix!r}" if self.schema_prefix else ""
        return f"{self.target} at {where}{prefix}"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not 0 < value < 65536:
        raise ConfigError(f"{name} must be a TCP port (1-65535), got {value}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read SPEC §2 settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    target = env.get("STRATPOS_TARGET", "").strip().lower() or "duckdb"
    if target not in TARGETS:
        raise ConfigError(f"STRATPOS_TARGET must be one of {', '.join(TARGETS)}, got {target!r}")
    prefix = env.get("STRATPOS_SCHEMA_PREFIX", "").strip()
    if prefix and not all(c.isalnum() or c == "_" for c in prefix):
        raise ConfigError(f"STRATPOS_SCHEMA_PREFIX may hold only letters, digits and _, got {prefix!r}")
    raw_path = env.get("STRATPOS_DUCKDB_PATH", "").strip()
    duckdb_path = Path(raw_path) if raw_path else Settings.duckdb_path
    if not duckdb_path.is_absolute():
        duckdb_path = (Path.cwd() / duckdb_path).resolve()
    mysql = MySQLSettings(
        host=env.get("STRATPOS_MYSQL_HOST", "").strip() or "127.0.0.1",
        port=_int(env, "STRATPOS_MYSQL_PORT", 3306),
        user=env.get("STRATPOS_MYSQL_USER", "").strip() or "root",
        password=env.get("STRATPOS_MYSQL_PASSWORD", ""),
    )
    memory = env.get("STRATPOS_DUCKDB_INGEST_MEMORY", "").strip() or Settings.duckdb_ingest_memory
    if not _MEMORY.match(memory):
        raise ConfigError(f"STRATPOS_DUCKDB_INGEST_MEMORY must be a size such as 256MB or 2GB, got {memory!r}")
    return Settings(
        target=target, duckdb_path=duckdb_path, mysql=mysql, schema_prefix=prefix, duckdb_ingest_memory=memory
    )
