"""The server package's public names resolve, and importing it loads neither FastAPI nor uvicorn."""

from __future__ import annotations

import subprocess
import sys

import adaptive_router.server as server


def test_every_public_name_resolves():
    assert server.__all__ == sorted(server.__all__)
    for name in server.__all__:
        assert getattr(server, name) is not None


def test_importing_the_package_is_cheap():
    code = "import sys, adaptive_router.server; print('fastapi' in sys.modules, 'uvicorn' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["False", "False"]
