"""Tests for adaptive_router.runnables.router (AdaptiveRouter) with in-process test doubles."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from adaptive_router.errors import ConfigError, InfeasibleBudgetError, ProbeError
from adaptive_router.runnables import AdaptiveRouter
from adaptive_router.strategies import BestOfK, Route, VerifierReranker

EASY = ["1+1=", "2+2=", "3+1=", "1+4="]  # short texts: p = 0.9
HARD = [f"a long and hard question number {i}" for i in range(4)]  # long: p = 0.3


def _verifier():
    return VerifierReranker(verify=lambda p, c: 1.0)


def _router(scripted, table_probe, **kwargs):
    model = kwargs.pop("model", None) or scripted(reply=lambda t, i: "7")
    probe = kwargs.pop("probe", None) or table_probe(by_length=lambda n: 0.9 if n < 8 else 0.3, max_k=4)
    kwargs.setdefault("budget_per_query", 2.0)
    kwargs.setdefault("window_size", 8)
    kwargs.setdefault("rounds", None)  # these tests pin one-shot k and calls (rounds: test_router_rounds.py)
    router = AdaptiveRouter(strategy=BestOfK(model, _verifier(), max_k=4), probe=probe, **kwargs)
    return router, model, probe


def _meta(message):
    return message.response_metadata["adaptive_router"]


def test_invoke_returns_ai_message_with_metadata(scripted, table_probe):
    router, model, _ = _router(scripted, table_probe)
    out = router.invoke("3 + 4 =")
    assert isinstance(out, AIMessage) and out.content == "7"
    meta = _meta(out)
    assert meta["calls"] == meta["k"] == model.calls
    assert meta["predicted"]["allocator"] == "threshold"
    assert meta["cost"] <= meta["allocated_cost"]
    assert meta["tokens"]["total_tokens"] == 6 * meta["calls"]
    assert meta["fallback_active"] is False
    scores = meta["reranker_scores"]
    assert (scores is None) if meta["k"] == 1 else (len(scores) == meta["k"])


def test_batch_allocates_jointly_more_to_hard_queries(scripted, table_probe):
    router, model, probe = _router(scripted, table_probe)
    outs = router.batch(EASY + HARD)
    ks = [_meta(o)["k"] for o in outs]
    assert probe.calls == [8]  # the probe ran once for the window
    assert max(ks[:4]) < min(ks[4:])  # hard queries get more samples (their marginal gain is larger)
    assert sum(ks) <= 2.0 * 8  # never above the budget
    assert model.calls == sum(_meta(o)["calls"] for o in outs)
    assert {_meta(o)["predicted"]["allocator"] for o in outs} == {"window"}


def test_batch_windows_and_order(scripted, table_probe):
    router, _model, probe = _router(
        scripted, table_probe, window_size=3, model=scripted(reply=lambda t, i: t)
    )
    inputs = [f"question {i}" for i in range(7)]
    outs = router.batch(inputs)
    assert probe.calls == [3, 3, 1]
    assert [o.content for o in outs] == inputs  # output order = input order


async def test_abatch_matches_batch_semantics(scripted, table_probe):
    router, model, probe = _router(scripted, table_probe, model=scripted(reply=lambda t, i: t))
    outs = await router.abatch(EASY + HARD)
    assert [o.content for o in outs] == EASY + HARD
    assert probe.calls == [8]
    assert model.calls == sum(_meta(o)["calls"] for o in outs) <= 16


@pytest.mark.parametrize("return_exceptions", [False, True])
async def test_batch_and_abatch_check_each_input_once(scripted, table_probe, monkeypatch, return_exceptions):
    from adaptive_router.runnables import stages

    seen = []
    prepare = stages.prepare_input

    def counted(value, *args, **kwargs):
        seen.append(value)
        return prepare(value, *args, **kwargs)

    monkeypatch.setattr(stages, "prepare_input", counted)
    router, _, _ = _router(scripted, table_probe)
    router.batch(EASY, return_exceptions=return_exceptions)
    await router.abatch(HARD, return_exceptions=return_exceptions)
    assert seen == EASY + HARD  # the checks before sending are the run's own


async def test_concurrent_ainvokes_are_micro_batched(scripted, table_probe):
    router, model, probe = _router(scripted, table_probe, window_size=8, max_wait_ms=50)
    outs = await asyncio.gather(*(router.ainvoke(q) for q in (EASY + HARD) * 2))
    assert sorted(probe.calls) == [8, 8]  # two windows, not 16 single predictions
    assert {_meta(o)["predicted"]["allocator"] for o in outs} == {"window"}
    assert model.calls == sum(_meta(o)["calls"] for o in outs) <= 2.0 * 16


async def test_lone_ainvoke_uses_threshold(scripted, table_probe):
    router, _, probe = _router(scripted, table_probe, max_wait_ms=0)
    out = await router.ainvoke("1 + 1 =")
    assert _meta(out)["predicted"]["allocator"] == "threshold" and probe.calls == [1]


def test_batch_return_exceptions_keeps_the_batch(scripted, table_probe):
    router, _model, _ = _router(scripted, table_probe)
    outs = router.batch(["fine", "", 5, [], [("user", "ok")]], return_exceptions=True)
    assert isinstance(outs[0], AIMessage) and isinstance(outs[4], AIMessage)
    assert isinstance(outs[1], ConfigError) and "empty prompt" in str(outs[1])
    assert isinstance(outs[2], ConfigError) and "got int" in str(outs[2])
    assert isinstance(outs[3], ConfigError) and "empty message list" in str(outs[3])
    with pytest.raises(ConfigError, match="empty prompt"):
        router.batch(["fine", ""])


def test_failing_model_is_a_per_item_error(scripted, table_probe):
    model = scripted(reply=lambda t, i: "ok", fail=lambda i: i == 0)
    router, _, _ = _router(scripted, table_probe, model=model, budget_per_query=1.0)
    outs = router.batch(["a", "b", "c"], {"max_concurrency": 1}, return_exceptions=True)
    assert sum(isinstance(o, RuntimeError) for o in outs) == 1
    assert sum(isinstance(o, AIMessage) for o in outs) == 2


def test_nan_prediction_is_a_clear_per_item_error(scripted, table_probe):
    probe = table_probe(table={"bad": float("nan")}, max_k=4)
    router, _, _ = _router(scripted, table_probe, probe=probe)
    outs = router.batch(["bad", "good one"], return_exceptions=True)
    assert isinstance(outs[0], ProbeError) and "non-finite" in str(outs[0])
    assert isinstance(outs[1], AIMessage)
    with pytest.raises(ProbeError, match="non-finite"):
        router.invoke("bad")


def test_budget_below_minimum(scripted, table_probe):
    with pytest.raises(InfeasibleBudgetError, match="below the cheapest option"):
        _router(scripted, table_probe, budget_per_query=0.5)
    router, _, _ = _router(scripted, table_probe)
    with pytest.raises(InfeasibleBudgetError, match="raise the budget"):
        router.invoke("q", {"configurable": {"budget_per_query": 0.1}})


@pytest.mark.parametrize(
    ("configurable", "match"),
    [
        ({"budget_per_query": float("nan")}, "must be a finite number"),
        ({"budget_per_query": "2"}, "must be a finite number"),
        ({"max_k": 0}, "max_k must be >= 1"),
        ({"max_k": 1.5}, "max_k must be an int"),
        ({"strategy": "nope"}, "unknown strategy"),
    ],
)
def test_bad_run_time_settings(scripted, table_probe, configurable, match):
    router, _, _ = _router(scripted, table_probe)
    with pytest.raises(ConfigError, match=match):
        router.invoke("q", {"configurable": configurable})


def test_bad_construction(scripted, table_probe):
    with pytest.raises(ConfigError, match="must be a strategy"):
        AdaptiveRouter(strategy="best-of-4")
    with pytest.raises(ConfigError, match="must satisfy CurvePredictor"):
        AdaptiveRouter(strategy=BestOfK(scripted(), max_k=1), probe=object())
    with pytest.raises(ConfigError, match=r"procedures \['other'\] the probe does not predict"):
        AdaptiveRouter(strategy=BestOfK(scripted(), max_k=1, procedure="other"), probe=table_probe())
    with pytest.raises(ConfigError, match="the probe's curves stop at k=2"):
        AdaptiveRouter(strategy=BestOfK(scripted(), _verifier(), max_k=4), probe=table_probe(max_k=2))
    with pytest.raises(ConfigError, match="window_size must be"):
        AdaptiveRouter(strategy=BestOfK(scripted(), max_k=1), window_size=0)


def test_run_time_budget_and_max_k(scripted, table_probe):
    router, _, _ = _router(scripted, table_probe)
    rich = router.batch(HARD, {"configurable": {"budget_per_query": 4.0}})
    assert all(_meta(o)["k"] == 4 for o in rich)
    capped = router.batch(HARD, {"configurable": {"budget_per_query": 4.0, "max_k": 2}})
    assert all(_meta(o)["k"] == 2 for o in capped)


def test_strategy_alternative_by_name(scripted, table_probe):
    cheap, expensive = scripted(reply=lambda t, i: "cheap"), scripted(reply=lambda t, i: "expensive")
    route = Route(cheap=cheap, expensive=expensive, costs={"cheap": 1, "expensive": 4})
    probe = table_probe(procedures=("default", "cheap", "expensive"), max_k=4, procedure_scale={"cheap": 0.5})
    router, _, _ = _router(scripted, table_probe, probe=probe, alternatives={"route": route})
    outs = router.batch(EASY + HARD, {"configurable": {"strategy": "route"}})
    assert {_meta(o)["strategy"] for o in outs} == {"route"}
    assert {o.content for o in outs} <= {"cheap", "expensive"}
    assert cheap.calls + 4 * expensive.calls <= 2.0 * 8


def test_per_input_configs(scripted, table_probe):
    router, _, probe = _router(scripted, table_probe)
    configs = [{"configurable": {"budget_per_query": b}} for b in (1.0, 4.0, 1.0, 4.0)]
    outs = router.batch(HARD, configs)
    assert [_meta(o)["k"] for o in outs] == [1, 4, 1, 4]
    assert sorted(probe.calls) == [2, 2]  # one window per settings group


def test_uniform_without_probe_and_fallback_flag(scripted, table_probe):
    model = scripted(reply=lambda t, i: "x")
    router = AdaptiveRouter(strategy=BestOfK(model, _verifier(), max_k=4), budget_per_query=3.0, rounds=None)
    assert [_meta(o)["k"] for o in router.batch(EASY)] == [3, 3, 3, 3]
    probe = table_probe(max_k=4, fallback_active=True)
    router, _, _ = _router(scripted, table_probe, probe=probe)
    assert all(_meta(o)["fallback_active"] for o in router.batch(EASY))


def test_input_types_prompt_value_and_messages(scripted, table_probe):
    router, _, _ = _router(scripted, table_probe, model=scripted(reply=lambda t, i: t))
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("user", "{q}")])
    assert router.invoke(prompt.invoke({"q": "2+2"})).content == "Be brief.\n2+2"
    assert router.invoke([SystemMessage("S"), HumanMessage("Q")]).content == "S\nQ"
    assert router.invoke([("user", "tuple form")]).content == "tuple form"


def test_chain_with_parser_invoke_batch_stream(scripted, table_probe):
    router, _, _ = _router(scripted, table_probe, model=scripted(reply=lambda t, i: "seven is it"))
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | router | StrOutputParser()
    assert chain.invoke({"q": "3+4"}) == "seven is it"
    assert chain.batch([{"q": "1"}, {"q": "2"}]) == ["seven is it"] * 2
    assert "".join(chain.stream({"q": "3+4"})).strip() == "seven is it"


async def test_astream_best_of_k_only_after_selection(scripted, table_probe):
    model = scripted(reply=lambda t, i: "good" if i == 1 else "bad")
    strategy = BestOfK(model, VerifierReranker(verify=lambda p, c: float(c == "good")), max_k=2)
    router = AdaptiveRouter(strategy=strategy, budget_per_query=2.0)  # uniform: k = 2
    chunks = [c async for c in router.astream("q")]
    assert [c.content for c in chunks if c.content] == ["good"]
    assert _meta(chunks[-1])["calls"] == 2


def test_callbacks_see_router_and_nested_model_runs(scripted, table_probe):
    class Recorder(BaseCallbackHandler):
        def __init__(self):
            self.chains, self.models = {}, []

        def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, **kw):
            if "adaptive_router:candidate" in kw["tags"]:
                self.models.append(parent_run_id)
            else:  # the router's own run: a chat-model run
                self.chains[run_id] = serialized["id"][-1]

    rec = Recorder()
    router, model, _ = _router(scripted, table_probe)
    router.invoke("q", {"callbacks": [rec]})
    assert "AdaptiveRouter" in rec.chains.values()
    assert len(rec.models) == model.calls and all(rec.chains.get(p) == "AdaptiveRouter" for p in rec.models)


def test_max_concurrency_is_respected(scripted, table_probe):
    model = scripted(reply=lambda t, i: "x", latency=0.01)
    router = AdaptiveRouter(strategy=BestOfK(model, max_k=1), budget_per_query=1.0)
    router.batch([f"q{i}" for i in range(8)], {"max_concurrency": 2})
    assert model.max_active <= 2


async def test_abatch_respects_max_concurrency_and_keeps_errors_per_item(scripted):
    model = scripted(reply=lambda t, i: "x", latency=0.01, fail=lambda i: i == 0)
    router = AdaptiveRouter(strategy=BestOfK(model, max_k=1), budget_per_query=1.0)
    inputs = [f"q{i}" for i in range(8)] + [""]
    outs = await router.abatch(inputs, {"max_concurrency": 2}, return_exceptions=True)
    assert model.max_active <= 2
    assert sum(isinstance(o, RuntimeError) for o in outs) == 1  # the failed call, not the batch
    assert isinstance(outs[-1], ConfigError) and "empty prompt" in str(outs[-1])
    assert sum(isinstance(o, AIMessage) for o in outs) == 7


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spend_never_exceeds_budget(scripted, table_probe, seed):
    rng = np.random.default_rng(seed)
    table = {f"q{i}": float(p) for i, p in enumerate(rng.uniform(0.0, 1.0, size=40))}
    budget = float(rng.uniform(1.0, 3.5))
    router, model, _ = _router(
        scripted, table_probe, probe=table_probe(table=table, max_k=4), budget_per_query=budget
    )
    router.batch(list(table)[:25])
    for q in list(table)[25:]:
        router.invoke(q)
    (summary,) = router.spend_summary()
    assert summary["queries"] == 40
    assert summary["allocated"] <= summary["budget"] + 1e-9
    assert model.calls == summary["allocated"]  # one unit per sample
    assert math.isclose(summary["budget"], budget * 40)


def test_langchain_configurable_fields(scripted, table_probe):
    from langchain_core.runnables import ConfigurableField

    router = AdaptiveRouter(
        strategy=BestOfK(scripted(), _verifier(), max_k=4), budget_per_query=2.0, rounds="off"
    )
    configurable = router.configurable_fields(budget_per_query=ConfigurableField(id="budget"))
    assert _meta(configurable.invoke("q"))["k"] == 2
    assert _meta(configurable.invoke("q", {"configurable": {"budget": 3.0}}))["k"] == 3


def test_metadata_has_every_router_metadata_key(scripted, table_probe):
    from adaptive_router.runnables import RouterMetadata, router_metadata

    router, _, _ = _router(scripted, table_probe)
    required = RouterMetadata.__required_keys__
    for out in [router.invoke("q"), *router.batch(EASY + HARD)]:
        meta = router_metadata(out)
        assert set(meta) == required
        assert (
            meta["predicted"]["chosen_value"]
            == meta["predicted"]["values"][[o.k for o in router.strategy.ladder.options].index(meta["k"])]
        )


def test_a_fresh_strategy_per_call_shares_one_ledger_and_is_not_kept(scripted, table_probe):
    import gc
    import weakref

    router, _, _ = _router(scripted, table_probe)
    refs = []
    for q in HARD:
        strategy = BestOfK(scripted(reply=lambda t, i: "fresh"), _verifier(), max_k=4)
        refs.append(weakref.ref(strategy))
        assert router.invoke(q, {"configurable": {"strategy": strategy}}).content == "fresh"
        del strategy
    gc.collect()
    assert [r() for r in refs] == [None] * 4  # the router holds no strategy (and so no model) it was given
    (summary,) = router.spend_summary()  # same ladder and budget: one group, shared with the default strategy
    assert summary["queries"] == 4


async def test_distinct_budgets_keep_bounded_state(scripted):
    from adaptive_router.allocation.planning import DEFAULT_MAX_GROUPS

    router = AdaptiveRouter(strategy=BestOfK(scripted(), _verifier(), max_k=4), budget_per_query=1.0)
    budgets = [1.0 + i / 1000 for i in range(DEFAULT_MAX_GROUPS + 44)]
    for budget in budgets:
        await router.ainvoke("q", {"configurable": {"budget_per_query": budget}})
    rows = router.spend_summary()
    assert len(rows) == DEFAULT_MAX_GROUPS  # the least recently used groups are forgotten
    assert [r["budget_per_query"] for r in rows] == budgets[-DEFAULT_MAX_GROUPS:]
    (batchers,) = router._batchers.values()
    assert len(batchers) == DEFAULT_MAX_GROUPS


def test_empty_calibration_texts_fail_at_construction(scripted, table_probe):
    with pytest.raises(ConfigError, match="calibration_texts is empty"):
        _router(scripted, table_probe, calibration_texts=[])
