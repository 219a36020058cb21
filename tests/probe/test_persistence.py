"""Tests for adaptive_router.probe.persistence (the files) and Probe.save / Probe.load (probe/probe.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from adaptive_router.errors import ProbeFormatError
from adaptive_router.predictors import CurvePredictor
from adaptive_router.probe.estimator import CurveProbe
from adaptive_router.probe.featurizer import TransformersFeaturizer
from adaptive_router.probe.persistence import read_probe_files, resolve_model_dir
from adaptive_router.probe.probe import Probe

TEXTS = [f"question {i} " + "hard " * (i % 7) for i in range(120)]


@pytest.fixture
def probe(tiny_encoder_dir, fast) -> Probe:
    """A probe whose featurizer's model folder lies outside any probe directory."""
    feat = TransformersFeaturizer(model_path=tiny_encoder_dir, max_length=24)
    X = feat.transform(TEXTS)
    rng = np.random.default_rng(0)
    p = np.array([0.9 - 0.12 * (i % 7) for i in range(len(TEXTS))])
    y = {"gen": (rng.binomial(6, p), np.full(len(TEXTS), 6))}
    est = CurveProbe(max_k=4, budgets=(2,), fallback="never", **fast).fit(X, y)
    return Probe(featurizer=feat, estimator=est)


def _with_model_inside(probe: Probe, folder: Path) -> Probe:
    """The same probe with its featurizer's model copied into ``folder/model``."""
    shutil.copytree(Path(probe.featurizer.model_path), folder / "model")
    feat = TransformersFeaturizer(model_path=folder / "model", max_length=24)
    return Probe(featurizer=feat, estimator=probe.estimator)


def _edit_manifest(path: Path, **changes) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["featurizer"].update(changes.pop("featurizer", {}))
    (path / "manifest.json").write_text(json.dumps({**manifest, **changes}))


def test_round_trip_predicts_identically_and_survives_a_move(probe, tmp_path) -> None:
    assert isinstance(probe, CurvePredictor)
    inside = _with_model_inside(probe, tmp_path / "p")
    inside.save(tmp_path / "p")
    names = sorted(f.name for f in (tmp_path / "p").iterdir())
    assert names == ["head.safetensors", "manifest.json", "model"]
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["featurizer"]["featurizer_id"] == "model"  # recorded relative to the probe directory
    shutil.move(tmp_path / "p", tmp_path / "moved")
    loaded = Probe.load(tmp_path / "moved")
    assert loaded.procedures == ("gen",) and loaded.max_k == 4
    assert loaded.fallback_active == probe.fallback_active
    assert loaded.shrinkage == probe.shrinkage
    np.testing.assert_allclose(
        loaded.predict_curves(TEXTS[:10])["gen"], probe.predict_curves(TEXTS[:10])["gen"]
    )
    assert manifest["featurizer"]["pooling"] == "mean" and manifest["label_kind"] == "binary"
    assert manifest["validation"]["allocation"]
    assert loaded.report["fallback_reason"] == probe.report["fallback_reason"]
    assert loaded.featurizer.cache_dir is None  # the serving path caches no features by default


def test_files_hold_exactly_the_estimators_fitted_state(probe, tmp_path) -> None:
    arrays, params = probe.estimator.fitted_state()
    path = probe.save(tmp_path / "p")
    read_arrays, manifest = read_probe_files(path)
    assert sorted(read_arrays) == sorted(arrays)
    for name, arr in arrays.items():
        np.testing.assert_array_equal(read_arrays[name], arr)
    assert {k: manifest[k] for k in ("shrinkage", "fallback", "max_k", "procedures", "n_heads")} == {
        k: params[k] for k in ("shrinkage", "fallback", "max_k", "procedures", "n_heads")
    }


def test_an_outside_model_loads_only_when_passed_explicitly(probe, tmp_path) -> None:
    path = probe.save(tmp_path / "p")
    with pytest.raises(ProbeFormatError, match="outside the probe directory"):
        Probe.load(path)
    loaded = Probe.load(path, featurizer=probe.featurizer)
    np.testing.assert_allclose(
        loaded.predict_curves(TEXTS[:3])["gen"], probe.predict_curves(TEXTS[:3])["gen"]
    )


def test_relative_featurizer_id_resolves_against_the_probe_not_the_working_directory(
    probe, tiny_causal_dir, tmp_path, monkeypatch
) -> None:
    """Regression: a relative id was looked up in the working directory (here: a different model)."""
    path = _with_model_inside(probe, tmp_path / "p").save(tmp_path / "p")
    _edit_manifest(path, featurizer={"featurizer_id": "model"})  # what save writes; spelled out
    elsewhere = tmp_path / "cwd"
    shutil.copytree(tiny_causal_dir, elsewhere / "model")  # a different model under the same relative name
    monkeypatch.chdir(elsewhere)
    loaded = Probe.load(path)
    assert Path(loaded.featurizer.model_path) == (path / "model").resolve()
    np.testing.assert_allclose(
        loaded.predict_curves(TEXTS[:3])["gen"], probe.predict_curves(TEXTS[:3])["gen"]
    )


def test_paths_escaping_the_probe_directory_are_refused(probe, tiny_encoder_dir, tmp_path) -> None:
    """Regression: an absolute id loaded any model folder on the machine."""
    path = _with_model_inside(probe, tmp_path / "p").save(tmp_path / "p")
    for fid in (str(tiny_encoder_dir), "../" + tiny_encoder_dir.name, "model/../../" + tiny_encoder_dir.name):
        _edit_manifest(path, featurizer={"featurizer_id": fid})
        with pytest.raises(ProbeFormatError, match="outside the probe directory"):
            Probe.load(path)
    (path / "link").symlink_to(tiny_encoder_dir, target_is_directory=True)
    _edit_manifest(path, featurizer={"featurizer_id": "link"})
    with pytest.raises(ProbeFormatError, match="outside the probe directory"):
        Probe.load(path)
    with pytest.raises(ProbeFormatError, match=r"holds no config\.json"):
        resolve_model_dir("missing", path)
    assert resolve_model_dir(str(path / "model"), path) == (path / "model").resolve()  # absolute, inside


def test_corrupted_head_is_rejected(probe, tmp_path) -> None:
    path = probe.save(tmp_path / "p")
    head = path / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-5] ^= 0xFF
    head.write_bytes(bytes(data))
    with pytest.raises(ProbeFormatError, match="does not match the checksum"):
        Probe.load(path, featurizer=probe.featurizer)
    head.write_bytes(b"not safetensors")
    _edit_manifest(path, head_sha256=hashlib.sha256(b"not safetensors").hexdigest())
    with pytest.raises(ProbeFormatError, match="cannot be read as safetensors"):
        Probe.load(path, featurizer=probe.featurizer)


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
        Probe.load(path, featurizer=probe.featurizer)
    del manifest["n_heads"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ProbeFormatError, match=r"lacks \['n_heads'\]"):
        Probe.load(path, featurizer=probe.featurizer)


def test_no_pickle_in_probe_modules() -> None:
    import inspect

    from adaptive_router.probe import estimator, featurizer, heads, persistence, probe, training

    for mod in (estimator, featurizer, heads, persistence, probe, training):
        src = inspect.getsource(mod)
        assert "torch.load" not in src and "import pickle" not in src and "allow_pickle=True" not in src


def test_persistence_only_moves_files() -> None:
    """The estimator owns its state: persistence imports no estimator and sets no object's attributes."""
    import ast
    import inspect

    from adaptive_router.probe import persistence

    tree = ast.parse(inspect.getsource(persistence))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if "estimator" in m or m.startswith("torch")}
    targets = [t for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign))
               for t in (n.targets if isinstance(n, ast.Assign) else [n.target])]
    assert not [t for t in targets if isinstance(t, ast.Attribute)]


def test_a_loaded_probe_predicts_at_a_given_shrinkage(probe, tmp_path) -> None:
    _with_model_inside(probe, tmp_path / "p").save(tmp_path / "p")
    loaded = Probe.load(tmp_path / "p")
    assert not hasattr(loaded.estimator, "oof_curves_")  # held-out training curves are not saved
    raw = loaded.estimator.predict_raw_curves(loaded.featurizer.transform(TEXTS[:5]))[:, 0, :]
    np.testing.assert_allclose(loaded.predict_curves(TEXTS[:5], shrinkage=1.0)["gen"], raw)
    loaded.featurizer.transform = None  # weight 0 is the population curve: no featurizing
    pop = loaded.predict_curves(TEXTS[:5], shrinkage=0.0)["gen"]
    np.testing.assert_allclose(pop, np.broadcast_to(loaded.estimator.population_curve_[0], (5, 4)))
