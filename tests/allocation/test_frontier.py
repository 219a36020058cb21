"""Tests for adaptive_router.allocation.frontier: the non-decreasing cost-quality frontier and AIQ."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from adaptive_router.allocation.frontier import Frontier, aiq
from adaptive_router.errors import ConfigError


def _brute_force(costs: np.ndarray, qualities: np.ndarray, budget: float) -> float:
    """Best mixture of at most two points spending at most ``budget`` (the LP optimum has two)."""
    best = -np.inf
    for i, j in itertools.product(range(costs.size), repeat=2):
        ci, cj, qi, qj = costs[i], costs[j], qualities[i], qualities[j]
        if min(ci, cj) > budget:
            continue
        if max(ci, cj) <= budget:
            best = max(best, qi, qj)
        elif ci != cj:
            lo, hi = (i, j) if ci < cj else (j, i)
            w = (budget - costs[lo]) / (costs[hi] - costs[lo])
            best = max(best, (1 - w) * qualities[lo] + w * qualities[hi])
    return best


@pytest.mark.parametrize("seed", range(20))
def test_frontier_is_the_best_mixture_within_the_budget_and_never_falls(seed) -> None:
    rng = np.random.default_rng(seed)
    p = int(rng.integers(1, 9))
    costs = np.round(rng.uniform(1, 10, p), 1)
    qualities = rng.uniform(0, 1, p)
    f = Frontier(costs, qualities)
    budgets = np.linspace(costs.min(), costs.max() + 2, 57)
    values = np.array([f(b) for b in budgets])
    assert (np.diff(values) >= -1e-12).all()
    for b, v in zip(budgets, values, strict=True):
        assert v == pytest.approx(_brute_force(costs, qualities, b), abs=1e-12)
        picks, weights = f.mixture(b)
        assert sum(weights) == pytest.approx(1.0)
        assert float(np.dot(weights, qualities[list(picks)])) == pytest.approx(v, abs=1e-12)
        assert float(np.dot(weights, costs[list(picks)])) <= b + 1e-12


def test_frontier_skips_models_below_the_chord_and_beyond_the_best() -> None:
    # by cost: 0.3, 0.8, 0.5, 0.6, 0.7; mixing the neighbours 2-3 would fall, the hull stops at cost 2
    f = Frontier([1, 2, 3, 4, 5], [0.3, 0.8, 0.5, 0.6, 0.7])
    assert f.index_.tolist() == [0, 1]
    assert [f(b) for b in (1.0, 1.5, 2.0, 2.5, 5.0)] == pytest.approx([0.3, 0.55, 0.8, 0.8, 0.8])
    assert f.mixture(1.25) == ((0, 1), (0.75, 0.25))
    assert f.mixture(4.0) == ((1,), (1.0,))
    assert np.isnan(f(0.5))
    with pytest.raises(ConfigError, match="below the frontier's cheapest point 1"):
        f.mixture(0.5)


def test_frontier_keeps_the_best_of_equal_costs_and_the_cheapest_of_equal_qualities() -> None:
    f = Frontier([2.0, 1.0, 1.0, 3.0], [0.9, 0.2, 0.4, 0.9])
    assert f.index_.tolist() == [2, 0]  # (1, 0.4) beats (1, 0.2); (3, 0.9) pays more for the same
    assert f(1.5) == pytest.approx(0.65)


@pytest.mark.parametrize(
    ("costs", "qualities", "cost_range", "expected"),
    [
        ([1.0, 3.0], [0.0, 1.0], (1.0, 3.0), 0.5),  # a triangle under a straight line
        ([1.0, 3.0], [0.4, 0.4], (1.0, 3.0), 0.4),  # flat
        ([1.0, 2.0, 3.0], [0.0, 0.8, 1.0], (1.0, 3.0), (0.4 + 0.9) / 2),  # concave: two trapezoids
        ([1.0, 2.0, 3.0], [0.0, 0.2, 1.0], (1.0, 3.0), 0.5),  # (2, 0.2) is below the chord: ignored
        ([1.0, 2.0, 4.0], [0.2, 1.0, 0.5], (1.0, 4.0), (0.6 + 2.0) / 3),  # dearer and worse: stays at 1
        ([2.0, 4.0], [0.5, 1.0], (0.0, 4.0), (0.0 * 2 + 1.5) / 4),  # nothing reachable below cost 2
        ([1.0, 3.0], [0.0, 1.0], (1.0, 5.0), (1.0 + 2.0) / 4),  # flat beyond the dearest point
        ([1.0, 3.0], [0.0, 1.0], (2.0, 2.0), 0.5),  # a one-cost range: the frontier there
        ([5.0], [0.7], (1.0, 5.0), 0.0),  # one point at the top of the range: no area
    ],
)
def test_aiq_of_known_shapes(costs, qualities, cost_range, expected) -> None:
    assert aiq(costs, qualities, cost_range) == pytest.approx(expected, abs=1e-12)


def test_aiq_never_rewards_points_below_the_frontier() -> None:
    base = ([1.0, 2.0, 4.0], [0.2, 0.6, 0.8])
    worse = ([*base[0], 3.0], [*base[1], 0.5])  # a point below the chord adds nothing
    assert aiq(*worse, (1.0, 4.0)) == aiq(*base, (1.0, 4.0))
    better = ([*base[0], 3.0], [*base[1], 0.85])
    assert aiq(*better, (1.0, 4.0)) > aiq(*base, (1.0, 4.0))


@pytest.mark.parametrize(
    ("costs", "qualities", "cost_range", "match"),
    [
        ([], [], (0.0, 1.0), "same non-zero length"),
        ([1.0, 2.0], [0.5], (0.0, 1.0), "same non-zero length"),
        ([1.0, np.nan], [0.5, 0.6], (0.0, 1.0), "finite costs"),
        ([1.0], [0.5], (2.0, 1.0), "c_min <= c_max"),
        ([1.0], [0.5], (0.0, np.inf), "must be finite"),
    ],
)
def test_bad_inputs_say_what_is_wrong(costs, qualities, cost_range, match) -> None:
    with pytest.raises(ConfigError, match=match):
        aiq(costs, qualities, cost_range)


@pytest.mark.parametrize("seed", range(5))
def test_aiq_over_log_cost_is_the_mean_per_decade(seed) -> None:
    rng = np.random.default_rng(seed)
    costs = 10 ** rng.uniform(-5, -2, 6)
    qualities = rng.uniform(0, 1, 6)
    f = Frontier(costs, qualities)
    lo, hi = 1e-5, 1e-2
    logs = np.linspace(np.log(lo), np.log(hi), 200_001)
    values = np.array([0.0 if c < f.min_cost else f(c) for c in np.exp(logs)])
    numeric = float(np.mean((values[1:] + values[:-1]) / 2))  # trapezoids on an even log grid
    assert aiq(costs, qualities, (lo, hi), log=True) == pytest.approx(numeric, abs=2e-4)
    linear = aiq(costs, qualities, (lo, hi))  # dominated by the top decade: another number
    assert aiq(costs, qualities, (lo, hi), log=True) != pytest.approx(linear, abs=1e-3)
    with pytest.raises(ConfigError, match="needs low > 0"):
        aiq(costs, qualities, (0.0, hi), log=True)
