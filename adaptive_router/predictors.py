"""What the router consumes from a probe, and the baseline predictors every replay compares against.

`CurvePredictor` is the protocol: query texts -> ``{procedure: (n, K)}`` expected-reward curves. The probe
implements it, and so do the baselines, the way scikit-learn's ``DummyRegressor`` implements the regressor
interface (numpy only):

- `PopulationPredictor`: every query gets the population's mean curve. Allocation on identical rows is
  uniform allocation (see `adaptive_router.allocation.replay`); a probe that falls back predicts with one.
- `RandomPredictor`: seeded random concave curves, a predictor that ranks queries without any information.
- `OraclePredictor`: the true curves of given outcomes, an upper bound on those queries.

Examples
--------
>>> import numpy as np
>>> true = {"gen": np.array([[0.25, 0.5], [0.75, 1.0]])}
>>> PopulationPredictor().fit(true).predict_curves(["a", "b", "c"])["gen"].tolist()
[[0.5, 0.75], [0.5, 0.75], [0.5, 0.75]]
>>> OraclePredictor().fit(["a", "b"], true).predict_curves(["b"])["gen"].tolist()
[[0.75, 1.0]]
>>> RandomPredictor(procedures=("gen",), max_k=2, seed=0).predict_curves(["a", "b"])["gen"].shape
(2, 2)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from adaptive_router.errors import ConfigError, NotFittedError

__all__ = [
    "CurvePredictor",
    "Curves",
    "FloatArray",
    "IntArray",
    "OraclePredictor",
    "PopulationPredictor",
    "RandomPredictor",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

Curves = Mapping[str, FloatArray]
"""Per procedure name, an (n, K) array: expected reward of each query with k = 1..K samples."""


@runtime_checkable
class CurvePredictor(Protocol):
    """What the router needs from a difficulty probe.

    `predict_curves` maps query texts to expected-reward curves per procedure; `fallback_active` says every
    row is the population curve (a probe that did not beat uniform allocation on validation predicts with a
    `PopulationPredictor`), in which case allocation is uniform / the best fixed mix.
    """

    @property
    def procedures(self) -> tuple[str, ...]: ...

    @property
    def max_k(self) -> int: ...

    @property
    def fallback_active(self) -> bool: ...

    def predict_curves(self, texts: Sequence[str]) -> Curves: ...


def _as_curves(curves: Mapping[str, Any], what: str) -> dict[str, FloatArray]:
    """``{proc: (n, K)}`` float arrays with one n, or a ConfigError naming the bad entry."""
    if not isinstance(curves, Mapping) or not curves:
        raise ConfigError(f"{what} must be a non-empty mapping {{procedure: (n, K) array}}")
    out = {str(p): np.asarray(c, dtype=np.float64) for p, c in curves.items()}
    rows = {p: c.shape[0] if c.ndim == 2 else None for p, c in out.items()}
    if None in rows.values() or len(set(rows.values())) != 1 or any(c.shape[1] == 0 for c in out.values()):
        shapes = {p: c.shape for p, c in out.items()}
        raise ConfigError(f"{what} must be (n, K) arrays with the same n for every procedure, got {shapes}")
    return out


def _n_queries(texts: Sequence[Any] | npt.NDArray[Any]) -> int:
    if isinstance(texts, str):
        raise ConfigError("texts must be a sequence of strings, not one string; wrap it in a list")
    return len(texts)


class PopulationPredictor:
    """Every query gets the population's mean curve: the predictor of uniform allocation.

    The analogue of scikit-learn's ``DummyRegressor(strategy="mean")``. `fit` takes true curves
    ``{procedure: (n, K)}`` (e.g. ``OutcomeSet.true_curves(K)``) and keeps their mean over queries (NaN
    entries, k beyond a query's recorded samples, are left out of the mean); `from_curve` wraps a curve
    fitted elsewhere (a probe's population Beta). Its rows are all identical, so `fallback_active` is True.

    Examples
    --------
    >>> import numpy as np
    >>> pop = PopulationPredictor.from_curve({"cheap": [0.6], "strong": [0.8]})
    >>> pop.procedures, pop.max_k, pop.fallback_active
    (('cheap', 'strong'), 1, True)
    >>> pop.predict_curves(["q1", "q2"])["strong"].tolist()
    [[0.8], [0.8]]
    """

    def __init__(self) -> None:
        pass

    def fit(self, curves: Curves) -> PopulationPredictor:
        """Keep the mean over queries of each procedure's true curve; returns ``self``."""
        arrays = _as_curves(curves, "curves")
        if next(iter(arrays.values())).shape[0] == 0:
            raise ConfigError("curves have no queries; fit the population curve on at least one query")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a k no query recorded stays NaN (absent)
            self.curve_ = {p: np.nanmean(c, axis=0) for p, c in arrays.items()}
        return self

    @classmethod
    def from_curve(cls, curve: Mapping[str, npt.ArrayLike]) -> PopulationPredictor:
        """A fitted predictor that gives every query ``curve`` (``{procedure: (K,)}``)."""
        arrays = {str(p): np.asarray(c, dtype=np.float64) for p, c in curve.items()} if curve else {}
        if not arrays or any(c.ndim != 1 or c.size == 0 for c in arrays.values()):
            raise ConfigError("curve must map each procedure to a non-empty (K,) array")
        if len({c.size for c in arrays.values()}) != 1:
            sizes = {p: c.size for p, c in arrays.items()}
            raise ConfigError(f"curves must share one length K, got {sizes}")
        out = cls()
        out.curve_ = arrays
        return out

    def _fitted(self) -> dict[str, FloatArray]:
        curve: dict[str, FloatArray] | None = getattr(self, "curve_", None)
        if curve is None:
            raise NotFittedError("this PopulationPredictor is not fitted yet; call fit(true_curves) first")
        return curve

    @property
    def procedures(self) -> tuple[str, ...]:
        return tuple(self._fitted())

    @property
    def max_k(self) -> int:
        return int(next(iter(self._fitted().values())).size)

    @property
    def fallback_active(self) -> bool:
        """True: every row is the population curve."""
        return True

    def predict_curves(self, texts: Sequence[Any] | npt.NDArray[Any]) -> dict[str, FloatArray]:
        """``{procedure: (n, K)}``, the population curve in every row (only ``len(texts)`` is read)."""
        n = _n_queries(texts)
        return {p: np.tile(c, (n, 1)) for p, c in self._fitted().items()}

    def __repr__(self) -> str:
        return "PopulationPredictor()"


class RandomPredictor:
    """Seeded random concave curves: a predictor that ranks queries without any information.

    For each query it draws ``len(procedures) × max_k`` gains uniformly in [0, 1), sorts them in decreasing
    order and cumulates them (scaled into [0, 1]); procedure ``j`` gets the ``j``-th run of ``max_k``
    entries. So each curve is increasing and concave, and a procedure listed later is always predicted
    better than one listed earlier: list them cheapest first. The texts themselves are never read, like
    RouteLLM's ``RandomRouter``.

    Parameters
    ----------
    procedures : sequence of str
        Procedure names, cheapest first.
    max_k : int
        Curve length K.
    seed : int or numpy Generator, default 0
        An int draws from a fresh generator on every call (the same number of texts gets the same curves);
        a ``numpy.random.Generator`` is drawn from and advanced (several predictors can share one stream).

    Examples
    --------
    >>> r = RandomPredictor(procedures=("cheap", "strong"), max_k=1, seed=3).predict_curves(["a", "b"])
    >>> bool((r["strong"] > r["cheap"]).all())
    True
    """

    def __init__(self, *, procedures: Sequence[str], max_k: int, seed: int | np.random.Generator = 0) -> None:
        self.procedures = tuple(procedures)
        self.max_k = max_k
        self.seed = seed

    @property
    def fallback_active(self) -> bool:
        return False

    def predict_curves(self, texts: Sequence[Any] | npt.NDArray[Any]) -> dict[str, FloatArray]:
        """``{procedure: (n, K)}`` random concave curves for ``len(texts)`` queries."""
        n = _n_queries(texts)
        k = self.max_k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"max_k must be a positive integer, got {k!r}")
        if not self.procedures or len(set(self.procedures)) != len(self.procedures):
            raise ConfigError(f"procedures must be distinct names, cheapest first, got {self.procedures!r}")
        width = len(self.procedures) * int(k)
        rng = self.seed if isinstance(self.seed, np.random.Generator) else np.random.default_rng(self.seed)
        gains = -np.sort(-rng.uniform(size=(n, width)), axis=1)
        cum = np.cumsum(gains, axis=1) / width
        return {p: cum[:, j * k : (j + 1) * k].copy() for j, p in enumerate(self.procedures)}

    def __repr__(self) -> str:
        return f"RandomPredictor(procedures={self.procedures!r}, max_k={self.max_k!r}, seed={self.seed!r})"


class OraclePredictor:
    """The true curves of given outcomes: what no predictor can beat on those queries.

    `fit` takes the queries' texts and their true curves. Asked for exactly the fitted texts (same order),
    it returns every query's own curve; asked for some of them, each text gets its curve (the mean curve of
    its records when a text was recorded more than once). Other texts raise `ConfigError`.

    Examples
    --------
    >>> import numpy as np
    >>> oracle = OraclePredictor().fit(["x", "y", "x"], {"gen": np.array([[0.0], [0.5], [1.0]])})
    >>> oracle.predict_curves(["x", "y", "x"])["gen"].ravel().tolist()
    [0.0, 0.5, 1.0]
    >>> oracle.predict_curves(["x"])["gen"].ravel().tolist()
    [0.5]
    """

    def __init__(self) -> None:
        pass

    def fit(self, texts: Sequence[str], curves: Curves) -> OraclePredictor:
        """Remember ``texts`` and their true ``curves`` ``{procedure: (n, K)}``; returns ``self``."""
        arrays = _as_curves(curves, "curves")
        texts = list(texts)
        n = next(iter(arrays.values())).shape[0]
        if len(texts) != n:
            raise ConfigError(f"{len(texts)} texts for curves of {n} queries; give one text per query")
        self.texts_ = texts
        self.curves_ = arrays
        return self

    @property
    def procedures(self) -> tuple[str, ...]:
        return tuple(self._fitted())

    @property
    def max_k(self) -> int:
        return int(next(iter(self._fitted().values())).shape[1])

    @property
    def fallback_active(self) -> bool:
        return False

    def _fitted(self) -> dict[str, FloatArray]:
        curves: dict[str, FloatArray] | None = getattr(self, "curves_", None)
        if curves is None:
            raise NotFittedError("this OraclePredictor is not fitted yet; call fit(texts, true_curves) first")
        return curves

    def predict_curves(self, texts: Sequence[str]) -> dict[str, FloatArray]:
        """``{procedure: (n, K)}`` true curves of ``texts`` (see the class docstring)."""
        curves = self._fitted()
        _n_queries(texts)
        asked = list(texts)
        if asked == self.texts_:
            return {p: c.copy() for p, c in curves.items()}
        index: dict[str, list[int]] = {}
        for i, t in enumerate(self.texts_):
            index.setdefault(t, []).append(i)
        unknown = [t for t in asked if t not in index]
        if unknown:
            raise ConfigError(
                f"the oracle knows only the {len(self.texts_)} queries it was fit on; {len(unknown)} text(s) "
                f"are new, e.g. {unknown[0][:80]!r}"
            )
        rows = [index[t] for t in asked]
        return {p: np.array([c[r].mean(axis=0) for r in rows]).reshape(len(asked), c.shape[1])
                for p, c in curves.items()}

    def __repr__(self) -> str:
        return "OraclePredictor()"
