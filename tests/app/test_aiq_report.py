"""Tests for adaptive_router.app.aiq_report: the report's single models and each method's AIQ."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.allocation import Ladder, Replay
from adaptive_router.app.aiq_report import add_aiq, single_models


def test_single_models_mark_the_options_on_the_hull():
    replay = Replay(np.array([[0.2, 0.5, 0.6, 0.9]] * 3), np.array([1.0, 2.0, 3.0, 4.0]))
    single = single_models(replay, Ladder.best_of_k(4, cost=1.0, procedure="m"))
    assert [(s["k"], s["cost"], s["on_hull"]) for s in single] == [
        (1, 1.0, True), (2, 2.0, True), (3, 3.0, False), (4, 4.0, True)
    ]
    assert [s["quality"] for s in single] == pytest.approx([0.2, 0.5, 0.6, 0.9])


def test_aiq_is_the_hull_mean_and_skips_methods_without_a_sweep():
    rep = {
        "single_models": [{"cost": 1.0, "quality": 0.2}, {"cost": 3.0, "quality": 0.6}],
        "sweep": {"spend": {"hull": [1.0, 3.0], "m": [1.0, 2.0]},
                  "quality": {"hull": [9.0, 9.0], "m": [0.2, 0.9]}},
    }
    add_aiq(rep)
    assert rep["aiq"]["hull"] == pytest.approx(0.4)  # the single models', not the sweep's hull entry
    assert rep["aiq"]["m"] == pytest.approx((0.55 + 0.9) / 2)  # 0.2 -> 0.9 over [1, 2], flat after
    assert set(rep["aiq"]) == {"hull", "m"}


def test_one_cost_gives_the_quality_there_and_a_free_model_has_no_log_aiq():
    rep = {"single_models": [{"cost": 2.0, "quality": 0.7}], "sweep": {"spend": {}, "quality": {}}}
    assert add_aiq(rep)["aiq"] == {"hull": 0.7} and rep["aiq_log"] == {"hull": 0.7}
    free = {"single_models": [{"cost": 0.0, "quality": 0.1}, {"cost": 1.0, "quality": 0.5}],
            "sweep": {"spend": {}, "quality": {}}}
    assert add_aiq(free)["aiq_log"] is None and free["aiq_cost_range"] == [0.0, 1.0]
