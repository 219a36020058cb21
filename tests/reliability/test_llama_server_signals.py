"""Regression: a llama.cpp server does not outlive the process that started it.

`LlamaServer` starts the server in its own session, so a parent that died of SIGTERM (whose default action
skips ``with``/``atexit``) or of SIGKILL used to leave it running. A small parent process starts a server
(a fake one: `write_fake_llama_server` takes the real command line and serves ``/v1/models``), is
signalled, and the server must be gone within a few seconds.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from adaptive_router.integrations import llama_server
from adaptive_router.integrations.llama_server import LlamaServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integrations"))  # the shared loopback servers
from fault_proxy import write_fake_llama_server

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

GONE_WITHIN = 10.0  # seconds for the server to be gone after its parent died

PARENT = """\
import sys, time
from adaptive_router.integrations.llama_server import LlamaServer

with LlamaServer(model_path=sys.argv[1], python=sys.argv[2], startup_timeout=60) as server:
    print(server.pid, flush=True)
    time.sleep(120)  # until signalled
"""


def _is_gone(pid: int) -> bool:
    """Whether `pid` has exited; on Linux a zombie that nobody reaped yet counts as gone."""
    if Path("/proc/self/stat").exists():
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except OSError:
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_gone(pid: int, seconds: float) -> bool:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if _is_gone(pid):
            return True
        time.sleep(0.1)
    return _is_gone(pid)


def _read_pid(proc: subprocess.Popen[str], seconds: float) -> int:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    line = proc.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"the parent did not start a server within {seconds:g} s: {line!r} {err[-2000:]}")
    return int(line)


@pytest.fixture
def parent_and_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A parent process running one fake llama.cpp server; both are killed at the end if still there."""
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    fake = write_fake_llama_server(tmp_path, lifetime=120.0)
    parent = subprocess.Popen(
        [sys.executable, str(script), str(model), str(fake)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server_pid = None
    try:
        server_pid = _read_pid(parent, 60.0)
        yield parent, server_pid
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.communicate(timeout=10)
        if server_pid is not None and not _is_gone(server_pid):
            os.kill(server_pid, signal.SIGKILL)  # the server this test started, should it have survived


def test_sigterm_to_the_parent_stops_the_server(parent_and_server):
    parent, server_pid = parent_and_server
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == -signal.SIGTERM  # it still dies of SIGTERM...
    assert _wait_gone(server_pid, GONE_WITHIN)  # ...but stops its server first


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_sigkill_to_the_parent_takes_the_server_down(parent_and_server):
    parent, server_pid = parent_and_server
    parent.kill()
    parent.wait(timeout=30)
    assert _wait_gone(server_pid, GONE_WITHIN)


def test_sigterm_handler_is_installed_only_while_a_server_runs(tmp_path):
    ours = llama_server._stop_servers_then_die
    before = signal.getsignal(signal.SIGTERM)  # ours already when a session-wide server runs
    if before != signal.SIG_DFL and before is not ours:
        pytest.skip("SIGTERM has another handler in this process")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    server = LlamaServer(model_path=model, python=str(write_fake_llama_server(tmp_path)), log_dir=tmp_path)
    with server:
        assert signal.getsignal(signal.SIGTERM) is ours
    assert signal.getsignal(signal.SIGTERM) == before  # default again once no server runs


def test_a_sigterm_handler_of_the_application_is_left_alone(tmp_path):
    def mine(signum, frame):  # pragma: no cover - never called
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        model = tmp_path / "m.gguf"
        model.write_bytes(b"GGUF")
        with LlamaServer(model_path=model, python=str(write_fake_llama_server(tmp_path)), log_dir=tmp_path):
            assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
