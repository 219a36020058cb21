"""Tests for adaptive_router.runnables.route_fallback: a route's failed model falls back within the budget."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda

from adaptive_router.errors import ConfigError, RetryExhaustedError
from adaptive_router.prices import PriceTable
from adaptive_router.runnables import AdaptiveRouter, router_metadata
from adaptive_router.strategies import Route

COSTS = {"cheap": 1.0, "expensive": 3.0}


def _router(cheap, expensive, budget=2.0, **kwargs):
    return AdaptiveRouter(
        strategy=Route(cheap=cheap, expensive=expensive, costs=COSTS), budget_per_query=budget, **kwargs
    )


def _down(error: Exception):
    def call(_messages):
        raise error

    return RunnableLambda(call)


def test_a_failed_model_falls_back_to_the_dearer_one_charged_once(scripted):
    cheap = scripted(reply=lambda t, i: "cheap", fail=lambda i: i == 0)
    expensive = scripted(reply=lambda t, i: "expensive")
    router = _router(cheap, expensive)  # no probe: cheap for all (expensive > 2), 1 unit left each
    outs = router.batch(["a", "b", "c", "d"], {"max_concurrency": 1})
    assert [o.content for o in outs] == ["expensive", "cheap", "cheap", "cheap"]
    meta = router_metadata(outs[0])
    assert meta["fallback"] == {
        "failed": [
            {
                "procedure": "cheap",
                "k": 1,
                "error_type": "RuntimeError",
                "error": "scripted failure on call 0",
                "calls": 1,
                "cost": 1.0,
            }
        ],
        "answered": "expensive",
        "extra_cost": 3.0,
    }
    assert (meta["procedure"], meta["calls"], meta["failed_calls"]) == ("expensive", 2, 1)
    assert (meta["cost"], meta["allocated_cost"]) == (4.0, 4.0)  # the failed call is paid for too
    assert meta["errors"] == ["RuntimeError: scripted failure on call 0"]
    assert meta["tokens"]["total_tokens"] == 6 and outs[0].usage_metadata["total_tokens"] == 6
    assert meta["predicted"]["allocator"] == "uniform"  # the plan's decision is kept
    assert all("fallback" not in router_metadata(o) for o in outs[1:])
    (summary,) = router.spend_summary()
    assert (summary["queries"], summary["allocated"]) == (4, 4 * 1.0 + 3.0)  # charged exactly once
    assert (cheap.calls, expensive.calls) == (4, 1)


def test_without_room_in_the_budget_the_original_error_is_raised(scripted):
    error = RetryExhaustedError("cheap: retries ran out", attempts=3)
    expensive = scripted()
    router = _router(_down(error), expensive, budget=1.0)  # nothing left for a 3-unit fallback
    with pytest.raises(RetryExhaustedError, match="cheap: retries ran out") as info:
        router.invoke("q")
    assert info.value is error and info.value.attempts == 3
    assert "no fallback to expensive (3 units): the budget's balance (0 units)" in info.value.__notes__[0]
    assert expensive.calls == 0
    assert router.spend_summary()[0]["allocated"] == 1.0  # the failed call, nothing more


def test_a_fallback_that_fails_too_gives_the_original_error(scripted):
    cheap = scripted(fail=lambda i: True)
    expensive = scripted(fail=lambda i: True)
    router = _router(cheap, expensive)
    with pytest.raises(RuntimeError, match="scripted failure on call 0") as info:
        router.batch(["a", "b", "c", "d"], {"max_concurrency": 1})
    assert (
        "fell back to expensive (RuntimeError: scripted failure on call 0), which failed"
        in info.value.__notes__[0]
    )
    assert router.spend_summary()[0]["allocated"] <= 4 * 2.0
    assert cheap.calls * 1.0 + expensive.calls * 3.0 == router.spend_summary()[0]["allocated"]


def test_the_next_cheaper_model_when_no_dearer_one_fits(scripted):
    small, mid, large = scripted(reply=lambda t, i: "small"), scripted(fail=lambda i: i == 0), scripted()
    route = Route(
        models={"small": small, "mid": mid, "large": large}, costs={"small": 1, "mid": 2, "large": 9}
    )
    router = AdaptiveRouter(strategy=route, budget_per_query=2.5)  # mid for both, 1 unit left
    outs = router.batch(["a", "b"], {"max_concurrency": 1})
    assert outs[0].content == "small" and router_metadata(outs[0])["fallback"]["extra_cost"] == 1.0
    assert large.calls == 0 and router.spend_summary()[0]["allocated"] == 5.0


def test_return_exceptions_leaves_the_other_queries_alone(scripted):
    cheap = scripted(reply=lambda t, i: "cheap", fail=lambda i: i < 2)
    expensive = scripted(reply=lambda t, i: "expensive")
    router = _router(cheap, expensive)  # 3 units left over the window: room for one fallback
    outs = router.batch(["a", "b", "c"], {"max_concurrency": 1}, return_exceptions=True)
    assert [o.content if isinstance(o, AIMessage) else type(o).__name__ for o in outs] == [
        "expensive",
        "RuntimeError",
        "cheap",
    ]
    assert "does not cover it" in outs[1].__notes__[0]
    assert "fallback" not in router_metadata(outs[2])
    assert router.spend_summary()[0]["allocated"] == 6.0 == 3 * 2.0


def test_a_config_error_does_not_fall_back(scripted):
    expensive = scripted()
    router = _router(RunnableLambda(lambda m: 5), expensive, budget=2.0)
    outs = router.batch(["a", "b"], return_exceptions=True)
    assert all(isinstance(o, ConfigError) and "returned int" in str(o) for o in outs)
    assert expensive.calls == 0


async def test_async_paths_fall_back_too(scripted):
    cheap = scripted(reply=lambda t, i: "cheap", fail=lambda i: i in (0, 4, 7))
    expensive = scripted(reply=lambda t, i: "expensive")
    router = _router(cheap, expensive, max_wait_ms=0.0)
    outs = await router.abatch(["a", "b", "c", "d"], {"max_concurrency": 1})
    assert [o.content for o in outs] == ["expensive", "cheap", "cheap", "cheap"]
    with pytest.raises(RuntimeError, match="call 4"):  # 1 unit left + the lone query's 1: short of 3
        await router.ainvoke("e")
    await router.abatch(["f", "g"])  # 2 more left over: 4
    message = await router.ainvoke("h")  # its cheap call (7) fails: 4 + 1 cover the fallback
    assert message.content == "expensive" and router_metadata(message)["fallback"]["answered"] == "expensive"
    summary = router.spend_summary()[0]
    assert (summary["queries"], summary["allocated"]) == (8, 8 * 1.0 + 2 * 3.0)
    assert summary["allocated"] <= summary["budget"]


def _cheap_down_on(word: str):
    def call(messages):
        if word in str(messages[-1].content):
            raise RuntimeError("cheap is down")
        return "cheap"

    return RunnableLambda(call)


async def test_stream_falls_back_when_the_model_fails_before_its_first_chunk(scripted):
    expensive = scripted(reply=lambda t, i: "the expensive answer")
    router = _router(_cheap_down_on("down"), expensive)
    router.batch(["a", "b", "c", "d"])  # 4 units left
    chunks = list(router.stream("down"))
    assert "".join(str(c.content) for c in chunks).strip() == "the expensive answer"
    meta = router_metadata(chunks[-1])
    assert meta["fallback"]["failed"][0]["error"] == "cheap is down" and meta["calls"] == 2
    assert meta["cost"] == 4.0 and router.spend_summary()[0]["allocated"] == 5.0 + 3.0
    chunks = [c async for c in router.astream("down again")]  # 5 - 3 + 1 = 3 left: just enough
    assert router_metadata(chunks[-1])["fallback"]["extra_cost"] == 3.0
    with pytest.raises(RuntimeError, match="cheap is down"):  # 0 + 1 left
        list(router.stream("down once more"))
    assert expensive.calls == 2


def test_prices_count_the_answering_model_and_the_failed_one(scripted):
    prices = PriceTable({"cheap": (1.0, 1.0), "expensive": (10.0, 10.0)})
    cheap = scripted(fail=lambda i: i == 0)
    router = _router(cheap, scripted(), prices=prices)
    out = router.batch(["a", "b", "c", "d"], {"max_concurrency": 1})[0]
    meta = router_metadata(out)
    assert meta["fallback"]["answered"] == "expensive"
    assert meta["cost_usd"] == pytest.approx(prices.usage_cost("expensive", out.usage_metadata))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    costs=st.lists(st.sampled_from([1.0, 2.0, 3.0, 5.0]), min_size=2, max_size=3),
    budget=st.floats(1.0, 6.0),
    down=st.lists(st.booleans(), min_size=40, max_size=40),
    windows=st.lists(st.integers(1, 5), min_size=1, max_size=5),
)
def test_spend_never_exceeds_the_budget_whatever_fails(scripted, costs, budget, down, windows):
    names = [f"m{i}" for i in range(len(costs))]
    models = {n: scripted(fail=lambda i, n=n: down[(names.index(n) * 13 + i) % 40]) for n in names}
    unit = dict(zip(names, costs, strict=True))
    if budget < min(costs):
        budget = min(costs)
    router = AdaptiveRouter(strategy=Route(models=models, costs=unit), budget_per_query=budget)
    queries = 0
    for size in windows:
        outs = router.batch(
            [f"q{queries + j}" for j in range(size)], {"max_concurrency": 1}, return_exceptions=True
        )
        queries += size
        for out in outs:
            if isinstance(out, AIMessage):
                meta = router_metadata(out)
                assert meta["cost"] <= meta["allocated_cost"] + 1e-9
    (summary,) = router.spend_summary()
    assert summary["queries"] == queries
    assert summary["allocated"] <= summary["budget"] + 1e-9
    sent = sum(models[n].calls * unit[n] for n in names)
    assert sent == pytest.approx(summary["allocated"])  # every request sent was charged, once


def test_model_fallback_false_keeps_the_error(scripted):
    cheap, expensive = scripted(fail=lambda i: i == 0), scripted()
    router = _router(cheap, expensive, model_fallback=False)
    outs = router.batch(["a", "b", "c", "d"], {"max_concurrency": 1}, return_exceptions=True)
    assert isinstance(outs[0], RuntimeError) and not getattr(outs[0], "__notes__", None)
    assert expensive.calls == 0 and router.spend_summary()[0]["allocated"] == 4.0
