"""Fixtures for the routing server: a loopback fake upstream, configs, and servers on 127.0.0.1.

- ``upstream``: a `FakeUpstream` (recording) in a thread, stopped at the end of the test;
- ``make_config(url, ...)``: a validated `ServerConfig` text around one upstream (auth via $AR_TEST_KEYS);
- ``run_server(config, ...)``: a `ServerThread` on a free loopback port, stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from serverkit import ENV, config_text

from adaptive_router.server.config import ServerConfig, parse_config
from adaptive_router.server.fake_upstream import FakeUpstream
from adaptive_router.server.serve import ServerThread


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A recording fake upstream on 127.0.0.1."""
    with FakeUpstream(record=True) as up:
        yield up


@pytest.fixture
def make_config() -> Callable[..., ServerConfig]:
    """``make_config(url, **parts)``: `config_text` parsed."""

    def make(url: str, **parts: Any) -> ServerConfig:
        return parse_config(config_text(url, **parts), source="test.toml")

    return make


@pytest.fixture
def run_server() -> Iterator[Callable[..., ServerThread]]:
    """``run_server(config, **create_app_kwargs)``: a started `ServerThread` (keys from `ENV`)."""
    started: list[ServerThread] = []

    def run(config: ServerConfig, **kwargs: Any) -> ServerThread:
        kwargs.setdefault("environ", ENV)
        server = ServerThread(config, **kwargs).start()
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop(timeout=15)
