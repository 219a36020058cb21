"""allocate(): exactness against brute force, budget invariants, validation messages."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from adaptive_router import allocate
from adaptive_router.allocation import Allocation
from adaptive_router.errors import InfeasibleBudgetError


def brute_force(values, costs, budget, allowed=None):
    """Best total value over every combination of one allowed option per query (small n, m)."""
    values = np.asarray(values, dtype=float)
    n, m = values.shape
    c2 = np.broadcast_to(np.asarray(costs, dtype=float), (n, m))
    if allowed is None:
        allowed = ~np.isnan(values)
    options = [np.flatnonzero(allowed[i]) for i in range(n)]
    best = -np.inf
    for combo in itertools.product(*options):
        cost = sum(c2[i, j] for i, j in enumerate(combo))
        if cost <= budget:
            best = max(best, sum(values[i, j] for i, j in enumerate(combo)))
    return best


def concave_ladders(rng, n, m):
    """Random concave best-of-k style ladders: non-increasing positive gains."""
    gains = np.sort(rng.random((n, m)), axis=1)[:, ::-1] * rng.random((n, 1))
    return np.cumsum(gains, axis=1)


def test_docstring_example_and_result_type():
    values = np.array([[0.9, 0.95, 0.97], [0.2, 0.36, 0.49], [0.0, 0.0, 0.01]])
    r = allocate(values, [1.0, 2.0, 3.0], 6.0)
    assert isinstance(r, Allocation)
    assert r.choice.tolist() == [1, 2, 0]
    assert r.cost.tolist() == [2.0, 3.0, 1.0]
    assert r.spend == 6.0
    np.testing.assert_allclose(r.value, 0.95 + 0.49 + 0.0)
    assert r.gap_bound == 0.0


@pytest.mark.parametrize("seed", range(30))
def test_equal_step_concave_ladders_are_optimal(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    values = concave_ladders(rng, n, m)
    costs = np.arange(1, m + 1, dtype=float)
    budget = float(rng.integers(n, n * m + 2))
    r = allocate(values, costs, budget)
    assert r.spend <= budget
    np.testing.assert_allclose(r.value, brute_force(values, costs, budget), atol=1e-9)
    assert r.gap_bound == 0.0


def test_infeasible_budget_names_the_minimum():
    with pytest.raises(InfeasibleBudgetError, match=r"budget=2 is below 3, .* at least 3"):
        allocate(np.ones((3, 2)), [1.0, 2.0], 2.0)
    with pytest.raises(ValueError):
        allocate(np.ones((3, 2)), [1.0, 2.0], 2.0)
