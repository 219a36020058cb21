"""Tests for adaptive_router.runnables.tracing: one chat-model run per query, quiet candidate runs, one clean
stream, the decision on the run, honest usage; and the chat-model conventions of both routers (stop,
bind_tools, with_structured_output, generate over many prompts, configurable keys, loops and threads)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
from langchain_core.messages import AIMessage, HumanMessage
from pydantic import BaseModel
from test_chat_model_standard import ToolCallingFake

from adaptive_router.errors import ConfigError
from adaptive_router.prices import PriceTable
from adaptive_router.runnables import AdaptiveRouter, CascadeRouter, router_metadata
from adaptive_router.runnables.tracing import CANDIDATE_TAG, DECISION_EVENT
from adaptive_router.strategies import BestOfK, MajorityVoteReranker

USAGE = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}  # ToolCallingFake, per request


class Sum(BaseModel):
    """Two integers to add."""

    a: int
    b: int


def _router(k: int, model: Any = None, **kwargs: Any) -> AdaptiveRouter:
    model = model or ToolCallingFake()
    reranker = MajorityVoteReranker() if k > 1 else None
    kwargs.setdefault("rounds", None)
    return AdaptiveRouter(strategy=BestOfK(model, reranker, max_k=k), budget_per_query=float(k), **kwargs)


class Recorder(BaseCallbackHandler):
    """Records chat-model runs (tags, metadata, parent) and custom events."""

    def __init__(self) -> None:
        self.runs: dict[Any, dict[str, Any]] = {}
        self.events: list[tuple[str, Any, Any]] = []

    def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, **kw):
        self.runs[run_id] = {"parent": parent_run_id, "tags": kw.get("tags") or [],
                             "metadata": kw.get("metadata") or {}, "name": serialized["id"][-1]}  # fmt: skip

    def on_custom_event(self, name, data, *, run_id, **kw):
        self.events.append((name, data, run_id))

    def routers(self) -> list[Any]:
        return [r for r, v in self.runs.items() if CANDIDATE_TAG not in v["tags"]]

    def candidates(self) -> list[Any]:
        return [r for r, v in self.runs.items() if CANDIDATE_TAG in v["tags"]]


# ---------------------------------------------------------------------- the decision on the run
def test_router_run_carries_the_decision_and_candidates_their_outcome():
    rec = Recorder()
    out = _router(3).invoke("add", {"callbacks": [rec]})
    (router_run,) = rec.routers()
    run = rec.runs[router_run]
    assert {"adaptive_router:k=3", "adaptive_router:route=default"} <= set(run["tags"])
    assert run["metadata"]["adaptive_router"]["k"] == 3
    assert run["metadata"]["adaptive_router"]["allocator"] == "uniform"
    candidates = rec.candidates()
    assert len(candidates) == 3 and {rec.runs[c]["parent"] for c in candidates} == {router_run}
    ((name, data, event_run),) = rec.events
    assert name == DECISION_EVENT and event_run == router_run
    outcome = data["candidate_runs"]
    assert outcome == router_metadata(out)["candidate_runs"]
    assert {outcome["chosen"], *outcome["rejected"]} == {str(c) for c in candidates}
    assert out.id == f"lc_run--{router_run}"


def test_a_call_nobody_traces_still_names_its_runs():
    """Without handlers no run event is built, yet the answer carries its run's id and its candidates'."""
    run_id = uuid.uuid4()
    out = _router(3).invoke("add", {"run_id": run_id})
    assert out.id == f"lc_run--{run_id}"
    runs = router_metadata(out)["candidate_runs"]
    assert len({runs["chosen"], *runs["rejected"]}) == 3


def test_inheritable_handlers_alone_see_the_candidates_and_the_decision():
    rec = Recorder()
    out = _router(2).invoke("add", {"callbacks": CallbackManager(handlers=[], inheritable_handlers=[rec])})
    assert len(rec.candidates()) == 2 and not rec.routers()  # the router's own run has no handler
    ((name, data, _),) = rec.events
    assert name == DECISION_EVENT and data["candidate_runs"] == router_metadata(out)["candidate_runs"]


def test_batch_is_one_run_per_query_and_one_window():
    rec = Recorder()
    outs = _router(2).batch(["a", "b", "c"], {"callbacks": [rec]})
    assert len(rec.routers()) == 3 and len(rec.candidates()) == 6
    assert {router_metadata(o)["predicted"]["window"] for o in outs} == {3}


def test_generate_over_many_prompts_goes_through_the_window():
    result = _router(2).generate([[HumanMessage("a")], [HumanMessage("b")]])
    metas = [router_metadata(g[0].message) for g in result.generations]
    assert [m["predicted"]["window"] for m in metas] == [2, 2] and len(result.run or []) == 2


# ---------------------------------------------------------------------- usage
def test_usage_totals_every_request_at_k3():
    out = _router(3).invoke("add")
    total = {key: 3 * v for key, v in USAGE.items()}
    assert out.usage_metadata == total and router_metadata(out)["tokens"] == total


def test_cascade_usage_totals_draft_and_escalation_and_prices():
    prices = PriceTable({"cheap": (1.0, 2.0), "expensive": (10.0, 20.0)})
    router = CascadeRouter(cheap=ToolCallingFake(), expensive=ToolCallingFake(), costs=(1.0, 10.0),
                           budget_per_query=11.0, prices=prices)  # fmt: skip
    out = router.invoke("q")
    meta = router_metadata(out)
    assert meta["escalated"] and out.usage_metadata == {k: 2 * v for k, v in USAGE.items()}
    assert meta["cost_usd"] == pytest.approx((3 * 1 + 2 * 2 + 3 * 10 + 2 * 20) / 1e6)


def test_cost_in_money_when_prices_are_known():
    router = _router(3, prices=PriceTable({"default": (1.0, 4.0)}))
    assert router_metadata(router.invoke("q"))["cost_usd"] == pytest.approx(3 * (3 * 1 + 2 * 4) / 1e6)
    assert router_metadata(_router(1).invoke("q"))["cost_usd"] is None


def test_prices_must_price_every_procedure():
    with pytest.raises(ConfigError, match=r"no price for \['default'\]"):
        _router(2, prices=PriceTable({"other": (1.0, 1.0)}))


# ---------------------------------------------------------------------- one clean stream
async def test_astream_events_show_only_the_router_stream_at_k3():
    router = _router(3)
    events = [e async for e in router.astream_events("q", version="v2")]
    streams = [e for e in events if e["event"] == "on_chat_model_stream"]
    assert {e["name"] for e in events if e["event"].startswith("on_chat_model")} == {"AdaptiveRouter"}
    assert "".join(str(e["data"]["chunk"].content) for e in streams) == "the sum is ?"
    last = streams[-1]["data"]["chunk"]
    assert last.usage_metadata == {k: 3 * v for k, v in USAGE.items()}
    assert last.response_metadata["finish_reason"] == "stop"
    assert [e["name"] for e in events if e["event"] == "on_custom_event"] == [DECISION_EVENT]


def test_k1_streams_tokens_as_they_come_with_usage_on_the_last_chunk():
    chunks = list(_router(1).stream("q"))
    assert [c.content for c in chunks] == ["the ", "sum ", "is ", "?", ""]
    assert [c.usage_metadata for c in chunks[:-1]] == [None] * 4 and chunks[-1].usage_metadata == USAGE
    assert chunks[-1].response_metadata["finish_reason"] == "stop"
    assert router_metadata(chunks[-1])["calls"] == 1


def test_invoke_under_a_streaming_handler_streams_k1():
    class Streaming(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.tokens: list[tuple[Any, str]] = []

        def tap_output_iter(self, run_id, output):
            return output

        def tap_output_aiter(self, run_id, output):
            return output

        def on_llm_new_token(self, token, *, run_id, **kw):
            self.tokens.append((run_id, token))

    handler = Streaming()
    out = _router(1).invoke("q", {"callbacks": [handler]})
    (router_run,) = handler.routers()
    assert out.content == "the sum is ?" and out.usage_metadata == USAGE
    assert [t for r, t in handler.tokens if r == router_run] == ["the ", "sum ", "is ", "?", ""]
    assert {r for r, _ in handler.tokens} == {router_run}  # the candidate's run streams to nobody


# ---------------------------------------------------------------------- chat-model conventions
def test_stop_and_bound_kwargs_reach_every_request():
    model = ToolCallingFake()
    _router(2, model).bind(stop=["END"]).invoke("q")
    assert [kw["stop"] for kw in model.kwargs_seen] == [["END"], ["END"]]
    model = ToolCallingFake()
    _router(1, model, stop=["X"], max_tokens=7).invoke("q")
    assert model.kwargs_seen[0]["stop"] == ["X"] and model.kwargs_seen[0]["max_tokens"] == 7


def test_bind_tools_votes_on_tool_calls_and_shares_the_ledger():
    router = _router(3)
    bound = router.bind_tools([Sum], tool_choice="any")  # the fake calls the first tool
    out = bound.invoke("q")
    assert out.tool_calls and out.tool_calls[0]["name"] == "Sum"
    assert router_metadata(out)["reranker_scores"] == [1.0, 1.0, 1.0]  # the three calls agree
    assert router.spend_summary()[0]["queries"] == 1  # the bound router spent from the same ledger


def test_with_structured_output_returns_the_parsed_value():
    assert _router(2).with_structured_output(Sum).invoke("q") == Sum(a=2, b=3)


def test_bind_tools_needs_chat_models():
    from langchain_core.runnables import RunnableLambda

    router = _router(1, RunnableLambda(lambda x: "a"))
    with pytest.raises(ConfigError, match="cannot bind tools to RunnableLambda"):
        router.bind_tools([Sum])


def test_unknown_constructor_parameter_is_a_config_error():
    with pytest.raises(ConfigError, match=r"unknown parameters \['api_key'\]"):
        AdaptiveRouter(strategy=BestOfK(ToolCallingFake(), max_k=1), api_key="x")


# ---------------------------------------------------------------------- configurable keys
def test_config_specs_declare_the_runtime_keys():
    assert [s.id for s in _router(2).config_specs] == ["budget_per_query", "max_k", "strategy", "rounds"]
    router = CascadeRouter(cheap=ToolCallingFake(), expensive=ToolCallingFake(), budget_per_query=1.0)
    assert [s.id for s in router.config_specs] == ["budget_per_query"]


@pytest.mark.parametrize("key", ["max_K", "budget_per_querry", "round", "adaptive_router_budget"])
def test_a_misspelt_configurable_key_is_rejected(key):
    with pytest.raises(ConfigError, match=rf"unknown configurable key '{key}'.*'budget_per_query'"):
        _router(2).invoke("q", {"configurable": {key: 1}})


def test_other_components_configurable_keys_are_left_alone():
    conf = {"thread_id": "t1", "checkpoint_ns": "", "__pregel_send": None, "user_id": 7, "budget": 3.0}
    assert router_metadata(_router(2).invoke("q", {"configurable": conf}))["k"] == 2


# ---------------------------------------------------------------------- loops, threads, concurrency
def test_a_shared_router_works_across_event_loops_and_threads():
    router = _router(2)
    for _ in range(2):
        assert asyncio.run(router.ainvoke("q")).content == "the sum is ?"
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(router.invoke("q"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.content for r in results] == ["the sum is ?"] * 4


def test_max_concurrency_bounds_requests_in_flight(scripted):
    model = scripted(reply=lambda t, i: "x", latency=0.02)
    router = AdaptiveRouter(strategy=BestOfK(model, MajorityVoteReranker(), max_k=4), budget_per_query=4.0,
                            rounds=None)  # fmt: skip
    router.batch(["a", "b", "c"], {"max_concurrency": 2})
    assert model.calls == 12 and model.max_active <= 2


def test_answer_is_an_ai_message_for_messages_in():
    out = _router(1).invoke([HumanMessage("q")])
    assert isinstance(out, AIMessage) and out.content == "the sum is ?"


async def test_cascade_and_rounds_stream_the_answer_once_with_total_usage():
    cascade = CascadeRouter(cheap=ToolCallingFake(answer="cheap"), expensive=ToolCallingFake(answer="big"),
                            costs=(1.0, 10.0), budget_per_query=11.0)  # fmt: skip
    events = [e async for e in cascade.astream_events("q", version="v2")]
    streams = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    assert {e["name"] for e in events if e["event"] == "on_chat_model_start"} == {"CascadeRouter"}
    assert "".join(str(c.content) for c in streams) == "big ?"
    assert streams[-1].usage_metadata == {k: 2 * v for k, v in USAGE.items()}  # draft + escalation
    from adaptive_router.strategies import VerifierReranker

    verifier = VerifierReranker(verify=lambda prompt, answer: answer.endswith("?"))
    rounds = AdaptiveRouter(strategy=BestOfK(ToolCallingFake(), verifier, max_k=4), budget_per_query=2.0)
    rec = Recorder()
    chunks = [c async for c in rounds.astream("q", {"callbacks": [rec]})]
    (router_run,) = rec.routers()
    assert "adaptive_router:rounds" in rec.runs[router_run]["tags"]
    assert "".join(str(c.content) for c in chunks) == "the sum is ?"
    assert chunks[-1].usage_metadata == {k: router_metadata(chunks[-1])["k"] * v for k, v in USAGE.items()}
