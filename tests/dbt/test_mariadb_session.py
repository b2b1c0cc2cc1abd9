"""The per-statement settings dbt's MariaDB statements carry (macros/mariadb_session.sql)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest

from stratpos.core.settings import PROJECT_ROOT
from stratpos.core.warehouse import mysql_connection

MACROS = Path(PROJECT_ROOT) / "dbt_project" / "macros" / "mariadb_session.sql"


def _prefix(target_type: str, tmp_table_mb: str | None) -> str:
    """The macro rendered as dbt would: `target` and `env_var` from dbt's context."""
    env = {} if tmp_table_mb is None else {"STRATPOS_MYSQL_TMP_TABLE_MB": tmp_table_mb}
    template = jinja2.Environment(extensions=["jinja2.ext.do"]).from_string(MACROS.read_text())
    module = template.make_module({"target": SimpleNamespace(type=target_type), "env_var": env.get})
    return str(module.stratpos_statement_settings()).strip()


def test_only_mariadb_statements_carry_settings():
    assert _prefix("duckdb", "64") == ""
    assert _prefix("mysql", "64") == ""  # MySQL has no SET STATEMENT: its server settings apply
    assert _prefix("mariadb", None).startswith("set statement tmp_table_size = 536870912,")


@pytest.mark.parametrize("mb", ["48", "700"])
def test_a_statement_runs_with_the_temporary_table_limit_of_the_setting(mysql_available, mb):
    from stratpos.core.settings import Settings

    settings = Settings(target="mysql", mysql=mysql_available)
    with mysql_connection(settings) as con, con.cursor() as cur:
        cur.execute(_prefix("mariadb", mb) + " select @@tmp_table_size, @@max_heap_table_size")
        assert cur.fetchone() == (int(mb) * 1024 * 1024,) * 2
        cur.execute("select @@session.tmp_table_size")  # the session itself is left as it was
        assert cur.fetchone() == (settings.mysql.tmp_table_mb * 1024 * 1024,)
