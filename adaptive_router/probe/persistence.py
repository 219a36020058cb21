"""`Probe` = featurizer + fitted `CurveProbe`; saved as a directory (safetensors weights + JSON manifest).

Layout of a probe directory::

    head.safetensors   every fold head's tensors (``fold{i}.<name>``) and the population curve/Beta
    manifest.json      format version, library version, featurizer identity (id, revision, layers, pooling,
                       max length), head config, label kind, K, procedures, costs, shrinkage, fallback,
                       validation report and the sha256 of head.safetensors

Loading checks all of it and raises `ProbeFormatError` (naming the file and the fix) for a missing or
corrupted file, a checksum mismatch, an unknown format version or a featurizer that differs from the one the
probe was trained with. There is no pickle anywhere: tensors go through safetensors, the rest through JSON.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.errors import ConfigError, ProbeFormatError
from adaptive_router.probe.estimator import CurveProbe
from adaptive_router.probe.featurizer import DEFAULT_FEATURIZERS, Featurizer, get_featurizer

__all__ = ["FORMAT_VERSION", "Probe"]

FORMAT_VERSION = 1
_HEAD_FILE = "head.safetensors"
_MANIFEST_FILE = "manifest.json"
_IDENTITY_KEYS = ("featurizer_id", "revision", "layers", "pooling", "max_length", "signals")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


class Probe:
    """A difficulty probe: texts -> expected reward curves per procedure (a `CurvePredictor`).

    Parameters
    ----------
    featurizer : Featurizer
        Turns texts into features (e.g. `TransformersFeaturizer`).
    estimator : CurveProbe
        A fitted curve estimator over those features.

    Examples
    --------
    >>> probe = Probe.load("my-probe")  # doctest: +SKIP
    >>> curves = probe.predict_curves(["What is 17 * 23?"])  # doctest: +SKIP
    >>> curves["default"].shape, probe.fallback_active  # doctest: +SKIP
    ((1, 8), False)
    """

    def __init__(self, *, featurizer: Featurizer, estimator: CurveProbe) -> None:
        self.featurizer = featurizer
        self.estimator = estimator

    # ------------------------------------------------------------------ CurvePredictor
    @property
    def procedures(self) -> tuple[str, ...]:
        """Procedures the curves are predicted for."""
        return tuple(self.estimator.procedures_)

    @property
    def max_k(self) -> int:
        """Curve length K."""
        return int(self.estimator.max_k_)

    @property
    def fallback_active(self) -> bool:
        """True when validation found no gain over uniform: every curve is the population curve."""
        return bool(self.estimator.fallback_)

    @property
    def shrinkage(self) -> float:
        """Weight w of the predicted curve in ``w · predicted + (1 − w) · population``."""
        return float(self.estimator.shrinkage_)

    @property
    def report(self) -> dict[str, Any]:
        """Validation metrics and the shrinkage / fallback decision with its reason."""
        return dict(self.estimator.report_)

    def predict_curves(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``{procedure: (n, K)}`` expected reward curves of ``texts``."""
        texts = list(texts)
        if self.fallback_active:  # no need to run the featurizer: every row is the population curve
            return self.estimator.predict_curves(np.zeros((len(texts), self.estimator.n_features_in_)))
        return self.estimator.predict_curves(self.featurizer.transform(texts))

    def __repr__(self) -> str:
        return (f"Probe(procedures={self.procedures!r}, max_k={self.max_k}, "
                f"fallback_active={self.fallback_active}, shrinkage={self.shrinkage:g})")

    # ------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``head.safetensors`` and ``manifest.json`` into folder ``path`` (created if needed)."""
        from safetensors.torch import save_file

        import adaptive_router

        est = self.estimator
        est._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        import torch

        tensors: dict[str, Any] = {}
        for i, head in enumerate(est.heads_):
            for name, t in head.state_dict().items():
                tensors[f"fold{i}.{name}"] = t.detach().contiguous().clone()
        tensors["population_curve"] = torch.as_tensor(np.asarray(est.population_curve_, dtype=np.float64))
        if est.label_kind_ == "binary":
            tensors["population_alpha"] = torch.as_tensor(np.asarray(est.population_alpha_, dtype=np.float64))
            tensors["population_beta"] = torch.as_tensor(np.asarray(est.population_beta_, dtype=np.float64))
        neighbors = getattr(est, "neighbors_", None)
        if neighbors is not None:
            for name, arr in neighbors.state().items():
                tensors[f"neighbors.{name}"] = torch.as_tensor(np.ascontiguousarray(arr))
        head_path = folder / _HEAD_FILE
        save_file(tensors, str(head_path), metadata={"format": "adaptive-router-probe"})
        params = {k: getattr(est, k) for k in inspect.signature(CurveProbe).parameters}
        manifest = {
            "format_version": FORMAT_VERSION,
            "library_version": adaptive_router.__version__,
            "featurizer": self.featurizer.identity(),
            "n_features": int(est.n_features_in_),
            "head_config": est.head_config_.to_dict(),
            "n_heads": len(est.heads_),
            "label_kind": est.label_kind_,
            "max_k": int(est.max_k_),
            "procedures": list(est.procedures_),
            "costs": est.costs_,
            "shrinkage": float(est.shrinkage_),
            "neighbor_weight": float(getattr(est, "neighbor_weight_", 0.0)),
            "fallback": bool(est.fallback_),
            "estimator_params": params,
            "validation": est.report_,
            "head_sha256": _sha256(head_path),
        }
        text = json.dumps(_jsonable(manifest), indent=2, sort_keys=True, allow_nan=False)
        (folder / _MANIFEST_FILE).write_text(text + "\n", encoding="utf-8")
        return folder

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        featurizer: Featurizer | None = None,
        cache_dir: str | os.PathLike[str] | bool | None = True,
    ) -> Probe:
        """Load a probe directory written by `save`, checking every file and the featurizer.

        Parameters
        ----------
        featurizer : Featurizer, optional
            Use this featurizer (its identity must match the manifest); by default it is rebuilt from the
            manifest (embedded name or model folder).
        cache_dir
            Feature cache for a rebuilt featurizer (see `get_featurizer`).
        """
        folder = Path(path)
        manifest = _read_manifest(folder)
        head_path = folder / _HEAD_FILE
        if not head_path.is_file():
            raise ProbeFormatError(f"{head_path} is missing; re-save the probe or retrain it")
        if _sha256(head_path) != manifest["head_sha256"]:
            raise ProbeFormatError(
                f"{head_path} does not match the checksum in {_MANIFEST_FILE} (corrupted or replaced); "
                "re-save the probe or retrain it"
            )
        tensors = _read_tensors(head_path)
        expected = {k: manifest["featurizer"].get(k) for k in _IDENTITY_KEYS}
        if featurizer is None:
            featurizer = _rebuild_featurizer(expected, cache_dir)
        _check_identity(featurizer, expected)
        est = _rebuild_estimator(manifest, tensors, head_path)
        return cls(featurizer=featurizer, estimator=est)


def _read_manifest(folder: Path) -> dict[str, Any]:
    mpath = folder / _MANIFEST_FILE
    if not folder.is_dir():
        raise ProbeFormatError(f"probe directory {folder} does not exist")
    if not mpath.is_file():
        raise ProbeFormatError(f"{mpath} is missing; {folder} is not a saved probe directory")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProbeFormatError(f"{mpath} is not valid JSON ({exc}); re-save the probe") from exc
    if not isinstance(manifest, dict):
        raise ProbeFormatError(f"{mpath} must hold a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ProbeFormatError(
            f"{mpath} has format_version={version!r}; this library reads version {FORMAT_VERSION}"
        )
    required = ("featurizer", "head_config", "n_heads", "label_kind", "max_k", "procedures", "costs",
                "shrinkage", "fallback", "estimator_params", "validation", "head_sha256", "n_features")
    missing = [k for k in required if k not in manifest]
    if missing:
        raise ProbeFormatError(f"{mpath} lacks the keys {missing}; re-save the probe")
    return manifest


def _read_tensors(head_path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(head_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ProbeFormatError(
            f"{head_path} cannot be read as safetensors ({exc}); retrain or re-save the probe"
        ) from exc


def _rebuild_featurizer(expected: dict[str, Any], cache_dir: Any) -> Featurizer:
    fid = str(expected["featurizer_id"])
    settings = {"layers": tuple(expected["layers"] or ()), "pooling": expected["pooling"],
                "max_length": expected["max_length"]}
    signals_only = fid == "none" and expected.get("signals") is not None
    if signals_only or fid in DEFAULT_FEATURIZERS or Path(fid, "config.json").is_file():
        base = None if signals_only else get_featurizer(fid, cache_dir=cache_dir, **settings)
        if base is not None and expected.get("signals") is None:
            return base
        from adaptive_router.probe.signals import AnswerSignals, WithAnswerSignals

        try:
            signals = AnswerSignals(**expected["signals"])
        except (TypeError, ConfigError) as exc:
            raise ProbeFormatError(f"the manifest's answer signals cannot be rebuilt: {exc}") from exc
        return WithAnswerSignals(base, signals)
    raise ProbeFormatError(
        f"the probe was trained with featurizer {fid!r}, which is neither an embedded name "
        f"{sorted(DEFAULT_FEATURIZERS)} nor an existing model folder; pass featurizer= to Probe.load"
    )


def _check_identity(featurizer: Featurizer, expected: dict[str, Any]) -> None:
    try:
        got = featurizer.identity()
    except ConfigError as exc:
        raise ProbeFormatError(f"cannot identify the featurizer: {exc}") from exc
    diff = {k: (expected[k], got.get(k)) for k in _IDENTITY_KEYS if _norm(expected[k]) != _norm(got.get(k))}
    if diff:
        detail = ", ".join(f"{k}: probe has {a!r}, featurizer has {b!r}" for k, (a, b) in diff.items())
        raise ProbeFormatError(
            f"featurizer mismatch ({detail}); load the probe with the featurizer it was trained with "
            "or retrain the probe"
        )


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, (list, tuple)) else v


def _rebuild_estimator(manifest: dict[str, Any], tensors: dict[str, Any], head_path: Path) -> CurveProbe:
    from adaptive_router.probe.heads import HeadConfig, build_head

    try:
        params = dict(manifest["estimator_params"])
        if isinstance(params.get("budgets"), list):
            params["budgets"] = tuple(params["budgets"])
        est = CurveProbe(**params)
        config = HeadConfig(**manifest["head_config"])
        procs = tuple(str(p) for p in manifest["procedures"])
        K = int(manifest["max_k"])
        if config.n_procedures != len(procs) or config.max_k != K:
            raise ValueError("head_config disagrees with procedures / max_k")
        heads = []
        for i in range(int(manifest["n_heads"])):
            head = build_head(config)
            prefix = f"fold{i}."
            state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            head.load_state_dict(state, strict=True)
            head.eval()
            heads.append(head)
        pop = tensors["population_curve"].numpy()
        if pop.shape != (len(procs), K):
            raise ValueError(f"population_curve has shape {pop.shape}, expected {(len(procs), K)}")
        est.population_curve_ = pop
        if manifest["label_kind"] == "binary":
            est.population_alpha_ = tensors["population_alpha"].numpy()
            est.population_beta_ = tensors["population_beta"].numpy()
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ProbeFormatError(
            f"{head_path} does not fit its manifest ({type(exc).__name__}: {exc}); retrain the probe"
        ) from exc
    est.label_kind_ = manifest["label_kind"]
    est.procedures_ = procs
    est.max_k_ = K
    est.n_features_in_ = int(manifest["n_features"])
    est.costs_ = {str(k): float(v) for k, v in manifest["costs"].items()}
    est.head_config_ = config
    est.heads_ = heads
    est.shrinkage_ = float(manifest["shrinkage"])
    est.neighbor_weight_ = float(manifest.get("neighbor_weight", 0.0))
    est.neighbors_ = None
    prefix = "neighbors."
    state = {k.removeprefix(prefix): v.numpy() for k, v in tensors.items() if k.startswith(prefix)}
    if state:
        from adaptive_router.probe.neighbors import NeighborCurves

        try:
            est.neighbors_ = NeighborCurves.from_state(int(est.neighbors), state, est._prior())
        except (KeyError, ValueError, ConfigError) as exc:
            raise ProbeFormatError(f"{head_path} has broken neighbour data ({exc}); retrain it") from exc
    est.fallback_ = bool(manifest["fallback"])
    est.report_ = manifest["validation"]
    return est
