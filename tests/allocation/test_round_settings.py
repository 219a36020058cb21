"""Tests for adaptive_router.allocation.round_settings (Rounds: a router's round settings)."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.allocation import (
    CascadeModel,
    CascadePlanner,
    RoundPlanner,
    Rounds,
    ScoreEvidence,
    VerifierEvidence,
    VoteEvidence,
)
from adaptive_router.allocation.round_settings import DEFAULT_MAX_ROUNDS
from adaptive_router.errors import ConfigError


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_rounds": 0}, "max_rounds=0 must be an integer >= 1"),
        ({"first_round": "two"}, "choose 'auto', 'one', 'plan' or a number"),
        ({"first_round": True}, "choose 'auto', 'one', 'plan' or a number"),
        ({"round_budget": "half"}, r"choose one of \['even', 'pace', 'all'\]"),
        ({"round_size": 0}, "round_size=0 must be an integer >= 1"),
        ({"plan_fraction": 1.5}, r"must be in \(0, 1\]"),
        ({"evidence": "votes"}, "must be an EvidenceModel"),
    ],
)
def test_bad_settings_name_the_fix(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Rounds(**kwargs)


def test_evidence_follows_the_reranker_or_must_match_it():
    assert isinstance(Rounds().evidence_for("rewards"), VerifierEvidence)
    assert Rounds().evidence_for("answers") is Rounds().evidence_for("answers")  # equal settings, one model
    assert Rounds() == Rounds() and hash(Rounds()) == hash(Rounds())
    assert not Rounds().gives_evidence("scores") and not Rounds().gives_evidence(None)
    with pytest.raises(ConfigError, match="reads 'answers' but the reranker gives 'rewards'"):
        Rounds(evidence=VoteEvidence()).evidence_for("rewards")
    with pytest.raises(ConfigError, match="ScoreEvidence is not fitted"):
        Rounds(evidence=ScoreEvidence()).evidence_for("scores")
    train = np.random.default_rng(0).normal(size=(20, 4))
    fitted = ScoreEvidence().fit(train, (train > 0).astype(float))
    assert Rounds(evidence=fitted).evidence_for("scores") is fitted


@pytest.mark.parametrize(
    ("kind", "budget", "prior", "first"),
    [
        ("rewards", 4.0, True, "one"),
        ("answers", 4.0, True, "plan"),
        ("answers", 3.0, False, 2),
        ("answers", 2.5, False, "one"),  # measured: two votes each leave too little at B < 3
    ],
)
def test_auto_first_round(kind, budget, prior, first):
    assert Rounds().first(kind, budget_per_query=budget, unit_cost=1.0, prior=prior) == first


def test_planner_lowers_an_int_first_round_to_what_the_budget_pays():
    planner = Rounds(first_round=3).planner("rewards", budget_per_query=2.0, max_k=4, prior=False)
    assert planner.start(n=2).tolist() == [2, 2]
    lone = Rounds().planner("rewards", budget_per_query=3.0, max_k=4, prior=False, price=0.2)
    assert lone.price == 0.2 and lone.max_rounds == DEFAULT_MAX_ROUNDS


def _scattered(n=200, s=8, seed=3):
    """Rewards and answer codes like arith40's: few successes, wrong answers scattered over 6 values."""
    rng = np.random.default_rng(seed)
    right = rng.random((n, s)) < rng.beta(0.3, 1.5, n)[:, None]
    return right.astype(float), np.where(right, 9, rng.integers(0, 6, (n, s)))


@pytest.mark.parametrize(
    ("kind", "quality", "budgets"), [("rewards", "best", (2, 3, 4, 6)), ("answers", "vote", (3, 4, 6))]
)
def test_default_rounds_are_not_below_uniform(kind, quality, budgets):
    # paired over the same sample orderings: the planner Rounds() builds against k samples for every query
    from adaptive_router.allocation import UniformRounds, replay_rounds

    rewards, codes = _scattered()
    for b in budgets:
        uniform = replay_rounds(UniformRounds(k=b, quality=quality), rewards, answers=codes, seeds=16)
        planner = Rounds().planner(kind, budget_per_query=float(b), max_k=8, prior=False)
        rounds = replay_rounds(planner, rewards, answers=codes, seeds=16)
        gap = rounds.per_seed_quality - uniform.per_seed_quality
        assert gap.mean() >= -0.003, (b, gap.mean())
        assert rounds.max_spend <= b + 1e-9


def test_a_fitted_model_plans_windows_on_learned_state_values():
    rng = np.random.default_rng(0)
    r = (rng.random((200, 8)) < rng.random((200, 1))).astype(float)
    codes = np.where(r > 0, 0, rng.integers(1, 4, size=r.shape))
    model = CascadeModel(orderings=2).fit(r, answers=codes)
    rounds = Rounds(model=model, max_rounds=4)
    planner = rounds.planner("answers", budget_per_query=3.0, max_k=8, prior=False, price=0.1)
    assert isinstance(planner, CascadePlanner) and planner.escalate_cost is None
    assert (planner.max_rounds, planner.first_round, planner.price) == (4, 2, 0.1)  # votes: two answers first
    assert planner.start(n=5).tolist() == [2] * 5
    with_probe = rounds.planner("answers", budget_per_query=3.0, max_k=8, prior=True)
    assert with_probe.first_round == 2  # the prior is not read: the first round validated in train
    with pytest.raises(ConfigError, match="fitted on 'answers'"):
        rounds.planner("rewards", budget_per_query=3.0, max_k=8, prior=False).start(n=2)
    with pytest.raises(ConfigError, match="fitted CascadeModel"):
        Rounds(model=CascadeModel())
    assert isinstance(Rounds().planner("answers", budget_per_query=3.0, max_k=8, prior=False), RoundPlanner)
