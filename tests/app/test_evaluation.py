"""Tests for adaptive_router.app.evaluation: replaying outcomes under each allocation method."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.app.evaluation import evaluate_allocation, parse_costs
from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.outcomes import OutcomeSet
from adaptive_router.predictors import PopulationPredictor


def _best_of_k_set(p, samples=8, seed=0):
    rng = np.random.default_rng(seed)
    objs = []
    for i, pi in enumerate(p):
        c = int(rng.binomial(samples, pi))
        objs.append(
            {"id": f"q{i}", "prompt": f"q{i}", "outcomes": {"m": {"successes": c, "samples": samples}}}
        )
    return OutcomeSet.from_dicts(objs)


def _mixed_difficulty(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice([0.0, 0.05, 0.3, 0.9], size=n)


def test_oracle_beats_adaptive_beats_uniform_and_spend_is_budget():
    s = _best_of_k_set(_mixed_difficulty())
    true = s.true_curves(4)
    noisy = {"m": np.clip(true["m"] + np.random.default_rng(1).normal(0, 0.05, true["m"].shape), 0, 1)}
    rep = evaluate_allocation(s, budgets=[1, 2, 3], predicted=noisy, max_k=4)
    m = rep["methods"]
    assert rep["kind"] == "best_of_k" and rep["n_queries"] == 200
    np.testing.assert_allclose(m["uniform"]["spend"], [1, 2, 3])
    for i in range(3):
        assert m["oracle"]["quality"][i] >= m["adaptive"]["quality"][i] - 1e-9
        assert m["oracle"]["spend"][i] <= [1, 2, 3][i] + 1e-9
        assert m["adaptive"]["spend"][i] <= [1, 2, 3][i] + 1e-9
    assert m["uniform"]["savings"] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert m["oracle"]["savings"][1] > 0.2
    assert m["adaptive"]["quality"][1] > m["uniform"]["quality"][1]
    # uniform at B=1 is the mean single-sample reward
    assert m["uniform"]["quality"][0] == pytest.approx(true["m"][:, 0].mean())
    one_shot = {"hull", "best_single", "uniform", "random", "adaptive", "oracle"}
    assert {r["method"] for r in rep["table"]} == one_shot
    assert len(rep["table"]) == 18 and rep["routing"] is None


def test_savings_formula_matches_known_curve():
    # every query identical: 1 - (1 - 0.5)^k; oracle = uniform, so savings 0; a fractional budget mixes
    s = _best_of_k_set([0.5] * 50, samples=4, seed=0)
    rep = evaluate_allocation(s, budgets=[1.5], max_k=4, random_seeds=1)
    q = s.true_curves(4)["m"].mean(axis=0)
    assert rep["methods"]["uniform"]["quality"][0] == pytest.approx((q[0] + q[1]) / 2)
    needed = rep["methods"]["oracle"]["budget_to_match_hull"][0]
    assert rep["methods"]["oracle"]["savings"][0] == pytest.approx(1 - needed / 1.5)
    assert needed <= 1.5 + 1e-9


def test_routing_share_perfect_router():
    # cheap right on 60%, expensive right on 80% (a superset): a perfect router needs 20% expensive calls
    # to reach 100% of the expensive quality, so 95% of it (0.76) needs 16%.
    n = 100
    objs = []
    for i in range(n):
        cheap = 1.0 if i < 60 else 0.0
        exp = 1.0 if i < 80 else 0.0
        objs.append(
            {
                "id": str(i),
                "prompt": str(i),
                "outcomes": {"weak": [{"reward": cheap}], "strong": [{"reward": exp}]},
                "cost": {"weak": 1.0, "strong": 10.0},
            }
        )
    s = OutcomeSet.from_dicts(objs)
    rep = evaluate_allocation(s, budgets=[2.8], random_seeds=3)
    r = rep["routing"]
    assert rep["kind"] == "routing" and r["expensive"] == "strong" and r["cheap"] == "weak"
    assert r["expensive_quality"] == pytest.approx(0.8)
    assert r["expensive_share"]["oracle"] == pytest.approx(0.16, abs=0.01)
    assert r["expensive_share"]["uniform"] == pytest.approx((0.76 - 0.6) / 0.2)
    assert r["expensive_share"]["hull"] == pytest.approx((0.76 - 0.6) / 0.2)  # exact, not in whole queries
    assert r["expensive_share"]["best_single"] == 1.0 and r["cost_savings"]["best_single"] == 0.0
    assert r["cost_savings"]["hull"] == pytest.approx(1 - (1 + 0.8 * 9) / 10)
    # budget 2.8 = 20% expensive calls: the oracle reaches 0.8, uniform 0.64
    assert rep["methods"]["oracle"]["quality"][0] == pytest.approx(0.8)
    assert rep["methods"]["uniform"]["quality"][0] == pytest.approx(0.64)


def test_routing_without_costs_assumes_ratio():
    objs = [
        {"id": str(i), "prompt": "x", "outcomes": {"a": [{"reward": float(i % 2)}], "b": [{"reward": 1.0}]}}
        for i in range(20)
    ]
    rep = evaluate_allocation(OutcomeSet.from_dicts(objs), budgets=[2.0], random_seeds=1)
    assert rep["costs_assumed"] is True
    assert rep["costs"] == {"a": 1.0, "b": 10.0}


def test_errors_name_the_fix():
    s = _best_of_k_set([0.5] * 10, samples=2)
    with pytest.raises(ConfigError, match="max_k=4 but some queries recorded only 2 sample"):
        evaluate_allocation(s, budgets=[1], max_k=4)
    with pytest.raises(ConfigError, match="budgets must be positive"):
        evaluate_allocation(s, budgets=[0])
    with pytest.raises(ConfigError, match="lack procedures"):
        evaluate_allocation(s, budgets=[1], predicted={"other": np.zeros((10, 2))})
    with pytest.raises(ConfigError, match="rows for 10 queries"):
        evaluate_allocation(s, budgets=[1], predicted={"m": np.zeros((3, 2))})
    with pytest.raises(ConfigError, match="write costs as name=number"):
        parse_costs("cheap:1")
    assert parse_costs("a=1,b=2.5") == {"a": 1.0, "b": 2.5}


def _routing_set(n=300, seed=0, p_cheap=0.6, p_strong=0.85):
    rng = np.random.default_rng(seed)
    objs = [
        {
            "id": f"r{seed}-{i}",
            "prompt": f"r{seed}-{i}",
            "outcomes": {"weak": [{"reward": float(rng.random() < p_cheap)}],
                         "strong": [{"reward": float(rng.random() < p_strong)}]},
            "cost": {"weak": 1.0, "strong": 10.0},
        }
        for i in range(n)
    ]
    return OutcomeSet.from_dicts(objs)


class _Recorder:
    """A CurvePredictor that records its calls (the evaluation must check budgets before asking it)."""

    def __init__(self, curves):
        self.curves, self.calls = curves, 0
        self.procedures, self.max_k, self.fallback_active = tuple(curves), 1, False

    def predict_curves(self, texts):
        self.calls += 1
        return self.curves


def test_budgets_below_the_cheapest_option_are_refused_before_any_work():
    """Regression: a budget of 0.5 used to be replayed at the cheapest option's cost and reported as 1.00."""
    s = _routing_set(40)
    probe = _Recorder({p: c.copy() for p, c in s.true_curves(1).items()})
    with pytest.raises(InfeasibleBudgetError, match=r"budgets \[0\.5\] are below the cheapest option "
                                                    r"\('weak' x1, cost 1\).*use budgets >= 1"):
        evaluate_allocation(s, budgets=[0.5, 2.0], predicted=probe)
    assert probe.calls == 0
    rep = evaluate_allocation(s, budgets=[1.0, 2.0], predicted=probe)
    assert probe.calls == 1 and rep["methods"]["adaptive"]["quality"] == rep["methods"]["oracle"]["quality"]


@pytest.mark.parametrize("kind", ["best_of_k", "routing"])
def test_a_probe_without_information_reports_exactly_uniform(kind):
    if kind == "routing":
        train, test = _routing_set(300, 1), _routing_set(301, 2)
        budgets, max_k = [1.0, 2.0, 4.0, 6.5, 10.0], None
    else:
        train = _best_of_k_set(_mixed_difficulty(300, 1))
        test = _best_of_k_set(_mixed_difficulty(301, 2), seed=3)
        budgets, max_k = [1.0, 1.5, 2.0, 3.7], 4
    fallen_back = PopulationPredictor().fit(train.true_curves(4 if max_k else 1))  # the training population
    rep = evaluate_allocation(test, budgets=budgets, predicted=fallen_back, max_k=max_k)
    u, a = rep["methods"]["uniform"], rep["methods"]["adaptive"]
    for key in ("quality", "spend", "option_shares", "savings", "budget_to_match_hull"):
        assert a[key] == u[key], key
    assert rep["sweep"]["quality"]["adaptive"] == rep["sweep"]["quality"]["uniform"]
    if kind == "routing":
        assert rep["routing"]["expensive_share"]["adaptive"] == rep["routing"]["expensive_share"]["uniform"]


def test_uniform_mixes_the_fixed_policy_hull_for_three_procedures():
    rng = np.random.default_rng(5)
    n = 400
    means = {"small": 0.5, "medium": 0.52, "large": 0.9}  # medium lies below the small-large chord
    objs = [
        {"id": str(i), "prompt": str(i),
         "outcomes": {p: [{"reward": float(rng.random() < q)}] for p, q in means.items()},
         "cost": {"small": 1.0, "medium": 5.0, "large": 10.0}}
        for i in range(n)
    ]
    s = OutcomeSet.from_dicts(objs)
    rep = evaluate_allocation(s, budgets=[3.0, 7.0], random_seeds=1)
    mean = {p: float(s.true_curves(1)[p].mean()) for p in means}
    shares = np.array(rep["methods"]["uniform"]["option_shares"])
    assert [o["procedure"] for o in rep["options"]] == ["small", "medium", "large"]
    # only the leftover (less than one 9-unit hull step) may buy moves off the hull: at most 2 of 4 units
    assert (shares[:, 1] * n <= 2 + 1e-9).all()
    for b, q in zip([3.0, 7.0], rep["methods"]["uniform"]["quality"], strict=True):
        p = (b - 1.0) / 9.0
        assert q == pytest.approx((1 - p) * mean["small"] + p * mean["large"], abs=3.0 / n)


_MODELS = {  # name: (dollars per million input, per million output tokens, accuracy): zig-zag by cost
    "tiny": (0.02, 0.05, 0.30),
    "small": (0.06, 0.15, 0.62),
    "mid": (0.15, 0.40, 0.45),
    "large": (0.40, 1.20, 0.70),
    "xl": (1.00, 3.00, 0.55),
    "frontier": (2.50, 10.0, 0.90),
    "luxury": (15.0, 60.0, 0.60),
}


def test_default_max_k_is_every_recorded_sample_up_to_8_or_40_for_votes():
    from adaptive_router.app.evaluation import DEFAULT_MAX_K, VOTE_MAX_K, default_max_k

    def data(samples, models=("m",)):
        return OutcomeSet.from_dicts([{"id": str(i), "prompt": str(i), "outcomes": {
            m: [{"reward": 1.0, "answer": "1"}] * samples for m in models}} for i in range(3)])  # fmt: skip

    assert default_max_k(data(50)) == DEFAULT_MAX_K == 8
    assert default_max_k(data(50), "vote") == VOTE_MAX_K == 40
    assert default_max_k(data(12), "vote") == 12 and default_max_k(data(5)) == 5
    assert default_max_k(data(12, ("a", "b")), "vote") == 1  # routing: one call per model


def _priced_set(n=400, seed=11):
    """Seven models, one sample each, with token counts (no recorded cost): the issue's N-model shape."""
    from adaptive_router.prices import PriceTable

    rng = np.random.default_rng(seed)
    objs = [
        {"id": str(i), "prompt": str(i),
         "outcomes": {m: [{"reward": float(rng.random() < acc), "input_tokens": 300, "output_tokens": 200}]
                      for m, (_, _, acc) in _MODELS.items()}}
        for i in range(n)
    ]
    return OutcomeSet.from_dicts(objs), PriceTable({m: (a, b) for m, (a, b, _) in _MODELS.items()})


def test_n_models_in_dollars_hull_best_single_and_savings_against_the_hull():
    s, prices = _priced_set()
    cost = {m: (300 * a + 200 * b) / 1e6 for m, (a, b, _) in _MODELS.items()}
    budgets = [2e-5, 1e-4, 3e-4, 1e-3, 5e-3]
    rep = evaluate_allocation(s, budgets=budgets, prices=prices, random_seeds=2)
    assert rep["cost_unit"] == "$" and rep["costs_priced"] and not rep["costs_assumed"]
    assert rep["costs"] == pytest.approx(cost)
    single = {d["procedure"]: d for d in rep["single_models"]}
    mean = {m: float(s.true_curves(1)[m].mean()) for m in _MODELS}
    assert {m: d["quality"] for m, d in single.items()} == pytest.approx(mean)
    assert [m for m, d in single.items() if d["on_hull"]] == ["tiny", "small", "large", "frontier"]
    hull, best, uni = (np.array(rep["methods"][m]["quality"]) for m in ("hull", "best_single", "uniform"))
    assert (np.diff(hull) >= 0).all() and (hull >= best - 1e-12).all() and (hull >= uni - 1e-12).all()
    # the sweep is log-spaced too (2.9 decades), and the hull never falls along it
    grid = np.array(rep["sweep"]["budgets"])
    assert (grid < 1e-4).sum() >= 10 and (np.diff(rep["sweep"]["quality"]["hull"]) >= -1e-12).all()
    # at 1e-3 per query the hull mixes large and frontier; the best single model there is large
    b = 1e-3
    w = (b - cost["large"]) / (cost["frontier"] - cost["large"])
    assert hull[3] == pytest.approx((1 - w) * mean["large"] + w * mean["frontier"])
    assert best[3] == pytest.approx(mean["large"])
    # the hull needs its own budget, up to the best model's cost: beyond it more money buys nothing
    assert rep["methods"]["hull"]["savings"] == pytest.approx(
        [1 - min(x, cost["frontier"]) / x for x in budgets], abs=1e-9
    )
    pairs = zip(rep["methods"]["best_single"]["savings"], rep["methods"]["hull"]["savings"], strict=True)
    assert all(x is None or x <= h + 1e-9 for x, h in pairs)  # no mixing: it needs at least the hull's
    assert rep["methods"]["oracle"]["savings"][2] > 0.3
    # AIQ over the cheapest to the dearest model: the hull's from the single models; the oracle above it
    lo, hi = rep["aiq_cost_range"]
    assert (lo, hi) == (pytest.approx(cost["tiny"]), pytest.approx(cost["luxury"]))
    assert rep["aiq"]["best_single"] == pytest.approx(rep["aiq"]["hull"], abs=1e-3)
    assert rep["aiq"]["oracle"] > rep["aiq"]["hull"] > rep["aiq"]["random"] - 0.02
    assert set(rep["aiq"]) == set(rep["methods"])
    # routing: the best single model is `frontier` (not the dearest); the hull's share is exact
    r = rep["routing"]
    assert r["expensive"] == "frontier" and r["expensive_quality"] == pytest.approx(mean["frontier"])
    goal = 0.95 * mean["frontier"]
    share = (goal - mean["large"]) / (mean["frontier"] - mean["large"])
    assert r["expensive_share"]["hull"] == pytest.approx(share)
    assert r["expensive_share"]["oracle"] < r["expensive_share"]["hull"]


def test_prices_and_costs_together_are_refused():
    s, prices = _priced_set(n=5)
    with pytest.raises(ConfigError, match="not both"):
        evaluate_allocation(s, budgets=[1e-3], prices=prices, costs={m: 1.0 for m in _MODELS})
