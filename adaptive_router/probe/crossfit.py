"""Cross-fitting: one head per fold, each trained on the other folds, and everyone's out-of-fold curves.

The out-of-fold curves are held-out predictions for every training query; `CurveProbe` validates shrinkage
and the fallback on them, and averages the fold heads at prediction time. With a neighbour model the
same folds give out-of-fold neighbour curves too. Seeded and deterministic on CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from adaptive_router.probe import heads as H

__all__ = ["CrossFit", "cross_fit", "torch_threads"]


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for the block, restored afterwards; None leaves torch alone."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if n is not None:
            torch.set_num_threads(previous)


@dataclass
class CrossFit:
    """The fold heads, the out-of-fold curves ``(n, P, K)`` and each head's best epoch."""

    heads: list[Any]
    oof: np.ndarray
    oof_neighbors: np.ndarray | None
    best_epochs: list[int]


def cross_fit(
    X: np.ndarray,
    labels: Mapping[str, np.ndarray],
    config: H.HeadConfig,
    *,
    n_folds: int,
    val_fraction: float,
    seed: int,
    init_head: Callable[[Any], None],
    fit_neighbors: Callable[[np.ndarray, dict[str, np.ndarray]], Any] | None = None,
    **train_params: Any,
) -> CrossFit:
    """Train ``n_folds`` heads with early stopping on an inner validation split of their training folds.

    ``init_head`` starts each head at the population curve; ``fit_neighbors(X, labels)`` (optional) returns a
    fitted `NeighborCurves` for a fold; ``train_params`` go to `train_head` (lr, weight decay, l2, batch
    size, epochs, patience).
    """
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    folds = rng.permutation(n) % n_folds
    oof = np.zeros((n, config.n_procedures, config.max_k))
    oof_neighbors = np.zeros_like(oof) if fit_neighbors is not None else None
    heads, epochs = [], []
    for f in range(n_folds):
        tr = np.flatnonzero(folds != f)
        te = np.flatnonzero(folds == f)
        if fit_neighbors is not None and oof_neighbors is not None:
            fold = fit_neighbors(X[tr], {k: v[tr] for k, v in labels.items()})
            oof_neighbors[te] = fold.predict(X[te], config.max_k)
        inner = rng.permutation(tr)
        n_val = max(1, round(len(tr) * val_fraction))
        va, tr = inner[:n_val], inner[n_val:]
        torch.manual_seed(seed * 1000 + f)
        head = H.build_head(config)
        head.set_standardization(X[tr])
        init_head(head)
        res = H.train_head(
            head,
            X[tr],
            {k: v[tr] for k, v in labels.items()},
            X[va],
            {k: v[va] for k, v in labels.items()},
            seed=seed * 1000 + f,
            **train_params,
        )
        epochs.append(res.best_epoch)
        with torch.no_grad():
            oof[te] = head.curves(torch.as_tensor(X[te])).double().numpy()
        heads.append(head)
    return CrossFit(heads=heads, oof=oof, oof_neighbors=oof_neighbors, best_epochs=epochs)
