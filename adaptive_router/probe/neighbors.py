"""Neighbour curves: a query's reward curve from the recorded outcomes of its nearest training queries.

A nonparametric companion to the MLP heads. Questions about the same subject or of the same shape sit close
together in embedding space and share much of their difficulty, which a small head trained on single 0/1
outcomes smooths away. Features are z-scored with training statistics and L2-normalised; the ``k`` most
cosine-similar training queries vote with weights ``1 / (cosine distance + 1e-3)``, rescaled to sum to ``k``.

- Binary labels: a Beta posterior per procedure, the population Beta as prior plus the weighted successes
  and failures; its curve ``E[1 − (1 − p)^k]`` is monotone and concave, like the Beta head's.
- Curve labels: the weighted mean of the neighbours' curves (held flat past the last recorded k), with the
  population curve as one extra vote.

numpy only. `CurveProbe(neighbors=k)` blends these curves with its heads by a weight chosen on held-out
folds (see `adaptive_router.probe.estimator`).

Examples
--------
>>> import numpy as np
>>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
>>> labels = {"successes": np.array([[1.0], [1.0], [0.0], [0.0]]), "samples": np.ones((4, 1))}
>>> nc = NeighborCurves(2).fit(X, labels, prior=(np.array([1.0]), np.array([1.0])))
>>> nc.predict(np.array([[1.0, 0.05], [0.05, 1.0]]), max_k=1)[:, 0, 0].round(2)
array([0.75, 0.25])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptive_router.errors import ConfigError, NotFittedError

__all__ = ["NeighborCurves", "beta_curve"]

_CHUNK = 1024


def beta_curve(alpha: np.ndarray, beta: np.ndarray, max_k: int) -> np.ndarray:
    """``E[1 − (1 − p)^k]`` for ``p ~ Beta(alpha, beta)``, k = 1..max_k: ``(..., max_k)``.

    Closed form ``1 − Π_{j<k} (beta + j) / (alpha + beta + j)``.
    """
    a = np.asarray(alpha, dtype=np.float64)[..., None]
    b = np.asarray(beta, dtype=np.float64)[..., None]
    j = np.arange(int(max_k), dtype=np.float64)
    return 1.0 - np.cumprod((b + j) / (a + b + j), axis=-1)


class NeighborCurves:
    """k-nearest-neighbour reward curves (see the module docstring).

    Parameters
    ----------
    n_neighbors : int
        Neighbours per query (capped at the number of training queries).
    """

    def __init__(self, n_neighbors: int) -> None:
        if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)) or n_neighbors < 1:
            raise ConfigError(f"n_neighbors must be a positive integer, got {n_neighbors!r}")
        self.n_neighbors = int(n_neighbors)

    def _embed(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float32) - self.mean_) / self.scale_
        return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)

    def fit(self, X: np.ndarray, labels: dict[str, np.ndarray], *, prior: Any) -> NeighborCurves:
        """Store the training queries and their labels.

        `labels` is ``{"successes", "samples"}`` (each ``(n, P)``) with ``prior = (alpha, beta)`` (each
        ``(P,)``), or ``{"curves": (n, P, K)}`` with ``prior`` the ``(P, K)`` population curve.
        """
        X = np.asarray(X, dtype=np.float32)
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-6
        self.reference_ = self._embed(X)
        self.labels_ = {k: np.asarray(v, dtype=np.float64) for k, v in labels.items()}
        if "curves" in self.labels_:  # curves recorded only up to some k stay flat after it
            c = self.labels_["curves"]
            self.labels_["curves"] = np.maximum.accumulate(np.nan_to_num(c, nan=-np.inf), axis=-1)
        self.prior_ = _prior(prior, binary="successes" in labels)
        return self

    def _weights(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Neighbour indices and weights ``(n, k)``, in chunks to bound memory."""
        B = self._embed(X)
        k = min(self.n_neighbors, len(self.reference_))
        idx = np.empty((len(B), k), dtype=np.int64)
        w = np.empty((len(B), k))
        for s in range(0, len(B), _CHUNK):
            sim = B[s : s + _CHUNK] @ self.reference_.T
            part = (
                np.argpartition(-sim, k - 1, axis=1)[:, :k]
                if k < sim.shape[1]
                else np.tile(np.arange(k), (len(sim), 1))
            )
            inv = 1.0 / (1.0 - np.take_along_axis(sim, part, axis=1) + 1e-3)
            idx[s : s + _CHUNK] = part
            w[s : s + _CHUNK] = inv / inv.sum(axis=1, keepdims=True) * k
        return idx, w

    def predict(self, X: np.ndarray, max_k: int) -> np.ndarray:
        """``(n, P, max_k)`` curves for the rows of `X`."""
        if not hasattr(self, "reference_"):
            raise NotFittedError("NeighborCurves is not fitted yet; call fit first")
        idx, w = self._weights(X)
        if "successes" in self.labels_:
            c, s = self.labels_["successes"][idx], self.labels_["samples"][idx]  # (n, k, P)
            alpha = self.prior_[0] + np.einsum("nk,nkp->np", w, c)
            beta = self.prior_[1] + np.einsum("nk,nkp->np", w, s - c)
            return beta_curve(alpha, beta, max_k)
        curves = self.labels_["curves"][:, :, :max_k]  # (n_train, P, K)
        pop = self.prior_[0][None, :, :max_k]
        votes = np.einsum("nk,nkpj->npj", w, curves[idx])
        return (votes + pop) / (w.sum(axis=1)[:, None, None] + 1.0)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that `from_state` needs (saved with the probe's weights)."""
        return {"mean": self.mean_, "scale": self.scale_, "reference": self.reference_, **self.labels_}

    @classmethod
    def from_state(cls, n_neighbors: int, state: dict[str, np.ndarray], prior: Any) -> NeighborCurves:
        """Rebuild from `state` and the prior (the probe's population Beta or curve)."""
        out = cls(n_neighbors)
        out.mean_, out.scale_ = state["mean"].astype(np.float32), state["scale"].astype(np.float32)
        out.reference_ = state["reference"].astype(np.float32)
        keys = ("successes", "samples") if "successes" in state else ("curves",)
        out.labels_ = {k: state[k].astype(np.float64) for k in keys}
        out.prior_ = _prior(prior, binary="successes" in state)
        return out


def _prior(prior: Any, *, binary: bool) -> tuple[np.ndarray, ...]:
    """``(alpha, beta)`` for binary labels, ``(population_curve,)`` for curve labels, as float64."""
    parts = prior if binary else (prior,)
    return tuple(np.asarray(p, dtype=np.float64) for p in parts)
