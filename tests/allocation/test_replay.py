"""Tests for adaptive_router.allocation.replay: exchangeable ties, and uniform = the fixed-policy hull."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from adaptive_router.allocation import Replay, allocate
from adaptive_router.errors import ConfigError, InfeasibleBudgetError


def _hull_mix(mean: np.ndarray, costs: np.ndarray, budget: float) -> float:
    """Uniform by its definition: the upper concave hull of (cost_j, mean_j), read at ``budget``."""
    pts = sorted(zip(costs.tolist(), mean.tolist(), strict=True), key=lambda p: (p[0], -p[1]))
    hull: list[tuple[float, float]] = []
    for c, v in pts:
        if hull and c == hull[-1][0]:
            continue
        while len(hull) >= 2:
            (c1, v1), (c2, v2) = hull[-2], hull[-1]
            if (v2 - v1) * (c - c1) <= (v - v1) * (c2 - c1):
                hull.pop()
            else:
                break
        hull.append((c, v))
    best = max(range(len(hull)), key=lambda i: hull[i][1])
    hull = hull[: best + 1]  # never pay more for less
    if budget >= hull[-1][0]:
        return hull[-1][1]
    for (c1, v1), (c2, v2) in itertools.pairwise(hull):
        if c1 <= budget <= c2:
            return v1 + (v2 - v1) * (budget - c1) / (c2 - c1)
    return hull[0][1]


def _best_of_k(n: int, seed: int) -> np.ndarray:
    p = np.random.default_rng(seed).beta(0.7, 0.9, n)
    return 1 - (1 - p[:, None]) ** np.arange(1, 5)


@pytest.mark.parametrize("budget", [1.0, 1.5, 2.0, 2.75, 4.0, 6.0])
def test_uniform_is_the_mean_curve_mix_for_best_of_k(budget) -> None:
    true = _best_of_k(400, seed=0)
    costs = np.arange(1.0, 5.0)
    got = Replay(true, costs).uniform(budget)
    assert got.quality == pytest.approx(_hull_mix(true.mean(axis=0), costs, budget), abs=1e-12)
    assert got.spend <= budget + 1e-9 and got.shares.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("budget", [1.0, 3.0, 5.5, 9.0, 12.0])
def test_uniform_mixes_only_hull_vertices_for_three_routes(budget) -> None:
    # the middle route is below the chord from the cheap to the expensive one: uniform never uses it
    rng = np.random.default_rng(1)
    n = 500
    true = np.stack([rng.binomial(1, 0.5, n), rng.binomial(1, 0.52, n), rng.binomial(1, 0.9, n)], axis=1)
    costs = np.array([1.0, 5.0, 10.0])
    mean = true.mean(axis=0)
    assert mean[1] < mean[0] + (mean[2] - mean[0]) * 4 / 9  # below the chord
    got = Replay(true.astype(float), costs).uniform(budget)
    # only the leftover (less than one 9-unit hull step) buys moves off the hull: at most 2 of 4 units
    assert got.shares[1] * n <= 2 + 1e-9
    assert got.quality == pytest.approx(_hull_mix(mean, costs, budget), abs=3.0 / n)  # whole queries


def test_identical_rows_score_exactly_uniform_whatever_their_values() -> None:
    true = _best_of_k(300, seed=2)
    replay = Replay(true, np.arange(1.0, 5.0))
    flat = np.tile([0.3, 0.5, 0.6, 0.65], (300, 1))  # any concave row, the same for everyone
    for b in (1.5, 2.0, 3.3):  # mixtures in whole queries (150, 0 and 90 of 300 get the dearer option)
        a, u = replay.score(flat, b), replay.uniform(b)
        assert a.quality == pytest.approx(_hull_mix(true.mean(axis=0), replay.costs, b), abs=1e-12)
        assert a.quality == pytest.approx(u.quality, abs=1e-12)
        np.testing.assert_allclose(a.per_query, u.per_query, atol=1e-12)
        np.testing.assert_allclose(a.shares, u.shares)


def test_a_policy_without_information_does_not_depend_on_query_order() -> None:
    """Regression: tied rows used to give the dearer option to whichever queries came first."""
    rng = np.random.default_rng(3)
    true = np.stack([rng.binomial(1, 0.64, 600), rng.binomial(1, 0.86, 600)], axis=1).astype(float)
    costs = np.array([1.0, 10.0])
    flat = np.tile([0.6, 0.8], (600, 1))
    scores = []
    for _ in range(5):
        perm = rng.permutation(600)
        scores.append(Replay(true[perm], costs).score(flat, 2.0).quality)
    assert np.ptp(scores) < 1e-12
    assert scores[0] == pytest.approx(Replay(true, costs).uniform(2.0).quality, abs=1e-12)


def test_tied_groups_score_the_mean_over_their_assignments() -> None:
    rng = np.random.default_rng(4)
    true = rng.uniform(size=(6, 3))
    costs = np.array([1.0, 2.0, 3.0])
    pred = rng.uniform(size=(6, 3)).cumsum(axis=1)
    pred[[1, 3, 4]] = pred[1]  # queries 1, 3 and 4 are indistinguishable to the policy
    got = Replay(true, costs).score(pred, 1.4)
    choice = allocate(pred, costs, 1.4 * 6 * (1 + 1e-12)).choice
    tied = [1, 3, 4]
    assert len(set(choice[tied].tolist())) == 2  # the allocator split the tied group
    totals = []
    for perm in itertools.permutations(tied):  # every way of handing the tied group's options around
        c = choice.copy()
        c[list(perm)] = choice[tied]
        totals.append(true[np.arange(6), c])
    np.testing.assert_allclose(got.per_query, np.mean(totals, axis=0), atol=1e-12)
    assert got.quality == pytest.approx(np.mean(totals), abs=1e-12)


def test_oracle_bounds_every_policy_and_spend_stays_within_budget() -> None:
    true = _best_of_k(200, seed=5)
    replay = Replay(true, np.arange(1.0, 5.0))
    noisy = np.clip(true + np.random.default_rng(6).normal(0, 0.1, true.shape), 0, 1)
    for b in (1.0, 2.0, 3.0):
        o, a, u = replay.oracle(b), replay.score(noisy, b), replay.uniform(b)
        assert o.quality >= a.quality - 1e-12 and o.quality >= u.quality - 1e-12
        assert max(o.spend, a.spend, u.spend) <= b + 1e-9


def test_budgets_below_the_cheapest_option_and_bad_inputs_are_refused() -> None:
    replay = Replay([[0.5, 0.6]], costs=[1.0, 2.0])
    with pytest.raises(InfeasibleBudgetError, match=r"budget 0\.5 per query is below the cheapest .* >= 1"):
        replay.uniform(0.5)
    with pytest.raises(ConfigError, match=r"predicted values have shape \(2, 2\)"):
        replay.score(np.zeros((2, 2)), 1.0)
    with pytest.raises(ConfigError, match=r"true_values\[0, 1\] is nan"):
        Replay([[0.5, np.nan]], costs=[1.0, 2.0])
    with pytest.raises(ConfigError, match="non-decreasing"):
        Replay([[0.5, 0.6]], costs=[2.0, 1.0])


def _n_models(n: int = 600, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Seven models by cost whose qualities zig-zag: mixing neighbours in cost would fall as budget rises."""
    rng = np.random.default_rng(seed)
    means = np.array([0.30, 0.62, 0.45, 0.70, 0.55, 0.78, 0.60])
    costs = np.array([1e-5, 3e-5, 6e-5, 1.5e-4, 4e-4, 1e-3, 5e-3])  # dollars per query, 2.7 decades
    return rng.binomial(1, means, (n, means.size)).astype(float), costs


def test_the_hull_never_falls_where_mixing_neighbours_in_cost_does() -> None:
    true, costs = _n_models()
    replay = Replay(true, costs)
    mean = true.mean(axis=0)
    # the naive "uniform": mix the two options next to each other in cost
    budgets = np.geomspace(costs[0], costs[-1], 60)
    naive = np.array([np.interp(b, costs, mean) for b in budgets])
    assert (np.maximum.accumulate(naive) - naive).max() > 0.1  # it falls: its "savings" would be artefacts
    hull = np.array([replay.hull(b).quality for b in budgets])
    uniform = np.array([replay.uniform(b).quality for b in budgets])
    best = np.array([replay.best_single(b).quality for b in budgets])
    assert (np.diff(hull) >= -1e-12).all() and (np.diff(best) >= -1e-12).all()
    assert (np.diff(uniform) >= -1e-12).all()
    assert (hull >= naive - 1e-12).all() and (hull >= best - 1e-12).all()
    step = np.max(np.abs(np.diff(mean)))  # uniform buys the hull in whole queries: one query's step below
    assert (uniform <= hull + 1e-12).all() and (uniform >= hull - step / replay.n - 1e-12).all()
    for b, q in zip(budgets, hull, strict=True):
        assert q == pytest.approx(_hull_mix(mean, costs, b), abs=1e-12)


def test_hull_and_best_single_scores_are_mixtures_of_the_fixed_policies() -> None:
    true, costs = _n_models()
    replay = Replay(true, costs)
    on_hull = replay.frontier.index_.tolist()
    assert on_hull == [0, 1, 3, 5]  # the zig-zag's low points are never mixed in
    b = float(np.mean(costs[[1, 3]]))
    h = replay.hull(b)
    w = (b - costs[1]) / (costs[3] - costs[1])
    np.testing.assert_allclose(h.shares, np.eye(7)[1] * (1 - w) + np.eye(7)[3] * w)
    np.testing.assert_allclose(h.per_query, (1 - w) * true[:, 1] + w * true[:, 3])
    assert h.spend == pytest.approx(b) and h.quality == pytest.approx(replay.frontier(b))
    s = replay.best_single(b)  # options 0-2 fit; option 1 is the best of them
    assert s.shares.tolist() == np.eye(7)[1].tolist() and s.spend == costs[1]
    assert replay.hull(1.0).spend == costs[5]  # beyond the best model the hull stays there
    with pytest.raises(InfeasibleBudgetError, match="below the cheapest option"):
        replay.best_single(5e-6)
