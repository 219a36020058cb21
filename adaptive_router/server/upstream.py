"""`UpstreamChatModel`: the server's chat model for OpenAI-compatible upstreams, on a small HTTP/1.1 client.

Why the server has its own: on the server's hot path the ``openai`` SDK (typed request transforms, response
model construction) and httpx's connection pool (which checks every idle connection on every request, so a
pool that a burst filled costs milliseconds per request) were most of the server's CPU (measured here, CPU
per request for the HTTP exchange and parsing alone: the SDK 1.3 ms, httpx 0.6 ms with one idle connection
and 3 ms with 64, this client 0.03 ms; see ``docs/server.md``, "Measured"). This client is one
``asyncio`` protocol per connection with httptools parsing the response (httptools comes with
``uvicorn[standard]``, the server extra), keep-alive connections reused last-in first-out, at most
``max_connections`` per backend, JSON with orjson when installed. It speaks what an OpenAI-compatible upstream
needs (``POST`` with a JSON body; ``Content-Length``, chunked and server-sent-event responses; TLS for
``https://``) and nothing else: no proxies, no redirects, no compression. ``backends.NAME.client = "openai"``
uses `adaptive_router.integrations.openai_backend.OpenAIChatModel` (the SDK, proxies from the environment)
instead.

The contract is `OpenAIChatModel`'s, so the rest of the server cannot tell them apart: the same fields, 429
(``Retry-After`` honoured), 5xx, timeouts and refused or dropped connections retried up to ``max_attempts``
within the wall-clock ``deadline``; then `RetryExhaustedError` (``.attempts``; the message says whether the
deadline passed); other statuses raise `BackendError` at once with the upstream's message; a stream that
breaks after it started raises `BackendError`. Connections belong to the event loop that opened them: one
pool per loop.

Examples
--------
>>> from adaptive_router.server.fake_upstream import FakeUpstream
>>> with FakeUpstream(latency=0.0) as up:
...     model = UpstreamChatModel(base_url=up.base_url, model="m")
...     model.invoke("2 + 2 =").content, up.requests
('echo: 2 + 2 =', 1)
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, cast

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
    Callbacks,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models._utils import _normalize_messages
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult, RunInfo
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from adaptive_router.errors import BackendError, ConfigError, RetryExhaustedError
from adaptive_router.integrations.transport import retry_after_seconds
from adaptive_router.prompts.messages import prompt_text
from adaptive_router.server.http_client import Connection, ConnectionPool, drain
from adaptive_router.strategies.base import reraise_config_errors

__all__ = ["UpstreamChatModel", "UpstreamStatusError"]

try:
    import orjson

    _dumps: Callable[[Any], bytes] = orjson.dumps
    _loads: Callable[[bytes], Any] = orjson.loads
except ModuleNotFoundError:  # pragma: no cover - orjson is optional
    _dumps = lambda value: json.dumps(value, separators=(",", ":")).encode()  # noqa: E731
    _loads = json.loads


class UpstreamStatusError(Exception):
    """The upstream answered with a status other than 200 (``.status``, ``.response.headers``, message)."""

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(f"status {status}: {message}")
        self.status = status
        self.response = self  # `retry_after_seconds` reads ``exc.response.headers``
        self.headers = headers

    @property
    def retryable(self) -> bool:
        """429 and 5xx are worth another attempt."""
        return self.status == 429 or self.status >= 500


class _DeadlinePassed(Exception):
    """An attempt was cut off by the request's deadline."""


def _error_message(body: bytes) -> str:
    try:
        data = _loads(body)
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else error or data.get("detail")
        if message:
            return str(message)[:400]
    except (ValueError, TypeError, AttributeError):
        pass
    return body[:400].decode("utf-8", "replace")


def _usage(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    inp, out = int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0)
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


class UpstreamChatModel(BaseChatModel):
    """A chat model on an OpenAI-compatible upstream, for the server (see the module docstring).

    Parameters
    ----------
    model, base_url, api_key, endpoint, temperature, top_p, max_tokens, seed, stop, supports_n
        As `OpenAIChatModel`'s.
    timeout : float
        Seconds for connecting and for the response's headers (and between a stream's pieces).
    max_attempts : int
        Attempts per request, the first included.
    deadline : float
        Wall-clock seconds for one request: all attempts, the waits between them, reading a stream.
    max_connections : int
        Connections to the upstream at a time (per event loop); more requests wait for one.
    initial_backoff, max_backoff : float
        Exponential backoff with jitter between attempts, when the upstream sent no ``Retry-After``.
    asleep : callable, optional
        Injected ``asyncio.sleep`` for tests.

    Raises
    ------
    RetryExhaustedError
        Attempts ran out, or the deadline passed (the message says which).
    BackendError
        A non-retryable status (400, 401, 404, ...), a malformed answer, or a stream that broke.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = "default"
    base_url: str
    api_key: SecretStr = Field(default=SecretStr("sk-no-key"))
    endpoint: Literal["chat", "completions"] = "chat"
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    supports_n: bool = True
    timeout: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=4, ge=1)
    deadline: float = Field(default=120.0, gt=0)
    max_connections: int = Field(default=64, ge=1)
    initial_backoff: float = 0.5
    max_backoff: float = 20.0
    asleep: Callable[[float], Any] | None = Field(default=None, exclude=True)

    _pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ConnectionPool] = PrivateAttr(
        default_factory=weakref.WeakKeyDictionary
    )
    _auth: bytes = PrivateAttr(default=b"")

    def __init__(self, **kwargs: Any) -> None:
        with reraise_config_errors():
            super().__init__(**kwargs)

    def model_post_init(self, context: Any, /) -> None:
        try:
            import httptools  # noqa: F401  (the connections' parser; checked here, not at the first request)
        except ModuleNotFoundError:
            raise ConfigError(
                "the server's upstream client needs httptools: pip install 'adaptive-router[server]', "
                'or set client = "openai" on the backend'
            ) from None
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        self._auth = b"Authorization: Bearer " + self.api_key.get_secret_value().encode("latin-1") + b"\r\n"

    @property
    def _llm_type(self) -> str:
        return "adaptive-router-upstream"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url, "endpoint": self.endpoint}

    def _pool(self) -> ConnectionPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = ConnectionPool(self.base_url, self.max_connections)
        return pool

    async def aclose(self) -> None:
        """Close the idle connections of this event loop's pool."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            pool.close()

    # ------------------------------------------------------------------ requests
    async def agenerate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Callbacks = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        """`BaseChatModel.agenerate` (``ainvoke`` comes here too); one prompt that no callback handler
        follows (the server traces nothing) skips what only handlers read (the run's invocation and tracing
        parameters, its start and end events) and the task the prompt would run in. The run, its id, the
        message ids, the cache and the rate limiter are LangChain's own, so the result is the same."""
        manager = AsyncCallbackManager.configure(
            callbacks, self.callbacks, self.verbose, tags, self.tags, metadata, self.metadata
        )
        if manager.handlers or len(messages) != 1:
            return await super().agenerate(
                messages, stop, callbacks, tags=tags, metadata=metadata, run_name=run_name, run_id=run_id,
                **kwargs,
            )  # fmt: skip
        if not kwargs.pop("ls_structured_output_format", None):  # tracing hints, as LangChain drops them
            kwargs.pop("structured_output_format", None)
        (run,) = await manager.on_chat_model_start({}, messages, run_id=run_id)
        result = await self._agenerate_with_cache(
            _normalize_messages(messages[0]), stop=stop, run_manager=run, **kwargs
        )
        return LLMResult(
            generations=[cast("list[Any]", result.generations)],
            llm_output=self._combine_llm_outputs([result.llm_output]),
            run=[RunInfo(run_id=run.run_id)],
        )

    def _body(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> bytes:
        n = int(kwargs.pop("n", 1) or 1)
        if n > 1 and not self.supports_n:
            raise ConfigError(f"n={n} asked of a server that ignores n (supports_n=False); send {n} requests")
        params: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": stop or self.stop,
            "n": n if n > 1 else None,
        }
        params.update(kwargs)
        if self.endpoint == "chat":
            params["messages"] = convert_to_openai_messages(messages)
        else:
            params["prompt"] = prompt_text(messages)
        return _dumps({k: v for k, v in params.items() if v is not None})

    @property
    def _path(self) -> str:
        return "/chat/completions" if self.endpoint == "chat" else "/completions"

    async def _attempt(
        self, body: bytes, *, stream: bool, deadline: float
    ) -> tuple[ConnectionPool, Connection]:
        """One attempt: a connection with a 200 response (a stream: started), its pool slot held."""
        pool = self._pool()
        if pool.slots.locked():  # every connection busy: wait for one, within the deadline
            await asyncio.wait_for(pool.slots.acquire(), max(deadline - time.monotonic(), 0.0))
        else:
            await pool.slots.acquire()
        try:
            left = min(self.timeout, deadline - time.monotonic())
            conn = await asyncio.wait_for(
                pool.send(self._path, body, self._auth, stream=stream), max(left, 0.0)
            )
            if conn.status != 200:
                if stream:  # the error body: read it to the end
                    assert conn.done is not None
                    await asyncio.wait_for(conn.done, max(min(self.timeout, deadline - time.monotonic()), 0))
                pool.release(conn)
                text = b"".join(conn.chunks) if conn.queue is None else drain(conn.queue)
                raise UpstreamStatusError(conn.status, _error_message(text), conn.headers)
            return pool, conn
        except BaseException:
            pool.slots.release()
            raise

    async def _send(self, body: bytes, *, stream: bool) -> tuple[ConnectionPool, Connection, float]:
        """Attempts until one gets a 200 (retries as the module docstring says); the deadline with it."""
        seconds = self.deadline
        deadline = time.monotonic() + seconds
        sleep = self.asleep or asyncio.sleep
        attempt, last = 0, cast("BaseException | None", None)
        while True:
            attempt += 1
            try:
                pool, conn = await self._attempt(body, stream=stream, deadline=deadline)
                return pool, conn, deadline
            except UpstreamStatusError as exc:
                if not exc.retryable:
                    raise BackendError(f"{self.endpoint} request failed ({exc})"[:500]) from exc
                last = exc
            except (OSError, asyncio.TimeoutError) as exc:  # refused, dropped, timed out
                last = exc
            if time.monotonic() >= deadline:
                raise self._deadline_exhausted(seconds, attempt, last) from last
            if attempt >= self.max_attempts:
                raise self._exhausted(attempt, last) from last
            wait = retry_after_seconds(last)
            if wait is None:
                backoff = self.initial_backoff * 2 ** (attempt - 1) + random.uniform(0, self.initial_backoff)
                wait = min(self.max_backoff, backoff)
            if wait >= deadline - time.monotonic():
                raise self._deadline_exhausted(seconds, attempt, last) from last
            await sleep(wait)

    @property
    def _where(self) -> str:
        return self.base_url

    def _exhausted(self, attempts: int, last: BaseException | None) -> RetryExhaustedError:
        refused = isinstance(last, ConnectionRefusedError)
        hint = "; nothing answers there: is the server running?" if refused else ""
        failure = f"{self.endpoint} request to {self._where} kept failing: {self._describe(last)}"
        return RetryExhaustedError(failure[:500] + hint, attempts=attempts)

    def _deadline_exhausted(
        self, seconds: float, attempts: int, last: BaseException | None
    ) -> RetryExhaustedError:
        cause = f" (last error: {self._describe(last)})"[:300] if last else ""
        return RetryExhaustedError(
            f"{self.endpoint} request to {self._where} did not finish within its deadline of "
            f"{seconds:g} s: raise `deadline` if the server is just slow{cause}",
            attempts=attempts,
        )

    def _describe(self, exc: BaseException | None) -> str:
        if isinstance(exc, asyncio.TimeoutError):
            return f"TimeoutError: no answer within timeout = {self.timeout:g} s"
        return f"{type(exc).__name__}: {exc}"

    def _result(self, data: Any) -> ChatResult:
        try:
            usage = _usage(data.get("usage"))
            generations = []
            for choice in data["choices"]:
                if self.endpoint == "chat":
                    text = (choice.get("message") or {}).get("content") or ""
                else:
                    text = choice.get("text") or ""
                reason = choice.get("finish_reason")
                meta = {"finish_reason": reason, "model_name": data.get("model", self.model)}
                message = AIMessage(content=text, response_metadata=meta, usage_metadata=usage or None)  # type: ignore[arg-type]
                generations.append(ChatGeneration(message=message, generation_info={"finish_reason": reason}))
        except (KeyError, TypeError, AttributeError) as exc:
            raise BackendError(f"{self.endpoint} response from {self._where} is malformed: {exc!r}") from None
        token_usage = {
            "prompt_tokens": usage.get("input_tokens", 0),
            "completion_tokens": usage.get("output_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        }
        return ChatResult(
            generations=generations, llm_output={"token_usage": token_usage, "model_name": self.model}
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        body = self._body(messages, stop, kwargs)
        pool, conn, _ = await self._send(body, stream=False)
        pool.release(conn)
        pool.slots.release()
        try:
            data = _loads(b"".join(conn.chunks))
        except ValueError as exc:
            raise BackendError(f"{self.endpoint} response from {self._where} is not JSON: {exc}") from None
        return self._result(data)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Sync calls run the async path on an event loop of their own (its connections closed after)."""

        async def once() -> ChatResult:
            try:
                return await self._agenerate(messages, stop, **kwargs)
            finally:
                await self.aclose()

        return asyncio.run(once())

    def _delta(self, event: Any) -> str:
        choices = event.get("choices") if isinstance(event, dict) else None
        if not choices:
            return ""
        choice = choices[0]
        if self.endpoint == "chat":
            return (choice.get("delta") or {}).get("content") or ""
        return choice.get("text") or ""

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        body = self._body(messages, stop, {**kwargs, "stream": True})
        pool, conn, deadline = await self._send(body, stream=True)
        assert conn.queue is not None
        buffer = b""
        try:
            while True:
                left = min(self.timeout, deadline - time.monotonic())
                try:
                    piece = await asyncio.wait_for(conn.queue.get(), max(left, 0.0))
                except asyncio.TimeoutError:
                    passed = time.monotonic() >= deadline
                    raise _DeadlinePassed(
                        f"its deadline of {self.deadline:g} s passed" if passed else "it went silent"
                    ) from None
                if piece is None:
                    return
                if isinstance(piece, BaseException):
                    raise piece
                buffer += piece
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    line = line.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=self._delta(_loads(data))))
                    if run_manager is not None and chunk.text:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        except (OSError, ValueError, _DeadlinePassed) as exc:
            raise BackendError(f"stream from {self._where} broke: {type(exc).__name__}: {exc}"[:500]) from exc
        finally:
            pool.release(conn)
            pool.slots.release()


for _name in ("_agenerate", "_astream"):  # LangChain inspects them on every call; precomputed, that is cheap
    _method = getattr(UpstreamChatModel, _name)
    _method.__signature__ = inspect.signature(_method)
