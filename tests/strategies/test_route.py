"""Tests for adaptive_router.strategies.route."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableLambda

from adaptive_router.allocation import Option
from adaptive_router.errors import ConfigError
from adaptive_router.strategies import MajorityVoteReranker, Route


def test_route_options_and_execution(scripted):
    cheap, expensive = scripted(reply=lambda t, i: "cheap"), scripted(reply=lambda t, i: "expensive")
    route = Route(cheap=cheap, expensive=expensive, costs={"cheap": 1, "expensive": 10})
    assert [(o.procedure, o.k, o.cost) for o in route.ladder] == [("cheap", 1, 1.0), ("expensive", 1, 10.0)]
    result = route.execute([HumanMessage("hi")], Option("expensive", 1, 10.0))
    assert result.message.content == "expensive" and result.cost == 10.0
    assert cheap.calls == 0 and expensive.calls == 1


def test_route_with_k_is_a_grid(scripted):
    route = Route(
        cheap=scripted(), expensive=scripted(), costs=(1.0, 5.0), reranker=MajorityVoteReranker(), max_k=2
    )
    assert [(o.procedure, o.k) for o in route.ladder] == [
        ("cheap", 1),
        ("cheap", 2),
        ("expensive", 1),
        ("expensive", 2),
    ]


def test_route_accepts_any_runnable_and_many_models():
    models = {name: RunnableLambda(lambda msgs, n=name: f"{n} says hi") for name in ("a", "b", "c")}
    route = Route(models=models, costs={"a": 1, "b": 2, "c": 4})
    assert route.procedures == ("a", "b", "c")
    assert route.execute([HumanMessage("x")], Option("c", 1, 4.0)).message.content == "c says hi"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cheap": None}, "needs cheap= and expensive="),
        ({"costs": {"cheap": 1}}, "costs must name exactly the models"),
        ({"costs": {"cheap": 1, "expensive": 0}}, "must be a finite number > 0"),
        ({"max_k": 2}, "needs a reranker"),
    ],
)
def test_route_errors(scripted, kwargs, match):
    args = {"cheap": scripted(), "expensive": scripted(), "costs": {"cheap": 1, "expensive": 10}, **kwargs}
    with pytest.raises(ConfigError, match=match):
        Route(**args)


def test_fallbacks_are_the_same_k_dearer_first_then_cheaper(scripted):
    route = Route(
        models={"small": scripted(), "mid": scripted(), "large": scripted()},
        costs={"small": 1, "mid": 3, "large": 9},
        reranker=MajorityVoteReranker(),
        max_k=2,
    )
    options = {(o.procedure, o.k): o for o in route.ladder}
    assert [(o.procedure, o.k) for o in route.fallbacks(options["mid", 2])] == [("large", 2), ("small", 2)]
    assert [o.procedure for o in route.fallbacks(options["large", 1])] == ["mid", "small"]
    assert [o.procedure for o in route.fallbacks(options["small", 1])] == ["mid", "large"]
