"""Tests for adaptive_router.predictors: the CurvePredictor protocol and the baseline predictors."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.errors import ConfigError, NotFittedError
from adaptive_router.predictors import CurvePredictor, OraclePredictor, PopulationPredictor, RandomPredictor


def _true(n: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    p = np.random.default_rng(seed).uniform(size=n)
    strong = 1 - (1 - p[:, None]) ** np.arange(1, 4)
    return {"cheap": 0.8 * strong, "strong": strong}


def test_every_baseline_is_a_curve_predictor() -> None:
    true = _true()
    texts = [f"q{i}" for i in range(50)]
    for pred in (
        PopulationPredictor().fit(true),
        RandomPredictor(procedures=("cheap", "strong"), max_k=3),
        OraclePredictor().fit(texts, true),
    ):
        assert isinstance(pred, CurvePredictor)
        curves = pred.predict_curves(texts)
        assert set(curves) == {"cheap", "strong"} and curves["strong"].shape == (50, 3)
        assert pred.procedures == ("cheap", "strong") and pred.max_k == 3


def test_population_predicts_the_mean_curve_in_every_row() -> None:
    true = _true()
    true["cheap"][0, 2] = np.nan  # one query without a third sample: left out of that k's mean
    pop = PopulationPredictor().fit(true)
    curves = pop.predict_curves(["a", "b"])
    np.testing.assert_allclose(curves["strong"], np.tile(true["strong"].mean(axis=0), (2, 1)))
    assert curves["cheap"][0, 2] == pytest.approx(np.mean(true["cheap"][1:, 2]))
    assert pop.fallback_active
    curves["strong"][0, 0] = -1.0  # the caller owns its copy
    assert pop.predict_curves(["a"])["strong"][0, 0] != -1.0
    fixed = PopulationPredictor.from_curve({"gen": [0.2, 0.3]})
    assert fixed.predict_curves(np.zeros((3, 5)))["gen"].tolist() == [[0.2, 0.3]] * 3


def test_population_errors() -> None:
    with pytest.raises(NotFittedError, match=r"call fit\(true_curves\) first"):
        PopulationPredictor().predict_curves(["a"])
    with pytest.raises(ConfigError, match="same n for every procedure"):
        PopulationPredictor().fit({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))})
    with pytest.raises(ConfigError, match="share one length K"):
        PopulationPredictor.from_curve({"a": [0.1], "b": [0.1, 0.2]})
    with pytest.raises(ConfigError, match="not one string"):
        PopulationPredictor.from_curve({"a": [0.1]}).predict_curves("text")


def test_random_curves_are_seeded_increasing_concave_and_ordered_by_procedure() -> None:
    texts = ["x"] * 200
    a = RandomPredictor(procedures=("cheap", "strong"), max_k=4, seed=7).predict_curves(texts)
    b = RandomPredictor(procedures=("cheap", "strong"), max_k=4, seed=7).predict_curves(texts)
    c = RandomPredictor(procedures=("cheap", "strong"), max_k=4, seed=8).predict_curves(texts)
    np.testing.assert_array_equal(a["strong"], b["strong"])
    assert not np.allclose(a["strong"], c["strong"])
    chain = np.concatenate([a["cheap"], a["strong"]], axis=1)  # cheap k=1..4 then strong k=1..4
    steps = np.diff(chain, axis=1)
    assert (steps >= 0).all() and (np.diff(steps, axis=1) <= 1e-12).all() and (chain <= 1.0).all()
    assert np.std(a["strong"][:, 0] - a["cheap"][:, 0]) > 0.01  # it ranks queries, at random
    with pytest.raises(ConfigError, match="max_k must be a positive integer"):
        RandomPredictor(procedures=("a",), max_k=0).predict_curves(texts)
    with pytest.raises(ConfigError, match="distinct names"):
        RandomPredictor(procedures=("a", "a"), max_k=1).predict_curves(texts)


def test_oracle_returns_each_querys_own_curve() -> None:
    true = {"gen": np.array([[0.0], [0.5], [1.0]])}
    oracle = OraclePredictor().fit(["x", "y", "x"], true)
    assert not oracle.fallback_active
    assert oracle.predict_curves(["x", "y", "x"])["gen"].ravel().tolist() == [0.0, 0.5, 1.0]
    assert oracle.predict_curves(["y", "x"])["gen"].ravel().tolist() == [0.5, 0.5]  # x: mean of its records
    with pytest.raises(ConfigError, match="knows only the 3 queries it was fit on; 1 text"):
        oracle.predict_curves(["new"])
    with pytest.raises(ConfigError, match="2 texts for curves of 3 queries"):
        OraclePredictor().fit(["x", "y"], true)
    with pytest.raises(NotFittedError, match="OraclePredictor is not fitted"):
        OraclePredictor().predict_curves(["x"])
