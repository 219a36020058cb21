"""Tests for adaptive_router.probe.labels: label parsing and the true curves they imply."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.probe.labels import parse_labels, true_curves, validated_k


def test_binary_labels_give_pass_at_k() -> None:
    kind, procs, labels = parse_labels({"a": (np.array([0, 1, 4]), np.array([4, 4, 4]))}, 3, max_k=2)
    assert (kind, procs) == ("binary", ("a",))
    np.testing.assert_allclose(true_curves(labels, kind, 2)[:, 0, :], [[0, 0], [0.25, 0.5], [1, 1]])


def test_curve_labels_are_cut_or_padded_to_max_k() -> None:
    curves = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, np.nan]])
    kind, _, labels = parse_labels({"a": curves}, 2, max_k=4)
    true = true_curves(labels, kind, 4)
    assert kind == "curve" and true.shape == (2, 1, 4) and np.isnan(true[:, 0, 3]).all()
    assert validated_k(true, 4) == 2


def test_bad_labels_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="mixed label kinds"):
        parse_labels({"a": (np.zeros(2), np.ones(2)), "b": np.zeros((2, 1))}, 2, max_k=1)
    with pytest.raises(ConfigError, match="successes <= samples"):
        parse_labels({"a": (np.full(2, 3), np.ones(2))}, 2, max_k=1)
    with pytest.raises(ConfigError, match="finite k=1 value"):
        parse_labels({"a": np.full((2, 2), np.nan)}, 2, max_k=2)
    with pytest.raises(ConfigError, match="label_kind='x' is not one of"):
        parse_labels({"a": np.zeros((2, 1))}, 2, max_k=1, label_kind="x")
