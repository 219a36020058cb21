"""Tests for adaptive_router.runnables.batcher (MicroBatcher)."""

from __future__ import annotations

import asyncio

import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.runnables import MicroBatcher


async def test_full_windows_flush_at_once():
    seen: list[list[int]] = []

    async def process(items):
        seen.append(items)
        return [x * 10 for x in items]

    batcher = MicroBatcher(process=process, max_batch_size=3, max_wait_ms=10_000)
    results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(i) for i in range(6))), timeout=5)
    assert results == [0, 10, 20, 30, 40, 50]
    assert seen == [[0, 1, 2], [3, 4, 5]]


async def test_partial_window_flushes_after_wait():
    async def process(items):
        return items

    batcher = MicroBatcher(process=process, max_batch_size=100, max_wait_ms=1)
    assert await asyncio.gather(batcher.submit("a"), batcher.submit("b")) == ["a", "b"]
    assert batcher.windows == 1


async def test_per_item_exceptions_and_window_failure():
    async def process(items):
        return [ValueError(f"bad {x}") if x < 0 else x for x in items]

    batcher = MicroBatcher(process=process, max_batch_size=2, max_wait_ms=1)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(-1), return_exceptions=True)
    assert results[0] == 1 and isinstance(results[1], ValueError)

    async def broken(items):
        raise RuntimeError("probe down")

    batcher = MicroBatcher(process=broken, max_batch_size=2, max_wait_ms=1)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_wrong_result_count_is_reported():
    async def process(items):
        return items[:1]

    batcher = MicroBatcher(process=process, max_batch_size=2, max_wait_ms=1)
    with pytest.raises(RuntimeError, match="1 results for 2 items"):
        await asyncio.gather(batcher.submit(1), batcher.submit(2))


async def test_cancelled_caller_does_not_break_the_window():
    release = asyncio.Event()

    async def process(items):
        await release.wait()
        return items

    batcher = MicroBatcher(process=process, max_batch_size=2, max_wait_ms=1)
    first = asyncio.ensure_future(batcher.submit(1))
    second = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0.01)
    first.cancel()
    release.set()
    assert await second == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_batch_size": 0, "max_wait_ms": 1}, "max_batch_size"),
        ({"max_batch_size": 1, "max_wait_ms": -1}, "max_wait_ms"),
    ],
)
def test_bad_settings(kwargs, match):
    async def process(items):
        return items

    with pytest.raises(ConfigError, match=match):
        MicroBatcher(process=process, **kwargs)
