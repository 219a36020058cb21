"""`Probe` = a featurizer + a fitted `CurveProbe`: query texts -> predicted reward curves (a CurvePredictor).

``probe.save(path)`` writes the estimator's fitted state and the featurizer's identity through
`adaptive_router.probe.persistence`; ``Probe.load(path)`` reads them back, rebuilds the featurizer (an
embedded name, or a model folder inside the probe directory) and checks that it is the one the probe was
trained with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.allocation import RoundChoice
from adaptive_router.errors import ConfigError, ProbeFormatError
from adaptive_router.probe.estimator import CurveProbe
from adaptive_router.probe.featurizer import DEFAULT_FEATURIZERS, Featurizer, get_featurizer

__all__ = ["Probe"]

_IDENTITY_KEYS = ("featurizer_id", "revision", "layers", "pooling", "max_length", "signals")


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

    def __init__(
        self,
        *,
        featurizer: Featurizer,
        estimator: CurveProbe,
        round_choices: Mapping[str, RoundChoice] | None = None,
    ) -> None:
        self.featurizer = featurizer
        self.estimator = estimator
        self.round_choices: dict[str, RoundChoice] = dict(round_choices or {})
        """The round settings ``train`` chose per budget, by evidence kind (``rounds.json``); a router's
        ``rounds="auto"`` samples with the one for its budget."""

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
        """True when validation found no gain over uniform: the population predictor answers every query."""
        return bool(self.estimator.fallback_)

    @property
    def shrinkage(self) -> float:
        """Weight w of the predicted curve in ``w · predicted + (1 − w) · population``."""
        return float(self.estimator.shrinkage_)

    @property
    def report(self) -> dict[str, Any]:
        """Validation metrics and the shrinkage / fallback decision with its reason."""
        return dict(self.estimator.report_)

    def predict_curves(
        self, texts: Sequence[str], *, shrinkage: float | None = None
    ) -> dict[str, np.ndarray]:
        """``{procedure: (n, K)}`` expected reward curves of ``texts``.

        ``shrinkage`` overrides the validated weight of the prediction (and the fallback): a round planner's
        prior at the weight ``train`` validated for rounds (`adaptive_router.allocation.Rounds.prior_weight`).
        """
        if isinstance(texts, str):
            raise ConfigError("texts must be a sequence of strings, not one string; wrap it in a list")
        texts = list(texts)
        population = self.fallback_active if shrinkage is None else float(shrinkage) == 0.0
        if population:  # the population curve never reads the texts: no featurizing
            return self.estimator.population_.predict_curves(texts)
        return self.estimator.predict_curves(self.featurizer.transform(texts), shrinkage=shrinkage)

    def __repr__(self) -> str:
        return (f"Probe(procedures={self.procedures!r}, max_k={self.max_k}, "
                f"fallback_active={self.fallback_active}, shrinkage={self.shrinkage:g})")

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``head.safetensors`` and ``manifest.json`` into folder ``path`` (created if needed).

        A featurizer whose model folder lies inside ``path`` is recorded by its path relative to it, so the
        directory can be moved; any other model folder is recorded as is (and `load` then needs
        ``featurizer=``).
        """
        from adaptive_router.probe.persistence import relative_model_id, write_probe_files

        arrays, params = self.estimator.fitted_state()
        identity = self.featurizer.identity()
        model_path = getattr(_base_featurizer(self.featurizer), "model_path", None)
        fid = str(identity.get("featurizer_id"))
        if model_path is not None and fid not in DEFAULT_FEATURIZERS:
            Path(path).mkdir(parents=True, exist_ok=True)
            inside = relative_model_id(model_path, path)
            if inside is not None:
                identity = {**identity, "featurizer_id": inside}
        return write_probe_files(path, arrays, {**params, "featurizer": identity})

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        featurizer: Featurizer | None = None,
        cache_dir: str | os.PathLike[str] | bool | None = None,
    ) -> Probe:
        """Load a probe directory written by `save`, checking every file and the featurizer.

        Parameters
        ----------
        featurizer : Featurizer, optional
            Use this featurizer (its identity must match the manifest); by default it is rebuilt from the
            manifest: an embedded name, or a model folder inside the probe directory (relative paths resolve
            against it; a folder elsewhere is refused, see `adaptive_router.probe.persistence`).
        cache_dir : path, True or None, default None
            Feature cache of a rebuilt featurizer (see `get_featurizer`); off by default, since a serving
            process sees an unbounded stream of new texts.
        """
        from adaptive_router.probe.persistence import HEAD_FILE, read_probe_files, read_round_choices

        folder = Path(path)
        arrays, manifest = read_probe_files(folder)
        expected = {k: manifest["featurizer"].get(k) for k in _IDENTITY_KEYS}
        if featurizer is None:
            featurizer = _rebuild_featurizer(expected, folder, cache_dir)
        _check_identity(featurizer, expected, folder)
        try:
            est = CurveProbe.from_fitted_state(arrays, manifest)
        except ProbeFormatError as exc:
            raise ProbeFormatError(
                f"{folder / HEAD_FILE} does not fit its manifest ({exc}); retrain the probe"
            ) from exc
        return cls(featurizer=featurizer, estimator=est, round_choices=read_round_choices(folder))


def _base_featurizer(featurizer: Any) -> Any:
    """The model featurizer under answer signals (or the featurizer itself)."""
    return getattr(featurizer, "base", featurizer)


def _rebuild_featurizer(expected: dict[str, Any], folder: Path, cache_dir: Any) -> Featurizer:
    from adaptive_router.probe.persistence import resolve_model_dir

    fid = str(expected["featurizer_id"])
    settings = {"layers": tuple(expected["layers"] or ()), "pooling": expected["pooling"],
                "max_length": expected["max_length"]}
    base: Featurizer | None = None
    if not (fid == "none" and expected.get("signals") is not None):
        if fid in DEFAULT_FEATURIZERS:
            base = get_featurizer(fid, cache_dir=cache_dir, **settings)
        else:
            model_dir = resolve_model_dir(fid, folder)
            base = get_featurizer(model_dir, cache_dir=cache_dir, name=fid, **settings)
    if expected.get("signals") is None:
        if base is None:
            raise ProbeFormatError("the manifest names featurizer 'none' without answer signals; retrain it")
        return base
    from adaptive_router.probe.signals import AnswerSignals, WithAnswerSignals

    try:
        signals = AnswerSignals(**expected["signals"])
    except (TypeError, ConfigError) as exc:
        raise ProbeFormatError(f"the manifest's answer signals cannot be rebuilt: {exc}") from exc
    return WithAnswerSignals(base, signals)


def _check_identity(featurizer: Featurizer, expected: dict[str, Any], folder: Path) -> None:
    try:
        got = featurizer.identity()
    except ConfigError as exc:
        raise ProbeFormatError(f"cannot identify the featurizer: {exc}") from exc
    diff = {k: (expected[k], got.get(k)) for k in _IDENTITY_KEYS if _norm(expected[k]) != _norm(got.get(k))}
    fid = diff.get("featurizer_id")
    if fid is not None and _same_model_dir(str(fid[0]), str(fid[1]), folder):
        del diff["featurizer_id"]  # a folder recorded relative to the probe, passed as an absolute path
    if diff:
        detail = ", ".join(f"{k}: probe has {a!r}, featurizer has {b!r}" for k, (a, b) in diff.items())
        raise ProbeFormatError(
            f"featurizer mismatch ({detail}); load the probe with the featurizer it was trained with "
            "or retrain the probe"
        )


def _same_model_dir(recorded: str, given: str, folder: Path) -> bool:
    if recorded in DEFAULT_FEATURIZERS or given in DEFAULT_FEATURIZERS:
        return False
    return (folder / recorded).resolve() == Path(given).resolve()


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, (list, tuple)) else v
