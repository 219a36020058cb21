"""Tests for adaptive_router.allocation.planning (PlanSpec, Planner, Ledger, Decision)."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from adaptive_router.allocation import Ladder, Ledger, Planner, PlanSpec, allocate
from adaptive_router.errors import ConfigError, InfeasibleBudgetError

BEST_OF_4 = Ladder.best_of_k(4)


def _curves(p: np.ndarray, max_k: int = 4) -> np.ndarray:
    return 1.0 - (1.0 - p[:, None]) ** np.arange(1, max_k + 1)[None, :]


# ---------------------------------------------------------------------- PlanSpec
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"budget_per_query": float("nan")}, ConfigError, "must be a finite number"),
        ({"budget_per_query": "2"}, ConfigError, "must be a finite number"),
        ({"budget_per_query": True}, ConfigError, "must be a finite number"),
        ({"budget_per_query": 0.5}, InfeasibleBudgetError, r"raise the budget to at least 1"),
        ({"budget_per_query": 2.0, "max_k": 0}, ConfigError, "max_k must be >= 1"),
        ({"budget_per_query": 2.0, "max_k": 1.5}, ConfigError, "max_k must be an int or None"),
    ],
)
def test_plan_spec_rejects_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        PlanSpec(BEST_OF_4, **kwargs)


def test_plan_spec_checks_the_cheapest_allowed_option_and_compares_by_value():
    ladder = Ladder(Ladder.best_of_k(3, cost=2.0).options[1:])  # k = 2, 3 only
    with pytest.raises(ConfigError, match="below every option's k"):
        PlanSpec(ladder, 10.0, max_k=1)
    with pytest.raises(ConfigError, match="must be an allocation Ladder"):
        PlanSpec([1, 2], 2.0)  # type: ignore[arg-type]
    assert PlanSpec(Ladder.best_of_k(4), 2) == PlanSpec(BEST_OF_4, 2.0)
    assert hash(PlanSpec(Ladder.best_of_k(4), 2)) == hash(PlanSpec(BEST_OF_4, 2.0))
    assert PlanSpec(BEST_OF_4, 2.0) != PlanSpec(BEST_OF_4, 2.0, max_k=2)


# ---------------------------------------------------------------------- the three paths
def test_window_matches_allocate_and_carries_the_balance():
    rng = np.random.default_rng(0)
    values = _curves(rng.uniform(size=16))
    planner, spec = Planner(), PlanSpec(BEST_OF_4, 2.0)
    decisions = planner.plan(spec, values)
    expected = allocate(values, BEST_OF_4.costs, 32.0)
    assert [d.index for d in decisions] == expected.choice.tolist()
    assert {d.allocator for d in decisions} == {"window"} and {d.window for d in decisions} == {16}
    assert decisions[0].shadow_price == pytest.approx(expected.shadow_price)
    ledger = planner.ledger(spec)
    assert ledger.queries == 16 and ledger.allocated == pytest.approx(expected.spend) and ledger.balance >= 0
    easy = planner.plan(spec, np.full((2, 4), 0.99))  # easy window: one sample each, 2 units carried
    assert [d.option.k for d in easy] == [1, 1]
    assert planner.ledger(spec).balance == pytest.approx(ledger.balance + 2.0)


def test_lone_query_threshold_and_uniform():
    planner, spec = Planner(), PlanSpec(BEST_OF_4, 3.0)
    (decision,) = planner.plan(spec, _curves(np.array([0.3])))
    assert decision.allocator == "threshold" and decision.window == 1 and decision.option.cost <= 3.0
    assert decision.chosen_value == decision.values[decision.index]
    uniform = planner.plan(spec, None, n=3)
    assert [(d.option.k, d.allocator, d.values) for d in uniform] == [(3, "uniform", None)] * 3
    assert planner.ledger(spec).queries == 4


@pytest.mark.parametrize("max_k", [None, 2])
def test_lone_query_problem_is_what_check_problem_makes(max_k):
    """A lone query's row is validated once (`Planner._values`); the problem the threshold then decides on
    is exactly the one ``check_problem`` would build from it."""
    from adaptive_router.allocation._validate import check_problem

    planner, spec = Planner(), PlanSpec(BEST_OF_4, 3.0, max_k=max_k)
    planner.plan(spec, _curves(np.array([0.5])))
    group = planner._groups[spec]
    for row in (_curves(np.array([0.3])), np.array([[0.2, np.nan, 0.5, 0.6]])):
        v = planner._values(group, row)
        fast, checked = Planner._problem(group, v), check_problem(v, group.costs, 0.0)
        assert fast.values is v and fast.costs is group.costs and fast.budget == checked.budget
        if checked.allowed is None:
            assert fast.allowed is None
        else:
            assert fast.allowed is not None and (fast.allowed == checked.allowed).all()


def test_max_k_masks_options_and_their_values():
    planner, spec = Planner(), PlanSpec(BEST_OF_4, 4.0, max_k=2)
    decisions = planner.plan(spec, _curves(np.array([0.1, 0.2, 0.3])))
    assert {d.option.k for d in decisions} == {2}
    assert decisions[0].values[2:] == (None, None)
    assert planner.plan(spec, None, n=1)[0].option.k == 2


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_spend_never_exceeds_the_budget_over_any_mix(seed):
    rng = np.random.default_rng(seed)
    planner = Planner()
    spec = PlanSpec(Ladder.grid({"cheap": 1.0, "expensive": 3.0}, max_k=3), float(rng.uniform(1.0, 6.0)))
    for _ in range(60):
        n = int(rng.choice([1, 1, 1, 2, 5, 9]))
        curves = {"cheap": _curves(rng.beta(0.5, 1.5, n), 3), "expensive": _curves(rng.beta(1.5, 0.5, n), 3)}
        planner.plan(spec, spec.ladder.values(curves))
        ledger = planner.ledger(spec)
        assert ledger.allocated <= ledger.granted + 1e-9
    assert planner.ledger(spec).queries > 60


def test_threshold_is_downgraded_to_what_the_ledger_holds():
    planner, spec = Planner(), PlanSpec(Ladder.routes({"cheap": 1.0, "expensive": 10.0}), 5.0)
    planner.calibrate(spec, np.array([[0.1, 0.9]] * 3 + [[0.9, 0.9]] * 7))  # escalate the 30% that are wrong
    wrong = np.array([[0.1, 0.9]])
    first = planner.plan(spec, wrong)[0]  # 5 units paid in, escalation costs 10: downgraded
    assert first.option.procedure == "cheap"
    second = planner.plan(spec, wrong)[0]  # 4 carried + 5 = 9 < 10: still cheap
    third = planner.plan(spec, wrong)[0]  # 8 + 5 = 13: escalates
    assert (second.option.procedure, third.option.procedure) == ("cheap", "expensive")
    assert planner.ledger(spec).allocated == 12.0 <= planner.ledger(spec).granted == 15.0


def test_reference_callback_calibrates_once_per_spec():
    seen: list[PlanSpec] = []

    def reference(spec: PlanSpec) -> np.ndarray:
        seen.append(spec)
        return _curves(np.linspace(0.05, 0.95, 20))

    planner = Planner(reference=reference)
    a, b = PlanSpec(BEST_OF_4, 2.0), PlanSpec(BEST_OF_4, 3.0)
    for spec in (a, a, b, a, b):
        planner.plan(spec, _curves(np.array([0.4])))
    assert seen == [a, b]


def test_fixed_records_a_choice_made_outside():
    planner, spec = Planner(), PlanSpec(Ladder.routes({"keep": 1.0, "escalate": 5.0}), 2.0)
    (decision,) = planner.fixed(spec, 0)
    assert (decision.allocator, decision.option.procedure, decision.values) == ("fixed", "keep", None)
    assert planner.ledger(spec) == Ledger(spec, queries=1, allocated=1.0)
    with pytest.raises(InfeasibleBudgetError, match="more than the budget holds"):
        planner.fixed(spec, 1)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (np.zeros((2, 3)), r"values must be \(n queries, 4 options\)"),
        (np.array([[0.1, np.inf, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4]]), "must be finite"),
        (np.array([[np.nan] * 4, [0.1, 0.2, 0.3, 0.4]]), "no allowed option with a value"),
    ],
)
def test_bad_values_are_clear_errors_and_leave_the_ledger(values, match):
    planner, spec = Planner(), PlanSpec(BEST_OF_4, 2.0)
    with pytest.raises(ConfigError, match=match):
        planner.plan(spec, values)
    assert planner.ledger(spec).queries == 0


# ---------------------------------------------------------------------- bounded state
def test_distinct_budgets_keep_at_most_max_groups():
    planner = Planner(max_groups=64)
    specs = [PlanSpec(BEST_OF_4, 1.0 + i / 1000) for i in range(5000)]
    for spec in specs:
        planner.plan(spec, _curves(np.array([0.5])))
    assert len(planner.ledgers()) == 64
    assert [ledger.spec for ledger in planner.ledgers()] == specs[-64:]
    assert planner.ledger(specs[0]) == Ledger(specs[0])  # forgotten: an empty ledger, never a negative one
    planner.plan(specs[-64], _curves(np.array([0.5])))  # use moves a spec to the most recent end
    assert planner.ledgers()[-1].spec == specs[-64]


def test_reference_rows_are_bounded():
    planner, spec = Planner(max_reference=8), PlanSpec(BEST_OF_4, 2.0)
    for _ in range(5):
        planner.plan(spec, _curves(np.random.default_rng(0).uniform(size=6)))
    group = planner._groups[spec]
    assert len(group.reference) == 8


def test_planner_holds_no_caller_objects():
    planner, spec = Planner(), PlanSpec(BEST_OF_4, 2.0)
    values = _curves(np.array([0.2, 0.7]))
    before = sys.getrefcount(values)
    planner.plan(spec, values)
    assert sys.getrefcount(values) == before


def test_thread_safety_of_the_ledger():
    planner, spec = Planner(), PlanSpec(BEST_OF_4, 2.5)
    rng = np.random.default_rng(1)
    windows = [_curves(rng.uniform(size=int(n))) for n in rng.integers(1, 6, size=200)]

    def work(chunk: list[np.ndarray]) -> None:
        for v in chunk:
            planner.plan(spec, v)

    threads = [threading.Thread(target=work, args=(windows[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger = planner.ledger(spec)
    assert ledger.queries == sum(len(v) for v in windows) and ledger.allocated <= ledger.granted + 1e-9


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_planner_settings(bad):
    with pytest.raises(ConfigError, match="max_groups must be an int >= 1"):
        Planner(max_groups=bad)


# ---------------------------------------------------------------------- reserve / settle (rounds)
def test_reserve_takes_the_balance_and_settle_returns_the_rest():
    planner = Planner()
    spec = PlanSpec(BEST_OF_4, budget_per_query=2.0)
    grant = planner.reserve(spec, None, n=3)
    assert (grant.units, grant.allocator, grant.price) == (6.0, "window", 0.0)
    assert planner.ledger(spec).balance == 0.0  # held while the rounds run: nothing else can spend it
    planner.settle(grant, 4.0)
    assert planner.ledger(spec).allocated == 4.0 and planner.ledger(spec).balance == 2.0
    second = planner.reserve(spec, None, n=1)
    assert second.units == 4.0  # its share plus the carried 2
    with pytest.raises(ConfigError, match="cannot settle a spend of 5"):
        planner.settle(second, 5.0)
    planner.settle(second, 4.0)
    with pytest.raises(ConfigError, match="settled already"):
        planner.settle(second, 0.0)
    assert planner.ledger(spec).allocated == 8.0 == planner.ledger(spec).granted


def test_concurrent_grants_never_share_units():
    planner = Planner()
    spec = PlanSpec(BEST_OF_4, budget_per_query=2.0)
    planner.settle(planner.reserve(spec, None, n=2), 0.0)  # 4 units carried
    a, b = planner.reserve(spec, None, n=1), planner.reserve(spec, None, n=1)
    assert (a.units, b.units) == (6.0, 2.0)
    planner.settle(b, 2.0)
    planner.settle(a, 6.0)
    assert planner.ledger(spec).allocated == planner.ledger(spec).granted == 8.0


def test_a_lone_grant_carries_the_threshold_price_and_settles_its_correction():
    planner = Planner()
    spec = PlanSpec(BEST_OF_4, budget_per_query=2.0)
    planner.plan(spec, _curves(np.array([0.1, 0.5, 0.9, 0.3])))
    grant = planner.reserve(spec, _curves(np.array([0.4])))
    assert grant.allocator == "threshold" and 0 < grant.price < np.inf and grant.planned >= 1.0
    decision = grant.decision(1, 0)
    assert decision.option.k == 2 and decision.allocator == "threshold"
    assert decision.shadow_price == grant.price
    planner.settle(grant, 1.0)
    assert planner.ledger(spec).queries == 5


def test_settling_a_forgotten_spec_forfeits_the_rest():
    planner = Planner(max_groups=1)
    spec, other = PlanSpec(BEST_OF_4, budget_per_query=2.0), PlanSpec(BEST_OF_4, budget_per_query=3.0)
    grant = planner.reserve(spec, None, n=2)
    planner.plan(other, None, n=1)  # forgets spec
    planner.settle(grant, 1.0)
    assert planner.ledger(spec).queries == 0  # a fresh ledger gets no refund it never granted


def test_charge_spends_the_balance_without_adding_a_query():
    planner, spec = Planner(), PlanSpec(Ladder.routes({"cheap": 1.0, "expensive": 4.0}), 3.0)
    planner.plan(spec, None, n=2)  # cheap twice: 4 units left
    assert planner.charge(spec, 4.0) is True
    assert planner.ledger(spec) == Ledger(spec, queries=2, allocated=6.0)
    assert planner.charge(spec, 0.5) is False  # nothing left: all or nothing, the ledger unchanged
    assert planner.ledger(spec) == Ledger(spec, queries=2, allocated=6.0)
    assert planner.charge(PlanSpec(spec.ladder, 5.0), 1.0) is False  # a spec never planned holds nothing


def test_charge_never_takes_reserved_units_and_rejects_bad_costs():
    planner, spec = Planner(), PlanSpec(BEST_OF_4, budget_per_query=2.0)
    grant = planner.reserve(spec, None, n=2)
    assert planner.charge(spec, 1.0) is False  # the whole balance is the grant's
    planner.settle(grant, 3.0)
    assert planner.charge(spec, 1.0) is True and planner.ledger(spec).balance == 0.0
    for bad in (-1.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ConfigError, match="a charge must be a finite number of units >= 0"):
            planner.charge(spec, bad)


def test_concurrent_charges_never_overspend():
    planner, spec = Planner(), PlanSpec(Ladder.routes({"cheap": 1.0, "expensive": 3.0}), 2.0)
    planner.plan(spec, None, n=10)  # 10 units left: three charges of 3 fit, the fourth does not
    granted: list[bool] = []

    def work() -> None:
        for _ in range(5):
            granted.append(planner.charge(spec, 3.0))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger = planner.ledger(spec)
    assert sum(granted) == 3 and ledger.allocated == 19.0 and ledger.allocated <= ledger.granted
