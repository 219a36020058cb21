"""The layer contract (``lint-imports``, configured in pyproject.toml) holds, and it bites.

A scratch copy of the package with one wrong-way import must fail the same contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (the dev extra)")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300, check=False
    )


def _scratch_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(ROOT / "pyproject.toml", root)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "adaptive_router", root / "adaptive_router", ignore=ignore)
    shutil.copytree(ROOT / "integrations", root / "integrations", ignore=ignore)
    shutil.copytree(ROOT / "tools", root / "tools", ignore=ignore)
    return root


def test_the_contract_holds():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "reported"),
    [
        (
            "curves.py",
            "import adaptive_router.app.reports\n",
            "adaptive_router.curves -> adaptive_router.app",
        ),
        (
            "allocation/engine.py",
            "import langchain_core\n",
            "adaptive_router.allocation.engine -> langchain_core",
        ),
        ("runnables/router.py", "import torch\n", "adaptive_router.runnables.router -> torch"),
        (
            "strategies/route.py",
            "import adaptive_router.allocation._segments\n",
            "adaptive_router.strategies.route imports adaptive_router.allocation._segments",
        ),
    ],
)
def test_a_wrong_way_import_breaks_it(tmp_path, module, line, reported):
    root = _scratch_copy(tmp_path)
    path = root / "adaptive_router" / module
    path.write_text(path.read_text(encoding="utf-8") + "\n" + line, encoding="utf-8")
    result = _lint(root)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert reported in " ".join(out.split()), out
