"""Write the README's configuration table from the settings object (``--check``: fail when it differs)."""

from __future__ import annotations

import sys
from pathlib import Path

from stratpos.core.settings import TABLE_BEGIN, TABLE_END, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def render(text: str) -> str:
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_BEGIN}\n{markdown_table()}\n{TABLE_END}{tail}"


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if "--check" in argv:
        if new != text:
            print("README.md: the configuration table differs from the settings; run scripts/settings_table.py")
            return 1
        return 0
    if new != text:
        README.write_text(new, encoding="utf-8")
        print("README.md: configuration table updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
