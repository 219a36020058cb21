"""Tests for adaptive_router.integrations.agents (AdaptiveRouterMiddleware in create_agent)."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain.agents")

from adaptive_router.integrations.agents import AdaptiveRouterMiddleware
from langchain.agents import create_agent

from adaptive_router.errors import ConfigError
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
