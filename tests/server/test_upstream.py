"""`UpstreamChatModel` against a fake upstream and scripted raw HTTP servers: answers, retries, errors.

Its contract is `OpenAIChatModel`'s (the server maps both the same way), so these tests pin what the server
relies on: a 400 is a `BackendError` at once with the upstream's message, 429/5xx/refused connections are
retried up to ``max_attempts`` (``Retry-After`` honoured) and then raise `RetryExhaustedError`, a passed
deadline says so (the server answers 504), and keep-alive connections are reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from adaptive_router.errors import BackendError, ConfigError, RetryExhaustedError
from adaptive_router.server.errors import Redactor, from_exception
from adaptive_router.server.fake_upstream import FakeUpstream
from adaptive_router.server.upstream import UpstreamChatModel

QUESTION = [HumanMessage("3 + 4 =")]


@pytest.fixture
async def make_model() -> AsyncIterator[Callable[..., UpstreamChatModel]]:
    """``make_model(url, **fields)``; every model's connections are closed at the end of the test."""
    made: list[UpstreamChatModel] = []

    def make(url: str, **kwargs) -> UpstreamChatModel:
        kwargs.setdefault("max_attempts", 3)
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("deadline", 10.0)
        made.append(UpstreamChatModel(base_url=url, model="m", api_key="sk-up-0123456789", **kwargs))
        return made[-1]

    yield make
    for model in made:
        await model.aclose()


def _response(status: int, body: bytes, *headers: str, close: bool = False) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers) + ("Connection: close\r\n" if close else "")
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


OK = b'{"choices": [{"message": {"content": "7"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3}}'


@contextlib.asynccontextmanager
async def scripted(responses: list[bytes], *, drop_after_each: bool = False) -> AsyncIterator[dict]:
    """A raw HTTP server answering each request with the next of `responses` (`drop_after_each`: then it
    closes the connection without saying so, as an upstream that drops idle keep-alive connections)."""
    state = {"requests": 0, "connections": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state["connections"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                writer.write(responses[min(state["requests"], len(responses) - 1)])
                state["requests"] += 1
                await writer.drain()
                if drop_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state["url"] = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    try:
        yield state
    finally:
        server.close()


async def test_answers_honour_n_report_usage_and_reuse_one_connection(make_model):
    with FakeUpstream(latency=0.0, record=True) as up:
        model = make_model(up.base_url, supports_n=True)
        result = await model.agenerate([QUESTION], n=3)
        assert [g.text for g in result.generations[0]] == ["echo: 3 + 4 ="] * 3
        assert result.generations[0][0].message.usage_metadata["input_tokens"] == 4
        for _ in range(3):
            assert (await model.ainvoke(QUESTION)).content == "echo: 3 + 4 ="
        assert up.requests == 4 and up.calls[0]["n"] == 3
        assert up.calls[0]["authorization"] == "Bearer sk-up-0123456789"  # the backend's key, nothing else
        assert len(model._pool().idle) == 1  # one keep-alive connection served all four


async def test_a_request_nobody_traces_gives_what_langchain_gives(make_model):
    """Without callback handlers `agenerate` skips the run's events: the same result, ids included."""
    with FakeUpstream(latency=0.0) as up:
        model = make_model(up.base_url, supports_n=True)
        for n in (1, 3):
            run_id = uuid.uuid4()
            ours = await model.agenerate([QUESTION], n=n, run_id=run_id, tags=["t"], metadata={"m": 1})
            theirs = await BaseChatModel.agenerate(model, [QUESTION], n=n, run_id=run_id)
            assert ours == theirs and ours.run == theirs.run  # LLMResult's == leaves the runs out
            assert ours.generations[0][0].message.id == f"lc_run--{run_id}-0"


async def test_a_traced_request_reaches_its_handlers(make_model):
    class Counts(AsyncCallbackHandler):
        def __init__(self) -> None:
            self.seen: list[str] = []

        async def on_chat_model_start(self, serialized, messages, **kwargs):
            self.seen.append("start")

        async def on_llm_end(self, response, **kwargs):
            self.seen.append("end")

    with FakeUpstream(latency=0.0) as up:
        handler = Counts()
        model = make_model(up.base_url)
        assert (await model.ainvoke(QUESTION, {"callbacks": [handler]})).content == "echo: 3 + 4 ="
        own = make_model(up.base_url, callbacks=[handler])  # the model's own handlers count too
        await own.ainvoke(QUESTION)
    assert handler.seen == ["start", "end"] * 2


async def test_a_stream_comes_in_pieces(make_model):
    with FakeUpstream(latency=0.0) as up:
        pieces = [chunk.content async for chunk in make_model(up.base_url).astream(QUESTION)]
    assert len([p for p in pieces if p]) > 1 and "".join(pieces) == "echo: 3 + 4 ="


async def test_a_client_error_is_a_backend_error_at_once_with_the_upstream_message(make_model):
    body = b'{"error": {"message": "unknown model m", "type": "invalid_request_error"}}'
    async with scripted([_response(404, body)]) as up:
        with pytest.raises(BackendError, match=r"status 404: unknown model m") as info:
            await make_model(up["url"]).ainvoke(QUESTION)
    assert not isinstance(info.value, RetryExhaustedError) and up["requests"] == 1


async def test_server_errors_are_retried_then_exhausted_with_the_attempts(make_model):
    waits: list[float] = []

    async def asleep(seconds: float) -> None:
        waits.append(seconds)

    with (
        FakeUpstream(latency=0.0, fail_status=500, fail_message="boom") as up,
        pytest.raises(
            RetryExhaustedError, match=r"kept failing: UpstreamStatusError: status 500: boom"
        ) as info,
    ):
        await make_model(up.base_url, asleep=asleep, initial_backoff=0.01).ainvoke(QUESTION)
    assert info.value.attempts == 3 and up.requests == 3 and len(waits) == 2
    error = from_exception(info.value, Redactor(), request_id="r")
    assert error.status == 502 and error.code == "upstream_error"


async def test_429_waits_what_retry_after_says_then_succeeds(make_model):
    waits: list[float] = []

    async def asleep(seconds: float) -> None:
        waits.append(seconds)

    busy = _response(429, b'{"error": {"message": "slow down"}}', "Retry-After: 7")
    async with scripted([busy, _response(200, OK)]) as up:
        message = await make_model(up["url"], asleep=asleep).ainvoke(QUESTION)
    assert message.content == "7" and waits == [7.0] and up["requests"] == 2


async def test_a_retry_after_beyond_the_deadline_ends_the_retries(make_model):
    busy = _response(503, b'{"error": {"message": "later"}}', "Retry-After: 60")
    async with scripted([busy]) as up:
        with pytest.raises(RetryExhaustedError, match=r"deadline of 10 s") as info:
            await make_model(up["url"]).ainvoke(QUESTION)
    assert up["requests"] == 1
    assert from_exception(info.value, Redactor(), request_id="r").status == 504


async def test_nothing_listening_is_exhausted_with_a_hint(make_model):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # bound, not listening: refused
        with pytest.raises(RetryExhaustedError, match="is the server running") as info:
            await make_model(url, max_attempts=2, initial_backoff=0.0).ainvoke(QUESTION)
    assert info.value.attempts == 2


async def test_a_slow_upstream_passes_the_deadline(make_model):
    slow = FakeUpstream(latency=2.0)
    with slow as up, pytest.raises(RetryExhaustedError, match=r"deadline of 0.3 s") as info:
        await make_model(up.base_url, timeout=5.0, deadline=0.3).ainvoke(QUESTION)
    assert from_exception(info.value, Redactor(), request_id="r").code == "upstream_timeout"


async def test_a_dropped_idle_connection_is_replaced_without_spending_an_attempt(make_model):
    async with scripted([_response(200, OK)], drop_after_each=True) as up:
        model = make_model(up["url"], max_attempts=1)
        assert (await model.ainvoke(QUESTION)).content == "7"
        await asyncio.sleep(0.05)  # the upstream's close arrives
        assert (await model.ainvoke(QUESTION)).content == "7"
    assert up["requests"] == 2 and up["connections"] == 2


async def test_a_malformed_answer_is_a_backend_error(make_model):
    async with scripted([_response(200, b'{"no": "choices"}')]) as up:
        with pytest.raises(BackendError, match="malformed"):
            await make_model(up["url"]).ainvoke(QUESTION)


def test_n_of_a_server_that_ignores_it_is_a_config_error():
    model = UpstreamChatModel(base_url="http://127.0.0.1:9/v1", supports_n=False)
    with pytest.raises(ConfigError, match="supports_n=False"):  # before anything is sent
        model.generate([QUESTION], n=2)


def test_a_url_without_a_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="must start with http"):
        UpstreamChatModel(base_url="127.0.0.1:9/v1")
