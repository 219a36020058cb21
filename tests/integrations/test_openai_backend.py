"""Tests for adaptive_router.integrations.openai_backend (offline: httpx MockTransport as the server)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import openai
import pytest
from adaptive_router.integrations.openai_backend import OpenAIChatModel, retry_after_seconds
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

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


def _async_model(server, **kwargs):
    client = openai.AsyncOpenAI(
        api_key="x", base_url="http://test/v1", max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(server)),
    )  # fmt: skip

    async def no_sleep(seconds):
        return None

    return OpenAIChatModel(base_url="http://test/v1", async_client=client, asleep=no_sleep, **kwargs)


async def test_async_retries():
    server = Server([(429, {"retry-after-ms": "1"}), _chat_body(["ok"])])
    assert (await _async_model(server).ainvoke("q")).content == "ok"
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


# ---------------------------------------------------------------------- what ChatOpenAI brings
class Weather(BaseModel):
    city: str
    celsius: int


def _tool_call_body(name, args):
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
    body = _chat_body([""])
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    body["choices"][0]["finish_reason"] = "tool_calls"
    return body


def test_bind_tools_sends_the_schema_and_parses_tool_calls_after_a_retry():
    sleeps: list[float] = []
    server = Server(
        [(429, {"Retry-After": "1"}), _tool_call_body("Weather", {"city": "Paris", "celsius": 21})]
    )
    msg = _model(server, sleeps=sleeps).bind_tools([Weather]).invoke("weather in Paris?")
    assert msg.tool_calls == [
        {"name": "Weather", "args": {"city": "Paris", "celsius": 21}, "id": "call_1", "type": "tool_call"}
    ]
    assert msg.usage_metadata["total_tokens"] == 7 and sleeps == [1.0]
    assert server.requests[1]["tools"][0]["function"]["name"] == "Weather"


def test_structured_output_by_json_schema_and_by_function_calling():
    server = Server([_chat_body([json.dumps({"city": "Oslo", "celsius": 3})])])
    assert _model(server).with_structured_output(Weather).invoke("w") == Weather(city="Oslo", celsius=3)
    assert server.requests[0]["response_format"]["json_schema"]["name"] == "Weather"
    server = Server([_tool_call_body("Weather", {"city": "Rome", "celsius": 30})])
    structured = _model(server).with_structured_output(Weather, method="function_calling")
    assert structured.invoke("w") == Weather(city="Rome", celsius=30)
    assert server.requests[0]["tool_choice"]["function"]["name"] == "Weather"


async def test_async_structured_output():
    server = Server([500, _chat_body([json.dumps({"city": "Oslo", "celsius": 3})])])
    model = _async_model(server)
    assert await model.with_structured_output(Weather).ainvoke("w") == Weather(city="Oslo", celsius=3)
    assert len(server.requests) == 2


def test_tools_need_the_chat_endpoint():
    with pytest.raises(ConfigError, match="need endpoint='chat'"):
        _model(Server([_completion_body("x")]), endpoint="completions").bind_tools([Weather]).invoke("q")


def _sse(*events):
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def _streaming(server_events):
    """A handler answering every request with `server_events` as server-sent events; records the bodies."""
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        return httpx.Response(200, text=_sse(*server_events), headers={"content-type": "text/event-stream"})

    return handler, seen


def test_stream_asks_for_usage_and_reports_it():
    head = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    delta = {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]}
    usage = {**head, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
    handler, seen = _streaming([delta, usage])
    chunks = list(_model(handler).stream("q"))
    assert "".join(str(c.content) for c in chunks) == "hi"
    assert sum(chunks[1:], chunks[0]).usage_metadata["total_tokens"] == 4
    assert seen[0]["stream_options"] == {"include_usage": True}


def test_completions_stream_sends_the_raw_prompt():
    head = {"id": "x", "object": "text_completion", "created": 0, "model": "m"}
    handler, seen = _streaming([{**head, "choices": [{"index": 0, "text": t}]} for t in (" 4", "2")])
    text = "".join(str(c.content) for c in _model(handler, endpoint="completions").stream("40 + 2 ="))
    assert text == " 42" and seen[0]["prompt"] == "40 + 2 =" and "messages" not in seen[0]


def test_max_tokens_name_openai_and_other_servers():
    server = Server([_chat_body(["a"])])
    client = openai.OpenAI(
        api_key="x", base_url="https://api.openai.com/v1", max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(server)),
    )  # fmt: skip
    OpenAIChatModel(base_url="https://api.openai.com/v1", client=client, max_tokens=3).invoke("q")
    assert server.requests[0]["max_completion_tokens"] == 3 and "max_tokens" not in server.requests[0]


def test_for_llama_server_declares_that_n_is_ignored():
    server = SimpleNamespace(base_url="http://127.0.0.1:1/v1", model_alias="gemma-3-270m")
    model = OpenAIChatModel.for_llama_server(server)
    assert (model.supports_n, model.endpoint, model.base_url) == (False, "completions", server.base_url)
    assert OpenAIChatModel(base_url=server.base_url).supports_n
