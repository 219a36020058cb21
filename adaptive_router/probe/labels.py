"""The labels a `CurveProbe` fits on, and the true curves they imply (numpy only).

Two kinds, one per outcome format:

- ``"binary"``: ``{procedure: (successes, samples)}``, each an ``(n,)`` array: c successes of s recorded
  samples. The true curve is the unbiased pass@k, ``1 − C(s − c, k) / C(s, k)``.
- ``"curve"``: ``{procedure: (n, K) curves}`` (expected best-of-k, or reranked best-of-k), NaN past the
  samples a query recorded.

Examples
--------
>>> import numpy as np
>>> kind, procs, labels = parse_labels({"gen": (np.array([1, 2]), np.array([2, 2]))}, 2, max_k=2)
>>> kind, procs, true_curves(labels, kind, 2)[:, 0, :].tolist()
('binary', ('gen',), [[0.5, 1.0], [1.0, 1.0]])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from adaptive_router.errors import ConfigError

__all__ = ["LABEL_KINDS", "parse_labels", "true_curves", "validated_k"]

LABEL_KINDS = ("auto", "binary", "curve")


def parse_labels(
    y: Mapping[str, Any], n: int, *, max_k: int, label_kind: str = "auto"
) -> tuple[str, tuple[str, ...], dict[str, np.ndarray]]:
    """Check ``y`` for ``n`` queries: ``(kind, procedures, arrays)``.

    ``arrays`` is ``{"successes", "samples"}`` (each ``(n, P)``) for binary labels or ``{"curves": (n, P,
    max_k)}`` (NaN past the recorded k) for curve labels.
    """
    if label_kind not in LABEL_KINDS:
        raise ConfigError(f"label_kind={label_kind!r} is not one of {LABEL_KINDS}")
    if not isinstance(y, Mapping) or not y:
        raise ConfigError(
            "y must be a non-empty mapping {procedure: (successes, samples)} for binary labels or "
            "{procedure: (n, K) curves} for continuous labels"
        )
    procs = tuple(str(p) for p in y)
    kinds = {p: ("binary" if isinstance(v, tuple) else "curve") for p, v in y.items()}
    kind = label_kind if label_kind != "auto" else next(iter(kinds.values()))
    if any(k != kind for k in kinds.values()):
        raise ConfigError(f"mixed label kinds {kinds}: give every procedure (successes, samples) or curves")
    if kind == "binary":
        succ = np.zeros((n, len(procs)))
        samp = np.zeros((n, len(procs)))
        for j, p in enumerate(procs):
            if not isinstance(y[p], tuple) or len(y[p]) != 2:
                raise ConfigError(f"binary labels for {p!r} must be a (successes, samples) tuple")
            c = np.asarray(y[p][0], dtype=float)
            s = np.asarray(y[p][1], dtype=float)
            if c.shape != (n,) or s.shape != (n,):
                raise ConfigError(f"labels for {p!r} have shapes {c.shape}/{s.shape}, expected ({n},)")
            if (c < 0).any() or (c > s).any() or (s < 1).any():
                raise ConfigError(f"labels for {p!r} need 0 <= successes <= samples and samples >= 1")
            succ[:, j], samp[:, j] = c, s
        return kind, procs, {"successes": succ, "samples": samp}
    curves = np.full((n, len(procs), int(max_k)), np.nan)
    for j, p in enumerate(procs):
        arr = np.asarray(y[p], dtype=float)
        if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
            raise ConfigError(f"curve labels for {p!r} must be (n={n}, K) arrays, got {arr.shape}")
        width = min(int(max_k), arr.shape[1])
        curves[:, j, :width] = arr[:, :width]
    if not np.isfinite(curves[:, :, 0]).all():
        raise ConfigError("curve labels need a finite k=1 value for every query and procedure")
    return kind, procs, {"curves": curves}


def true_curves(labels: Mapping[str, np.ndarray], kind: str, max_k: int) -> np.ndarray:
    """``(n, P, max_k)`` true curves of parsed labels (pass@k for binary labels)."""
    if kind == "curve":
        return np.asarray(labels["curves"])
    from adaptive_router.curves import pass_at_k

    c, s = labels["successes"].astype(np.int64), labels["samples"].astype(np.int64)
    return np.stack([pass_at_k(c[:, j], s[:, j], int(max_k)) for j in range(c.shape[1])], axis=1)


def validated_k(true: np.ndarray, max_k: int) -> int:
    """Largest k recorded for every query and procedure (curves past it cannot be scored)."""
    finite = np.isfinite(true).all(axis=(0, 1))
    return int(np.argmin(finite)) if not finite.all() else int(max_k)
