from __future__ import annotations

import json

import numpy as np
import pytest

from adaptive_router.predictors import CurvePredictor
from adaptive_router.errors import ProbeFormatError
from adaptive_router.probe.estimator import CurveProbe
from adaptive_router.probe.featurizer import TransformersFeaturizer
from adaptive_router.probe.persistence import Probe

TEXTS = [f"question {i} " + "hard " * (i % 7) for i in range(120)]


@pytest.fixture
def probe(tiny_encoder_dir, fast) -> Probe:
    feat = TransformersFeaturizer(model_path=tiny_encoder_dir, max_length=24)
    X = feat.transform(TEXTS)
    rng = np.random.default_rng(0)
    p = np.array([0.9 - 0.12 * (i % 7) for i in range(len(TEXTS))])
    y = {"gen": (rng.binomial(6, p), np.full(len(TEXTS), 6))}
    est = CurveProbe(max_k=4, budgets=(2,), fallback="never", **fast).fit(X, y)
    return Probe(featurizer=feat, estimator=est)


def test_round_trip_predicts_identically(probe, tmp_path) -> None:
    assert isinstance(probe, CurvePredictor)
    probe.save(tmp_path / "p")
    assert sorted(f.name for f in (tmp_path / "p").iterdir()) == ["head.safetensors", "manifest.json"]
    loaded = Probe.load(tmp_path / "p", cache_dir=None)
    assert loaded.procedures == ("gen",) and loaded.max_k == 4
    assert loaded.fallback_active == probe.fallback_active
    assert loaded.shrinkage == probe.shrinkage
    np.testing.assert_allclose(
        loaded.predict_curves(TEXTS[:10])["gen"], probe.predict_curves(TEXTS[:10])["gen"]
    )
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["featurizer"]["pooling"] == "mean" and manifest["label_kind"] == "binary"
    assert manifest["validation"]["allocation"]
    assert loaded.report["fallback_reason"] == probe.report["fallback_reason"]


def test_corrupted_head_is_rejected(probe, tmp_path) -> None:
    path = probe.save(tmp_path / "p")
    head = path / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-5] ^= 0xFF
    head.write_bytes(bytes(data))
    with pytest.raises(ProbeFormatError, match="does not match the checksum"):
        Probe.load(path, cache_dir=None)
    head.write_bytes(b"not safetensors")
    manifest = json.loads((path / "manifest.json").read_text())
    import hashlib

    manifest["head_sha256"] = hashlib.sha256(b"not safetensors").hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ProbeFormatError, match="cannot be read as safetensors"):
        Probe.load(path, cache_dir=None)


def test_missing_or_broken_manifest(probe, tmp_path) -> None:
    path = probe.save(tmp_path / "p")
    (path / "head.safetensors").unlink()
    with pytest.raises(ProbeFormatError, match=r"head\.safetensors is missing"):
        Probe.load(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(ProbeFormatError, match="is not valid JSON"):
        Probe.load(path)
    (path / "manifest.json").unlink()
    with pytest.raises(ProbeFormatError, match=r"manifest\.json is missing"):
        Probe.load(path)
    with pytest.raises(ProbeFormatError, match="does not exist"):
        Probe.load(tmp_path / "nowhere")


def test_featurizer_mismatch_is_rejected(probe, tiny_encoder_dir, tiny_causal_dir, tmp_path) -> None:
    path = probe.save(tmp_path / "p")
    other_layer = TransformersFeaturizer(model_path=tiny_encoder_dir, max_length=24, layers=(1,))
    with pytest.raises(ProbeFormatError, match=r"featurizer mismatch \(layers: probe has \[-1\]"):
        Probe.load(path, featurizer=other_layer)
    other_model = TransformersFeaturizer(
        model_path=tiny_causal_dir, max_length=24, name=str(tiny_encoder_dir)
    )
    with pytest.raises(ProbeFormatError, match="revision"):
        Probe.load(path, featurizer=other_model)


def test_wrong_format_version_and_shapes(probe, tmp_path) -> None:
    path = probe.save(tmp_path / "p")
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ProbeFormatError, match="format_version=99"):
        Probe.load(path)
    (path / "manifest.json").write_text(json.dumps({**manifest, "max_k": 7}))
    with pytest.raises(ProbeFormatError, match="does not fit its manifest"):
        Probe.load(path, cache_dir=None)


def test_no_pickle_in_probe_modules() -> None:
    import inspect

    from adaptive_router.probe import estimator, featurizer, heads, persistence, training

    for mod in (estimator, featurizer, heads, persistence, training):
        src = inspect.getsource(mod)
        assert "torch.load" not in src and "import pickle" not in src and "allow_pickle=True" not in src
