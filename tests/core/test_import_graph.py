"""The layering: the foundation layer imports nothing else of stratpos; no module imports another's private name."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("stratpos", "ingestion", "expectations", "sandbox", "dags", "scripts", "tests")
CHECKED = ("stratpos", "ingestion", "expectations", "sandbox", "dags")


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    """The module an ImportFrom names, with relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            out += [(node.lineno, f"{module}.{alias.name}" if module else alias.name) for alias in node.names]
    return out


def _is_project_module(name: str) -> bool:
    return (ROOT / Path(*name.split("."))).with_suffix(".py").is_file() or (
        ROOT / Path(*name.split(".")) / "__init__.py"
    ).is_file()


def test_core_imports_nothing_else_of_the_project():
    core = _modules("stratpos/core")
    assert len(core) >= 8, [p.name for p in core]
    offenders = []
    for path in core:
        for line, name in _imports(path):
            top = name.split(".")[0]
            if top in PROJECT_PACKAGES and not (name == "stratpos.core" or name.startswith("stratpos.core.")):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert offenders == []


def test_the_scan_finds_an_upward_import():
    """The scan itself: an import of stratpos.cli from core would be reported."""
    fake = ROOT / "stratpos" / "core"
    probe = ast.parse("def f():\n    from stratpos.cli import main\n    from . import settings\n")
    names = []
    for node in ast.walk(probe):
        if isinstance(node, ast.ImportFrom):
            names += [f"{_absolute(fake / 'x.py', node)}.{a.name}" for a in node.names]
    assert names == ["stratpos.cli.main", "stratpos.core.settings"]


def _private_imports(path: Path, text: str | None = None) -> list[str]:
    text = path.read_text(encoding="utf-8") if text is None else text
    tree = ast.parse(text, str(path))
    own = _module_name(path)
    found = []
    module_aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            if module.split(".")[0] not in PROJECT_PACKAGES or module == own:
                continue
            for alias in node.names:
                target = f"{module}.{alias.name}"
                if _is_project_module(target):  # a module (private modules are fine to import whole)
                    module_aliases[alias.asname or alias.name] = target
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROJECT_PACKAGES and alias.asname:
                    module_aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in module_aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and module_aliases[node.value.id] != own
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {module_aliases[node.value.id]}.{node.attr}")
    return found


def test_no_module_imports_a_private_name_of_another():
    offenders = [hit for path in _modules(*CHECKED) for hit in _private_imports(path)]
    assert offenders == []


def test_the_private_scan_reports_offenders():
    """The scan itself, on source text placed (not written) at stratpos/probe.py."""
    text = (
        "from stratpos.cli import _one_line\n"
        "from stratpos.cli import main as _main\n"
        "import ingestion.records as records\n"
        "records._object\n"
    )
    hits = _private_imports(ROOT / "stratpos" / "probe.py", text)
    assert [h.split(" ", 1)[1] for h in hits] == ["imports stratpos.cli._one_line", "uses ingestion.records._object"]


@pytest.mark.parametrize("module", ["stratpos", "stratpos.core.settings", "stratpos.core.timeparse"])
def test_foundation_imports_stay_light(module):
    """No warehouse driver, dbt, GX or Airflow is imported by the package or the settings."""
    code = (
        f"import sys, {module}\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('duckdb', 'pymysql', 'dbt', 'great_expectations', 'airflow', 'cosmos', 'pandas', 'ingestion', "
        "'expectations', 'sandbox'))\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert proc.stdout.strip() == ""
