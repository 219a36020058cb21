"""Tests for adaptive_router.integrations.agents (AdaptiveRouterMiddleware in create_agent)."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain.agents")

import itertools
from collections.abc import Iterator
from typing import Any

from adaptive_router.integrations.agents import AdaptiveRouterMiddleware
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.runnables import AdaptiveRouter, router_metadata
from adaptive_router.strategies import BestOfK, MajorityVoteReranker, Route, VerifierReranker

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


# ---------------------------------------------------------------------- the router as the agent's model
_USAGE = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}


class _ToolCaller(BaseChatModel):
    """Calls ``add`` with ``args[i]`` on its i-th tool-call turn (cycling), answers ``sum=<result>`` after a
    tool result; streams the answer one character at a time."""

    args: list[dict[str, int]] = Field(default_factory=lambda: [{"a": 2, "b": 3}])
    _turns: Any = None

    @property
    def _llm_type(self) -> str:
        return "tool-caller"

    def _reply(self, messages, kwargs) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return AIMessage(f"sum={messages[-1].content}", usage_metadata=_USAGE)
        if self._turns is None:
            self._turns = itertools.cycle(self.args)
        call = {"name": "add", "args": next(self._turns), "id": f"call_{id(messages)}_{len(messages)}"}
        assert kwargs.get("tools"), "the agent's tools must reach the wrapped model"
        return AIMessage("", tool_calls=[call], usage_metadata=_USAGE)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages, kwargs))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages, kwargs)
        if reply.tool_calls:
            (c,) = reply.tool_calls
            chunk = AIMessageChunk(content="", tool_call_chunks=[
                {"name": c["name"], "args": str(c["args"]).replace("'", '"'), "id": c["id"], "index": 0}
            ], usage_metadata=_USAGE)  # fmt: skip
            yield ChatGenerationChunk(message=chunk)
            return
        for i, ch in enumerate(str(reply.content)):
            last = i == len(str(reply.content)) - 1
            yield ChatGenerationChunk(
                message=AIMessageChunk(content=ch, usage_metadata=_USAGE if last else None)
            )

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _agent(k: int, model: BaseChatModel | None = None):
    reranker = MajorityVoteReranker() if k > 1 else None
    router = AdaptiveRouter(strategy=BestOfK(model or _ToolCaller(), reranker, max_k=k),
                            budget_per_query=float(k), rounds=None)  # fmt: skip
    return create_agent(model=router, tools=[add]), router


def test_create_agent_with_the_router_as_its_model():
    agent, router = _agent(3, _ToolCaller(args=[{"a": 2, "b": 3}, {"a": 9, "b": 9}, {"a": 2, "b": 3}]))
    messages = agent.invoke({"messages": [("user", "add 2 and 3")]})["messages"]
    calls, tool_result, final = messages[1], messages[2], messages[3]
    assert calls.tool_calls[0]["args"] == {"a": 2, "b": 3}  # the vote compared the calls: 2 of 3 agree
    assert sorted(router_metadata(calls)["reranker_scores"]) == [1 / 3, 2 / 3, 2 / 3]
    assert tool_result.content == "5" and final.content == "sum=5"
    assert calls.usage_metadata == {k: 3 * v for k, v in _USAGE.items()}  # all three candidates' tokens
    assert router.spend_summary()[0]["queries"] == 2  # both turns spent from the router's one ledger


async def test_agent_messages_stream_has_no_candidate_tokens_at_k3():
    agent, _ = _agent(3)
    pieces = [m async for m, _ in agent.astream({"messages": [("user", "add")]}, stream_mode="messages")]
    ai = [p for p in pieces if isinstance(p, AIMessageChunk)]
    assert "".join(str(p.content) for p in ai) == "sum=5"  # the chosen answer once, no candidate's
    assert len({p.id for p in ai}) == 2  # one message per model turn


def test_agent_messages_stream_streams_tokens_at_k1():
    agent, _ = _agent(1)
    pieces = [m for m, _ in agent.stream({"messages": [("user", "add")]}, stream_mode="messages")]
    answer = [str(p.content) for p in pieces if isinstance(p, AIMessageChunk) and p.content]
    assert answer == list("sum=5")  # token by token, each once


def test_middleware_votes_on_tool_calls_and_reports_tokens():
    model = _ToolCaller(args=[{"a": 1, "b": 1}, {"a": 2, "b": 3}, {"a": 2, "b": 3}])
    middleware = AdaptiveRouterMiddleware(strategy=BestOfK(model, MajorityVoteReranker(), max_k=3),
                                          budget_per_query=3.0)  # fmt: skip
    agent = create_agent(model, tools=[add], middleware=[middleware])
    messages = agent.invoke({"messages": [("user", "add")]})["messages"]
    meta = router_metadata(messages[1])
    assert messages[1].tool_calls[0]["args"] == {"a": 2, "b": 3} and meta["selected"] == 1
    assert meta["tokens"]["total_tokens"] == 3 * 5 and messages[2].content == "5"


def test_empty_calibration_texts_fail_at_construction(scripted, table_probe):
    strategy = Route(cheap=scripted(), expensive=scripted(), costs=(1, 2))
    probe = table_probe(procedures=("cheap", "expensive"), max_k=1)
    with pytest.raises(ConfigError, match="calibration_texts is empty"):
        AdaptiveRouterMiddleware(strategy=strategy, probe=probe, calibration_texts=[])
    with pytest.raises(ConfigError, match="must be a list of query strings, got str"):
        AdaptiveRouterMiddleware(strategy=strategy, probe=probe, calibration_texts="2 + 2 =")


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_failed_model_falls_back_within_the_budget(scripted, table_probe, use_async):
    cheap = scripted(reply=lambda t, i: "right")
    expensive = scripted(fail=lambda i: True)
    strategy = Route(cheap=cheap, expensive=expensive, costs=(1, 2), reranker=_verifier_right(), max_k=2)
    probe = table_probe(procedures=("cheap", "expensive"), max_k=2, procedure_scale={"cheap": 0.3})
    middleware = AdaptiveRouterMiddleware(strategy=strategy, probe=probe, budget_per_query=6.0)
    agent = create_agent(cheap, tools=[], middleware=[middleware])
    state = {"messages": [("user", HARD)]}
    final = ((await agent.ainvoke(state)) if use_async else agent.invoke(state))["messages"][-1]
    meta = router_metadata(final)
    assert final.content == "right" and (meta["procedure"], meta["k"]) == ("cheap", 2)
    assert meta["fallback"]["failed"][0]["procedure"] == "expensive" and meta["fallback"]["extra_cost"] == 2.0
    assert (meta["calls"], meta["failed_calls"], meta["cost"], meta["allocated_cost"]) == (4, 2, 6.0, 6.0)
    (ledger,) = middleware._core.planner.ledgers()
    assert (ledger.queries, ledger.allocated) == (1, 6.0)
    low = AdaptiveRouterMiddleware(strategy=strategy, probe=probe, budget_per_query=4.0)  # no room left
    with pytest.raises(RuntimeError, match="scripted failure") as info:
        create_agent(cheap, tools=[], middleware=[low]).invoke(state)
    assert "no fallback to cheap (2 units)" in info.value.__notes__[0]


def test_model_fallback_false_keeps_the_error(scripted, table_probe):
    cheap, expensive = scripted(reply=lambda t, i: "right"), scripted(fail=lambda i: True)
    strategy = Route(cheap=cheap, expensive=expensive, costs=(1, 2), reranker=_verifier_right(), max_k=2)
    probe = table_probe(procedures=("cheap", "expensive"), max_k=2, procedure_scale={"cheap": 0.3})
    middleware = AdaptiveRouterMiddleware(
        strategy=strategy, probe=probe, budget_per_query=6.0, model_fallback=False
    )
    with pytest.raises(RuntimeError, match="scripted failure"):
        create_agent(cheap, tools=[], middleware=[middleware]).invoke({"messages": [("user", HARD)]})
    assert cheap.calls == 0
