"""The README's configuration table lists exactly the variables of the settings object."""

from __future__ import annotations

import re
from pathlib import Path

from stratpos.core.settings import TABLE_BEGIN, TABLE_END, markdown_table, variable_fields

README = Path(__file__).resolve().parents[2] / "README.md"


def _table() -> str:
    text = README.read_text(encoding="utf-8")
    assert text.count(TABLE_BEGIN) == 1 and text.count(TABLE_END) == 1
    return text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0].strip()


def test_readme_table_lists_every_setting_once():
    variables = re.findall(r"^\| `([A-Z_0-9]+)` \|", _table(), re.MULTILINE)
    assert len(variables) == len(set(variables))
    assert set(variables) == set(variable_fields())


def test_readme_table_is_the_generated_one():
    """Defaults and meanings too: regenerate with `.venv/bin/python scripts/settings_table.py`."""
    assert _table() == markdown_table()
