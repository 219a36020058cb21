"""Tests for adaptive_router.probe.validation: the probe's validation and `evaluate` share one replay."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.app.evaluation import evaluate_allocation
from adaptive_router.errors import InfeasibleBudgetError
from adaptive_router.outcomes import OutcomeSet
from adaptive_router.probe.estimator import CurveProbe
from adaptive_router.probe.training import outcome_labels
from adaptive_router.probe.validation import check_budgets, choose_neighbor_weight


def _routing(n: int = 240, seed: int = 0) -> tuple[OutcomeSet, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    p_cheap = 1 / (1 + np.exp(-2 * X[:, 0]))
    objs = [
        {"id": str(i), "prompt": f"q{i}",
         "outcomes": {"cheap": [{"reward": float(rng.random() < p_cheap[i])}],
                      "strong": [{"reward": float(rng.random() < 0.85)}]},
         "cost": {"cheap": 1.0, "strong": 10.0}}
        for i in range(n)
    ]
    return OutcomeSet.from_dicts(objs), X


@pytest.mark.parametrize("fallback", ["auto", "always"])
def test_validation_reports_the_uniform_that_evaluate_reports(fast, fallback) -> None:
    data, X = _routing()
    _, y = outcome_labels(data, 1)
    budgets = (1.0, 2.0, 4.0, 6.5)
    est = CurveProbe(max_k=1, budgets=budgets, costs={"cheap": 1.0, "strong": 10.0}, fallback=fallback,
                     **fast).fit(X, y)
    rep = evaluate_allocation(data, budgets=list(budgets), random_seeds=1)
    validated = [row["uniform"] for row in est.report_["allocation"]]
    assert validated == rep["methods"]["uniform"]["quality"]  # the same replay: equal to the last bit
    if fallback == "always":  # and a fallen-back probe scores as uniform in both
        pred = est.predict_curves(X)
        rep = evaluate_allocation(data, budgets=list(budgets), predicted=pred, random_seeds=1)
        assert rep["methods"]["adaptive"]["quality"] == rep["methods"]["uniform"]["quality"]


def test_zero_shrinkage_scores_exactly_uniform(fast) -> None:
    """Regression: w = 0 (the population curve in every row) used to score one arbitrary assignment."""
    data, X = _routing(seed=1)
    _, y = outcome_labels(data, 1)
    est = CurveProbe(max_k=1, budgets=(2.0, 4.0), costs={"cheap": 1.0, "strong": 10.0}, **fast).fit(X, y)
    assert est.report_["shrinkage"]["weight_scores"]["0.0"] == 0.0


def test_neighbor_weight_ties_keep_the_smaller_weight() -> None:
    rng = np.random.default_rng(2)
    true = rng.uniform(size=(50, 1, 2)).cumsum(axis=2) / 2
    same = np.tile(true.mean(axis=0), (50, 1, 1))
    w, scores = choose_neighbor_weight(
        same, same, true, procedures=("gen",), costs={"gen": 1.0}, budgets=(1.5,)
    )
    assert w == 0.0 and len(set(scores.values())) == 1


def test_budgets_below_the_cheapest_option_are_refused() -> None:
    with pytest.raises(InfeasibleBudgetError, match=r"budgets \[0\.5\] are below the cheapest option"):
        check_budgets([0.5, 2.0], {"cheap": 1.0, "strong": 10.0})
    check_budgets([1.0], {"cheap": 1.0})
