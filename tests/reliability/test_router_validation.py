"""Bad input fails before anything is spent: ``batch``/``abatch`` check every input and its settings first."""

from __future__ import annotations

import pytest

from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.runnables import AdaptiveRouter, CascadeRouter
from adaptive_router.strategies import BestOfK


def _routers(scripted):
    model = scripted(reply=lambda t, i: "x")
    cheap, expensive = scripted(reply=lambda t, i: "d"), scripted(reply=lambda t, i: "e")
    adaptive = AdaptiveRouter(strategy=BestOfK(model, max_k=1), budget_per_query=1.0)
    cascade = CascadeRouter(cheap=cheap, expensive=expensive, costs=(1.0, 2.0), budget_per_query=3.0)
    return [(adaptive, [model]), (cascade, [cheap, expensive])]


BAD_BATCHES = [
    (["fine", "", "also fine"], None, ConfigError, "empty prompt"),
    (["fine", 5], None, ConfigError, "got int"),
    (
        ["a", "b"],
        [{}, {"configurable": {"budget_per_query": 0.1}}],
        InfeasibleBudgetError,
        "raise the budget",
    ),
    (["a", "b"], [{}, {"configurable": {"budget_per_query": "lots"}}], ConfigError, "finite number"),
]


@pytest.mark.parametrize(("inputs", "config", "error", "match"), BAD_BATCHES)
def test_batch_raises_before_any_model_call(scripted, inputs, config, error, match):
    for router, models in _routers(scripted):
        with pytest.raises(error, match=match):
            router.batch(inputs, config)
        assert [m.calls for m in models] == [0] * len(models), type(router).__name__
        assert router.spend_summary() == []


@pytest.mark.parametrize(("inputs", "config", "error", "match"), BAD_BATCHES)
async def test_abatch_raises_before_any_model_call(scripted, inputs, config, error, match):
    for router, models in _routers(scripted):
        with pytest.raises(error, match=match):
            await router.abatch(inputs, config)
        assert [m.calls for m in models] == [0] * len(models), type(router).__name__


def test_return_exceptions_still_serves_the_valid_inputs(scripted):
    for router, models in _routers(scripted):
        outs = router.batch(["fine", "", "also fine"], return_exceptions=True)
        assert isinstance(outs[1], ConfigError) and [type(o).__name__ for o in (outs[0], outs[2])] == [
            "AIMessage",
            "AIMessage",
        ]
        assert models[0].calls == 2
