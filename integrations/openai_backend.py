"""`OpenAIChatModel`: langchain-openai's ``ChatOpenAI`` with a wall-clock deadline and bounded retries.

Everything ``ChatOpenAI`` does is its own: the request payload, ``n`` candidates, ``stream_usage``, tools
(`bind_tools`), structured output (`with_structured_output`), usage in ``usage_metadata``. This subclass adds
only what the project needs on top (the HTTP policies themselves live in
`adaptive_router.integrations.transport`):

- **Retries** with `tenacity`: 429 (its ``Retry-After`` honoured), 5xx, timeouts and refused connections
  are retried, bounded both by ``max_attempts`` and by a wall-clock ``deadline``; when they run out the model
  raises `RetryExhaustedError` (``.attempts`` says how many were made, the message whether the deadline
  passed). Other errors (400, 401, 404) raise `BackendError` at once. The SDK's retries are off.
- **The deadline** limits the whole request: all attempts, the waits between them and, for a stream, reading
  it. ``timeout`` only limits each connect or read, so on its own it lets a server that sends its headers and
  then one byte every few tenths of a second hold a request forever. Async, every attempt and every chunk is
  awaited under ``asyncio.wait_for`` with what is left of the deadline; sync, the model's HTTP client sends
  through `DeadlineTransport` (a thread blocked in a socket read cannot be cancelled from outside), which caps
  every connect, read and write to what is left and checks the body against the deadline after every chunk.
  A request that outlives its deadline raises `RetryExhaustedError`; a stream that does so once it has started
  raises `BackendError`; both messages say so.
- **Event loops**: an async connection belongs to the event loop that opened it, so the model's async HTTP
  client keeps one connection pool per loop (weakly). ``asyncio.run(model.ainvoke(...))`` works any number of
  times in a row, and from several threads each running its own loop.
- **llama.cpp**: ``supports_n`` declares whether the server honours ``n`` (llama.cpp's ignores it:
  `OpenAIChatModel.for_llama_server` says False); a server other than OpenAI's is sent ``max_tokens``, which
  every OpenAI-compatible server reads, instead of ``max_completion_tokens``; and ``endpoint="completions"``
  sends the messages' text as the raw prompt to ``/v1/completions``. Use it for base models such as the
  embedded Gemma-3-270M: few-shot prompts like ``"2 + 3 = 5\\n4 + 4 ="`` are continued as written, while the
  chat template wraps them in turns the base model was not trained on.

Examples
--------
>>> from adaptive_router.integrations.openai_backend import OpenAIChatModel
>>> model = OpenAIChatModel(base_url="http://127.0.0.1:8000/v1", model="gemma-3-270m",
...                         endpoint="completions", max_tokens=4, supports_n=False)
>>> model.invoke("2 + 3 = 5\\n4 + 4 =").content  # doctest: +SKIP
' 8'
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Literal, TypeVar

import httpx
import openai
from adaptive_router.integrations.transport import (
    STREAM_BROKE,
    Deadline,
    DeadlinePassed,
    DeadlineTransport,
    StopAtDeadline,
    WaitRetryAfter,
    active_deadline,
    deadline_client,
    env_proxy,
    is_retryable,
    per_loop_client,
    retry_after_seconds,
)
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import Field, model_validator
from tenacity import (
    AsyncRetrying,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.wait import wait_exponential_jitter
from typing_extensions import Self, override

from adaptive_router.errors import BackendError, ConfigError, RetryExhaustedError
from adaptive_router.prompts.messages import prompt_text
from adaptive_router.strategies.base import reraise_config_errors

__all__ = ["DeadlineTransport", "OpenAIChatModel", "is_retryable", "retry_after_seconds"]

_T = TypeVar("_T")


def _first(chunks: Iterator[_T]) -> tuple[Iterator[_T], _T | None]:
    """Start a stream: its first chunk (``None`` if empty), closing it if that fails."""
    try:
        return chunks, next(chunks)
    except StopIteration:
        return chunks, None
    except BaseException:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        raise


async def _afirst(chunks: AsyncIterator[_T]) -> tuple[AsyncIterator[_T], _T | None]:
    """Async `_first`."""
    try:
        return chunks, await chunks.__anext__()
    except StopAsyncIteration:
        return chunks, None
    except BaseException:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        raise


# ---------------------------------------------------------------------- the model
class OpenAIChatModel(ChatOpenAI):
    """``ChatOpenAI`` with tenacity retries bounded by attempts and a wall-clock deadline.

    Takes every ``ChatOpenAI`` parameter (``model``, ``base_url``, ``api_key``, ``temperature``, ``top_p``,
    ``max_tokens``, ``seed``, ``stop``, ``timeout``, ``extra_body``, ...) and these:

    Parameters
    ----------
    endpoint : {"chat", "completions"}
        Which OpenAI endpoint to call (see the module docstring); tools and structured output need "chat".
    supports_n : bool
        Whether the server honours ``n`` (OpenAI, vLLM: yes; llama.cpp: no). Asking a model that declares
        False for ``n > 1`` raises `ConfigError`; best-of-k asks for ``n=k`` in one request only when True.
    max_attempts : int
        Attempts per request, the first included.
    deadline : float
        Wall-clock seconds for one request: all attempts, the waits between them and reading a stream.
    initial_backoff, max_backoff : float
        Exponential backoff with jitter between attempts when the server sent no ``Retry-After``.
    client, async_client : openai.OpenAI or openai.AsyncOpenAI, optional
        Pre-built ``openai`` clients, used as given: a sync ``client`` keeps the wall-clock deadline only
        if its ``http_client`` sends through `DeadlineTransport`, and an ``async_client`` must only be used on
        the event loop it was made on. Without them the model builds its own (see the module docstring).
    sleep, asleep : callable, optional
        Injected sleeps for tests.

    Raises
    ------
    RetryExhaustedError
        Attempts ran out, or the deadline passed (the message says which).
    BackendError
        A non-retryable error (400, 401, 404, ...), or a stream that broke or outlived its deadline.
    """

    model_name: str = Field(default="default", alias="model")
    request_timeout: float = Field(default=60.0, alias="timeout")
    max_retries: int | None = 0
    stream_usage: bool | None = True
    endpoint: Literal["chat", "completions"] = "chat"
    supports_n: bool = True
    max_attempts: int = 4
    deadline: float = 120.0
    initial_backoff: float = 0.5
    max_backoff: float = 20.0
    sleep: Callable[[float], None] | None = Field(default=None, exclude=True)
    asleep: Callable[[float], Awaitable[None]] | None = Field(default=None, exclude=True)

    def __init__(self, **kwargs: Any) -> None:
        with reraise_config_errors():
            super().__init__(**kwargs)

    @model_validator(mode="before")
    @classmethod
    def _adopt_clients(cls, values: Any) -> Any:
        """Take ``openai`` clients as ``client``/``async_client``; else build deadline-aware HTTP clients."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        if "api_key" not in values and "openai_api_key" not in values:
            values["api_key"] = "sk-no-key"  # local servers take any key; never send $OPENAI_API_KEY unasked
        base_url = values.get("base_url", values.get("openai_api_base"))
        proxy = values.get("openai_proxy") or os.environ.get("OPENAI_PROXY") or env_proxy(base_url)
        for name, kind, http, make in (
            ("client", openai.OpenAI, "http_client", deadline_client),
            ("async_client", openai.AsyncOpenAI, "http_async_client", per_loop_client),
        ):
            given = values.get(name)
            if isinstance(given, kind):  # the endpoint is chosen in _use_endpoint
                values[f"root_{name}"], values[name] = given, given.chat.completions
            elif given is None and values.get(http) is None:
                values[http] = make(proxy)
                values["openai_proxy"] = None  # in the transport now (ChatOpenAI refuses both)
        return values

    @model_validator(mode="after")
    def _use_endpoint(self) -> Self:
        """Check the limits; point ``client``/``async_client`` at the endpoint (runs after ChatOpenAI's)."""
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not self.deadline > 0 or not self.request_timeout > 0:
            raise ConfigError(
                f"deadline and timeout must be > 0, got {self.deadline} and {self.request_timeout}"
            )
        if self.endpoint == "completions":
            self.use_responses_api = False
            if self.root_client is not None:
                self.client = self.root_client.completions
            if self.root_async_client is not None:
                self.async_client = self.root_async_client.completions
        return self

    @classmethod
    def for_llama_server(cls, server: Any, **kwargs: Any) -> OpenAIChatModel:
        """A model for a running `LlamaServer` (``n`` not honoured; completions endpoint by default)."""
        kwargs.setdefault("endpoint", "completions")
        return cls(base_url=server.base_url, model=server.model_alias, supports_n=False, **kwargs)

    @property
    def base_url(self) -> str | None:
        """The server URL (``None``: OpenAI)."""
        return self.openai_api_base

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {**super()._identifying_params, "endpoint": self.endpoint}

    # ------------------------------------------------------------------ where llama.cpp differs
    @override
    def _get_request_payload(
        self, input_: LanguageModelInput, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        n = int(kwargs.get("n") or self.n or 1)
        if n > 1 and not self.supports_n:
            raise ConfigError(f"n={n} asked of a server that ignores n (supports_n=False); send {n} requests")
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        host = httpx.URL(self.openai_api_base or "https://api.openai.com").host
        if host != "api.openai.com" and "max_completion_tokens" in payload:  # what other servers read
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        if host != "api.openai.com":  # llama.cpp's server wants an assistant turn's content as a string
            for message in payload.get("messages") or ():
                if message.get("role") == "assistant" and not isinstance(message.get("content"), str):
                    parts = message.get("content") or []
                    message["content"] = "".join(
                        p.get("text", "") for p in parts if isinstance(p, dict) and p.get("type") == "text"
                    )
        if self.endpoint == "completions":
            if {"tools", "response_format"} & payload.keys():
                raise ConfigError("tools and structured output need endpoint='chat', not 'completions'")
            del payload["messages"]
            payload["prompt"] = prompt_text(self._convert_input(input_).to_messages())
            if not payload.get("stream"):
                payload.pop("stream", None)
        return payload

    @override
    def _create_chat_result(
        self, response: dict | openai.BaseModel, generation_info: dict | None = None
    ) -> ChatResult:
        if self.endpoint == "completions" and isinstance(response, openai.BaseModel):
            response = response.model_dump()
            for choice in response.get("choices") or []:
                choice["message"] = {"role": "assistant", "content": choice.pop("text", "") or ""}
        return super()._create_chat_result(response, generation_info)

    @override
    def _convert_chunk_to_generation_chunk(
        self, chunk: dict, default_chunk_class: type, base_generation_info: dict | None
    ) -> ChatGenerationChunk | None:
        if self.endpoint == "completions":
            choices = [{**c, "delta": {"content": c.get("text") or ""}} for c in chunk.get("choices") or []]
            chunk = {**chunk, "choices": choices}
        return super()._convert_chunk_to_generation_chunk(chunk, default_chunk_class, base_generation_info)

    # ------------------------------------------------------------------ retries and the deadline
    def _retrying(self, deadline: Deadline) -> dict[str, Any]:
        backoff = wait_exponential_jitter(
            multiplier=self.initial_backoff, max=self.max_backoff, jitter=self.initial_backoff
        )
        return {
            "stop": stop_after_attempt(self.max_attempts) | StopAtDeadline(deadline),
            "wait": WaitRetryAfter(backoff),
            "retry": retry_if_exception(is_retryable),
        }

    def _exhausted(
        self, deadline: Deadline, attempts: int, last: BaseException | None
    ) -> RetryExhaustedError:
        where = self.openai_api_base or "api.openai.com"
        if deadline.passed():
            cause = f" (last error: {type(last).__name__}: {last})"[:300] if last else ""
            return RetryExhaustedError(
                f"{self.endpoint} request to {where} did not finish in time: its deadline of "
                f"{deadline.seconds:g} s passed; raise `deadline` if the server is just slow{cause}",
                attempts=attempts,
            )
        refused = isinstance(last, openai.APIConnectionError) and not isinstance(last, openai.APITimeoutError)
        hint = "; nothing answers there: is the server running?" if refused else ""
        failure = f"{self.endpoint} request to {where} kept failing: {type(last).__name__}: {last}"
        return RetryExhaustedError(failure[:500] + hint, attempts=attempts)

    def _fatal(self, exc: openai.OpenAIError) -> BackendError:
        status = getattr(exc, "status_code", None)
        return BackendError(f"{self.endpoint} request failed (status {status}): {exc}"[:500])

    def _stream_broke(self, exc: BaseException, deadline: Deadline) -> BackendError:
        detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, DeadlinePassed):
            detail = str(exc)
        elif deadline.passed():
            detail = f"its deadline of {deadline.seconds:g} s passed ({detail})"
        return BackendError(f"stream from {self.openai_api_base or 'api.openai.com'} broke: {detail}"[:500])

    def _call(self, fn: Callable[[], _T], deadline: Deadline) -> _T:
        """``fn()`` with retries; `DeadlineTransport` holds each attempt to `deadline`."""
        retrying = Retrying(sleep=self.sleep or time.sleep, **self._retrying(deadline))
        try:
            with active_deadline(deadline):
                return retrying(fn)
        except RetryError as err:
            last = err.last_attempt.exception()
            raise self._exhausted(deadline, err.last_attempt.attempt_number, last) from last
        except openai.OpenAIError as exc:
            raise self._fatal(exc) from exc

    async def _acall(self, fn: Callable[[], Awaitable[_T]], deadline: Deadline) -> _T:
        """Await ``fn()`` with retries, each attempt cancelled when `deadline` passes."""
        retrying = AsyncRetrying(sleep=self.asleep or asyncio.sleep, **self._retrying(deadline))

        async def attempt() -> _T:
            return await deadline.wait_for(fn())

        try:
            return await retrying(attempt)
        except DeadlinePassed as exc:
            raise self._exhausted(deadline, int(retrying.statistics.get("attempt_number", 1)), None) from exc
        except RetryError as err:
            last = err.last_attempt.exception()
            raise self._exhausted(deadline, err.last_attempt.attempt_number, last) from last
        except openai.OpenAIError as exc:
            raise self._fatal(exc) from exc

    @override
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = functools.partial(super()._generate, messages, stop, run_manager, **kwargs)
        return self._call(request, Deadline.after(self.deadline))

    @override
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = functools.partial(super()._agenerate, messages, stop, run_manager, **kwargs)
        return await self._acall(request, Deadline.after(self.deadline))

    @override
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        start = functools.partial(super()._stream, messages, stop, run_manager, **kwargs)
        deadline = Deadline.after(self.deadline)
        chunks: Iterator[ChatGenerationChunk] | None = None
        try:  # retried until the first chunk; the body is then held to the deadline by DeadlineTransport
            chunks, first = self._call(lambda: _first(start()), deadline)
            if first is not None:
                yield first
            for chunk in chunks:
                if deadline.passed():
                    raise DeadlinePassed(deadline)
                yield chunk
        except STREAM_BROKE as exc:
            raise self._stream_broke(exc, deadline) from exc
        finally:
            if chunks is not None:
                getattr(chunks, "close", lambda: None)()

    @override
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        start = functools.partial(super()._astream, messages, stop, run_manager, **kwargs)
        deadline = Deadline.after(self.deadline)
        chunks: AsyncIterator[ChatGenerationChunk] | None = None
        try:  # retried until the first chunk, then every chunk awaited under what is left of the deadline
            stream, chunk = await self._acall(lambda: _afirst(start()), deadline)
            chunks = stream
            while chunk is not None:
                yield chunk
                try:
                    chunk = await deadline.wait_for(stream.__anext__())
                except StopAsyncIteration:
                    chunk = None
        except STREAM_BROKE as exc:
            raise self._stream_broke(exc, deadline) from exc
        finally:
            if chunks is not None:
                with contextlib.suppress(Exception):
                    await chunks.aclose()  # type: ignore[attr-defined]
