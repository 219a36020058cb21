"""Tests for adaptive_router.app.evaluation: replaying outcomes under each allocation method."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.app.evaluation import budget_to_reach, evaluate_allocation, parse_costs
from adaptive_router.outcomes import OutcomeSet


def _best_of_k_set(p, samples=8, seed=0):
    rng = np.random.default_rng(seed)
    objs = []
    for i, pi in enumerate(p):
        c = int(rng.binomial(samples, pi))
        objs.append(
            {"id": f"q{i}", "prompt": f"q{i}", "outcomes": {"m": {"successes": c, "samples": samples}}}
        )
    return OutcomeSet.from_dicts(objs)


def _mixed_difficulty(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice([0.0, 0.05, 0.3, 0.9], size=n)


def test_oracle_beats_adaptive_beats_uniform_and_spend_is_budget():
    s = _best_of_k_set(_mixed_difficulty())
    true = s.true_curves(4)
    noisy = {"m": np.clip(true["m"] + np.random.default_rng(1).normal(0, 0.05, true["m"].shape), 0, 1)}
    rep = evaluate_allocation(s, budgets=[1, 2, 3], predicted=noisy, max_k=4)
    m = rep["methods"]
    assert rep["kind"] == "best_of_k" and rep["n_queries"] == 200
    np.testing.assert_allclose(m["uniform"]["spend"], [1, 2, 3])
    for i in range(3):
        assert m["oracle"]["quality"][i] >= m["adaptive"]["quality"][i] - 1e-9
        assert m["oracle"]["spend"][i] <= [1, 2, 3][i] + 1e-9
        assert m["adaptive"]["spend"][i] <= [1, 2, 3][i] + 1e-9
    assert m["uniform"]["savings"] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert m["oracle"]["savings"][1] > 0.2
    assert m["adaptive"]["quality"][1] > m["uniform"]["quality"][1]
    # uniform at B=1 is the mean single-sample reward
    assert m["uniform"]["quality"][0] == pytest.approx(true["m"][:, 0].mean())
    assert {r["method"] for r in rep["table"]} == {"uniform", "random", "adaptive", "oracle"}
    assert len(rep["table"]) == 12 and rep["routing"] is None


def test_savings_formula_matches_known_curve():
    # every query identical: 1 - (1 - 0.5)^k; oracle = uniform, so savings 0; a fractional budget mixes
    s = _best_of_k_set([0.5] * 50, samples=4, seed=0)
    rep = evaluate_allocation(s, budgets=[1.5], max_k=4, random_seeds=1)
    q = s.true_curves(4)["m"].mean(axis=0)
    assert rep["methods"]["uniform"]["quality"][0] == pytest.approx((q[0] + q[1]) / 2)
    needed = rep["methods"]["oracle"]["budget_to_match_uniform"][0]
    assert rep["methods"]["oracle"]["savings"][0] == pytest.approx(1 - needed / 1.5)
    assert needed <= 1.5 + 1e-9


def test_budget_to_reach_interpolates():
    b = np.array([1.0, 2.0, 4.0])
    assert budget_to_reach(0.6, b, np.array([0.5, 0.7, 0.9])) == pytest.approx(1.5)
    assert budget_to_reach(0.4, b, np.array([0.5, 0.7, 0.9])) == 1.0
    assert budget_to_reach(0.95, b, np.array([0.5, 0.7, 0.9])) is None


def test_routing_share_perfect_router():
    # cheap right on 60%, expensive right on 80% (a superset): a perfect router needs 20% expensive calls
    # to reach 100% of the expensive quality, so 95% of it (0.76) needs 16%.
    n = 100
    objs = []
    for i in range(n):
        cheap = 1.0 if i < 60 else 0.0
        exp = 1.0 if i < 80 else 0.0
        objs.append(
            {
                "id": str(i),
                "prompt": str(i),
                "outcomes": {"weak": [{"reward": cheap}], "strong": [{"reward": exp}]},
                "cost": {"weak": 1.0, "strong": 10.0},
            }
        )
    s = OutcomeSet.from_dicts(objs)
    rep = evaluate_allocation(s, budgets=[2.8], random_seeds=3)
    r = rep["routing"]
    assert rep["kind"] == "routing" and r["expensive"] == "strong" and r["cheap"] == "weak"
    assert r["expensive_quality"] == pytest.approx(0.8)
    assert r["expensive_share"]["oracle"] == pytest.approx(0.16, abs=0.01)
    assert r["expensive_share"]["uniform"] == pytest.approx((0.76 - 0.6) / 0.2)
    # budget 2.8 = 20% expensive calls: the oracle reaches 0.8, uniform 0.64
    assert rep["methods"]["oracle"]["quality"][0] == pytest.approx(0.8)
    assert rep["methods"]["uniform"]["quality"][0] == pytest.approx(0.64)


def test_routing_without_costs_assumes_ratio():
    objs = [
        {"id": str(i), "prompt": "x", "outcomes": {"a": [{"reward": float(i % 2)}], "b": [{"reward": 1.0}]}}
        for i in range(20)
    ]
    rep = evaluate_allocation(OutcomeSet.from_dicts(objs), budgets=[2.0], random_seeds=1)
    assert rep["costs_assumed"] is True
    assert rep["costs"] == {"a": 1.0, "b": 10.0}


def test_errors_name_the_fix():
    s = _best_of_k_set([0.5] * 10, samples=2)
    with pytest.raises(ConfigError, match="max_k=4 but some queries recorded only 2 sample"):
        evaluate_allocation(s, budgets=[1], max_k=4)
    with pytest.raises(ConfigError, match="budgets must be positive"):
        evaluate_allocation(s, budgets=[0])
    with pytest.raises(ConfigError, match="lack procedures"):
        evaluate_allocation(s, budgets=[1], predicted={"other": np.zeros((10, 2))})
    with pytest.raises(ConfigError, match="rows for 10 queries"):
        evaluate_allocation(s, budgets=[1], predicted={"m": np.zeros((3, 2))})
    with pytest.raises(ConfigError, match="write costs as name=number"):
        parse_costs("cheap:1")
    assert parse_costs("a=1,b=2.5") == {"a": 1.0, "b": 2.5}
