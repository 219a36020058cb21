"""Tests for adaptive_router.integrations.openai_backend (offline: httpx MockTransport as the server)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from adaptive_router.integrations.openai_backend import OpenAIChatModel, retry_after_seconds
from langchain_core.messages import HumanMessage

from adaptive_router.errors import BackendError, ConfigError, RetryExhaustedError


def _chat_body(texts, prompt_tokens=5, completion_tokens=2):
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
            for i, t in enumerate(texts)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _completion_body(text):
    return {
        "id": "x",
        "object": "text_completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5},
    }


class Server:
    """A scripted server: ``script[i]`` answers request i (a status code, or a JSON body for 200)."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(json.loads(request.content or b"{}"))
        step = self.script[min(len(self.requests) - 1, len(self.script) - 1)]
        if isinstance(step, tuple):
            code, headers = step
            return httpx.Response(code, json={"error": {"message": "nope"}}, headers=headers)
        if isinstance(step, int):
            return httpx.Response(step, json={"error": {"message": "nope"}})
        if step == "timeout":
            raise httpx.ReadTimeout("stalled", request=request)
        return httpx.Response(200, json=step)


def _model(server, *, sleeps=None, **kwargs):
    client = openai.OpenAI(
        api_key="x",
        base_url="http://test/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(server)),
    )
    recorded = sleeps if sleeps is not None else []
    kwargs.setdefault("max_attempts", 4)
    return OpenAIChatModel(base_url="http://test/v1", client=client, sleep=recorded.append, **kwargs)


def test_chat_request_and_usage():
    server = Server([_chat_body(["hello"])])
    msg = _model(server, temperature=0.0, max_tokens=3).invoke("hi")
    assert msg.content == "hello"
    assert msg.usage_metadata["total_tokens"] == 7
    assert server.requests[0]["messages"] == [{"role": "user", "content": "hi"}]
    assert server.requests[0]["max_tokens"] == 3 and "n" not in server.requests[0]


def test_completions_endpoint_sends_raw_prompt():
    server = Server([_completion_body(" 7")])
    msg = _model(server, endpoint="completions").invoke("3 + 4 =")
    assert msg.content == " 7" and server.requests[0]["prompt"] == "3 + 4 ="


def test_n_gives_k_candidates_in_one_request():
    server = Server([_chat_body(["a", "b", "c"])])
    result = _model(server).generate([[HumanMessage("q")]], n=3)
    assert [g.text for g in result.generations[0]] == ["a", "b", "c"]
    assert len(server.requests) == 1 and server.requests[0]["n"] == 3


def test_n_refused_when_server_ignores_it():
    with pytest.raises(ConfigError, match="ignores n"):
        _model(Server([_chat_body(["a"])]), supports_n=False).generate([[HumanMessage("q")]], n=2)


def test_429_retry_after_is_honoured():
    sleeps: list[float] = []
    server = Server([(429, {"Retry-After": "3"}), _chat_body(["ok"])])
    assert _model(server, sleeps=sleeps).invoke("q").content == "ok"
    assert sleeps == [3.0] and len(server.requests) == 2


def test_5xx_and_timeouts_are_retried_with_backoff():
    sleeps: list[float] = []
    server = Server([500, 503, "timeout", _chat_body(["ok"])])
    assert _model(server, sleeps=sleeps, max_backoff=2.0).invoke("q").content == "ok"
    assert len(sleeps) == 3 and all(0 <= s <= 2.0 for s in sleeps)


def test_retries_bounded_by_attempts():
    server = Server([500])
    with pytest.raises(RetryExhaustedError, match="after 3 attempts") as info:
        _model(server, max_attempts=3).invoke("q")
    assert info.value.attempts == 3 and len(server.requests) == 3


def test_refused_connection_says_nothing_answers():
    def down(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RetryExhaustedError, match="is the server running") as info:
        _model(down, max_attempts=2).invoke("q")
    assert info.value.attempts == 2


def test_retry_after_beyond_deadline_stops_early():
    sleeps: list[float] = []
    server = Server([(429, {"Retry-After": "100"})])
    with pytest.raises(RetryExhaustedError) as info:
        _model(server, sleeps=sleeps, deadline=10.0).invoke("q")
    assert info.value.attempts == 1 and sleeps == []


def test_non_retryable_error_is_not_retried():
    server = Server([400])
    with pytest.raises(BackendError, match="status 400"):
        _model(server).invoke("q")
    assert len(server.requests) == 1


async def test_async_retries():
    server = Server([(429, {"retry-after-ms": "1"}), _chat_body(["ok"])])
    client = openai.AsyncOpenAI(
        api_key="x", base_url="http://test/v1", max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(server)),
    )  # fmt: skip

    async def no_sleep(seconds):
        return None

    model = OpenAIChatModel(base_url="http://test/v1", async_client=client, asleep=no_sleep)
    assert (await model.ainvoke("q")).content == "ok"
    assert len(server.requests) == 2


def test_retry_after_http_date():
    response = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"})
    exc = openai.RateLimitError("x", response=response.__class__(429, request=httpx.Request("GET", "http://t"),
                                headers=response.headers), body=None)  # fmt: skip
    assert retry_after_seconds(exc, now=1445412480.0) == pytest.approx(10.0)


def test_bad_settings():
    with pytest.raises(ConfigError, match="max_attempts must be >= 1"):
        OpenAIChatModel(max_attempts=0)


def test_api_key_hidden_in_repr():
    assert "secret-key" not in repr(OpenAIChatModel(api_key="secret-key"))
