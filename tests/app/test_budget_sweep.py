"""Tests for adaptive_router.app.budget_sweep: the budget sweep, curves over it and the budget to reach."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.allocation import Replay
from adaptive_router.app.budget_sweep import (
    budget_to_reach,
    default_budgets,
    fixed_curve,
    score_curve,
    sweep_budgets,
)


def test_budget_to_reach_interpolates():
    b = np.array([1.0, 2.0, 4.0])
    assert budget_to_reach(0.6, b, np.array([0.5, 0.7, 0.9])) == pytest.approx(1.5)
    assert budget_to_reach(0.4, b, np.array([0.5, 0.7, 0.9])) == 1.0
    assert budget_to_reach(0.95, b, np.array([0.5, 0.7, 0.9])) is None
    assert budget_to_reach(0.7, b, np.array([0.5, 0.7, 0.7])) == 2.0  # the first point that reaches it


def _replay():
    return Replay(np.array([[0.2, 0.6], [0.8, 0.9], [0.1, 0.7]]), np.array([1.0, 2.0]))


def test_score_curve_averages_the_predictions_and_sends_every_pair_to_the_scorer_at_once():
    replay, calls = _replay(), []

    def scores(rep, pairs):
        calls.append(len(pairs))
        return [rep.score(v, b) for v, b in pairs]

    flat = np.full((3, 2), 0.5)  # no signal: uniform's mixture
    q, spend, shares = score_curve(replay, [replay.true_values, flat], [1.0, 2.0], scores)
    assert calls == [4]
    oracle, uniform = replay.score(replay.true_values, 2.0), replay.score(flat, 2.0)
    assert q[1] == pytest.approx((oracle.quality + uniform.quality) / 2)
    assert spend[1] == pytest.approx((oracle.spend + uniform.spend) / 2) and spend[0] == 1.0
    assert shares[0].tolist() == [1.0, 0.0]


def test_fixed_curve_reads_the_hull_and_the_best_single_option():
    replay = _replay()
    q, spend, shares = fixed_curve(replay, "hull", [1.5])
    assert q[0] == pytest.approx((0.3667 + 0.7333) / 2, abs=1e-3) and spend[0] == 1.5
    assert shares[0].tolist() == [0.5, 0.5]
    q, spend, _ = fixed_curve(replay, "best_single", [1.5])
    assert q[0] == pytest.approx(1.1 / 3) and spend[0] == 1.0  # only the cheap one fits


def test_the_sweep_is_log_spaced_too_when_costs_span_decades():
    linear = sweep_budgets(np.array([1.0, 10.0]), [], points=5)
    assert linear.tolist() == [1.0, 3.25, 5.5, 7.75, 10.0]
    wide = sweep_budgets(np.array([1e-5, 1e-3]), [2e-5, 5.0], points=3)
    assert 1e-4 in wide and 2e-5 in wide and 5.0 not in wide  # geomspace point; budgets beyond it left out
    assert default_budgets([2.0]) == [2.0] and default_budgets([2.0], money=True) == [2.0]  # one option
    assert default_budgets([1.0, 2.0, 3.0]) == [1.0, 2.0, 4.0]  # best-of-3 at one unit a sample
    dollars = default_budgets([1e-4, 2e-4, 5e-3])  # recorded dollars: 1, 2, 4 would be above every model
    assert dollars[0] == 1e-4 and abs(dollars[-1] - 5e-3) < 1e-15 and len(dollars) == 5
