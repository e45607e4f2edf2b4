"""The import contracts in pyproject.toml bite: a violating import fails `lint-imports` (and so `make test`).

Each case copies the package, adds one import that breaks a rule, and runs the real linter on the copy.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "infragenius"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(source_root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    command = [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def linter() -> Path:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} missing: the test extra installs import-linter", pytrace=False)
    return LINT_IMPORTS


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("analysis/_violation.py", "import infragenius.slo.reconcile", "siblings: none imports another"),
        ("detectors/_violation.py", "import infragenius.gather.kube", "Detectors are pure"),
        ("detectors/_violation2.py", "import kubernetes.client", "Detectors are pure"),
        ("runs/_violation.py", "import infragenius.analysis.reconcile", "Layers:"),
        ("kube/_violation.py", "import infragenius.snapshot", "kube/ is vocabulary"),
    ],
)
def test_a_violating_import_breaks_a_contract(
    linter: Path, tmp_path: Path, module: str, line: str, broken: str
) -> None:
    copy = tmp_path / "infragenius"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / module).write_text(f'"""A deliberate violation."""\n\n{line}\n')
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout, result.stdout


def test_the_tree_keeps_every_contract(linter: Path) -> None:
    result = _lint(ROOT / "operator")
    assert result.returncode == 0, result.stdout


def _private_imports() -> list[str]:
    """`from infragenius.a.b import _name` where the importer lives outside package ``a``."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        importer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("infragenius."):
                continue
            source = node.module.split(".")[1]
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if private and source != importer:
                found.append(f"{path.relative_to(ROOT)}: from {node.module} import {', '.join(private)}")
    return found


def test_no_module_imports_a_private_name_from_another_package() -> None:
    assert _private_imports() == []
