"""Sequential replay (allocation/sequential.py) of the planner and the baselines on recorded samples."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.allocation import (
    EarlyStoppingSC,
    RoundPlanner,
    UniformRounds,
    VerifierEvidence,
    replay_rounds,
)
from adaptive_router.curves import expected_best_of_k, expected_majority_vote
from adaptive_router.errors import ConfigError


def _pass_at_k_beta(a, b, kmax):
    t = np.arange(kmax)
    return 1 - np.cumprod((b + t) / (a + b + t))


# -- baselines and replay ---------------------------------------------------------------------------------


def test_esc_stops_on_an_agreeing_window_and_caps_at_max_k():
    esc = EarlyStoppingSC(window=3, max_k=9)
    codes = np.array([[4] * 9, list(range(9)), [1, 2, 3, 5, 5, 5, 7, 8, 9]])
    rewards = np.ones((3, 9))
    res = replay_rounds(esc, rewards, answers=codes, seeds=[0], shuffle_queries=False)
    assert esc.units_.tolist()[:2] == [3, 9]
    assert 3 <= esc.units_[2] <= 9
    assert res.rounds == 3.0  # the distinct row needs three windows


def test_replay_uniform_matches_the_exact_curves():
    rng = np.random.default_rng(0)
    n, s = 60, 6
    correct = rng.random((n, s)) < rng.beta(0.8, 0.8, n)[:, None]
    rewards = correct.astype(float)
    codes = np.where(correct, 0, rng.integers(1, 3, (n, s)))
    vote = replay_rounds(UniformRounds(k=3, quality="vote"), rewards, answers=codes, seeds=300)
    exact = expected_majority_vote(codes, rewards, [3])[:, 0].mean()
    assert abs(vote.quality - exact) < 4 * vote.quality_se + 1e-9
    best = replay_rounds(UniformRounds(k=2), rewards, seeds=300)
    assert abs(best.quality - expected_best_of_k(rewards, [2])[:, 0].mean()) < 4 * best.quality_se
    assert best.spend == 2.0 and best.max_spend == 2.0


def test_replay_planner_beats_uniform_at_equal_budget_and_keeps_the_budget():
    rng = np.random.default_rng(7)
    n, s = 400, 8
    p = rng.beta(0.4, 0.8, n)
    rewards = (rng.random((n, s)) < p[:, None]).astype(float)
    train = (rng.random((400, 8)) < rng.beta(0.4, 0.8, 400)[:, None]).astype(float)
    planner = RoundPlanner(
        evidence=VerifierEvidence().fit(train), budget_per_query=2.0, max_k=s, max_rounds=4
    )
    adaptive = replay_rounds(planner, rewards, seeds=6)
    uniform = replay_rounds(UniformRounds(k=2), rewards, seeds=6)
    assert adaptive.max_spend <= 2.0 + 1e-12
    assert adaptive.quality > uniform.quality + 0.03  # measured: 0.505 vs 0.465, standard errors < 0.008


def test_replay_rejects_missing_evidence_and_bad_padding():
    rewards = np.array([[1.0, 0.0]])
    with pytest.raises(ConfigError, match="needs 'answers'"):
        replay_rounds(EarlyStoppingSC(window=1, max_k=2), rewards)
    with pytest.raises(ConfigError, match="pad ragged rows at the end"):
        replay_rounds(UniformRounds(k=1), np.array([[np.nan, 1.0]]))
    with pytest.raises(ConfigError, match="has no recorded sample"):
        replay_rounds(UniformRounds(k=1), np.array([[np.nan, np.nan]]))


def test_replay_presents_queries_in_a_seeded_random_order():
    # a policy that breaks ties by index: the first half of the queries gets a second sample
    rewards = np.array([[0.0, 1.0]] * 10 + [[1.0, 1.0]] * 10)

    class FirstHalfGetsTwo(UniformRounds):
        def start(self, prior_curves=None, *, n=None, max_units=None):
            self._begin(prior_curves, n, max_units, 2)
            return self._issue(np.where(np.arange(self.n_) < self.n_ // 2, 2, 1))

    fixed = replay_rounds(FirstHalfGetsTwo(k=1), rewards, seeds=8, shuffle_queries=False)
    shuffled = replay_rounds(FirstHalfGetsTwo(k=1), rewards, seeds=8)
    assert fixed.per_seed_quality.tolist() == [1.0] * 8  # always the ten queries that need it
    assert shuffled.spend == fixed.spend == 1.5
    assert shuffled.quality < 0.95 and np.ptp(shuffled.per_seed_quality) > 0
    again = replay_rounds(FirstHalfGetsTwo(k=1), rewards, seeds=8)
    assert again.per_seed_quality.tolist() == shuffled.per_seed_quality.tolist()
