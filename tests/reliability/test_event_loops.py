"""Regression: one model used from several event loops (``asyncio.run`` twice in a row, loops in threads).

An async client's pooled connections belong to the loop that opened them; before the fix the second
``asyncio.run(model.ainvoke(...))`` reused them and failed with "Event loop is closed". The fake server keeps
connections alive, as real servers do, so a reused connection would be picked from the pool.
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from adaptive_router.integrations.openai_backend import OpenAIChatModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integrations"))  # the shared loopback servers
from fault_proxy import FakeOpenAIServer


@pytest.fixture
def server():
    with FakeOpenAIServer(reply="hi") as fake:
        yield fake


def _model(server: FakeOpenAIServer, **kwargs) -> OpenAIChatModel:
    # one attempt: the second loop must work at once, not after a retry
    return OpenAIChatModel(base_url=server.base_url, max_attempts=1, deadline=20.0, **kwargs)


async def _stream_text(model: OpenAIChatModel) -> str:
    return "".join([str(chunk.content) async for chunk in model.astream("q")])


def test_two_asyncio_runs_in_a_row_both_succeed(server):
    model = _model(server)
    first = asyncio.run(model.ainvoke("q"))
    second = asyncio.run(model.ainvoke("q"))
    assert first.content == second.content == "hi"
    assert server.requests == 2


def test_streams_on_successive_loops(server):
    model = _model(server, endpoint="completions")
    assert [asyncio.run(_stream_text(model)) for _ in range(3)] == ["hi"] * 3
    assert server.requests == 3


def test_sync_and_async_calls_interleaved(server):
    model = _model(server)
    answers = [
        asyncio.run(model.ainvoke("q")).content,
        model.invoke("q").content,
        asyncio.run(model.ainvoke("q")).content,
    ]
    assert answers == ["hi"] * 3 and server.requests == 3


def test_loops_in_several_threads(server):
    model = _model(server)

    def run_twice(_: int) -> list[str]:
        return [str(asyncio.run(model.ainvoke("q")).content) for _ in range(2)]

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(run_twice, range(3)))
    assert results == [["hi", "hi"]] * 3 and server.requests == 6
