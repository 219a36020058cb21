"""``max_concurrency`` bounds model *requests*, not queries, on every router path (sync and async).

A `ScriptedChatModel` with a small latency records the most requests it ever had in flight. With k = 4
samples per query and a cap of 2, sending queries two at a time would put 8 requests in flight. The
one-shot tests pin k = 4 per query (``rounds=None``); the rounds tests check every round's send.
"""

from __future__ import annotations

import asyncio

import pytest

from adaptive_router.runnables import AdaptiveRouter, CascadeRouter
from adaptive_router.strategies import BestOfK, LLMJudgeReranker, VerifierReranker

QUERIES = [f"question {i}" for i in range(6)]


def _best_of_4(model, reranker=None, rounds=None):
    reranker = reranker or VerifierReranker(verify=lambda p, c: 1.0)
    strategy = BestOfK(model, reranker, max_k=4)
    return AdaptiveRouter(strategy=strategy, budget_per_query=4.0, rounds=rounds)  # uniform: k = 4


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


def _failing_verifier():
    return VerifierReranker(verify=lambda p, c: 0.0)  # never solved: every round spends


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_rounds_batch_bounds_requests(scripted, cap):
    model = scripted(reply=lambda t, i: "x", latency=0.005)
    outs = _best_of_4(model, _failing_verifier(), rounds="auto").batch(QUERIES, {"max_concurrency": cap})
    assert model.calls == 24 == sum(o.response_metadata["adaptive_router"]["calls"] for o in outs)
    assert model.max_active <= cap
    assert all(len(o.response_metadata["adaptive_router"]["rounds"]["per_round"]) > 1 for o in outs)


@pytest.mark.parametrize("cap", [1, 2, 3])
async def test_rounds_abatch_and_ainvoke_bound_requests(scripted, cap):
    model = scripted(reply=lambda t, i: "x", latency=0.005)
    router = _best_of_4(model, _failing_verifier(), rounds="auto")
    await router.abatch(QUERIES, {"max_concurrency": cap})
    assert model.calls == 24 and model.max_active <= cap
    outs = await asyncio.gather(*(router.ainvoke(q, {"max_concurrency": cap}) for q in QUERIES))
    assert model.calls == 48 and model.max_active <= cap
    assert sum(o.response_metadata["adaptive_router"]["calls"] for o in outs) == 24


@pytest.mark.parametrize("use_async", [False, True])
def test_rounds_judge_readings_are_bounded_too(scripted, use_async):
    import numpy as np

    from adaptive_router.allocation import Rounds, ScoreEvidence

    train = np.random.default_rng(0).normal(size=(40, 4))
    rounds = Rounds(evidence=ScoreEvidence().fit(train, (train > 0).astype(float)))
    model = scripted(reply=lambda t, i: f"answer {i}", latency=0.005)
    judge = scripted(reply=lambda t, i: "7", latency=0.005)
    router = _best_of_4(model, LLMJudgeReranker(judge=judge, cost_per_candidate=0.0), rounds=rounds)
    if use_async:
        outs = asyncio.run(router.abatch(QUERIES, {"max_concurrency": 2}))
    else:
        outs = router.batch(QUERIES, {"max_concurrency": 2})
    judged = sum(o.response_metadata["adaptive_router"]["judge_calls"] for o in outs)
    assert judge.calls == model.calls == judged
    assert judge.max_active <= 2 and model.max_active <= 2
