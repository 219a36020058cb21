"""Property tests: allocate() against brute force and scipy.optimize.milp on thousands of small instances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive_router import allocate
from adaptive_router.errors import InfeasibleBudgetError

milp_mod = pytest.importorskip("scipy.optimize")

FAST = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEDIUM = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def brute_force(values, costs, budget, allowed):
    n, _ = values.shape
    options = [np.flatnonzero(allowed[i]) for i in range(n)]
    best = -np.inf
    for combo in itertools.product(*options):
        rows = np.arange(n)
        idx = np.array(combo)
        if costs[rows, idx].sum() <= budget:
            best = max(best, values[rows, idx].sum())
    return best


def milp_optimum(values, costs, budget, allowed):
    """Integer optimum of the multiple-choice knapsack with scipy's HiGHS MILP."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    n, _m = values.shape
    idx = np.argwhere(allowed)
    k = idx.shape[0]
    obj = -values[idx[:, 0], idx[:, 1]]
    one = np.zeros((n, k))
    one[idx[:, 0], np.arange(k)] = 1.0
    spend = costs[idx[:, 0], idx[:, 1]][None, :]
    res = milp(
        obj,
        constraints=[LinearConstraint(one, 1, 1), LinearConstraint(spend, -np.inf, budget)],
        integrality=np.ones(k),
        bounds=Bounds(0, 1),
        options={"mip_rel_gap": 0.0},
    )
    assert res.success, res.message
    return -res.fun


@st.composite
def equal_step_concave(draw):
    """Concave ladders with equal cost steps, per-query min/max windows, ties likely (integer gains)."""
    n = draw(st.integers(1, 5))
    m = draw(st.integers(1, 5))
    step = draw(st.sampled_from([1.0, 0.5, 2.0, 3.0]))
    offset = draw(st.sampled_from([0.0, 1.0, 2.5]))
    costs = offset + step * np.arange(m)
    gains = np.array([sorted(draw(st.lists(st.integers(-3, 20), min_size=m, max_size=m)), reverse=True)
                      for _ in range(n)], dtype=float) / 20.0
    level = np.array(draw(st.lists(st.integers(0, 10), min_size=n, max_size=n)), dtype=float)
    values = np.cumsum(gains, axis=1) + level[:, None]
    lo_idx = np.array(draw(st.lists(st.integers(0, m - 1), min_size=n, max_size=n)))
    hi_idx = np.array([draw(st.integers(int(a), m - 1)) for a in lo_idx])
    use_limits = draw(st.booleans())
    if not use_limits:
        lo_idx[:] = 0
        hi_idx[:] = m - 1
    base = costs[lo_idx].sum()
    top = costs[hi_idx].sum()
    budget = base + draw(st.integers(0, round((top - base) / step) + 1)) * step
    return values, costs, float(budget), costs[lo_idx], costs[hi_idx], use_limits


@given(equal_step_concave())
@FAST
def test_equal_step_concave_matches_brute_force(case):
    values, costs, budget, lo, hi, use_limits = case
    n, m = values.shape
    kw = {"min_cost": lo, "max_cost": hi} if use_limits else {}
    r = allocate(values, costs, budget, **kw)
    c2 = np.broadcast_to(costs, (n, m))
    allowed = (c2 >= lo[:, None]) & (c2 <= hi[:, None])
    opt = brute_force(values, c2, budget, allowed)
    assert r.spend <= budget
    assert r.value == pytest.approx(opt, abs=1e-9)
    assert r.gap_bound == 0.0
    assert allowed[np.arange(n), r.choice].all()
    assert (r.cost >= lo).all() and (r.cost <= hi).all()
    again = allocate(values, costs, budget, **kw)
    assert np.array_equal(again.choice, r.choice) and again.shadow_price == r.shadow_price


@given(equal_step_concave(), st.randoms(use_true_random=False))
@MEDIUM
def test_permutation_consistent(case, rnd):
    values, costs, budget, lo, hi, use_limits = case
    n = values.shape[0]
    perm = np.array(rnd.sample(range(n), n))
    kw = {"min_cost": lo, "max_cost": hi} if use_limits else {}
    kwp = {"min_cost": lo[perm], "max_cost": hi[perm]} if use_limits else {}
    r = allocate(values, costs, budget, **kw)
    rp = allocate(values[perm], costs, budget, **kwp)
    assert rp.value == pytest.approx(r.value, abs=1e-9)
    assert rp.spend <= budget
    assert rp.shadow_price == pytest.approx(r.shadow_price, abs=1e-12)


@given(st.integers(2, 6), st.integers(2, 5), st.integers(0, 2**32 - 1))
@MEDIUM
def test_permutation_without_ties_gives_permuted_choice(n, m, seed):
    rng = np.random.default_rng(seed)
    gains = -np.sort(-rng.random((n, m)), axis=1)  # continuous: no ties
    values = np.cumsum(gains, axis=1)
    costs = np.arange(1.0, m + 1)
    budget = float(rng.integers(n, n * m + 1))
    perm = rng.permutation(n)
    r = allocate(values, costs, budget)
    rp = allocate(values[perm], costs, budget)
    assert np.array_equal(rp.choice, r.choice[perm])


@st.composite
def general_instance(draw):
    """Any ladders: non-concave, NaN holes, unequal and per-query costs, equal costs, weights."""
    n = draw(st.integers(1, 6))
    m = draw(st.integers(1, 5))
    ints = draw(st.lists(st.integers(0, 30), min_size=n * m, max_size=n * m))
    vals = np.array(ints, dtype=float).reshape(n, m) / 10
    holes = np.array(draw(st.lists(st.booleans(), min_size=n * m, max_size=n * m))).reshape(n, m)
    holes[:, 0] &= False  # keep at least one option per row
    if draw(st.booleans()):
        vals[holes & (np.arange(m) > 0)] = np.nan
    if draw(st.booleans()):
        costs = np.cumsum(np.array(draw(st.lists(st.integers(0, 4), min_size=m, max_size=m)), float))
        c2 = np.broadcast_to(costs, (n, m))
    else:
        steps = np.array(draw(st.lists(st.integers(0, 4), min_size=n * m, max_size=n * m)), float)
        costs = np.cumsum(steps.reshape(n, m), axis=1)
        c2 = costs
    weights = None
    if draw(st.booleans()):
        weights = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), float)
    present = ~np.isnan(vals)
    base = np.array([c2[i][present[i]].min() for i in range(n)]).sum()
    top = np.array([c2[i][present[i]].max() for i in range(n)]).sum()
    budget = float(base + draw(st.integers(0, int(top - base) + 1)))
    return vals, costs, c2, budget, weights


@given(general_instance(), st.integers(0, 2))
@MEDIUM
def test_general_within_gap_bound_of_milp(case, limits):
    vals, costs, c2, budget, weights = case
    n, _m = vals.shape
    present = ~np.isnan(vals)
    kw = {}
    if limits:  # per-query window around one present option of each row, widened to its neighbours
        lo = np.array([c2[i][present[i]][0] for i in range(n)]) + (limits - 1)
        hi = lo + 2.0
        present &= (c2 >= lo[:, None]) & (c2 <= hi[:, None])
        keep = present.any(axis=1)
        if not keep.all():
            return  # no allowed option in some row: covered by the validation tests
        budget = max(budget, float(np.where(present, c2, np.inf).min(axis=1).sum()))
        kw = {"min_cost": lo, "max_cost": hi}
    r = allocate(vals, costs, budget, weights=weights, **kw)
    wv = vals * (1.0 if weights is None else weights[:, None])
    opt = milp_optimum(np.nan_to_num(wv), c2, budget, present)
    assert r.spend <= budget
    assert present[np.arange(n), r.choice].all()
    assert r.value <= opt + 1e-9
    assert r.value >= opt - r.gap_bound - 1e-9
    # Leftover: no query can move to a better option the leftover pays for.
    left = budget - r.spend
    cur_v = wv[np.arange(n), r.choice]
    cur_c = c2[np.arange(n), r.choice]
    with np.errstate(invalid="ignore"):
        better = present & (wv > cur_v[:, None] + 1e-12) & (c2 - cur_c[:, None] <= left)
    assert not better.any()
    if r.gap_bound == 0.0:
        assert r.value == pytest.approx(opt, abs=1e-9)


@given(general_instance())
@MEDIUM
def test_infeasible_exactly_below_cheapest(case):
    vals, costs, c2, _budget, _ = case
    present = ~np.isnan(vals)
    need = float(np.where(present, c2, np.inf).min(axis=1).sum())
    if need > 0:
        with pytest.raises(InfeasibleBudgetError, match="at least"):
            allocate(vals, costs, need - 0.5)
    r = allocate(vals, costs, need)
    assert r.spend <= need
