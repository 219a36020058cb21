"""allocate(): exactness against brute force, budget invariants, validation messages."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from adaptive_router import allocate
from adaptive_router.allocation import Allocation
from adaptive_router.errors import ConfigError, InfeasibleBudgetError


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


def reference_prefix(values, costs, budget):
    """The textbook greedy: sort every segment by (-slope, query, option) and take the fitting prefix."""
    n, m = values.shape
    slopes = np.diff(values, axis=1) / np.diff(costs)
    steps = np.broadcast_to(np.diff(costs), slopes.shape).ravel()
    flat = slopes.ravel()
    order = np.lexsort((np.arange(flat.size), -flat))
    order = order[flat[order] > 0]
    room = budget - n * costs[0]
    cum = np.cumsum(steps[order])
    taken = np.zeros(flat.size, dtype=bool)
    taken[order[cum <= room]] = True
    return taken.reshape(n, m - 1).sum(axis=1)


@pytest.mark.parametrize("kind", ["random", "identical", "coarse"])
def test_sampled_threshold_matches_full_sort_on_large_input(kind):
    """n*m above the sampling cut-off: the bracketed selection must equal the full sort, ties included."""
    rng = np.random.default_rng(7)
    n, m = 20_000, 32
    if kind == "identical":
        gains = np.repeat(-np.sort(-rng.random((1, m))), n, axis=0)
    elif kind == "coarse":
        gains = -np.sort(-rng.integers(0, 5, (n, m)), axis=1) / 4.0  # huge tie groups
    else:
        gains = -np.sort(-rng.random((n, m)), axis=1) * rng.random((n, 1))
    values = np.cumsum(gains, axis=1)
    costs = np.arange(1.0, m + 1)
    for per_query in (1.0, 1.5, 3.0, 7.25, 20.0):
        budget = per_query * n
        r = allocate(values, costs, budget)
        assert np.array_equal(r.choice, reference_prefix(values, costs, budget))
        assert r.spend <= budget


def test_nan_marks_absent_options_and_holes_are_skipped():
    values = np.array([[0.1, np.nan, 0.5], [np.nan, 0.2, 0.3]])
    r = allocate(values, [1.0, 2.0, 3.0], 5.0)
    assert r.choice.tolist() == [2, 1]
    assert r.spend == 5.0
    with pytest.raises(InfeasibleBudgetError, match="at least 3"):
        allocate(values, [1.0, 2.0, 3.0], 2.5)


def test_min_and_max_cost_restrict_options_per_query():
    values = np.tile([0.1, 0.5, 0.6, 0.65], (3, 1))
    costs = np.array([1.0, 2.0, 3.0, 4.0])
    r = allocate(values, costs, 12.0, min_cost=[1, 3, 1], max_cost=[2, 4, 1])
    assert r.choice.tolist() == [1, 3, 0]
    r = allocate(values, costs, 6.0, min_cost=2.0)
    assert (r.cost >= 2).all() and r.spend == 6.0


def test_weights_multiply_values():
    values = np.array([[0.0, 0.5], [0.0, 0.5]])
    r = allocate(values, [1.0, 2.0], 3.0, weights=[1.0, 2.0])
    assert r.choice.tolist() == [0, 1]
    assert r.value == pytest.approx(1.0)
    assert r.shadow_price == pytest.approx(0.5)


def test_non_concave_ladder_uses_envelope_and_reports_gap():
    # option 1 lies below the chord from option 0 to option 2
    values = np.array([[0.0, 0.1, 1.0], [0.0, 0.1, 1.0]])
    r = allocate(values, [0.0, 1.0, 2.0], 3.0)
    assert r.spend <= 3.0
    # the envelope buys one full 0->2 jump; the leftover unit buys the small 0->1 step of the other query
    assert sorted(r.choice.tolist()) == [1, 2]
    assert r.value == pytest.approx(1.1)
    assert r.gap_bound >= 0.0


def test_unequal_steps_leftover_is_filled():
    # routes: cheap (1) and expensive (10); the budget cannot pay a second expensive call
    values = np.array([[0.5, 0.9], [0.5, 0.85], [0.5, 0.6]])
    r = allocate(values, [1.0, 10.0], 14.0)
    assert r.choice.tolist() == [1, 0, 0]
    assert r.spend == 12.0
    np.testing.assert_allclose(r.value, 1.9)


def test_equal_costs_keep_the_better_option():
    values = np.array([[0.2, 0.4, 0.3, 0.9]])
    r = allocate(values, [1.0, 1.0, 1.0, 2.0], 1.0)
    assert r.choice.tolist() == [1]
    r = allocate(values, [1.0, 1.0, 1.0, 2.0], 2.0)
    assert r.choice.tolist() == [3]


def test_budget_not_binding_buys_best_option_and_zero_price():
    values = np.array([[0.1, 0.3, 0.3, 0.2], [0.5, 0.6, 0.7, 0.8]])
    r = allocate(values, [1.0, 2.0, 3.0, 4.0], 100.0)
    assert r.choice.tolist() == [1, 3]  # the cheapest of the best values, never a useless step
    assert r.shadow_price == 0.0 and r.gap_bound == 0.0


def test_single_option_and_empty_inputs():
    r = allocate(np.array([[0.3], [0.4]]), [2.0], 4.0)
    assert r.choice.tolist() == [0, 0] and r.spend == 4.0
    r = allocate(np.zeros((0, 3)), [1.0, 2.0, 3.0], 0.0)
    assert r.choice.shape == (0,) and r.spend == 0.0


def test_per_query_costs():
    values = np.array([[0.1, 0.9], [0.1, 0.9]])
    costs = np.array([[1.0, 2.0], [1.0, 5.0]])
    r = allocate(values, costs, 4.0)
    assert r.choice.tolist() == [1, 0]
    assert r.cost.tolist() == [2.0, 1.0]


@pytest.mark.parametrize(
    ("values", "costs", "budget", "kw", "match"),
    [
        (np.ones(3), [1.0, 2.0, 3.0], 3.0, {}, r"2-D \(n queries, m options\).*values\[None, :\]"),
        (np.ones((2, 3)), [1.0, 2.0], 3.0, {}, r"costs has shape \(2,\); expected \(3,\)"),
        (np.ones((2, 2)), [1.0, np.nan], 3.0, {}, r"costs\[1\] is nan; costs must be finite"),
        (np.ones((2, 2)), [-1.0, 2.0], 3.0, {}, r"costs\[0\] is -1.0; costs must be >= 0"),
        (np.ones((2, 2)), [2.0, 1.0], 3.0, {}, r"costs\[1\]=1 is below costs\[0\]=2; order options by cost"),
        (np.ones((1, 2)), [[2.0, 1.0]], 3.0, {}, r"costs of query 0 decrease"),
        (np.array([[1.0, np.inf]]), [1.0, 2.0], 3.0, {}, r"values\[0, 1\] is inf"),
        (np.array([[1.0, 1.0], [np.nan, np.nan]]), [1.0, 2.0], 3.0, {}, "query 1 has no option: every value"),
        (np.ones((2, 2)), [1.0, 2.0], np.nan, {}, "budget=nan must be finite"),
        (np.ones((2, 2)), [1.0, 2.0], 9.0, {"min_cost": 3.0}, r"query 0 has no option within \[min_cost"),
        (np.ones((2, 2)), [1.0, 2.0], 9.0, {"weights": [1.0, -1.0]}, "weights must be finite and >= 0"),
        (np.ones((2, 2)), [1.0, 2.0], 9.0, {"max_cost": [1.0]}, r"max_cost must be a scalar or have shape"),
    ],
)
def test_validation_messages(values, costs, budget, kw, match):
    with pytest.raises(ConfigError, match=match):
        allocate(values, costs, budget, **kw)


def test_nan_cost_allowed_only_for_absent_option():
    values = np.array([[0.1, np.nan], [0.1, 0.2]])
    costs = np.array([[1.0, np.nan], [1.0, 2.0]])
    assert allocate(values, costs, 3.0).choice.tolist() == [0, 1]
    with pytest.raises(ConfigError, match=r"costs\[0, 1\] is nan"):
        allocate(np.ones((2, 2)), costs, 3.0)


@pytest.mark.parametrize("per_query_costs", [False, True])
def test_sampled_path_equals_exact_path_with_envelope_rows(monkeypatch, per_query_costs):
    """Large input with non-concave rows and holes: the sampled bracket gives the exact-path answer."""
    import adaptive_router.allocation.engine as engine

    rng = np.random.default_rng(11)
    n, m = 24_000, 24
    values = np.cumsum(-np.sort(-rng.random((n, m)), axis=1), axis=1)
    noisy = rng.random(n) < 0.05
    values[noisy] += rng.normal(0, 0.3, (int(noisy.sum()), m))
    values[rng.random((n, m)) < 0.01] = np.nan
    values[:, 0] = np.nan_to_num(values[:, 0])
    if per_query_costs:
        costs = np.cumsum(rng.integers(1, 3, (n, m)).astype(float), axis=1)
    else:
        costs = np.arange(1.0, m + 1)
    top = allocate(values, costs, 1e12).spend  # every useful step bought
    c2 = np.broadcast_to(costs, values.shape)
    cheapest = float(np.where(np.isnan(values), np.inf, c2).min(axis=1).sum())
    budgets = [cheapest, cheapest + 0.5, cheapest + 0.5 * n, 6.5 * n, top - 0.5, top, top + 1.0, 1e3 * n]
    fast = [allocate(values, costs, b) for b in budgets]
    monkeypatch.setattr(engine, "_SAMPLE", 10**9)  # disables the sampled bracket: sort every segment
    for b, f in zip(budgets, fast, strict=True):
        exact = allocate(values, costs, b)
        assert np.array_equal(f.choice, exact.choice), b
        assert f.shadow_price == exact.shadow_price and f.spend <= b


@pytest.mark.parametrize("budget_per_query", [1.0, 6.9, 7.5, 30.0])
def test_misleading_bracket_still_exact(monkeypatch, budget_per_query):
    """Whatever bracket the sample proposes, the checks on the full arrays correct it."""
    import adaptive_router.allocation.engine as engine

    rng = np.random.default_rng(5)
    n, m = 30_000, 24
    values = np.cumsum(-np.sort(-rng.random((n, m)), axis=1) * rng.random((n, 1)), axis=1)
    costs = np.arange(1.0, m + 1)
    budget = budget_per_query * n
    want = allocate(values, costs, budget)
    for bracket in [(1e-9, 1e-12), (1e9, 1e8), (0.5, 0.4), (np.inf, 1e6)]:
        monkeypatch.setattr(engine, "_bracket", lambda seg, room, b=bracket: b)
        got = allocate(values, costs, budget)
        assert np.array_equal(got.choice, want.choice)
        assert got.shadow_price == want.shadow_price
