"""Curve estimators against exhaustive enumeration of every k-subset of the recorded samples."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_router.curves import (
    expected_best_of_k,
    expected_majority_vote,
    expected_reranked_best_of_k,
    pass_at_k,
    upper_concave_envelope,
)
from adaptive_router.errors import ConfigError


def _enumerate(rewards, scores, k):
    """Mean over all k-subsets of the reward of the highest-scored sample (ties: uniform at random)."""
    idx = range(len(rewards))
    total = 0.0
    count = 0
    for sub in itertools.combinations(idx, k):
        top = max(scores[i] for i in sub)
        tied = [rewards[i] for i in sub if scores[i] == top]
        total += sum(tied) / len(tied)
        count += 1
    return total / count


@pytest.mark.parametrize("s", [1, 2, 3, 5, 7])
def test_pass_at_k_matches_enumeration(s):
    ks = list(range(1, s + 1))
    for c in range(s + 1):
        outcomes = [1.0] * c + [0.0] * (s - c)
        got = pass_at_k([c], [s], ks)[0]
        want = [_enumerate(outcomes, outcomes, k) for k in ks]
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_pass_at_k_nan_beyond_samples_and_int_ks():
    out = pass_at_k([1, 0], [2, 3], 3)
    assert out.shape == (2, 3)
    assert np.isnan(out[0, 2]) and not np.isnan(out[1, 2])
    assert out[1].tolist() == [0.0, 0.0, 0.0]


def test_pass_at_k_large_counts_stay_finite():
    out = pass_at_k([3, 1000], [1000, 1000], [1, 10, 1000])
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 0], 0.003)
    assert out[1].tolist() == [1.0, 1.0, 1.0]


def test_pass_at_k_rejects_bad_counts():
    with pytest.raises(ConfigError, match=r"successes=5 is not in \[0, samples=4\]"):
        pass_at_k([5], [4], 2)
    with pytest.raises(ConfigError, match="same length"):
        pass_at_k([1, 2], [4], 2)
    with pytest.raises(ConfigError, match="every k must be >= 1"):
        pass_at_k([1], [4], [0, 1])


@pytest.mark.parametrize("seed", range(6))
def test_expected_best_of_k_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    s = int(rng.integers(1, 8))
    rewards = rng.choice([0.0, 0.25, 0.5, 1.0], size=s) if seed % 2 else rng.random(s)
    got = expected_best_of_k(rewards[None, :], s)[0]
    want = [_enumerate(list(rewards), list(rewards), k) for k in range(1, s + 1)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_expected_best_of_k_ragged_rows():
    rng = np.random.default_rng(1)
    rows = [rng.random(s) for s in (2, 5, 4)]
    padded = np.full((3, 5), np.nan)
    for i, r in enumerate(rows):
        padded[i, : r.size] = r
    got = expected_best_of_k(padded, [1, 2, 4, 5])
    for i, r in enumerate(rows):
        for t, k in enumerate([1, 2, 4, 5]):
            if k > r.size:
                assert np.isnan(got[i, t])
            else:
                np.testing.assert_allclose(got[i, t], _enumerate(list(r), list(r), k), atol=1e-12)


def test_expected_best_of_k_binary_equals_pass_at_k():
    rewards = np.array([[1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=float)
    np.testing.assert_allclose(expected_best_of_k(rewards, 6), pass_at_k([2, 1], [6, 6], 6), atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_reranked_matches_enumeration_with_ties(seed):
    rng = np.random.default_rng(100 + seed)
    s = int(rng.integers(1, 8))
    rewards = rng.random(s)
    scores = rng.integers(0, 3, size=s).astype(float)  # many ties in the scorer
    got = expected_reranked_best_of_k(rewards[None, :], scores[None, :], s)[0]
    want = [_enumerate(list(rewards), list(scores), k) for k in range(1, s + 1)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_reranked_with_scores_equal_to_rewards_is_best_of_k():
    rng = np.random.default_rng(3)
    r = rng.random((4, 6))
    np.testing.assert_allclose(expected_reranked_best_of_k(r, r, 6), expected_best_of_k(r, 6), atol=1e-12)


def test_reranked_rejects_mismatched_padding():
    with pytest.raises(ConfigError, match="NaN at the same places"):
        expected_reranked_best_of_k([[1.0, np.nan]], [[0.5, 0.2]], 2)
    with pytest.raises(ConfigError, match="must have the shape of rewards"):
        expected_reranked_best_of_k([[1.0, 0.0]], [[0.5]], 2)


def test_rewards_reject_inf_and_1d():
    with pytest.raises(ConfigError, match="contains inf"):
        expected_best_of_k([[1.0, np.inf]], 2)
    with pytest.raises(ConfigError, match="2-D"):
        expected_best_of_k([1.0, 0.0], 2)


def _brute_envelope(v, c):
    """Least concave majorant at each point: max over chords through pairs of points."""
    out = []
    for x in c:
        best = -np.inf
        for a in range(len(c)):
            for b in range(len(c)):
                if c[a] <= x <= c[b]:
                    if c[a] == c[b]:
                        best = max(best, v[a], v[b])
                    else:
                        t = (x - c[a]) / (c[b] - c[a])
                        best = max(best, v[a] + t * (v[b] - v[a]))
        out.append(best)
    return np.array(out)


@pytest.mark.parametrize("seed", range(20))
def test_upper_concave_envelope_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 7))
    c = np.sort(rng.integers(0, 6, size=m)).astype(float)
    v = rng.random(m).round(2)
    got = upper_concave_envelope(v, c)
    np.testing.assert_allclose(got, _brute_envelope(v, c), atol=1e-12)
    assert (got >= v - 1e-12).all()


def test_upper_concave_envelope_keeps_nan_and_concave_rows():
    v = np.array([[0.1, 0.5, 0.7, 0.8], [0.3, np.nan, 0.1, 0.9]])
    got = upper_concave_envelope(v, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(got[0], v[0])
    assert np.isnan(got[1, 1])
    np.testing.assert_allclose(got[1, [0, 2, 3]], [0.3, 0.7, 0.9])


# -- expected_majority_vote ------------------------------------------------------------------------------


def _enumerate_vote(codes, rewards, k):
    """Mean over all k-subsets of the plurality answer's reward (ties: uniform over tied answers; within an
    answer, a uniformly random drawn sample's reward; nobody voted: a random drawn sample)."""
    present = [j for j in range(len(rewards)) if not math.isnan(rewards[j])]
    total, count = 0.0, 0
    for sub in itertools.combinations(present, k):
        votes: dict[int, list[float]] = {}
        for j in sub:
            if codes[j] >= 0:
                votes.setdefault(int(codes[j]), []).append(rewards[j])
        if votes:
            top = max(len(v) for v in votes.values())
            tied = [sum(v) / len(v) for v in votes.values() if len(v) == top]
            total += sum(tied) / len(tied)
        else:
            total += sum(rewards[j] for j in sub) / k
        count += 1
    return total / count


@st.composite
def _vote_rows(draw):
    s = draw(st.integers(1, 8))
    n_cls = draw(st.integers(1, 4))
    rows_codes, rows_rewards = [], []
    for _ in range(draw(st.integers(1, 3))):
        present = draw(st.integers(1, s))
        codes = [draw(st.integers(-1, n_cls - 1)) for _ in range(present)] + [-1] * (s - present)
        rewards = [draw(st.sampled_from([0.0, 0.25, 1.0])) for _ in range(present)]
        rewards += [math.nan] * (s - present)
        rows_codes.append(codes)
        rows_rewards.append(rewards)
    return np.array(rows_codes), np.array(rows_rewards)


@given(_vote_rows())
@settings(max_examples=300, deadline=None)
def test_expected_majority_vote_matches_enumeration(data):
    codes, rewards = data
    s = codes.shape[1]
    got = expected_majority_vote(codes, rewards, s)
    for i in range(codes.shape[0]):
        present = int((~np.isnan(rewards[i])).sum())
        for k in range(1, s + 1):
            if k > present:
                assert np.isnan(got[i, k - 1])
            else:
                assert got[i, k - 1] == pytest.approx(_enumerate_vote(codes[i], rewards[i], k), abs=1e-12)


def test_expected_majority_vote_exact_small_cases():
    # one class: every k returns it; three distinct answers: a random one; 2-1 split at k = 3 always wins
    np.testing.assert_allclose(expected_majority_vote([[5, 5, 5]], [[1.0, 1.0, 1.0]], 3), [[1.0, 1.0, 1.0]])
    np.testing.assert_allclose(expected_majority_vote([[0, 1, 2]], [[1.0, 0.0, 0.0]], 3), [[1 / 3] * 3])
    # codes are compared within a row only, so large or shared codes across rows are fine
    got = expected_majority_vote([[10**12, 10**12, 7], [7, 8, 8]], [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], [3])
    np.testing.assert_allclose(got, [[1.0], [0.0]])
    # a larger case against enumeration: s = 12, three classes with rewards inside classes differing
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 3, (1, 12))
    rewards = rng.random((1, 12))
    got = expected_majority_vote(codes, rewards, [1, 4, 7, 12])[0]
    want = [_enumerate_vote(codes[0], rewards[0], k) for k in (1, 4, 7, 12)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_expected_majority_vote_k1_is_mean_reward_and_large_inputs_are_fast_enough():
    rng = np.random.default_rng(0)
    n, s = 2000, 40
    correct = rng.random((n, s)) < rng.beta(0.7, 1.0, n)[:, None]
    codes = np.where(correct, 0, rng.integers(1, 6, (n, s)))
    got = expected_majority_vote(codes, correct.astype(float), 20)
    np.testing.assert_allclose(got[:, 0], correct.mean(axis=1), atol=1e-12)
    assert np.isfinite(got).all() and (got >= -1e-12).all() and (got <= 1 + 1e-12).all()
    # a query where the correct answer is the strict majority converges to 1 with odd k
    assert expected_majority_vote([[0] * 6 + [1, 2, 3]], [[1.0] * 6 + [0.0] * 3], [9])[0, 0] == 1.0


@pytest.mark.parametrize(
    ("codes", "rewards", "match"),
    [
        ([[0, 1]], [[1.0, 0.0, 1.0]], r"answer_codes \(1, 2\) must have the shape of rewards \(1, 3\)"),
        ([[0.5, 1.0]], [[1.0, 0.0]], r"answer_codes must be integers"),
        ([[0, 3]], [[1.0, float("nan")]], r"answer_codes\[0, 1\] = 3 but rewards\[0, 1\] is NaN"),
        ([[0, 1]], [[1.0, float("inf")]], r"contains inf"),
    ],
)
def test_expected_majority_vote_rejects_bad_input(codes, rewards, match):
    with pytest.raises(ConfigError, match=match):
        expected_majority_vote(codes, rewards, 2)
