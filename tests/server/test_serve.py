"""Running the server for real: ``python -m adaptive_router.server`` in a subprocess, shutdown, workers.

Every process listens on 127.0.0.1 only and is killed at the end of its test whatever happens.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serverkit import ALICE, ENV, config_text

from adaptive_router.server.budgets import SqliteBudgets
from adaptive_router.server.fake_upstream import FakeUpstream

BODY = {"model": "adaptive", "messages": [{"role": "user", "content": "hello"}]}
AUTH = {"Authorization": f"Bearer {ALICE}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, **ENV}
    cmd = [sys.executable, "-m", "adaptive_router.server", "--config", str(config), *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_healthy(proc: subprocess.Popen[str], url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become healthy in time")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_bad_config_is_one_line_naming_the_key(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(config_text("http://127.0.0.1:9/v1").replace('backend = "up"', 'backend = "nope"'))
    result = subprocess.run(
        [sys.executable, "-m", "adaptive_router.server", "--config", str(path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, **ENV},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: router.toml: routers.adaptive.backend = 'nope' names no [backends]"
    )


def test_sigterm_lets_the_request_in_flight_finish(tmp_path, processes):
    with FakeUpstream(latency=1.5) as upstream:
        port = _free_port()
        path = tmp_path / "router.toml"
        path.write_text(config_text(upstream.base_url, max_k=1, budget=1.0))
        proc = _start(path, "--port", str(port))
        processes.append(proc)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(proc, url)
        result: dict[str, httpx.Response] = {}
        thread = threading.Thread(
            target=lambda: result.setdefault(
                "r", httpx.post(url + "/v1/chat/completions", json=BODY, headers=AUTH, timeout=30)
            )
        )
        thread.start()
        time.sleep(0.7)  # the request is upstream now
        assert upstream.requests == 1
        proc.send_signal(signal.SIGTERM)
        thread.join(30)
        assert (
            result["r"].status_code == 200
            and result["r"].json()["choices"][0]["message"]["content"] == "echo: hello"
        )
        assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health", timeout=2)


def test_in_process_shutdown_drains_too(upstream, make_config, run_server):
    upstream.latency = 1.0
    server = run_server(make_config(upstream.base_url))
    result: dict[str, httpx.Response] = {}
    thread = threading.Thread(
        target=lambda: result.setdefault(
            "r", httpx.post(server.base_url + "/chat/completions", json=BODY, headers=AUTH, timeout=30)
        )
    )
    thread.start()
    time.sleep(0.4)
    server.stop()
    thread.join(10)
    assert result["r"].status_code == 200


def test_two_workers_share_one_key_budget(tmp_path, processes):
    with FakeUpstream(latency=0.3) as upstream:
        port = _free_port()
        path = tmp_path / "router.toml"
        text = config_text(
            upstream.base_url, server="workers = 2", budgets='per_key = 6\nstate_file = "state.db"',
            max_k=1, budget=1.0,
        )  # fmt: skip
        path.write_text(text)
        proc = _start(path, "--port", str(port))
        processes.append(proc)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(proc, url)
        time.sleep(1.0)  # let the second worker finish starting too

        async def burst() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=40, max_keepalive_connections=0)
            async with httpx.AsyncClient(timeout=30, limits=limits, headers=AUTH) as client:
                return await asyncio.gather(
                    *(client.post(url + "/v1/chat/completions", json=BODY) for _ in range(16))
                )

        responses = asyncio.run(burst())
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] * 6 + [429] * 10, codes  # one per-process budget each would let 12 through
        assert upstream.requests == 6
        assert SqliteBudgets(tmp_path / "state.db", limit=lambda k: 6.0).snapshot()["alice"].spent == 6.0
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        if children.exists():
            assert len(children.read_text().split()) >= 2  # two worker processes


def test_startup_objects_are_hidden_from_the_cyclic_gc():
    from adaptive_router.server.serve import freeze_startup_heap

    frozen = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > frozen + 10_000  # the imported modules' objects, at least
    finally:
        gc.unfreeze()  # the test process goes on making and dropping servers
