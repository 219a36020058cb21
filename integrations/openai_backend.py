"""A LangChain chat model on the ``openai`` client, with bounded retries (sync and async).

`OpenAIChatModel` talks to any OpenAI-compatible server: OpenAI itself, vLLM, or llama.cpp's server started by
`LlamaServer`. Requests that fail with 429 (its ``Retry-After`` header honoured), 5xx, a timeout or a refused
connection are retried with `tenacity`, bounded both by ``max_attempts`` and by a wall-clock ``deadline`` in
seconds; when they run out the model raises `RetryExhaustedError` (``.attempts`` says how many were made, the
message whether the deadline passed). Other errors (400, 401, 404) raise `BackendError` at once.

Two endpoints: ``"chat"`` (``/v1/chat/completions``, the server applies the chat template) and
``"completions"`` (``/v1/completions``, the messages' text is sent as the raw prompt). Use ``"completions"``
for base models such as the embedded Gemma-3-270M: few-shot prompts like ``"2 + 3 = 5\\n4 + 4 ="`` are
continued as written, while the chat template wraps them in turns the base model was not trained on.

Notes
-----
**The deadline** limits the whole request: all attempts, the waits between them and, for a stream, reading
it. ``timeout`` only limits each connect or read, so on its own it lets a server that sends its headers and
then one byte every few tenths of a second hold a request forever. The deadline is enforced

- async: by awaiting every attempt, and every chunk of a stream, under ``asyncio.wait_for`` with what is left
  of the deadline: the request is cancelled when it passes, whatever the server does;
- sync: by `DeadlineTransport`, which the sync client built by the model sends through (a thread blocked in
  a socket read cannot be cancelled from outside). Every connect, read and write gets at most what is left of
  the deadline, and the response body is checked against it after every chunk: a trickling answer is cut
  off at the first byte after the deadline, a server gone silent mid-answer at most ``timeout`` after it.

A request that outlives its deadline raises `RetryExhaustedError`; a stream that does so while being read
raises `BackendError`; both messages say so.

**Event loops**: an async client's connections belong to the event loop that opened them, so the model makes
one async client per loop (cached weakly). ``asyncio.run(model.ainvoke(...))`` works any number of times in a
row, and from several threads each running its own loop.

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
import email.utils
import threading
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from adaptive_router.errors import BackendError, ConfigError, RetryExhaustedError
from adaptive_router.prompts.messages import prompt_text
from adaptive_router.strategies.base import reraise_config_errors

__all__ = ["DeadlineTransport", "OpenAIChatModel", "is_retryable", "retry_after_seconds"]

_MIN_TIMEOUT = 0.05
"""Shortest timeout handed to a connect or read, so one that starts at the deadline still fails cleanly."""
_T = TypeVar("_T")
_CLIENTS_LOCK = threading.Lock()
"""Guards building the lazily made clients of every model (rare, so one lock for all)."""


def _http_errors() -> tuple[type[Exception], ...]:
    """Errors that can escape an ``openai`` stream: openai's, httpx's, and httpx2's when openai uses it."""
    errors: list[type[Exception]] = [openai.OpenAIError, httpx.HTTPError]
    with contextlib.suppress(ImportError):
        import httpx2  # openai >= 3 sends with httpx2

        errors.append(httpx2.HTTPError)
    return tuple(errors)


_STREAM_ERRORS = _http_errors()


# ---------------------------------------------------------------------- deadline
@dataclass(frozen=True)
class _Deadline:
    """A wall-clock limit: ``seconds`` long, passing at ``at`` on the `time.monotonic` clock."""

    seconds: float
    at: float

    @classmethod
    def after(cls, seconds: float) -> _Deadline:
        """A deadline `seconds` from now."""
        return cls(seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.monotonic()

    def passed(self) -> bool:
        """Whether the deadline has passed."""
        return self.remaining() <= 0.0

    def cap(self, timeout: float | None) -> float:
        """`timeout` (``None``: unlimited) cut to what is left, but at least ``_MIN_TIMEOUT``."""
        left = self.remaining()
        return max(_MIN_TIMEOUT, left if timeout is None else min(timeout, left))

    async def wait_for(self, awaitable: Awaitable[_T]) -> _T:
        """Await `awaitable`, cancelling it when the deadline passes.

        Raises
        ------
        _DeadlinePassed
            The deadline passed first.
        """
        try:
            return await asyncio.wait_for(awaitable, max(0.0, self.remaining()))
        except asyncio.TimeoutError as exc:
            if not self.passed():  # a TimeoutError of the awaitable's own
                raise
            raise _DeadlinePassed(self) from exc


class _DeadlinePassed(Exception):
    """Raised inside an attempt when its request's deadline passed (never retried)."""

    def __init__(self, deadline: _Deadline) -> None:
        self.deadline = deadline
        super().__init__(f"its deadline of {deadline.seconds:g} s passed")


class _StopAtDeadline(stop_base):
    """tenacity ``stop``: give up when the next wait would end at or after the deadline."""

    def __init__(self, deadline: _Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.upcoming_sleep >= self.deadline.remaining()


_ACTIVE_DEADLINE: ContextVar[_Deadline | None] = ContextVar("adaptive_router_deadline", default=None)
"""The deadline of the sync request being sent from this thread, read by `DeadlineTransport`."""


@contextlib.contextmanager
def _active_deadline(deadline: _Deadline) -> Iterator[None]:
    token = _ACTIVE_DEADLINE.set(deadline)
    try:
        yield
    finally:
        _ACTIVE_DEADLINE.reset(token)


class _DeadlineStream(httpx.SyncByteStream):
    """A response body that raises `httpx.ReadTimeout` at the first chunk after the deadline."""

    def __init__(self, inner: httpx.SyncByteStream, deadline: _Deadline, request: httpx.Request) -> None:
        self._inner = inner
        self._deadline = deadline
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            if self._deadline.passed():
                raise httpx.ReadTimeout(
                    f"deadline of {self._deadline.seconds:g} s passed while reading the response",
                    request=self._request,
                )
            yield chunk

    def close(self) -> None:
        self._inner.close()


class DeadlineTransport(httpx.BaseTransport):
    """An httpx transport that holds each request to the deadline of the `OpenAIChatModel` call sending it.

    Sync `OpenAIChatModel` clients send through it. Outside such a call (no deadline set in this thread's
    context) it is a plain pass-through.

    Parameters
    ----------
    inner : httpx.BaseTransport, optional
        The transport that does the I/O; ``httpx.HTTPTransport()`` when ``None``.

    Notes
    -----
    Per request it (1) refuses to start once the deadline has passed, (2) cuts the connect, read, write and
    pool timeouts to what is left of the deadline, and (3) checks the deadline after every chunk of the
    response body, raising `httpx.ReadTimeout` (which the ``openai`` client reports as a timeout). The check
    runs between reads, so a server that trickles its answer is cut off at the first byte after the
    deadline and one that goes silent at the end of the capped read timeout. Response headers are covered by
    the capped timeouts only.

    Examples
    --------
    A sync client of your own keeps the wall-clock deadline when its ``http_client`` uses this transport:

    >>> import httpx, openai
    >>> client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:8000/v1", max_retries=0,
    ...                        http_client=httpx.Client(transport=DeadlineTransport()))
    >>> model = OpenAIChatModel(base_url="http://127.0.0.1:8000/v1", client=client, deadline=30.0)
    """

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self._inner = inner if inner is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = _ACTIVE_DEADLINE.get()
        if deadline is None:
            return self._inner.handle_request(request)
        if deadline.passed():
            raise httpx.PoolTimeout(
                f"deadline of {deadline.seconds:g} s passed before the request was sent", request=request
            )
        timeouts = request.extensions.get("timeout") or {}
        capped = {key: deadline.cap(timeouts.get(key)) for key in ("connect", "read", "write", "pool")}
        request.extensions = {**request.extensions, "timeout": capped}
        response = self._inner.handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_DeadlineStream(response.stream, deadline, request),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()


def _env_proxy(base_url: str | None) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``NO_PROXY``, ...) names for `base_url`, or ``None``."""
    url = httpx.URL(base_url or "https://api.openai.com/v1")
    if url.host and urllib.request.proxy_bypass(url.host):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _deadline_http_client(base_url: str | None, timeout: float) -> httpx.Client:
    """An httpx client sending through `DeadlineTransport`.

    Otherwise like the ``openai`` default client: its connection limits, redirects followed, and the proxy
    the environment names for `base_url` (a custom transport turns off httpx's own ``trust_env`` proxies).
    """
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    inner = httpx.HTTPTransport(limits=limits, proxy=_env_proxy(base_url))
    return httpx.Client(transport=DeadlineTransport(inner), timeout=timeout, follow_redirects=True)


def is_retryable(exc: BaseException) -> bool:
    """429, 5xx, timeouts and connection errors are worth another attempt; other errors are not."""
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def retry_after_seconds(exc: BaseException | None, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date), or ``None``."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class _WaitRetryAfter:
    """Wait what ``Retry-After`` says, else exponential backoff with jitter capped at ``cap`` seconds.

    A ``Retry-After`` longer than what is left of the deadline ends the retries (`_StopAtDeadline`).
    """

    def __init__(self, *, initial: float, cap: float) -> None:
        self.cap = cap
        self.backoff = wait_exponential_jitter(multiplier=initial, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = retry_after_seconds(exc)
        return asked if asked is not None else min(self.cap, self.backoff(state))


def _usage(resp_usage: Any) -> dict[str, int]:
    if resp_usage is None:
        return {}
    inp = int(getattr(resp_usage, "prompt_tokens", 0) or 0)
    out = int(getattr(resp_usage, "completion_tokens", 0) or 0)
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


class OpenAIChatModel(BaseChatModel):
    """Chat model over the ``openai`` client with tenacity retries bounded by attempts and a deadline.

    Parameters
    ----------
    model : str
        Model name sent with each request.
    base_url : str, optional
        Server URL ending in ``/v1``; ``None`` is OpenAI.
    api_key : str
        Any string for local servers.
    endpoint : {"chat", "completions"}
        Which OpenAI endpoint to call (see the module docstring).
    temperature, top_p, max_tokens, seed, stop
        Sampling settings sent with each request (``None`` leaves the server default).
    supports_n : bool
        Whether the server honours ``n`` (OpenAI, vLLM: yes; llama.cpp: no). Best-of-k asks for ``n=k`` in one
        request only when True.
    timeout : float
        Seconds a connect or read may wait (also capped by what is left of the deadline).
    max_attempts : int
        Attempts per request, the first included.
    deadline : float
        Wall-clock seconds for one request: all attempts, the waits between them and reading a stream
        (see the module docstring for how it is enforced).
    max_backoff : float
        Longest backoff between attempts when the server sent no ``Retry-After``.
    client, async_client : optional
        Pre-built ``openai.OpenAI`` / ``openai.AsyncOpenAI`` (e.g. with a custom ``http_client``), used as
        given: a sync ``client`` keeps the wall-clock deadline only if its ``http_client`` sends through
        `DeadlineTransport`, and an ``async_client`` must only be used on the event loop it was made on.
        Without them the model builds its own: one sync client, one async client per event loop.
    sleep, asleep : callable, optional
        Injected sleeps for tests.

    Raises
    ------
    RetryExhaustedError
        Attempts ran out, or the deadline passed (the message says which).
    BackendError
        A non-retryable error (400, 401, 404, ...), or a stream that broke or outlived its deadline.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = "default"
    base_url: str | None = None
    api_key: SecretStr = Field(default=SecretStr("sk-no-key"))
    endpoint: Literal["chat", "completions"] = "chat"
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    supports_n: bool = True
    timeout: float = 60.0
    max_attempts: int = 4
    deadline: float = 120.0
    max_backoff: float = 20.0
    initial_backoff: float = 0.5
    client: Any = Field(default=None, exclude=True)
    async_client: Any = Field(default=None, exclude=True)
    sleep: Callable[[float], None] | None = Field(default=None, exclude=True)
    asleep: Callable[[float], Any] | None = Field(default=None, exclude=True)

    _sync_client: Any = PrivateAttr(default=None)
    _async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = PrivateAttr(
        default_factory=weakref.WeakKeyDictionary
    )

    def __init__(self, **kwargs: Any) -> None:
        with reraise_config_errors():
            super().__init__(**kwargs)

    def model_post_init(self, context: Any, /) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not self.deadline > 0 or not self.timeout > 0:
            raise ConfigError(f"deadline and timeout must be > 0, got {self.deadline} and {self.timeout}")

    @classmethod
    def for_llama_server(cls, server: Any, **kwargs: Any) -> OpenAIChatModel:
        """A model for a running `LlamaServer` (``n`` not honoured; completions endpoint by default)."""
        kwargs.setdefault("endpoint", "completions")
        return cls(base_url=server.base_url, model=server.model_alias, supports_n=False, **kwargs)

    @property
    def _llm_type(self) -> str:
        return "adaptive-router-openai"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url, "endpoint": self.endpoint}

    # ------------------------------------------------------------------ clients
    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "api_key": self.api_key.get_secret_value(),
            "base_url": self.base_url,
            "max_retries": 0,
            "timeout": self.timeout,
        }

    def _sync(self) -> Any:
        """The sync client: ``client`` if given, else one built on `DeadlineTransport` (made once)."""
        if self.client is not None:
            return self.client
        with _CLIENTS_LOCK:
            if self._sync_client is None:
                # Any: openai >= 3 types it as httpx2.Client but takes an httpx.Client too ("legacy")
                http_client: Any = _deadline_http_client(self.base_url, self.timeout)
                self._sync_client = openai.OpenAI(http_client=http_client, **self._client_kwargs())
            return self._sync_client

    def _async(self) -> Any:
        """The async client for the running event loop: ``async_client`` if given, else one made per loop.

        An async client's connections belong to the loop they were opened on; reused from another loop
        (``asyncio.run`` twice in a row) they fail with "Event loop is closed". Clients are cached per loop,
        weakly, so a loop that is garbage-collected takes its client with it, and entries of closed loops are
        dropped when a new loop asks.
        """
        if self.async_client is not None:
            return self.async_client
        loop = asyncio.get_running_loop()
        with _CLIENTS_LOCK:
            client = self._async_clients.get(loop)
            if client is None:
                for old in [old for old in self._async_clients if old.is_closed()]:
                    del self._async_clients[old]
                client = self._async_clients[loop] = openai.AsyncOpenAI(**self._client_kwargs())
            return client

    # ------------------------------------------------------------------ retries and the deadline
    def _retry_kwargs(self, deadline: _Deadline) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(self.max_attempts) | _StopAtDeadline(deadline),
            "wait": _WaitRetryAfter(initial=self.initial_backoff, cap=self.max_backoff),
            "retry": retry_if_exception(is_retryable),
            "reraise": False,
        }

    @property
    def _where(self) -> str:
        return self.base_url or "api.openai.com"

    def _exhausted(self, err: RetryError, deadline: _Deadline) -> RetryExhaustedError:
        last = err.last_attempt.exception()
        attempts = err.last_attempt.attempt_number
        if deadline.passed():
            return self._deadline_exhausted(deadline, attempts, last)
        refused = isinstance(last, openai.APIConnectionError) and not isinstance(last, openai.APITimeoutError)
        hint = "; nothing answers there: is the server running?" if refused else ""
        failure = f"{self.endpoint} request to {self._where} kept failing: {type(last).__name__}: {last}"
        return RetryExhaustedError(failure[:500] + hint, attempts=attempts)

    def _deadline_exhausted(
        self, deadline: _Deadline, attempts: int, last: BaseException | None
    ) -> RetryExhaustedError:
        cause = f" (last error: {type(last).__name__}: {last})"[:300] if last else ""
        return RetryExhaustedError(
            f"{self.endpoint} request to {self._where} did not finish within its deadline of "
            f"{deadline.seconds:g} s: raise `deadline` if the server is just slow{cause}",
            attempts=attempts,
        )

    def _fatal(self, exc: openai.OpenAIError) -> BackendError:
        status = getattr(exc, "status_code", None)
        return BackendError(f"{self.endpoint} request failed (status {status}): {exc}"[:500])

    def _stream_broke(self, exc: BaseException, deadline: _Deadline) -> BackendError:
        detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, _DeadlinePassed):
            detail = str(exc)
        elif deadline.passed():
            detail = f"its deadline of {deadline.seconds:g} s passed ({detail})"
        return BackendError(f"stream from {self._where} broke: {detail}"[:500])

    def _call(self, fn: Callable[[float], Any], deadline: _Deadline) -> Any:
        """Run ``fn(timeout)`` with retries; `DeadlineTransport` holds each attempt to `deadline`."""
        retrying = Retrying(sleep=self.sleep or time.sleep, **self._retry_kwargs(deadline))
        try:
            with _active_deadline(deadline):
                for attempt in retrying:
                    with attempt:
                        return fn(deadline.cap(self.timeout))
        except RetryError as err:
            raise self._exhausted(err, deadline) from err.last_attempt.exception()
        except openai.OpenAIError as exc:
            raise self._fatal(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acall(self, fn: Callable[[float], Awaitable[Any]], deadline: _Deadline) -> Any:
        """Await ``fn(timeout)`` with retries, each attempt cancelled when `deadline` passes."""
        retrying = AsyncRetrying(sleep=self.asleep or asyncio.sleep, **self._retry_kwargs(deadline))
        try:
            async for attempt in retrying:
                with attempt:
                    return await deadline.wait_for(fn(deadline.cap(self.timeout)))
        except _DeadlinePassed as exc:
            attempts = int(retrying.statistics.get("attempt_number", 1))
            raise self._deadline_exhausted(deadline, attempts, None) from exc
        except RetryError as err:
            raise self._exhausted(err, deadline) from err.last_attempt.exception()
        except openai.OpenAIError as exc:
            raise self._fatal(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ requests
    def _params(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
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
            params["prompt"] = prompt_text(messages)  # the text recorded outcomes and the probe read
        return {k: v for k, v in params.items() if v is not None}

    def _endpoint(self, client: Any) -> Any:
        return client.chat.completions if self.endpoint == "chat" else client.completions

    def _result(self, resp: Any) -> ChatResult:
        usage = _usage(getattr(resp, "usage", None))
        generations = []
        for choice in resp.choices:
            text = (choice.message.content or "") if self.endpoint == "chat" else (choice.text or "")
            meta = {"finish_reason": choice.finish_reason, "model_name": getattr(resp, "model", self.model)}
            message = AIMessage(content=text, response_metadata=meta, usage_metadata=usage or None)  # type: ignore[arg-type]
            generations.append(
                ChatGeneration(message=message, generation_info={"finish_reason": choice.finish_reason})
            )
        token_usage = {
            "prompt_tokens": usage.get("input_tokens", 0),
            "completion_tokens": usage.get("output_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        }
        return ChatResult(
            generations=generations, llm_output={"token_usage": token_usage, "model_name": self.model}
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        params = self._params(messages, stop, kwargs)
        endpoint = self._endpoint(self._sync())
        deadline = _Deadline.after(self.deadline)
        return self._result(self._call(lambda timeout: endpoint.create(timeout=timeout, **params), deadline))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        params = self._params(messages, stop, kwargs)
        endpoint = self._endpoint(self._async())
        deadline = _Deadline.after(self.deadline)
        resp = await self._acall(lambda timeout: endpoint.create(timeout=timeout, **params), deadline)
        return self._result(resp)

    def _delta(self, chunk: Any) -> str:
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if self.endpoint == "chat":
            return getattr(choice.delta, "content", None) or ""
        return getattr(choice, "text", None) or ""

    def _chunk(self, raw: Any, run_manager: CallbackManagerForLLMRun | None) -> ChatGenerationChunk:
        chunk = ChatGenerationChunk(message=AIMessageChunk(content=self._delta(raw)))
        if run_manager is not None and chunk.text:
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        return chunk

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        params = self._params(messages, stop, kwargs)
        endpoint = self._endpoint(self._sync())
        deadline = _Deadline.after(self.deadline)
        stream = self._call(lambda timeout: endpoint.create(timeout=timeout, stream=True, **params), deadline)
        try:
            for raw in stream:  # the body is held to the deadline by DeadlineTransport; events are too
                if deadline.passed():
                    raise self._stream_broke(_DeadlinePassed(deadline), deadline)
                yield self._chunk(raw, run_manager)
        except _STREAM_ERRORS as exc:
            raise self._stream_broke(exc, deadline) from exc
        finally:
            _close_quietly(stream)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        params = self._params(messages, stop, kwargs)
        endpoint = self._endpoint(self._async())
        deadline = _Deadline.after(self.deadline)
        stream = await self._acall(
            lambda timeout: endpoint.create(timeout=timeout, stream=True, **params), deadline
        )
        events = stream.__aiter__()
        try:
            while True:
                try:
                    raw = await deadline.wait_for(events.__anext__())
                except StopAsyncIteration:
                    return
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=self._delta(raw)))
                if run_manager is not None and chunk.text:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        except _DeadlinePassed as exc:
            raise self._stream_broke(exc, deadline) from exc
        except _STREAM_ERRORS as exc:
            raise self._stream_broke(exc, deadline) from exc
        finally:
            await _aclose_quietly(stream)


def _close_quietly(stream: Any) -> None:
    """Close an ``openai`` stream (releases its connection); errors while closing are not the caller's."""
    close = getattr(stream, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


async def _aclose_quietly(stream: Any) -> None:
    """Async `_close_quietly`."""
    close = getattr(stream, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
