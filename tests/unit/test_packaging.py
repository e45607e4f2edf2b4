"""The image installs a wheel, not the source tree: every data file the operator reads must be in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "infragenius"


def _source_copy(tmp_path: Path) -> Path:
    """What the wheel is built from, copied: an in-tree build reuses ./build, where modules deleted since
    an earlier build would still be picked up."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "operator", source / "operator", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    return source


def test_the_wheel_carries_every_data_file(tmp_path: Path) -> None:
    source = _source_copy(tmp_path)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("infragenius-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [
        p.relative_to(PACKAGE.parent).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert data, "no data files found: the test looks in the wrong place"
    missing = sorted(set(data) - names)
    assert not missing, f"add these to [tool.setuptools.package-data] in pyproject.toml: {missing}"
    # The dev tools are their own distribution (./devtools): the wheel, hence the image, must not carry them.
    dev_code = sorted(n for n in names if any(word in n for word in ("devcluster", "docsgen", "infragenius_devtools")))
    assert not dev_code, f"the operator wheel ships dev tools: {dev_code}"
    assert any(n.startswith("infragenius/cli.py") for n in names), "the test reads the wrong wheel"


def test_the_cli_does_not_need_the_dev_tools() -> None:
    """Without infragenius_devtools the operator's commands work and `devcluster` says how to install it."""
    # sys.modules[name] = None makes every import of it fail, as when it is not installed.
    script = (
        "import sys; sys.modules['infragenius_devtools'] = None; "
        "from infragenius.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    dev = subprocess.run(
        [sys.executable, "-c", script, "devcluster", "status"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert dev.returncode == 2, dev.stderr
    assert "Traceback" not in dev.stderr
    assert "pip install -e ./devtools" in dev.stderr and "make install" in dev.stderr
    crds = subprocess.run(
        [sys.executable, "-c", script, "crds", "--help"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )
    assert crds.returncode == 0, crds.stderr
