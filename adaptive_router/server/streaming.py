"""Server-sent events for ``"stream": true``: OpenAI's ``chat.completion.chunk`` stream, then ``[DONE]``.

The first chunk carries ``delta.role = "assistant"``; each text piece of the answer follows as a
``delta.content``; the last chunk has ``finish_reason`` and the router's decision under ``adaptive_router``
(procedure, k, cost, ...). With ``stream_options.include_usage`` a usage chunk (no choices) comes next, as
OpenAI sends it; every stream ends with ``data: [DONE]``. An error after the stream started (the upstream
broke, the request ran out of time) is sent as one ``data: {"error": {...}}`` event before ``[DONE]``:
the status line has long gone out by then.

Examples
--------
>>> event({"a": 1})
b'data: {"a":1}\\n\\n'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from adaptive_router.server.errors import APIError
from adaptive_router.server.protocol import chunk_body, usage_body
from adaptive_router.server.service import Answer

__all__ = ["DONE", "event", "sse_events"]

DONE = b"data: [DONE]\n\n"


def event(payload: dict[str, Any]) -> bytes:
    """One SSE ``data:`` event with `payload` as compact JSON."""
    return b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


async def _next(pieces: AsyncIterator[str | Answer], deadline: float) -> str | Answer:
    left = deadline - time.monotonic()
    if left <= 0:
        raise asyncio.TimeoutError
    return await asyncio.wait_for(pieces.__anext__(), left)


async def sse_events(
    first: str | Answer,
    pieces: AsyncIterator[str | Answer],
    *,
    id: str,
    created: int,
    model: str,
    include_usage: bool,
    deadline: float,
    on_error: Callable[[BaseException], APIError],
    on_end: Callable[[int], None],
) -> AsyncIterator[bytes]:
    """The SSE body: `first` (already received) and the rest of `pieces`, each held to `deadline`.

    ``on_error(exc)`` turns a failure mid-stream into the error event; ``on_end(status)`` runs once when
    the stream is over (200, or the error's status), whatever happened, client disconnects included.
    """
    status = 499  # the client went away unless the stream gets to its end
    item: str | Answer = first
    try:
        yield event(
            chunk_body(id=id, created=created, model=model, delta={"role": "assistant", "content": ""})
        )
        while True:
            if isinstance(item, Answer):
                final = chunk_body(
                    id=id,
                    created=created,
                    model=model,
                    delta={},
                    finish_reason=item.finish_reason,
                    meta=item.meta,
                )
                yield event(final)
                if include_usage:
                    yield event(usage_body(id=id, created=created, model=model, meta=item.meta))
                break
            if item:
                yield event(chunk_body(id=id, created=created, model=model, delta={"content": item}))
            try:
                item = await _next(pieces, deadline)
            except StopAsyncIteration:
                break
        status = 200
    except Exception as exc:
        error = on_error(exc)
        status = error.status
        yield event(error.body())
    finally:
        await _close(pieces)
        on_end(status)
    yield DONE


async def _close(pieces: AsyncIterator[str | Answer]) -> None:
    close = getattr(pieces, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):  # closing a broken stream is not the client's problem
            await close()
