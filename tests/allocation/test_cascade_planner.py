"""CascadeModel and CascadePlanner: cheap samples in rounds, escalation on evidence, one hard budget."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive_router.allocation import (
    CascadeModel,
    CascadePlanner,
    UniformRounds,
    VerifierEvidence,
    VoteEvidence,
    replay_rounds,
)
from adaptive_router.errors import ConfigError, InfeasibleBudgetError, NotFittedError


def synthetic(n: int, s: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cheap samples whose agreement tracks correctness, and a stronger model, on n questions."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=n)
    p_cheap = 1 / (1 + np.exp(-(1.0 - 1.8 * d)))
    p_strong = 1 / (1 + np.exp(-(2.3 - 1.2 * d)))
    correct = rng.random((n, s)) < p_cheap[:, None]
    wrong = rng.integers(1, 5, size=(n, s))
    codes = np.where(correct, 0, wrong)
    return correct.astype(float), codes, (rng.random(n) < p_strong).astype(float)


@pytest.fixture(scope="module")
def data():
    r, c, st_ = synthetic(1200, seed=1)
    train, test = slice(0, 600), slice(600, 1200)
    model = CascadeModel().fit(r[train], st_[train], answers=c[train])
    return model, r[test], c[test], st_[test]


# ------------------------------------------------------------------ CascadeModel
def test_model_reads_agreement_and_failures():
    r, c, strong = synthetic(800, seed=2)
    votes = CascadeModel().fit(r, strong, answers=c)
    cheap, strong_v = votes.values(np.array([4, 4, 4]), np.array([4, 2, 1]))
    assert cheap[0] > cheap[1] > cheap[2]  # unanimous answers are right more often than scattered ones
    assert strong_v[2] - cheap[2] > strong_v[0] - cheap[0]  # escalating a scattered query gains more
    verifier = CascadeModel().fit(r, strong)
    assert verifier.needs == "rewards" and votes.needs == "answers"
    solved, _ = verifier.values(np.array([3, 3]), np.array([1, 0]))
    assert solved[0] == pytest.approx(1.0, abs=0.05) and solved[1] < 0.1
    assert verifier.up_[1, 1] < 1e-6 and 0 < verifier.up_[1, 0] < votes.up_[1, 1] < 1  # solved stays solved
    action, value, cost = verifier.policy(0.01, unit_cost=1.0, escalate_cost=20.0, cap=4)
    assert action[1, 1] == 0 and cost[1, 1] == 0  # solved: stop
    assert action[1, 0] in (1, 2) and cost[1, 0] > 0 and value[1, 0] > solved[1]  # failed: act
    never, _, _ = verifier.policy(10.0, unit_cost=1.0, escalate_cost=20.0, cap=4)
    assert not never[1:].any()  # too dear: every state stops


def test_model_smooths_unseen_states_and_reads_past_its_counts():
    r, c, strong = synthetic(300, s=6, seed=3)
    model = CascadeModel().fit(r, strong, answers=c)
    assert np.isfinite(model.cheap_).all() and np.isfinite(model.up_).all()
    a, _ = model.values(np.array([12]), np.array([12]))  # past 6 samples: read at 6 with the share kept
    b, _ = model.values(np.array([6]), np.array([6]))
    assert a[0] == b[0]


def test_model_round_trips_and_rejects_bad_input():
    r, c, strong = synthetic(200, s=5, seed=4)
    model = CascadeModel().fit(r, strong, answers=c)
    back = CascadeModel.from_dict(model.to_dict())
    np.testing.assert_array_equal(back.up_, model.up_)
    assert back.needs == "answers"
    with pytest.raises(ConfigError, match="not a CascadeModel"):
        CascadeModel.from_dict({"params": {}})
    with pytest.raises(NotFittedError):
        CascadeModel().values([1], [1])
    with pytest.raises(ConfigError, match="strong procedure"):
        CascadeModel().fit(r, np.full(200, np.nan))
    with pytest.raises(ConfigError, match="shape"):
        CascadeModel().fit(r, strong, answers=c[:, :2])


# ------------------------------------------------------------------ CascadePlanner
def test_planner_escalates_disagreement_and_keeps_agreement():
    r = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]] * 50)
    c = np.array([[7, 7, 7, 7], [1, 2, 7, 3]] * 50)
    model = CascadeModel().fit(r, np.ones(100), answers=c)
    planner = CascadePlanner(evidence=VoteEvidence(), model=model, budget_per_query=12.0, max_k=4,
                             escalate_cost=20.0)  # fmt: skip
    assert planner.start(n=2).tolist() == [2, 2]
    planner.observe([0, 0, 1, 1], [7, 7, 1, 2])
    units = planner.next_round()
    assert planner.new_escalations_.tolist() == [1] and units.tolist() == [0, 0]
    assert planner.spent_ == 24.0 and planner.spent_ <= planner.budget_
    assert planner.next_round().tolist() == [0, 0] and planner.done_


def test_cascade_beats_the_mixture_of_single_models(data):
    model, r, c, strong = data
    for b in (2.0, 4.0, 9.0):
        res = replay_rounds(
            CascadePlanner(evidence=VoteEvidence(), model=model, budget_per_query=b, max_k=20,
                           escalate_cost=20.0),
            r, answers=c, escalation_rewards=strong, seeds=4,
        )  # fmt: skip
        w = (b - 1.0) / 19.0  # the hull: a mixture of cheap alone and strong alone at the same spend
        hull = (1 - w) * r.mean() + w * strong.mean()
        assert res.spend <= b + 1e-9
        assert res.quality > hull + 0.02
        assert res.escalated < 1 and (res.escalated > 0.1 or b < 9)  # at 9 per query it escalates


def test_replay_needs_escalation_rewards_when_it_escalates(data):
    model, r, c, _ = data
    pol = CascadePlanner(evidence=VoteEvidence(), model=model, budget_per_query=9.0, max_k=20,
                         escalate_cost=20.0)  # fmt: skip
    with pytest.raises(ConfigError, match="escalation_rewards"):
        replay_rounds(pol, r, answers=c, seeds=1)
    with pytest.raises(ConfigError, match="escalation_rewards"):
        replay_rounds(pol, r, answers=c, seeds=1, escalation_rewards=np.ones(3))
    assert replay_rounds(UniformRounds(k=1), r, seeds=1).escalated == 0.0


def test_planner_validates_before_spending(data):
    model, *_ = data
    with pytest.raises(ConfigError, match="fitted on 'answers'"):
        CascadePlanner(evidence=VerifierEvidence(prior=(1, 1)), model=model, budget_per_query=4.0, max_k=4,
                       escalate_cost=20.0).start(n=3)  # fmt: skip
    with pytest.raises(InfeasibleBudgetError):
        CascadePlanner(evidence=VoteEvidence(), model=model, budget_per_query=0.5, max_k=4,
                       escalate_cost=20.0).start(n=3)  # fmt: skip
    with pytest.raises(ConfigError, match="escalate_cost"):
        CascadePlanner(evidence=VoteEvidence(), model=model, budget_per_query=4.0, max_k=4,
                       escalate_cost=-1.0).start(n=3)  # fmt: skip


def test_without_a_strong_procedure_it_is_a_learned_stopping_rule():
    r, c, _ = synthetic(1200, seed=3)
    train, test = slice(0, 600), slice(600, 1200)
    verifier = CascadeModel().fit(r[train])  # no strong rewards: strong_ is 0, never worth a call
    assert not verifier.strong_.any()
    planner = CascadePlanner(evidence=VerifierEvidence(prior=(1, 1)), model=verifier, budget_per_query=3.0,
                             max_k=20, escalate_cost=None)  # fmt: skip
    rt = r[test]
    n = rt.shape[0]
    units, drawn = planner.start(n=n), np.zeros(n, dtype=np.int64)
    solved = np.zeros(n, dtype=bool)
    while units.any():
        assert not units[solved].any()  # a solved query's next sample gains nothing (the tables' 1 - 1e-9)
        q = np.repeat(np.arange(n), units)
        col = drawn[q] + (np.arange(q.size) - np.repeat(np.cumsum(units) - units, units))
        planner.observe(q, rt[q, col])
        solved |= np.bincount(q, weights=rt[q, col], minlength=n) > 0
        drawn += units
        units = planner.next_round()
    assert not planner.escalated_.any() and planner.spent_ <= 3.0 * n
    assert planner.spent_ > 2.0 * n  # the budget goes to the unsolved
    votes = CascadeModel().fit(r[train], answers=c[train])
    learned = replay_rounds(
        CascadePlanner(evidence=VoteEvidence(), model=votes, budget_per_query=3.0, max_k=20,
                       escalate_cost=None),
        rt, answers=c[test], seeds=4,
    )  # fmt: skip
    uniform = replay_rounds(UniformRounds(k=3, quality="vote"), rt, answers=c[test], seeds=4)
    assert learned.escalated == 0.0 and learned.spend <= 3.0 + 1e-9
    assert learned.quality > uniform.quality + 0.005  # agreement stops a query, scattered answers get more


def test_samples_the_policy_takes_whatever_they_show_go_out_in_one_round():
    r, c, _ = synthetic(1200, seed=4)
    votes = CascadeModel().fit(r[:600], answers=c[:600])
    planner = CascadePlanner(evidence=VoteEvidence(), model=votes, budget_per_query=12.0, max_k=20,
                             escalate_cost=None, max_rounds=3)  # fmt: skip
    res = replay_rounds(planner, r[600:], answers=c[600:], seeds=2)
    # one sample per query per round would cap a query at 2 + 1 + 1 = 4 samples in 3 rounds
    assert res.rounds <= 3 and 4.0 < res.spend <= 12.0
    action = np.zeros((1, 4, 4), dtype=np.int64)
    action[0, 1, :2] = action[0, 2, 1] = 1  # (1, *) samples; (2, 1) samples, (2, 0) and (2, 2) stop
    sure = CascadeModel.sure_samples(action)[0]
    assert sure[1, :2].tolist() == [1, 1] and sure[2, 1] == 1 and sure[2, 2] == 0


def test_a_stopping_rule_spreads_its_expected_samples_over_the_rounds_left():
    r, _, _ = synthetic(1200, seed=5)
    verifier = CascadeModel().fit(r[:600])

    def replay(rounds):
        return replay_rounds(CascadePlanner(evidence=VerifierEvidence(prior=(1, 1)), model=verifier,
                                            budget_per_query=3.0, max_k=20, escalate_cost=None,
                                            max_rounds=rounds), r[600:], seeds=2)  # fmt: skip

    few, many = replay(3), replay(20)
    # a success stops a query, so no sample is sure; one per round spent 1.56 of 3 per query here (0.853)
    assert few.rounds <= 3 and 2.2 < few.spend <= 3.0
    assert few.quality > many.quality - 0.03  # three rounds lose little against twenty


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 12),
    budget=st.floats(1.0, 25.0),
    big=st.one_of(st.none(), st.floats(1.0, 30.0)),
    rounds=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    votes=st.booleans(),
)
def test_no_window_exceeds_its_budget_and_every_query_is_answered(n, budget, big, rounds, seed, votes):
    rng = np.random.default_rng(seed)
    s = 6
    r = (rng.random((n + 8, s)) < rng.random((n + 8, 1))).astype(float)
    codes = np.where(r > 0, 0, rng.integers(1, 4, size=(n + 8, s)))
    strong = (rng.random(n + 8) < 0.8).astype(float)
    model = CascadeModel(orderings=2).fit(r, strong, answers=codes if votes else None)
    evidence = VoteEvidence() if votes else VerifierEvidence(prior=(1, 1))
    planner = CascadePlanner(evidence=evidence, model=model, budget_per_query=budget, max_k=s,
                             escalate_cost=big, max_rounds=rounds)  # fmt: skip
    units = planner.start(n=n)
    drawn = np.zeros(n, dtype=np.int64)
    for _ in range(50):
        assert planner.spent_ <= budget * n * (1 + 1e-9)
        if not units.any():
            break
        q = np.repeat(np.arange(n), units)
        col = drawn[q] + (np.arange(q.size) - np.repeat(np.cumsum(units) - units, units))
        planner.observe(q, (codes if votes else r)[q, col])
        drawn += units
        units = planner.next_round()
        assert not planner.escalated_[units > 0].any()  # an escalated query takes no more cheap samples
    assert planner.done_ and planner.rounds_ <= rounds + 1  # cheap rounds, then at most one of escalations
    if big is None:
        assert not planner.escalated_.any()  # no strong procedure: a stopping rule
    assert (planner.units_ >= 1).all() and (planner.units_ <= s).all()  # every query has an answer
    assert planner.spent_ <= budget * n * (1 + 1e-9)
