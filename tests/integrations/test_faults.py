"""Fault tests: a fault-injecting proxy in front of the real llama.cpp server; the server killed mid-batch.

Every query must get an answer or a clear per-item error, nothing lost, and retries stay bounded.
"""

from __future__ import annotations

import threading
import time

import pytest
from adaptive_router.integrations.openai_backend import OpenAIChatModel
from fault_proxy import Fault, FaultProxy
from langchain_core.messages import AIMessage

from adaptive_router.errors import BackendError, RetryExhaustedError
from adaptive_router.runnables import AdaptiveRouter
from adaptive_router.strategies import BestOfK, MajorityVoteReranker

pytestmark = pytest.mark.realmodel

PROMPTS = [f"2 + 3 = 5\n{a} + {b} =" for a, b in [(1, 2), (3, 4), (5, 1), (2, 2), (4, 4), (6, 1)]]


def _model(base_url: str, sleeps: list[float] | None = None, **kwargs) -> OpenAIChatModel:
    recorded = sleeps if sleeps is not None else []

    def sleep(seconds: float) -> None:  # record what was asked, wait a little for real
        recorded.append(seconds)
        time.sleep(min(seconds, 0.05))

    kwargs.setdefault("max_attempts", 4)
    kwargs.setdefault("initial_backoff", 0.05)
    kwargs.setdefault("max_backoff", 0.2)
    return OpenAIChatModel(
        base_url=base_url,
        model="gemma-3-270m",
        endpoint="completions",
        supports_n=False,
        max_tokens=2,
        stop=["\n"],
        sleep=sleep,
        **kwargs,
    )


def _router(model: OpenAIChatModel, max_k: int = 1, budget: float = 1.0) -> AdaptiveRouter:
    # one-shot: these tests count the requests a fixed k sends under faults (rounds would stop early)
    return AdaptiveRouter(
        strategy=BestOfK(model, MajorityVoteReranker(), max_k=max_k), budget_per_query=budget, rounds=None
    )


def _proxy(server, fault) -> FaultProxy:
    return FaultProxy(upstream_host=server.host, upstream_port=server.port, fault=fault)


def test_429_with_retry_after_is_honoured(llama_gemma):
    sleeps: list[float] = []
    with _proxy(llama_gemma, lambda i: Fault.status(429, retry_after=1.5) if i % 3 == 0 else None) as proxy:
        outs = _router(_model(proxy.base_url, sleeps)).batch(PROMPTS, {"max_concurrency": 1})
    assert all(isinstance(o, AIMessage) for o in outs)
    assert sleeps.count(1.5) == proxy.injected.count("429") > 0  # each 429 waited what Retry-After said
    assert proxy.received == proxy.forwarded + len(proxy.injected)


def test_500s_are_retried_and_bounded(llama_gemma):
    with _proxy(llama_gemma, lambda i: Fault.status(500) if i < 2 else None) as proxy:
        outs = _router(_model(proxy.base_url)).batch(PROMPTS[:3], {"max_concurrency": 1})
    assert all(isinstance(o, AIMessage) for o in outs)
    assert proxy.received == 3 + 2


def test_persistent_500_gives_per_item_retry_exhausted(llama_gemma):
    with _proxy(llama_gemma, lambda i: Fault.status(502)) as proxy:
        outs = _router(_model(proxy.base_url, max_attempts=3)).batch(PROMPTS[:3], return_exceptions=True)
    assert all(isinstance(o, RetryExhaustedError) and o.attempts == 3 for o in outs)
    assert "502" in str(outs[0])
    assert proxy.received == 3 * 3  # bounded: attempts per query, no more


def test_stall_times_out_and_retries(llama_gemma):
    with _proxy(llama_gemma, lambda i: Fault.stall(60) if i == 0 else None) as proxy:
        outs = _router(_model(proxy.base_url, timeout=10.0)).batch(PROMPTS[:2], {"max_concurrency": 1})
    assert all(isinstance(o, AIMessage) for o in outs)
    assert proxy.injected == ["stall"]
    # on a loaded machine a slow real answer may also time out and be retried: still bounded
    assert 2 <= proxy.forwarded == proxy.received - 1 <= 2 * 4


def test_trickling_answer_is_cut_off_at_the_deadline(llama_gemma):
    # headers, then one byte every 0.3 s: no read ever times out, so only the wall-clock deadline ends it
    with _proxy(llama_gemma, lambda i: Fault.trickle(0.3) if i == 0 else None) as proxy:
        model = _model(proxy.base_url, timeout=1.0, deadline=3.0)
        started = time.monotonic()
        (out,) = _router(model).batch(PROMPTS[:1], return_exceptions=True)
        released = time.monotonic() - started
        (after,) = _router(_model(proxy.base_url)).batch(PROMPTS[1:2])  # the next request goes through
    assert isinstance(out, RetryExhaustedError) and "deadline of 3 s" in str(out)
    assert released < 3.0 + 1.0
    assert isinstance(after, AIMessage) and proxy.injected == ["trickle"]


def test_best_of_k_keeps_successful_samples_under_faults(llama_gemma):
    # every other request is dropped without an answer and only one attempt is allowed: failed samples are
    # reported, not re-sent, and the best successful candidate is returned
    with _proxy(llama_gemma, lambda i: Fault.drop() if i % 2 else None) as proxy:
        router = _router(_model(proxy.base_url, max_attempts=1), max_k=2, budget=2.0)
        outs = router.batch(PROMPTS[:2], {"max_concurrency": 1}, return_exceptions=True)
    metas = [o.response_metadata["adaptive_router"] for o in outs if isinstance(o, AIMessage)]
    assert len(metas) + sum(isinstance(o, BackendError) for o in outs) == 2
    assert sum(m["calls"] for m in metas) <= proxy.received == 4
    assert any(m["failed_calls"] == 1 and m["candidates"] == 1 for m in metas)


def test_server_killed_mid_batch(require_llama):
    from adaptive_router.integrations.llama_server import LlamaServer

    prompts = PROMPTS * 2
    with LlamaServer.gemma(n_ctx=256) as server:
        model = _model(server.base_url, max_attempts=3, deadline=20.0)

        def killer() -> None:
            deadline = time.monotonic() + 120
            while server.request_count() < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            server.kill()

        thread = threading.Thread(target=killer)
        thread.start()
        outs = _router(model).batch(prompts, {"max_concurrency": 1}, return_exceptions=True)
        thread.join()
    assert len(outs) == len(prompts)  # nothing lost
    answered = [o for o in outs if isinstance(o, AIMessage)]
    failed = [o for o in outs if isinstance(o, RetryExhaustedError)]
    assert len(answered) + len(failed) == len(prompts)
    assert len(answered) >= 3 and failed
    assert all(e.attempts <= 3 for e in failed)
