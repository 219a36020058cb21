from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from adaptive_router.errors import ConfigError, NotFittedError, ProbeFormatError
from adaptive_router.predictors import PopulationPredictor
from adaptive_router.probe.estimator import CurveProbe


def test_fit_predict_is_deterministic(binary_data, fast) -> None:
    X, _, y, _ = binary_data
    a = CurveProbe(max_k=4, budgets=(2,), seed=3, **fast).fit(X, y).predict_curves(X[:20])["gen"]
    b = CurveProbe(max_k=4, budgets=(2,), seed=3, **fast).fit(X, y).predict_curves(X[:20])["gen"]
    np.testing.assert_array_equal(a, b)


def test_informative_features_keep_adaptive_allocation(binary_data, fast) -> None:
    X, _, y, p = binary_data
    est = CurveProbe(max_k=8, budgets=(2, 4), **fast).fit(X, y)
    assert not est.fallback_, est.report_["fallback_reason"]
    assert est.shrinkage_ > 0
    curves = est.predict_curves(X)["gen"]
    assert np.corrcoef(curves[:, 0], p)[0, 1] > 0.8
    d = np.diff(curves, axis=1)
    assert (d >= -1e-9).all() and (np.diff(d, axis=1) <= 1e-9).all()
    for row in est.report_["allocation"]:
        assert row["adaptive"] >= row["uniform"]
    assert "calibration" in est.report_ and 0 < est.report_["brier"] < est.report_["brier_population"]


def test_pure_noise_features_fall_back_to_population(binary_data, caplog, fast) -> None:
    _, noise, y, _ = binary_data
    with caplog.at_level(logging.WARNING, logger="adaptive_router.probe"):
        est = CurveProbe(max_k=8, budgets=(2, 4), **fast).fit(noise, y)
    assert est.fallback_
    assert "falls back to uniform allocation" in caplog.text
    curves = est.predict_curves(noise[:5])["gen"]
    np.testing.assert_allclose(curves, np.broadcast_to(est.population_curve_[0], (5, 8)))
    assert est.report_["fallback_reason"]


def test_fallback_modes(binary_data, fast) -> None:
    X, noise, y, _ = binary_data
    assert CurveProbe(max_k=4, budgets=(2,), fallback="always", **fast).fit(X, y).fallback_
    est = CurveProbe(max_k=4, budgets=(2,), fallback="never", **fast).fit(noise, y)
    assert not est.fallback_ and "fallback disabled" in est.report_["fallback_reason"]


def test_continuous_curve_labels(fast) -> None:
    rng = np.random.default_rng(1)
    n, K = 300, 4
    X = rng.normal(size=(n, 6))
    mu = X[:, 0]
    rewards = mu[:, None] + rng.normal(size=(n, 8))  # best-of-k gain grows with the noise, level with mu
    from adaptive_router.curves import expected_best_of_k

    est = CurveProbe(max_k=K, budgets=(2,), **fast).fit(X, {"gen": expected_best_of_k(rewards, K)})
    assert est.label_kind_ == "curve"
    c = est.predict_raw_curves(X)[:, 0, :]
    assert np.corrcoef(c[:, 0], mu)[0, 1] > 0.8
    d = np.diff(c, axis=1)
    assert (d >= -1e-6).all() and (np.diff(d, axis=1) <= 1e-6).all()


def test_routing_labels_fall_back_to_best_fixed_mix(caplog, fast) -> None:
    rng = np.random.default_rng(2)
    n = 300
    noise = rng.normal(size=(n, 5))
    y = {"cheap": (rng.binomial(1, 0.6, n), np.ones(n)), "strong": (rng.binomial(1, 0.8, n), np.ones(n))}
    with caplog.at_level(logging.WARNING, logger="adaptive_router.probe"):
        est = CurveProbe(max_k=1, budgets=(1.5,), costs={"cheap": 1, "strong": 2}, **fast).fit(noise, y)
    assert est.fallback_ and "best fixed mix" in caplog.text
    curves = est.predict_curves(noise[:3])
    assert set(curves) == {"cheap", "strong"}
    assert np.ptp(curves["strong"][:, 0]) == 0 and curves["strong"][0, 0] > curves["cheap"][0, 0]


def test_not_fitted_and_bad_inputs(binary_data, fast) -> None:
    X, _, y, _ = binary_data
    with pytest.raises(NotFittedError, match="call fit"):
        CurveProbe().predict_curves(X)
    with pytest.raises(ConfigError, match="label_kind='x' is not one of"):
        CurveProbe(label_kind="x").fit(X, y)
    with pytest.raises(ConfigError, match="successes <= samples"):
        CurveProbe(**fast).fit(X, {"gen": (np.full(len(X), 9), np.full(len(X), 8))})
    with pytest.raises(ConfigError, match="need at least 12 queries"):
        CurveProbe(**fast).fit(X[:5], {"gen": (y["gen"][0][:5], y["gen"][1][:5])})
    with pytest.raises(ConfigError, match=r"X must be \(n, 8\)"):
        CurveProbe(max_k=2, budgets=(1,), **fast).fit(X, y).predict_raw_curves(X[:, :3])


def test_negative_l2_is_rejected() -> None:
    with pytest.raises(ConfigError, match="l2 must be"):
        CurveProbe(l2=-0.1).fit(np.zeros((40, 2)), {"g": (np.zeros(40), np.ones(40))})


@pytest.mark.parametrize("neighbors", [0, 15])
def test_fitted_state_round_trips(binary_data, fast, neighbors) -> None:
    X, _, y, _ = binary_data
    est = CurveProbe(max_k=4, budgets=(2,), neighbors=neighbors, **fast).fit(X, y)
    arrays, params = est.fitted_state()
    json.dumps(params)  # the parameters are plain JSON
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    assert ("neighbors.reference" in arrays) == bool(neighbors)
    back = CurveProbe.from_fitted_state(arrays, json.loads(json.dumps(params)))
    np.testing.assert_allclose(
        back.predict_curves(X[:20])["gen"], est.predict_curves(X[:20])["gen"], rtol=1e-6
    )
    assert (back.shrinkage_, back.fallback_, back.neighbor_weight_) == (
        est.shrinkage_, est.fallback_, est.neighbor_weight_
    )
    assert back.get_params() == est.get_params()


def test_fitted_state_of_curve_labels_round_trips(fast) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 4))
    curves = np.clip(0.5 + 0.2 * X[:, :1] + 0.1 * np.arange(3), 0, 1)
    est = CurveProbe(max_k=3, budgets=(2,), fallback="never", **fast).fit(X, {"gen": curves})
    back = CurveProbe.from_fitted_state(*est.fitted_state())
    assert back.label_kind_ == "curve" and not hasattr(back, "population_alpha_")
    np.testing.assert_allclose(back.predict_curves(X[:5])["gen"], est.predict_curves(X[:5])["gen"], rtol=1e-6)


def test_broken_fitted_state_is_refused(binary_data, fast) -> None:
    X, _, y, _ = binary_data
    arrays, params = CurveProbe(max_k=2, budgets=(1.5,), **fast).fit(X, y).fitted_state()
    with pytest.raises(ProbeFormatError, match=r"lacks \['shrinkage'\]"):
        CurveProbe.from_fitted_state(arrays, {k: v for k, v in params.items() if k != "shrinkage"})
    with pytest.raises(ProbeFormatError, match="population_curve has shape"):
        CurveProbe.from_fitted_state({**arrays, "population_curve": np.zeros((1, 5))}, params)
    with pytest.raises(ProbeFormatError, match="does not fit together"):
        CurveProbe.from_fitted_state({k: v for k, v in arrays.items() if not k.startswith("fold0.")}, params)


def test_a_fallen_back_probe_predicts_with_its_population_predictor(binary_data, fast) -> None:
    X, _, y, _ = binary_data
    est = CurveProbe(max_k=4, budgets=(2,), fallback="always", **fast).fit(X, y)
    assert isinstance(est.population_, PopulationPredictor)
    np.testing.assert_array_equal(
        est.predict_curves(X[:7])["gen"], est.population_.predict_curves(X[:7])["gen"]
    )
    np.testing.assert_allclose(est.population_.curve_["gen"], est.population_curve_[0])


def test_a_shrinkage_override_reads_the_prediction_past_the_fallback(binary_data, fast) -> None:
    X, _, y, p = binary_data
    est = CurveProbe(max_k=4, budgets=(2,), fallback="always", **fast).fit(X, y)
    assert est.oof_curves_.shape == (len(X), 1, 4)  # held-out curves of the training queries
    assert np.corrcoef(est.oof_curves_[:, 0, 0], p)[0, 1] > 0.5
    raw = est.predict_raw_curves(X[:7])[:, 0, :]
    np.testing.assert_allclose(est.predict_curves(X[:7], shrinkage=1.0)["gen"], raw)
    half = est.predict_curves(X[:7], shrinkage=0.5)["gen"]
    np.testing.assert_allclose(half, 0.5 * raw + 0.5 * est.population_curve_[0])
    np.testing.assert_allclose(est.predict_curves(X[:7], shrinkage=0.0)["gen"],
                               est.predict_curves(X[:7])["gen"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"shrinkage must be in \[0, 1\]"):
        est.predict_curves(X[:7], shrinkage=1.5)
