"""Tests for adaptive_router.probe.crossfit: fold heads, out-of-fold curves, torch thread settings."""

from __future__ import annotations

import numpy as np
import torch

from adaptive_router.probe.crossfit import cross_fit, torch_threads
from adaptive_router.probe.heads import HeadConfig


def test_every_query_gets_an_out_of_fold_curve_deterministically(binary_data) -> None:
    X, _, y, _ = binary_data
    labels = {"successes": y["gen"][0][:, None].astype(float), "samples": y["gen"][1][:, None].astype(float)}
    config = HeadConfig(kind="beta", in_dim=X.shape[1], n_procedures=1, max_k=3, hidden=8)
    X32 = X.astype(np.float32)

    def run():
        return cross_fit(X32, labels, config, n_folds=3, val_fraction=0.15, seed=1, init_head=lambda h: None,
                         max_epochs=5, patience=2, batch_size=64, lr=3e-3, weight_decay=0.0, l2=0.0)

    a, b = run(), run()
    assert len(a.heads) == 3 and len(a.best_epochs) == 3 and a.oof_neighbors is None
    assert a.oof.shape == (len(X), 1, 3) and (a.oof > 0).all()
    np.testing.assert_array_equal(a.oof, b.oof)


def test_torch_threads_restores_the_setting() -> None:
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
