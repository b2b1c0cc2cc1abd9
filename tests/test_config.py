import pytest

from stratpos.core.settings import ConfigError, load_settings
from stratpos.core.warehouse import ensure_schemas, existing_schemas


def test_defaults_follow_spec():
    s = load_settings({})
    assert s.target == "duckdb"
    assert s.duckdb_path.parts[-2:] == ("warehouse", "stratpos.duckdb")
    assert (s.mysql.host, s.mysql.port, s.mysql.user, s.mysql.password.get_secret_value()) == (
        "127.0.0.1",
        3306,
        "root",
        "",
    )
    assert s.duckdb_ingest_memory == "256MB"
    assert s.schemas == {
        "raw": "raw",
        "staging": "staging",
        "intermediate": "intermediate",
        "marts": "marts",
        "audit": "audit",
    }


def test_environment_overrides(tmp_path):
    s = load_settings(
        {
            "STRATPOS_TARGET": "MySQL",
            "STRATPOS_DUCKDB_PATH": str(tmp_path / "x.duckdb"),
            "STRATPOS_MYSQL_HOST": "db.internal",
            "STRATPOS_MYSQL_PORT": "3307",
            "STRATPOS_MYSQL_USER": "loader",
            "STRATPOS_MYSQL_PASSWORD": "p@ss word",
            "STRATPOS_SCHEMA_PREFIX": "acme_",
            "STRATPOS_DUCKDB_INGEST_MEMORY": "1.5GB",
        }
    )
    assert s.duckdb_ingest_memory == "1.5GB"
    assert s.target == "mysql"
    assert s.duckdb_path == tmp_path / "x.duckdb"
    assert s.schema("marts") == "acme_marts"
    assert (s.mysql.host, s.mysql.port, s.mysql.user) == ("db.internal", 3307, "loader")
    assert s.mysql.password.get_secret_value() == "p@ss word"
    # the password never shows up in printable descriptions
    assert "p@ss" not in s.describe() and "p@ss" not in repr(s)


def test_relative_duckdb_path_is_resolved_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings({"STRATPOS_DUCKDB_PATH": "w/db.duckdb"}).duckdb_path == tmp_path / "w" / "db.duckdb"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STRATPOS_TARGET": "postgres"}, "STRATPOS_TARGET"),
        ({"STRATPOS_MYSQL_PORT": "abc"}, "STRATPOS_MYSQL_PORT"),
        ({"STRATPOS_MYSQL_PORT": "70000"}, "STRATPOS_MYSQL_PORT"),
        ({"STRATPOS_SCHEMA_PREFIX": "a-b;drop"}, "STRATPOS_SCHEMA_PREFIX"),
        ({"STRATPOS_DUCKDB_INGEST_MEMORY": "lots"}, "STRATPOS_DUCKDB_INGEST_MEMORY"),
        ({"STRATPOS_DUCKDB_INGEST_MEMORY": "256MB'; drop"}, "STRATPOS_DUCKDB_INGEST_MEMORY"),
    ],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_unknown_layer_is_an_error():
    with pytest.raises(ConfigError, match="unknown layer"):
        load_settings({}).schema("gold")


def test_schemas_created_on_both_targets(warehouse_settings):
    assert existing_schemas(warehouse_settings) == set()
    created = ensure_schemas(warehouse_settings)
    assert set(created) == set(warehouse_settings.schemas.values())
    assert existing_schemas(warehouse_settings) == set(created)
    ensure_schemas(warehouse_settings)  # idempotent
    assert existing_schemas(warehouse_settings) == set(created)


def test_mysql_prefix_isolates_schemas(mysql_settings):
    ensure_schemas(mysql_settings)
    assert all(name.startswith(mysql_settings.schema_prefix) for name in existing_schemas(mysql_settings))
