"""Tests for adaptive_router.integrations.agents (AdaptiveRouterMiddleware in create_agent)."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain.agents")

from adaptive_router.integrations.agents import AdaptiveRouterMiddleware
from langchain.agents import create_agent

from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.strategies import BestOfK, Route, VerifierReranker

HARD = "a long and hard question about many things"


def _route(scripted, table_probe, budget):
    cheap = scripted(reply=lambda t, i: "cheap")
    expensive = scripted(reply=lambda t, i: "right" if i % 2 else "wrong")
    strategy = Route(
        cheap=cheap,
        expensive=expensive,
        costs=(1, 2),
        reranker=VerifierReranker(verify=lambda p, c: float(c == "right")),
        max_k=2,
    )
    probe = table_probe(procedures=("cheap", "expensive"), max_k=2, procedure_scale={"cheap": 0.3})
    middleware = AdaptiveRouterMiddleware(strategy=strategy, probe=probe, budget_per_query=budget)
    return create_agent(cheap, tools=[], middleware=[middleware]), cheap, expensive


def test_agent_call_routed_and_best_of_k(scripted, table_probe):
    agent, cheap, expensive = _route(scripted, table_probe, budget=4.0)
    final = agent.invoke({"messages": [("user", HARD)]})["messages"][-1]
    meta = final.response_metadata["adaptive_router"]
    assert (meta["procedure"], meta["k"]) == ("expensive", 2)
    assert final.content == "right" and meta["reranker_scores"] == [0.0, 1.0]
    assert cheap.calls == 0 and expensive.calls == 2


async def test_agent_async_low_budget_uses_cheap(scripted, table_probe):
    agent, cheap, expensive = _route(scripted, table_probe, budget=1.0)
    final = (await agent.ainvoke({"messages": [("user", HARD)]}))["messages"][-1]
    assert final.content == "cheap" and final.response_metadata["adaptive_router"]["k"] == 1
    assert cheap.calls == 1 and expensive.calls == 0


def test_middleware_needs_chat_models():
    from langchain_core.runnables import RunnableLambda

    with pytest.raises(ConfigError, match="needs chat models"):
        AdaptiveRouterMiddleware(strategy=BestOfK(RunnableLambda(lambda x: "a"), max_k=1))


@pytest.mark.parametrize(
    ("probe_kwargs", "match"),
    [
        ({"procedures": ("cheap",), "max_k": 2}, r"procedures \['expensive'\] the probe does not predict"),
        ({"procedures": ("cheap", "expensive"), "max_k": 1}, "the probe's curves stop at k=1"),
    ],
)
def test_probe_mismatch_fails_at_construction(scripted, table_probe, probe_kwargs, match):
    cheap, expensive = scripted(), scripted()
    strategy = Route(cheap=cheap, expensive=expensive, costs=(1, 2), reranker=_verifier_right(), max_k=2)
    with pytest.raises(ConfigError, match=match):
        AdaptiveRouterMiddleware(strategy=strategy, probe=table_probe(**probe_kwargs), budget_per_query=2.0)
    with pytest.raises(ConfigError, match="must satisfy CurvePredictor"):
        AdaptiveRouterMiddleware(strategy=strategy, probe=object())
    assert cheap.calls == expensive.calls == 0


def test_bad_budget_or_max_k_fails_at_construction(scripted):
    strategy = BestOfK(scripted(), _verifier_right(), max_k=2)
    with pytest.raises(InfeasibleBudgetError, match="below the cheapest option"):
        AdaptiveRouterMiddleware(strategy=strategy, budget_per_query=0.5)
    with pytest.raises(ConfigError, match="max_k must be >= 1"):
        AdaptiveRouterMiddleware(strategy=strategy, max_k=0)


def test_metadata_is_router_metadata_with_judge_cost(scripted, table_probe):
    from adaptive_router.runnables import RouterMetadata, router_metadata

    agent, _, _ = _route(scripted, table_probe, budget=4.0)
    meta = router_metadata(agent.invoke({"messages": [("user", HARD)]})["messages"][-1])
    assert set(meta) == RouterMetadata.__required_keys__
    assert (meta["calls"], meta["failed_calls"], meta["candidates"], meta["cost"]) == (2, 0, 2, 4.0)
    assert meta["predicted"]["allocator"] == "threshold" and meta["budget_per_query"] == 4.0


async def test_failed_calls_are_reported_and_the_rest_served(scripted, table_probe):
    cheap = scripted(reply=lambda t, i: "cheap")
    expensive = scripted(reply=lambda t, i: "right", fail=lambda i: i == 0)
    strategy = Route(cheap=cheap, expensive=expensive, costs=(1, 2), reranker=_verifier_right(), max_k=2)
    probe = table_probe(procedures=("cheap", "expensive"), max_k=2, procedure_scale={"cheap": 0.3})
    middleware = AdaptiveRouterMiddleware(strategy=strategy, probe=probe, budget_per_query=4.0)
    agent = create_agent(cheap, tools=[], middleware=[middleware])
    final = (await agent.ainvoke({"messages": [("user", HARD)]}))["messages"][-1]
    meta = final.response_metadata["adaptive_router"]
    assert final.content == "right" and (meta["calls"], meta["failed_calls"], meta["candidates"]) == (2, 1, 1)
    assert meta["errors"] == ["RuntimeError: scripted failure on call 0"]


def _verifier_right():
    return VerifierReranker(verify=lambda p, c: float(c == "right"))
