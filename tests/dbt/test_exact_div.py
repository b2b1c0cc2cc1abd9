"""DuckDB's exact division (macros/exact_div.sql) against Python's Decimal, at the bounds it states."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import duckdb
import jinja2

from stratpos.core.settings import PROJECT_ROOT

MACROS = Path(PROJECT_ROOT) / "dbt_project" / "macros" / "exact_div.sql"
SCALE = 26


def _connection() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the macro dbt's on-run-start creates (plain Jinja: rendered as dbt would)."""
    module = jinja2.Environment(extensions=["jinja2.ext.do"]).from_string(MACROS.read_text()).module
    con = duckdb.connect()
    con.execute(str(module.duckdb_exact_div_macro()))
    return con


def _expected(n: int, d: int) -> Decimal | None:
    if d == 0:
        return None
    with localcontext() as ctx:
        ctx.prec = 100
        return (Decimal(n) / Decimal(d)).quantize(Decimal("1e-18"), rounding=ROUND_HALF_UP)  # half away from zero


def test_exact_div_equals_decimal_division_rounded_half_away_from_zero():
    rng = random.Random(14)
    n_max, d_max = 10**12 * 10**SCALE, 17 * 10**8 * 10**SCALE  # |numerator| < 1e12, |denominator| < 1.7e9
    pairs = [(0, 5), (5, 0), (-7, 3), (2, 3), (1, 2 * 10**18), (-1, 2 * 10**18), (1, -2 * 10**18)]
    pairs += [(n_max - 1, d_max - 1), (10**SCALE, 3 * 10**SCALE)]
    for _ in range(2000):
        n = rng.randrange(-n_max + 1, n_max) // 10 ** rng.randrange(0, 30)
        d = rng.randrange(-d_max + 1, d_max) // 10 ** rng.randrange(0, 30)
        if abs(n) < 10**20 * abs(d):  # the quotient fits the result, DECIMAL(38, 18)
            pairs.append((n, d))
    con = _connection()
    con.execute("create table pairs (i integer, n hugeint, d hugeint)")
    con.executemany(
        "insert into pairs values (?, ?::hugeint, ?::hugeint)", [(i, str(n), str(d)) for i, (n, d) in enumerate(pairs)]
    )
    got = dict(con.execute("select i, stratpos_exact_div(n, d) from pairs").fetchall())
    wrong = [(n, d, got[i], _expected(n, d)) for i, (n, d) in enumerate(pairs) if got[i] != _expected(n, d)]
    assert wrong == []
