"""Import boundaries: kube/ is pure vocabulary; detectors never reach for I/O."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "operator" / "infragenius"


def _imports(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(PACKAGE))] = names
    return found


def test_kube_imports_only_models_and_itself() -> None:
    for path, modules in _imports(PACKAGE / "kube").items():
        ours = {m for m in modules if m.startswith("infragenius")}
        assert all(m.startswith(("infragenius.kube", "infragenius.models")) for m in ours), (path, ours)


def test_detectors_do_no_io() -> None:
    forbidden = ("infragenius.gather", "infragenius.llm", "infragenius.history", "infragenius.kubeapi", "kubernetes")
    for path, modules in _imports(PACKAGE / "detectors").items():
        assert not [m for m in modules if m.startswith(forbidden)], path
