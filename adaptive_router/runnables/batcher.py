"""A micro-batcher: gather concurrent async calls into windows processed together.

Each `submit` adds one item to the open window; the window is processed when it holds ``max_batch_size``
items or ``max_wait_ms`` after its first item arrived, whichever comes first. The ``process`` coroutine gets
the window's items and returns one result (or exception) per item, in order; each caller gets its own.

Examples
--------
>>> import asyncio
>>> async def double(items):
...     return [2 * x for x in items]
>>> async def main():
...     batcher = MicroBatcher(process=double, max_batch_size=8, max_wait_ms=1.0)
...     return await asyncio.gather(*(batcher.submit(i) for i in range(3))), batcher.windows
>>> asyncio.run(main())
([0, 2, 4], 1)
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from adaptive_router.errors import ConfigError

__all__ = ["MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Gather concurrent `submit` calls (on one event loop) into windows.

    Parameters
    ----------
    process : callable
        ``async process(items) -> results``, one result or exception per item, in order.
    max_batch_size : int
        Largest window.
    max_wait_ms : float
        How long the first item of a window waits for company.

    Attributes
    ----------
    windows : int
        Windows processed so far.
    """

    def __init__(
        self,
        *,
        process: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        max_batch_size: int,
        max_wait_ms: float,
    ) -> None:
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be an int >= 1, got {max_batch_size!r}")
        if not isinstance(max_wait_ms, (int, float)) or not math.isfinite(max_wait_ms) or max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be a finite number >= 0, got {max_wait_ms!r}")
        self.process = process
        self.max_batch_size = max_batch_size
        self.max_wait_ms = float(max_wait_ms)
        self.windows = 0
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """Add `item` to the open window and wait for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.max_batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_ms / 1000.0, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        window, self._pending = self._pending, []
        if not window:
            return
        self.windows += 1
        task = asyncio.get_running_loop().create_task(self._run(window))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, window: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self.process([item for item, _ in window])
            if len(results) != len(window):
                raise RuntimeError(f"process returned {len(results)} results for {len(window)} items")
        except BaseException as exc:  # every caller must hear about it, cancellation included
            for _, future in window:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(window, results, strict=False):
            if future.done():  # the caller was cancelled
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
