"""HTTP policies for OpenAI-compatible clients: a wall-clock deadline, per-event-loop pools, retry decisions.

`OpenAIChatModel` (and the server's upstream client) send through these:

- `DeadlineTransport` caps every connect, read and write of a sync request to what is left of its deadline
  and checks a streamed body against it after every chunk (a thread blocked in a socket read cannot be
  cancelled from outside);
- the async client keeps one connection pool per event loop (an async connection belongs to the loop that
  opened it);
- `is_retryable` and `retry_after_seconds` decide whether and when to try again; `WaitRetryAfter` and
  `StopAtDeadline` are the tenacity ``wait`` and ``stop`` built from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import threading
import time
import urllib.request
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

import httpx
import openai
from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base

__all__ = [
    "STREAM_BROKE",
    "Deadline",
    "DeadlinePassed",
    "DeadlineTransport",
    "StopAtDeadline",
    "WaitRetryAfter",
    "active_deadline",
    "deadline_client",
    "env_proxy",
    "is_retryable",
    "per_loop_client",
    "retry_after_seconds",
]

_MIN_TIMEOUT = 0.05
"""Shortest timeout handed to a connect or read, so one that starts at the deadline still fails cleanly."""
_T = TypeVar("_T")


def _http_errors() -> tuple[type[Exception], ...]:
    """Errors that can escape an ``openai`` stream: openai's, httpx's, and httpx2's when openai uses it."""
    errors: list[type[Exception]] = [openai.OpenAIError, httpx.HTTPError]
    with contextlib.suppress(ImportError):
        import httpx2  # openai >= 3 sends with httpx2

        errors.append(httpx2.HTTPError)
    return tuple(errors)


# ---------------------------------------------------------------------- deadline
@dataclass(frozen=True)
class Deadline:
    """A wall-clock limit: ``seconds`` long, passing at ``at`` on the `time.monotonic` clock."""

    seconds: float
    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.remaining() <= 0.0

    def cap(self, timeout: float | None) -> float:
        """`timeout` (``None``: unlimited) cut to what is left, but at least ``_MIN_TIMEOUT``."""
        left = self.remaining()
        return max(_MIN_TIMEOUT, left if timeout is None else min(timeout, left))

    async def wait_for(self, awaitable: Awaitable[_T]) -> _T:
        """Await `awaitable`, cancelling it and raising `DeadlinePassed` when the deadline passes."""
        try:
            return await asyncio.wait_for(awaitable, max(0.0, self.remaining()))
        except asyncio.TimeoutError as exc:
            if not self.passed():  # a TimeoutError of the awaitable's own
                raise
            raise DeadlinePassed(self) from exc


class DeadlinePassed(Exception):
    """Raised inside an attempt when its request's deadline passed (never retried)."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        super().__init__(f"its deadline of {deadline.seconds:g} s passed")


STREAM_BROKE: tuple[type[Exception], ...] = (DeadlinePassed, *_http_errors())
"""What ends a stream that has started: its deadline, or an HTTP or ``openai`` error."""


class StopAtDeadline(stop_base):
    """tenacity ``stop``: give up when the next wait would end at or after the deadline."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.upcoming_sleep >= self.deadline.remaining()


_ACTIVE_DEADLINE: ContextVar[Deadline | None] = ContextVar("adaptive_router_deadline", default=None)
"""The deadline of the sync request being sent from this thread, read by `DeadlineTransport`."""


@contextlib.contextmanager
def active_deadline(deadline: Deadline) -> Iterator[None]:
    token = _ACTIVE_DEADLINE.set(deadline)
    try:
        yield
    finally:
        _ACTIVE_DEADLINE.reset(token)


class _DeadlineStream(httpx.SyncByteStream):
    """A response body that raises `httpx.ReadTimeout` at the first chunk after the deadline."""

    def __init__(self, inner: httpx.SyncByteStream, deadline: Deadline, request: httpx.Request) -> None:
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

    The sync client `OpenAIChatModel` builds sends through it. Outside such a call (no deadline set in this
    thread's context) it is a plain pass-through.

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
    deadline and one that goes silent at the end of the capped read timeout.

    Examples
    --------
    A sync client of your own keeps the wall-clock deadline when its ``http_client`` uses this transport:

    >>> import httpx, openai
    >>> from adaptive_router.integrations.openai_backend import OpenAIChatModel
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


# ---------------------------------------------------------------------- HTTP clients
class _PerLoopTransport(httpx.AsyncBaseTransport):
    """One async transport (connection pool) per event loop, made on first use, dropped with the loop.

    Pooled connections belong to the loop that opened them; reused from another loop (``asyncio.run`` twice
    in a row) they fail with "Event loop is closed". Pools are keyed weakly by loop, and those of closed loops
    are dropped when a new loop asks.
    """

    def __init__(self, make: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._make = make
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncBaseTransport] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def _pool(self) -> httpx.AsyncBaseTransport:
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._pools.get(loop)
            if pool is None:
                for old in [old for old in self._pools if old.is_closed()]:
                    del self._pools[old]
                pool = self._pools[loop] = self._make()
            return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool().handle_async_request(request)

    async def aclose(self) -> None:
        with self._lock:
            pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()


def env_proxy(base_url: str | None) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``NO_PROXY``, ...) names for `base_url`, or ``None``."""
    url = httpx.URL(base_url or "https://api.openai.com/v1")
    if url.host and urllib.request.proxy_bypass(url.host):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)  # the openai client's defaults


def deadline_client(proxy: str | None) -> httpx.Client:
    """A sync client sending through `DeadlineTransport` (a custom transport needs its proxy set here)."""
    transport = DeadlineTransport(httpx.HTTPTransport(limits=_LIMITS, proxy=proxy))
    return httpx.Client(transport=transport, follow_redirects=True)


def per_loop_client(proxy: str | None) -> httpx.AsyncClient:
    """An async client with one connection pool per event loop."""
    transport = _PerLoopTransport(lambda: httpx.AsyncHTTPTransport(limits=_LIMITS, proxy=proxy))
    return httpx.AsyncClient(transport=transport, follow_redirects=True)


# ---------------------------------------------------------------------- retries
def is_retryable(exc: BaseException) -> bool:
    """429, 5xx, timeouts and connection errors are worth another attempt; other errors are not."""
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def retry_after_seconds(exc: BaseException | None, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date), or ``None``."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        with contextlib.suppress(TypeError, ValueError):
            return max(0.0, float(headers.get(name)) / scale)
    try:
        when = email.utils.parsedate_to_datetime(headers.get("retry-after")).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class WaitRetryAfter(wait_base):
    """tenacity ``wait``: what ``Retry-After`` says, else `fallback` (one longer than the deadline stops)."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        asked = retry_after_seconds(outcome.exception() if outcome is not None else None)
        return asked if asked is not None else self.fallback(retry_state)
