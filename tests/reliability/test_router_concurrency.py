"""``max_concurrency`` bounds model *requests*, not queries, on every router path (sync and async).

A `ScriptedChatModel` with a small latency records the most requests it ever had in flight. With k = 4
samples per query and a cap of 2, sending queries two at a time would put 8 requests in flight.
"""

from __future__ import annotations

import asyncio

import pytest

from adaptive_router.runnables import AdaptiveRouter, CascadeRouter
from adaptive_router.strategies import BestOfK, LLMJudgeReranker, VerifierReranker

QUERIES = [f"question {i}" for i in range(6)]


def _best_of_4(model, reranker=None):
    reranker = reranker or VerifierReranker(verify=lambda p, c: 1.0)
    return AdaptiveRouter(strategy=BestOfK(model, reranker, max_k=4), budget_per_query=4.0)  # uniform: k = 4


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_batch_bounds_requests(scripted, cap):
    model = scripted(reply=lambda t, i: "x", latency=0.005)
    outs = _best_of_4(model).batch(QUERIES, {"max_concurrency": cap})
    assert model.calls == 24 == sum(o.response_metadata["adaptive_router"]["calls"] for o in outs)
    assert model.max_active <= cap


@pytest.mark.parametrize("cap", [1, 2, 3])
async def test_abatch_bounds_requests(scripted, cap):
    model = scripted(reply=lambda t, i: "x", latency=0.005)
    await _best_of_4(model).abatch(QUERIES, {"max_concurrency": cap})
    assert model.calls == 24 and model.max_active <= cap


async def test_ainvoke_bounds_its_own_k_requests(scripted):
    model = scripted(reply=lambda t, i: "x", latency=0.005)
    out = await _best_of_4(model).ainvoke("q", {"max_concurrency": 2})
    assert out.response_metadata["adaptive_router"]["calls"] == 4 and model.max_active <= 2


def test_n_requests_count_once(scripted):
    model = scripted(reply=lambda t, i: "x", latency=0.005, supports_n=True)
    _best_of_4(model).batch(QUERIES, {"max_concurrency": 2})
    assert model.calls == 6 and model.n_seen == [4] * 6 and model.max_active <= 2


@pytest.mark.parametrize("use_async", [False, True])
def test_judge_requests_are_bounded_too(scripted, use_async):
    model = scripted(reply=lambda t, i: f"answer {i}", latency=0.005)
    judge = scripted(reply=lambda t, i: "7", latency=0.005)
    router = _best_of_4(model, LLMJudgeReranker(judge=judge, cost_per_candidate=0.0))
    if use_async:
        outs = asyncio.run(router.abatch(QUERIES, {"max_concurrency": 2}))
    else:
        outs = router.batch(QUERIES, {"max_concurrency": 2})
    assert judge.calls == 24 == sum(o.response_metadata["adaptive_router"]["judge_calls"] for o in outs)
    assert judge.max_active <= 2 and model.max_active <= 2


@pytest.mark.parametrize("use_async", [False, True])
def test_cascade_bounds_drafts_and_escalations(scripted, use_async):
    cheap = scripted(reply=lambda t, i: "draft", latency=0.005)
    expensive = scripted(reply=lambda t, i: "better", latency=0.005)
    router = CascadeRouter(cheap=cheap, expensive=expensive, costs=(1.0, 1.0), budget_per_query=2.0)
    if use_async:
        outs = asyncio.run(router.abatch(QUERIES, {"max_concurrency": 2}))
    else:
        outs = router.batch(QUERIES, {"max_concurrency": 2})
    assert [o.content for o in outs] == ["better"] * 6
    assert cheap.calls == expensive.calls == 6 and cheap.max_active <= 2 and expensive.max_active <= 2
