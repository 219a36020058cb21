from __future__ import annotations

import json

import numpy as np
import pytest

from adaptive_router.errors import ConfigError, NotFittedError
from adaptive_router.probe.estimator import CurveProbe
from adaptive_router.probe.neighbors import NeighborCurves, beta_curve
from adaptive_router.probe.probe import Probe


def test_beta_curve_matches_the_torch_head_formula() -> None:
    torch = pytest.importorskip("torch")
    from adaptive_router.probe.heads import beta_expected_curve

    a, b = np.array([0.3, 2.0, 7.5]), np.array([1.2, 0.5, 3.0])
    expected = beta_expected_curve(torch.as_tensor(a), torch.as_tensor(b), 6).numpy()
    np.testing.assert_allclose(beta_curve(a, b, 6), expected, rtol=1e-9)


def _xor_clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four clusters whose success rates follow XOR: no linear function of the features separates them."""
    rng = np.random.default_rng(seed)
    quadrant = rng.integers(0, 4, n)
    centers = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=float)
    X = centers[quadrant] * 3 + rng.normal(size=(n, 2))
    X = np.hstack([X, rng.normal(size=(n, 6))])
    p = np.where(quadrant < 2, 0.9, 0.15)
    return X.astype(np.float32), rng.binomial(4, p)


def test_neighbor_curves_binary_and_curve_labels() -> None:
    X, c = _xor_clusters(400, seed=0)
    labels = {"successes": c[:, None].astype(float), "samples": np.full((400, 1), 4.0)}
    nc = NeighborCurves(25).fit(X, labels, prior=(np.array([1.0]), np.array([1.0])))
    Xt, ct = _xor_clusters(200, seed=1)
    curves = nc.predict(Xt, max_k=3)
    assert curves.shape == (200, 1, 3)
    assert (np.diff(curves, axis=-1) >= 0).all() and (np.diff(curves, n=2, axis=-1) <= 1e-12).all()
    assert np.corrcoef(curves[:, 0, 0], ct)[0, 1] > 0.8
    true = 1 - (1 - c[:, None, None] / 4.0) ** np.arange(1, 4)  # (n, 1, 3) curves
    nc_curve = NeighborCurves(25).fit(X, {"curves": true}, prior=true.mean(axis=0))
    np.testing.assert_allclose(nc_curve.predict(Xt, 3)[:, :, 0], curves[:, :, 0], atol=0.15)
    restored = NeighborCurves.from_state(25, nc.state(), (np.array([1.0]), np.array([1.0])))
    np.testing.assert_allclose(restored.predict(Xt, 3), curves, rtol=1e-6)


def test_neighbor_curves_errors() -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        NeighborCurves(0)
    with pytest.raises(NotFittedError):
        NeighborCurves(3).predict(np.zeros((1, 2)), 1)
    with pytest.raises(ConfigError, match="neighbors must be"):
        CurveProbe(neighbors=-1).fit(np.zeros((40, 2)), {"g": (np.zeros(40), np.ones(40))})


def test_probe_blends_neighbors_when_the_heads_cannot_fit(fast, tmp_path) -> None:
    """A linear head cannot learn XOR; the neighbour curves can, and validation must pick them."""
    X, c = _xor_clusters(500, seed=2)
    y = {"gen": (c, np.full(len(c), 4))}
    params = {**fast, "hidden": 0, "max_k": 4, "budgets": (2,), "fallback": "never"}
    heads_only = CurveProbe(**params).fit(X, y)
    blended = CurveProbe(neighbors=30, **params).fit(X, y)
    assert heads_only.report_["neighbor_weight"] == 0.0
    assert blended.neighbor_weight_ >= 0.5
    assert set(blended.report_["neighbor_scores"]) == {"0.0", "0.25", "0.5", "0.75", "1.0"}
    Xt, ct = _xor_clusters(300, seed=3)
    score = {
        name: np.corrcoef(est.predict_raw_curves(Xt)[:, 0, 0], ct)[0, 1]
        for name, est in (("heads", heads_only), ("blend", blended))
    }
    assert score["blend"] > score["heads"] + 0.3

    class _Identity:
        def identity(self) -> dict:
            return {"featurizer_id": "identity", "revision": None, "layers": None, "pooling": None,
                    "max_length": None}

        def transform(self, texts):
            return Xt[: len(texts)]

    path = Probe(featurizer=_Identity(), estimator=blended).save(tmp_path / "p")
    assert json.loads((path / "manifest.json").read_text())["neighbor_weight"] == blended.neighbor_weight_
    loaded = Probe.load(path, featurizer=_Identity())
    np.testing.assert_allclose(
        loaded.estimator.predict_raw_curves(Xt), blended.predict_raw_curves(Xt), rtol=1e-5
    )


def test_probe_with_neighbors_on_curve_labels(fast) -> None:
    X, c = _xor_clusters(300, seed=4)
    curves = 1 - (1 - c[:, None] / 4.0) ** np.arange(1, 5)
    curves[:5, 3] = np.nan  # a few queries recorded only up to k=3: validation scores k <= 3
    est = CurveProbe(neighbors=20, max_k=4, budgets=(2,), fallback="never", **fast).fit(X, {"gen": curves})
    assert est.label_kind_ == "curve" and est.report_["validated_max_k"] == 3
    assert est.neighbor_weight_ in (0.0, 0.25, 0.5, 0.75, 1.0)
    pred = est.predict_raw_curves(X[:50])
    assert pred.shape == (50, 1, 4) and np.isfinite(pred).all()
