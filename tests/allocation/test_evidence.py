"""Evidence models (allocation/evidence.py): exact small cases, brute force, monotone concave gains."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from adaptive_router.allocation import (
    ScoreEvidence,
    VerifierEvidence,
    VoteEvidence,
)
from adaptive_router.curves import upper_concave_envelope
from adaptive_router.errors import ConfigError, NotFittedError


def _pass_at_k_beta(a, b, kmax):
    t = np.arange(kmax)
    return 1 - np.cumprod((b + t) / (a + b + t))


# -- VerifierEvidence ------------------------------------------------------------------------------------


def test_verifier_gain_is_the_beta_posterior_chance_of_a_success():
    ev = VerifierEvidence(prior=(1.0, 1.0))
    state = ev.begin(None, np.array([10, 10, 10]))
    ev.update(state, np.array([1, 2, 2, 2]), np.array([0.0, 0.0, 0.0, 0.9]))  # query 2 solved on its 3rd
    g = ev.gains(state, np.array([4, 4, 2]), 4)
    j = np.arange(5)
    np.testing.assert_allclose(g[0], j / (1 + j))  # Beta(1, 1): E[1 - (1-p)^j] = j / (j + 1)
    np.testing.assert_allclose(g[1], j / (2 + j))  # one failure: Beta(1, 2)
    assert (g[2, :3] == 0).all() and np.isnan(g[2, 3:]).all()  # solved, and NaN past `remaining`


def test_verifier_prior_moment_matches_the_probe_curve():
    curve = np.vstack([_pass_at_k_beta(0.4, 1.2, 6), _pass_at_k_beta(3.0, 2.0, 6)])
    ev = VerifierEvidence()
    state = ev.begin(curve, np.array([6, 6]))
    np.testing.assert_allclose(state.a, [0.4, 3.0], rtol=1e-9)
    np.testing.assert_allclose(state.b, [1.2, 2.0], rtol=1e-9)
    np.testing.assert_allclose(ev.gains(state, np.array([6, 6]), 6)[:, 1:], curve, rtol=1e-9)


def test_verifier_fit_recovers_a_population_beta():
    rng = np.random.default_rng(0)
    p = rng.beta(0.6, 1.4, 4000)
    rewards = (rng.random((4000, 8)) < p[:, None]).astype(float)
    ev = VerifierEvidence().fit(rewards)
    assert ev.a_ / (ev.a_ + ev.b_) == pytest.approx(0.3, abs=0.02)
    assert ev.a_ + ev.b_ == pytest.approx(2.0, rel=0.15)
    with pytest.raises(NotFittedError, match=r"prior=\(a, b\), or call fit"):
        VerifierEvidence().begin(None, np.array([2]))


# -- VoteEvidence ----------------------------------------------------------------------------------------


def _vote_gain_brute(c1, c2, j, accuracy=1.0):
    """Two-class model with unseen=0 (every new vote lands on the top two), by explicit sums."""

    def p_lead(a, b):  # P(Beta(a+1, b+1) > 1/2) = P(Bin(a+b+1, 1/2) <= a)
        n = a + b + 1
        return sum(math.comb(n, x) for x in range(a + 1)) / 2**n

    def beta_fn(x, y):
        return math.exp(math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y))

    now = max(p_lead(c1, c2), 1 - p_lead(c1, c2))
    after = 0.0
    for x in range(j + 1):  # x of the j new votes go to the leader: beta-binomial(j, c1+1, c2+1)
        w = math.comb(j, x) * beta_fn(c1 + 1 + x, c2 + 1 + j - x) / beta_fn(c1 + 1, c2 + 1)
        p = p_lead(c1 + x, c2 + j - x)
        after += w * max(p, 1 - p)
    return accuracy * (after - now)


def test_vote_gain_matches_the_two_class_model_and_is_monotone_concave():
    ev = VoteEvidence(unseen=0.0)
    state = ev.begin(None, np.full(4, 12))
    # query 0: one answer; 1: three agreeing; 2: a 2-2 split; 3: 3 vs 1
    ev.update(
        state, np.array([0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]), np.array([5, 2, 2, 2, 1, 1, 9, 9, 4, 4, 4, 0])
    )
    g = ev.gains(state, np.full(4, 6), 6)
    for row, (c1, c2) in enumerate([(1, 0), (3, 0), (2, 2), (3, 1)]):
        raw = np.array([_vote_gain_brute(c1, c2, j) for j in range(7)])
        np.testing.assert_allclose(g[row], upper_concave_envelope(raw, np.arange(7.0)), atol=1e-12)
        assert (np.diff(g[row]) >= -1e-12).all() and (np.diff(g[row], 2) <= 1e-12).all()
    assert _vote_gain_brute(1, 0, 1) == pytest.approx(0.0)  # a second vote cannot beat a 1-1 tie
    assert _vote_gain_brute(1, 0, 2) == pytest.approx(1 / 16)
    assert g[2, 3] > g[3, 3] > g[1, 3] > 0  # a split gains most, agreement least


def test_vote_update_maps_codes_across_calls_and_counts_abstentions():
    ev = VoteEvidence(accuracy=0.5)
    state = ev.begin(None, np.array([5, 5]))
    ev.update(state, np.array([0, 0, 1]), np.array([10**9, 3, -1]))
    ev.update(state, np.array([0, 0, 1]), np.array([3, 3, 8]))
    assert sorted(state.counts[0][state.counts[0] > 0].tolist()) == [1, 3]
    assert state.other.tolist() == [0, 1] and state.classes.tolist() == [2, 1]
    assert state.accuracy.tolist() == [0.5, 0.5]
    with pytest.raises(ConfigError, match="integer answer codes"):
        ev.update(state, np.array([0]), np.array([1.5]))


def test_vote_accuracy_comes_from_the_prior_curve():
    ev = VoteEvidence()
    state = ev.begin(np.array([[0.2, 0.25, 0.3], [0.9, 0.95, 0.97]]), np.array([3, 3]))
    np.testing.assert_allclose(state.accuracy, [0.3, 0.97])


# -- ScoreEvidence ---------------------------------------------------------------------------------------


def test_score_gain_is_the_expected_improvement_of_the_best_score_by_enumeration():
    ev = ScoreEvidence()
    ev.residuals_ = np.array([-1.0, 0.0, 0.5, 2.0])
    ev.mu_, ev.kappa_, ev.reward_per_score_ = 0.0, 1.0, 0.5
    state = ev.begin(None, np.array([3, 3]))
    ev.update(state, np.array([0, 1]), np.array([1.0, -2.0]))  # levels (1+0)/2 and (-2+0)/2
    g = ev.gains(state, np.array([3, 3]), 3)
    for row, (best, level) in enumerate([(1.0, 0.5), (-2.0, -1.0)]):
        for j in range(1, 4):
            draws = itertools.product(ev.residuals_, repeat=j)
            want = np.mean([max(best, level + max(d)) - best for d in draws])
            assert g[row, j] == pytest.approx(0.5 * want, abs=1e-12)


def test_score_fit_and_uninformative_scores():
    rng = np.random.default_rng(1)
    level = rng.normal(size=(500, 1))
    scores = level + rng.normal(size=(500, 6))
    ev = ScoreEvidence().fit(scores, (scores > 0.5).astype(float))
    assert ev.reward_per_score_ > 0.1 and ev.kappa_ == pytest.approx(1.0, rel=0.3)
    assert np.std(ev.residuals_) == pytest.approx(1.0, rel=0.1)
    backwards = ScoreEvidence().fit(scores, -scores)  # higher scores mean lower reward
    assert backwards.reward_per_score_ == 0.0
    with pytest.raises(NotFittedError, match="call fit"):
        ScoreEvidence().begin(None, np.array([2]))


@pytest.mark.parametrize("kind", ["verifier", "votes", "scores"])
def test_gains_do_not_depend_on_how_many_columns_or_rows_are_asked_for(kind):
    """The planner asks for a few columns first, then more for some rows: both must match the full curve."""
    rng = np.random.default_rng(2)
    n = 30
    if kind == "verifier":
        ev, values = VerifierEvidence(prior=(0.5, 1.0)), (rng.random(3 * n) < 0.3).astype(float)
    elif kind == "votes":
        ev, values = VoteEvidence(), rng.integers(-1, 3, 3 * n)
    else:
        train = rng.normal(size=(40, 5))
        ev, values = ScoreEvidence().fit(train, train), rng.normal(size=3 * n)
    state = ev.begin(None, np.full(n, 12))
    ev.update(state, np.repeat(np.arange(n), 3), values)
    horizon = rng.integers(0, 10, n)
    full = ev.gains(state, horizon, 9)
    for w in (1, 2, 4, 7):
        np.testing.assert_allclose(ev.gains(state, horizon, w), full[:, : w + 1], atol=1e-12)
    rows = np.array([5, 0, 17, 29])  # a subset of rows is the same as those rows of the whole
    np.testing.assert_allclose(ev.gains(state, horizon[rows], 9, rows=rows), full[rows], atol=1e-12)


