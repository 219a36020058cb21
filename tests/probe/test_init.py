from __future__ import annotations

import subprocess
import sys

import adaptive_router.probe as probe_pkg


def test_all_is_sorted_and_resolves() -> None:
    assert probe_pkg.__all__ == sorted(probe_pkg.__all__)
    for name in probe_pkg.__all__:
        assert getattr(probe_pkg, name) is not None


def test_import_does_not_load_torch() -> None:
    code = "import sys, adaptive_router.probe; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
