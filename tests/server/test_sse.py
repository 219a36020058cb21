"""Tests for adaptive_router.server.streaming: SSE when the upstream breaks before or during a stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from serverkit import ALICE

from adaptive_router.errors import BackendError

AUTH = {"Authorization": f"Bearer {ALICE}"}


class BreakingModel(BaseChatModel):
    """Streams ``pieces`` then raises (``pieces = 0``: fails before the first one)."""

    pieces: int = 1

    @property
    def _llm_type(self) -> str:
        return "breaking-test-double"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("whole"))])

    async def _astream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        for i in range(self.pieces):
            yield ChatGenerationChunk(message=AIMessageChunk(content=f"part{i} "))
        raise BackendError("stream from upstream broke: connection reset")


def _stream(server):
    body = {"model": "adaptive", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream(
        "POST", server.base_url + "/chat/completions", json=body, headers=AUTH, timeout=20
    ) as r:
        return r.status_code, [json.loads(x[6:]) if x != "data: [DONE]" else x for x in r.iter_lines() if x]


def test_a_stream_that_breaks_midway_ends_with_an_error_event_and_done(make_config, run_server):
    config = make_config("http://127.0.0.1:9/v1", max_k=1, budget=1.0, budgets="per_key = 3")
    server = run_server(config, model_factory=lambda name, backend: BreakingModel(pieces=2))
    status, events = _stream(server)
    assert status == 200  # the status line went out with the first piece
    assert [e["choices"][0]["delta"].get("content") for e in events[1:3]] == ["part0 ", "part1 "]
    assert (
        events[-2]["error"]["type"] == "upstream_error"
        and "connection reset" in events[-2]["error"]["message"]
    )
    assert events[-1] == "data: [DONE]"
    spent = server.app.state.service.budgets.snapshot()["alice"]
    assert (spent.spent, spent.reserved) == (1.0, 0.0)  # pieces were delivered: charged its reservation


def test_a_stream_that_fails_at_once_keeps_its_error_status(make_config, run_server):
    config = make_config("http://127.0.0.1:9/v1", max_k=1, budget=1.0, budgets="per_key = 3")
    server = run_server(config, model_factory=lambda name, backend: BreakingModel(pieces=0))
    response = httpx.post(
        server.base_url + "/chat/completions",
        json={"model": "adaptive", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers=AUTH,
    )
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_error"
    assert (
        server.app.state.service.budgets.snapshot()["alice"].spent == 0.0
    )  # nothing delivered, nothing charged
