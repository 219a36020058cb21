"""Rounds through the router, property-tested: the budget holds per window and across windows, every query
gets an answer, and planning stops when no sample has a positive gain (hypothesis, random fake models)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive_router.allocation import Rounds
from adaptive_router.runnables import AdaptiveRouter, router_metadata
from adaptive_router.strategies import BestOfK, MajorityVoteReranker, VerifierReranker


def _random_model(scripted, rates, seed, fail_rate):
    """Prompt ``q{i}`` is answered "right" with probability ``rates[i]`` per sample, else a wrong number."""
    rng = np.random.default_rng(seed)
    lock = threading.Lock()

    def reply(text: str, i: int) -> str:
        with lock:
            u, wrong = rng.random(), int(rng.integers(0, 3))
        return "right" if u < rates[int(text[1:])] else f"wrong {wrong}"

    fails = np.random.default_rng(seed + 1).random(10_000) < fail_rate
    return scripted(reply=reply, fail=lambda j: bool(fails[j % fails.size]))


@st.composite
def _case(draw):
    n = draw(st.integers(1, 12))
    return {
        "n": n,
        "rates": draw(st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), min_size=n, max_size=n)),
        "budget": draw(st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.5])),
        "max_k": draw(st.integers(2, 6)),
        "window": draw(st.integers(1, 5)),
        "rounds": Rounds(
            max_rounds=draw(st.integers(1, 4)),
            first_round=draw(st.sampled_from(["auto", "one", 2, "plan"])),
            round_budget=draw(st.sampled_from(["even", "all"])),
        ),
        "votes": draw(st.booleans()),
        "probe": draw(st.booleans()),
        "fail_rate": draw(st.sampled_from([0.0, 0.0, 0.2])),
        "lone": draw(st.integers(0, 4)),
        "use_async": draw(st.booleans()),
        "seed": draw(st.integers(0, 10**6)),
    }


def _granted_minus_allocated(router):
    rows = router.spend_summary()
    return sum(r["budget"] - r["allocated"] for r in rows), sum(r["allocated"] for r in rows)


@given(_case())
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_budget_answers_and_stopping(scripted, table_probe, case):
    n, budget = case["n"], case["budget"]
    model = _random_model(scripted, case["rates"], case["seed"], case["fail_rate"])
    reranker = (
        MajorityVoteReranker()
        if case["votes"]
        else VerifierReranker(verify=lambda prompt, answer: answer == "right")
    )
    probe = table_probe(by_length=lambda _: 0.4, max_k=8) if case["probe"] else None
    router = AdaptiveRouter(
        strategy=BestOfK(model, reranker, max_k=case["max_k"]),
        probe=probe,
        budget_per_query=budget,
        window_size=case["window"],
        rounds=case["rounds"],
    )
    queries = [f"q{i}" for i in range(n)]
    outs = (
        asyncio.run(router.abatch(queries, return_exceptions=True))
        if case["use_async"]
        else (router.batch(queries, return_exceptions=True))
    )
    balance, allocated = _granted_minus_allocated(router)
    assert allocated == model.calls <= budget * n + 1e-9  # the windows never exceed their budget
    assert balance >= -1e-9
    w = case["window"]
    for start in range(0, n, w):  # a fresh ledger: each window spends at most its own share
        window = [
            router_metadata(o)["k"] for o in outs[start : start + w] if not isinstance(o, BaseException)
        ]
        assert sum(window) <= budget * len(outs[start : start + w]) + 1e-9
    for out in outs:  # every query is answered; an error only when every one of its samples failed
        if isinstance(out, BaseException):
            assert isinstance(out, RuntimeError) and case["fail_rate"] > 0
            continue
        meta = router_metadata(out)
        assert 1 <= meta["k"] <= case["max_k"] and meta["cost"] <= meta["allocated_cost"]
        assert meta["k"] == sum(r["units"] for r in meta["rounds"]["per_round"])
        assert len(meta["rounds"]["per_round"]) <= case["rounds"].max_rounds
    for i in range(case["lone"]):  # lone invokes on the same ledger: threshold form, capped by the ledger
        before_balance, before = _granted_minus_allocated(router)
        try:
            meta = router_metadata(router.invoke(f"q{i % n}"))
        except RuntimeError:
            assert case["fail_rate"] > 0
            continue
        _, after = _granted_minus_allocated(router)
        assert after - before == meta["allocated_cost"] <= budget + before_balance + 1e-9
    _, allocated = _granted_minus_allocated(router)
    assert allocated == model.calls <= budget * (n + case["lone"]) + 1e-9


@given(
    n=st.integers(1, 10),
    budget=st.sampled_from([1.0, 2.0, 3.5]),
    max_rounds=st.integers(2, 4),
    probe=st.booleans(),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_positive_gain_no_more_samples(scripted, table_probe, n, budget, max_rounds, probe):
    """Every first sample passes the verifier: no query gains from another, so each gets exactly one."""
    model = scripted(reply=lambda t, i: "right")
    router = AdaptiveRouter(
        strategy=BestOfK(model, VerifierReranker(verify=lambda p, a: a == "right"), max_k=4),
        probe=table_probe(by_length=lambda _: 0.3, max_k=4) if probe else None,
        budget_per_query=budget,
        rounds=Rounds(max_rounds=max_rounds),
    )
    outs = router.batch([f"q{i}" for i in range(n)])
    assert model.calls == n and all(router_metadata(o)["k"] == 1 for o in outs)
    assert {router_metadata(o)["rounds"]["stop_reason"] for o in outs} <= {"no_gain", "budget"}
