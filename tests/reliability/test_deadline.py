"""Regression: ``timeout`` and ``deadline`` cap a slow response, sync and async, plain and streamed.

The server on 127.0.0.1 sends its headers and then one byte every 0.3 s. A read timeout never fires (every
read gets a byte), so before the fix such a request was held until the server gave up (64 s in the report);
now it is released at its deadline with an error that says so.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest
from adaptive_router.integrations.openai_backend import DeadlineTransport, OpenAIChatModel

from adaptive_router.errors import BackendError, RetryExhaustedError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integrations"))  # the shared loopback servers
from fault_proxy import FakeOpenAIServer

DEADLINE = 3.0
SLACK = 1.0  # released within deadline + 1 s


@pytest.fixture
def trickling():
    """Headers, then one byte every 0.3 s for up to 15 s (so a test without the fix ends too)."""
    with FakeOpenAIServer(trickle=0.3, trickle_for=15.0) as server:
        yield server


def _model(server: FakeOpenAIServer, **kwargs) -> OpenAIChatModel:
    kwargs.setdefault("timeout", 1.0)
    return OpenAIChatModel(base_url=server.base_url, deadline=DEADLINE, **kwargs)


@pytest.mark.parametrize("timeout", [1.0, 30.0])
def test_sync_invoke_is_released_at_the_deadline(trickling, timeout):
    started = time.monotonic()
    with pytest.raises(RetryExhaustedError, match="did not finish in time: its deadline of 3 s passed"):
        _model(trickling, timeout=timeout).invoke("q")
    assert time.monotonic() - started < DEADLINE + SLACK


async def test_async_invoke_is_released_at_the_deadline(trickling):
    started = time.monotonic()
    with pytest.raises(RetryExhaustedError, match="did not finish in time: its deadline of 3 s passed"):
        await _model(trickling).ainvoke("q")
    assert time.monotonic() - started < DEADLINE + SLACK


def test_sync_stream_is_released_at_the_deadline(trickling):
    started = time.monotonic()
    with pytest.raises(BackendError, match="deadline of 3 s passed"):
        list(_model(trickling).stream("q"))
    assert time.monotonic() - started < DEADLINE + SLACK


async def test_async_stream_is_released_at_the_deadline(trickling):
    started = time.monotonic()
    with pytest.raises(BackendError, match="deadline of 3 s passed"):
        [chunk async for chunk in _model(trickling).astream("q")]
    assert time.monotonic() - started < DEADLINE + SLACK


def test_deadline_covers_the_retries_too(trickling):
    # several attempts allowed, each short: the deadline still ends the request, not the attempt count
    started = time.monotonic()
    with pytest.raises(RetryExhaustedError, match="deadline"):
        _model(trickling, timeout=1.0, max_attempts=50, initial_backoff=0.01).invoke("q")
    assert time.monotonic() - started < DEADLINE + SLACK


def test_fast_answers_are_untouched():
    with FakeOpenAIServer(reply="hi") as server:
        model = _model(server)
        assert model.invoke("q").content == "hi"
        assert "".join(str(c.content) for c in model.stream("q")) == "hi"
    assert server.requests == 2


def test_transport_outside_a_model_call_is_a_pass_through():
    transport = DeadlineTransport(httpx.MockTransport(lambda request: httpx.Response(200, text="x" * 10)))
    with httpx.Client(transport=transport) as client:
        assert client.get("http://test/").text == "x" * 10
