"""WindowAllocator and ThresholdAllocator: ledger invariants and long-stream drift."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.allocation import ThresholdAllocator, WindowAllocator, allocate
from adaptive_router.errors import ConfigError, InfeasibleBudgetError, NotFittedError

K = np.arange(1, 9)
COSTS = K.astype(float)


def ladders(rng, n, a=0.5, b=1.5):
    """Best-of-1..8 curves of queries with success rates drawn from Beta(a, b)."""
    p = rng.beta(a, b, size=(n, 1))
    return rng.uniform(0.5, 1.0, size=(n, 1)) * (1 - (1 - p) ** K)


def test_window_allocator_never_spends_more_than_granted():
    rng = np.random.default_rng(0)
    wa = WindowAllocator(budget_per_query=2.5).reset()
    for _ in range(60):
        n = int(rng.integers(1, 40))
        available = wa.balance_ + 2.5 * n
        r = wa.allocate(ladders(rng, n), COSTS)
        assert r.spend <= available
        assert wa.balance_ >= 0.0
        assert wa.spent_ <= wa.granted_ + 1e-9
    assert wa.windows_ == 60
    # Unit steps: less than one unit is ever left unspent.
    assert wa.balance_ < 1.0


def test_window_allocator_carries_unspent_budget():
    wa = WindowAllocator(budget_per_query=3.0)
    easy = np.tile([0.9, 0.9, 0.9], (2, 1))
    assert wa.allocate(easy, [1.0, 2.0, 3.0]).spend == 2.0
    assert wa.balance_ == 4.0
    hard = np.tile([0.1, 0.3, 0.5], (2, 1))
    r = wa.allocate(hard, [1.0, 2.0, 3.0])
    assert r.spend == 6.0 and wa.balance_ == 4.0  # capped by the best option, carry kept
    joint = allocate(hard, [1.0, 2.0, 3.0], 10.0)
    assert joint.spend == r.spend


def test_window_allocator_infeasible_leaves_ledger_untouched():
    wa = WindowAllocator(budget_per_query=1.0, min_cost=2.0)
    with pytest.raises(InfeasibleBudgetError, match=r"window of 2 queries: .*carried balance 0"):
        wa.allocate(np.ones((2, 3)), [1.0, 2.0, 3.0])
    assert wa.granted_ == 0.0 and wa.spent_ == 0.0 and wa.n_seen_ == 0


def test_window_allocator_settle_charges_overruns():
    wa = WindowAllocator(budget_per_query=2.0)
    wa.allocate(np.tile([0.1, 0.5], (2, 1)), [1.0, 2.0])
    wa.settle(planned=4.0, actual=3.0)
    assert wa.balance_ == 1.0
    r = wa.allocate(np.tile([0.1, 0.5], (1, 1)), [1.0, 2.0])
    assert r.spend == 2.0 and wa.balance_ == 1.0


def test_threshold_allocator_calibrates_expected_spend():
    rng = np.random.default_rng(1)
    ref = ladders(rng, 3000)
    ta = ThresholdAllocator(budget_per_query=3.0).fit(ref, COSTS)
    assert ta.expected_spend_ == pytest.approx(3.0)
    assert np.all(np.diff(ta.thresholds_) < 0) and np.all(np.diff(ta.spend_at_) > 0)
    # λ agrees with the window optimum on the reference set
    joint = allocate(ref, COSTS, 3.0 * 3000)
    assert ta.shadow_price_ == pytest.approx(joint.shadow_price, rel=0.05)


@pytest.mark.parametrize("horizon", [16.0, 256.0])
def test_threshold_allocator_long_stream_drift(horizon):
    rng = np.random.default_rng(2)
    ta = ThresholdAllocator(budget_per_query=3.0, horizon=horizon).fit(ladders(rng, 3000), COSTS)
    spend = np.array([ta.choose(row).spend for row in ladders(rng, 6000)])
    drift = spend.mean() / 3.0 - 1.0
    assert abs(drift) < 0.01
    assert ta.n_seen_ == 6000 and ta.spent_ == pytest.approx(spend.sum())


def test_threshold_allocator_corrects_a_distribution_shift():
    rng = np.random.default_rng(3)
    ta = ThresholdAllocator(budget_per_query=3.0, horizon=64).fit(ladders(rng, 3000), COSTS)
    stream = ladders(rng, 6000, a=2.0, b=1.0)  # much easier queries than the reference
    spend = np.array([ta.choose(row).spend for row in stream])
    uncorrected = ThresholdAllocator(budget_per_query=3.0, horizon=1e12).fit(ladders(rng, 3000), COSTS)
    raw = np.array([uncorrected.choose(row).spend for row in stream])
    assert abs(spend.mean() / 3.0 - 1.0) < 0.05
    assert abs(spend.mean() - 3.0) < abs(raw.mean() - 3.0)


def test_threshold_allocator_dithers_identical_fallback_rows():
    population = ladders(np.random.default_rng(4), 500).mean(axis=0)
    ta = ThresholdAllocator(budget_per_query=2.5).fit(np.tile(population, (50, 1)), COSTS)
    spend = np.array([ta.choose(population).spend for _ in range(400)])
    assert set(np.unique(spend)) <= {2.0, 3.0}
    assert spend.mean() == pytest.approx(2.5, abs=0.01)


def test_threshold_allocator_batches_and_respects_limits():
    rng = np.random.default_rng(5)
    ta = ThresholdAllocator(budget_per_query=3.0, max_cost=4.0).fit(ladders(rng, 500), COSTS)
    r = ta.choose(ladders(rng, 32), COSTS)
    assert len(r) == 32 and (r.cost <= 4.0).all()
    assert r.spend == pytest.approx(r.cost.sum())


@pytest.mark.parametrize("absent", [False, True])
def test_threshold_choose_checked_matches_choose(absent):
    """The validated-problem path decides, spends and books exactly as `choose`, row after row."""
    from adaptive_router.allocation._validate import check_problem

    rng = np.random.default_rng(7)
    reference = ladders(rng, 300)
    a = ThresholdAllocator(budget_per_query=3.0).fit(reference, COSTS)
    b = ThresholdAllocator(budget_per_query=3.0).fit(reference, COSTS)
    for row in ladders(rng, 200):
        if absent:
            row[rng.random(row.size) < 0.3] = np.nan
            row[0] = 0.1
        x = a.choose(row)
        y = b.choose_checked(check_problem(row[None, :], COSTS, 0.0))
        assert (x.choice.tolist(), x.spend, x.value, x.shadow_price) == (
            y.choice.tolist(), y.spend, y.value, y.shadow_price,
        )  # fmt: skip
        assert (a.balance_, a.dither_, a.n_seen_) == (b.balance_, b.dither_, b.n_seen_)
    with pytest.raises(NotFittedError, match="call fit"):
        ThresholdAllocator(budget_per_query=3.0).choose_checked(check_problem(reference[:1], COSTS, 0.0))


def test_plain_lone_row_choice_matches_segments():
    """A lone row that `segments` reads as it is gets its option in plain floats: the same option (and cost,
    value) the segments give at every threshold; any other row is left to them."""
    from adaptive_router.allocation._segments import segments, take
    from adaptive_router.allocation._validate import check_problem
    from adaptive_router.allocation.streaming import _plain_choice

    rng = np.random.default_rng(8)
    rows = [*ladders(rng, 150), *rng.uniform(0, 1, size=(150, 8)), np.full(8, 0.5), np.linspace(1, 0, 8)]
    plain = 0
    for row in rows:
        p = check_problem(row[None, :], COSTS, 0.0)
        seg = segments(p)
        for lam in (float("inf"), 1.0, 0.1, 0.05, 0.01, 1e-6, *np.unique(seg.key)[:3].tolist()):
            lone = _plain_choice(p, lam)
            if lone is None:
                assert seg.general.size  # only rows the segments treat as general are refused
                continue
            plain += 1
            choice = seg.choice_from((seg.key >= lam) & (seg.key > 0))
            j = int(choice[0])
            assert lone == (j, float(take(p.costs, choice)[0]), float(take(p.values, choice)[0]), lam)
    assert plain > 1000
    for p in (
        check_problem(np.array([[0.1, np.nan, 0.3]]), COSTS[:3], 0.0),  # an absent option
        check_problem(np.array([[0.1, 0.2, 0.3]]), [1.0, 1.0, 2.0], 0.0),  # a cost that does not rise
        check_problem(np.array([[0.1, 0.2, 0.3]]), np.ones((1, 3)).cumsum(axis=1), 0.0),  # per-query costs
        check_problem(np.array([[0.1, 0.2, 0.3]]), COSTS[:3], 0.0, max_cost=2.0),  # a limit
    ):
        assert _plain_choice(p, 0.01) is None
    assert _plain_choice(check_problem(np.array([[0.4]]), [2.0], 0.0), 0.5) == (0, 2.0, 0.4, 0.5)


def test_threshold_bracket_reads_the_fitted_levels():
    ta = ThresholdAllocator(budget_per_query=3.0).fit(ladders(np.random.default_rng(9), 300), COSTS)
    for target in (0.0, 1.0, ta.base_spend_, 2.5, 3.0, *ta.spend_at_[:5].tolist(), 8.0, 100.0):
        i = int(np.searchsorted(ta.spend_at_, target, side="right")) - 1
        lam, spend, lam_next, frac = ta._bracket(target)
        assert lam == (float(ta.thresholds_[i]) if i >= 0 else float("inf"))
        assert spend == (float(ta.spend_at_[i]) if i >= 0 else ta.base_spend_)
        if i + 1 < ta.thresholds_.size:
            assert lam_next == float(ta.thresholds_[i + 1]) and 0.0 <= frac <= 1.0
        else:
            assert (lam_next, frac) == (lam, 0.0)


def test_threshold_allocator_errors():
    ta = ThresholdAllocator(budget_per_query=3.0)
    with pytest.raises(NotFittedError, match="call fit"):
        ta.choose(np.ones(8))
    with pytest.raises(InfeasibleBudgetError, match="below 2, the mean cost"):
        ThresholdAllocator(budget_per_query=1.0, min_cost=2.0).fit(np.ones((3, 8)), COSTS)
    with pytest.raises(ConfigError, match="horizon=0"):
        ThresholdAllocator(budget_per_query=1.0, horizon=0).fit(np.ones((3, 8)), COSTS)
    with pytest.raises(ConfigError, match="budget_per_query=-1"):
        WindowAllocator(budget_per_query=-1).allocate(np.ones((3, 8)), COSTS)


def test_threshold_refit_keeps_the_ledger_and_reset_clears_it():
    rng = np.random.default_rng(6)
    ta = ThresholdAllocator(budget_per_query=3.0).fit(ladders(rng, 500), COSTS)
    for row in ladders(rng, 50):
        ta.choose(row)
    balance, seen = ta.balance_, ta.n_seen_
    ta.fit(ladders(rng, 1000), COSTS)
    assert ta.balance_ == balance and ta.n_seen_ == seen == 50
    ta.reset()
    assert ta.balance_ == 0.0 and ta.n_seen_ == 0
