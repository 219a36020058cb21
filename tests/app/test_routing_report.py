"""Tests for adaptive_router.app.routing_report: the share of calls to the best model each method needs."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.allocation import Ladder, Replay
from adaptive_router.app.routing_report import routing_section


def _two_routes():
    # cheap right on the first 60 queries, dear on the first 80 (a superset)
    true = np.array([[float(i < 60), float(i < 80)] for i in range(100)])
    return true, Replay(true, np.array([1.0, 10.0])), Ladder.routes({"cheap": 1.0, "dear": 10.0})


def test_a_perfect_router_sends_only_the_queries_the_cheap_model_misses():
    true, replay, ladder = _two_routes()
    out = routing_section(replay, ladder, {"oracle": [true]})
    assert (out["expensive"], out["cheap"]) == ("dear", "cheap")
    assert out["target_quality"] == pytest.approx(0.76)
    assert out["expensive_share"]["oracle"] == pytest.approx(0.16, abs=0.01)
    assert out["expensive_share"]["hull"] == pytest.approx(0.8)  # (0.76 - 0.6) / (0.8 - 0.6)
    assert out["cost_savings"]["hull"] == pytest.approx(1 - (1 + 0.8 * 9) / 10)
    assert out["expensive_share"]["best_single"] == 1.0 and out["cost_savings"]["best_single"] == 0.0
    # the best model's own quality (0.8): the hull only at its cost; the oracle sends the dear model the 20
    # queries only it solves and the cheap one the other 80, 0.8 * 1 + 0.2 * 10 = 2.8: 28% of the dear cost
    assert out["match_cost_share"]["hull"] == pytest.approx(1.0)
    assert out["match_cost_share"]["oracle"] == pytest.approx(0.28, abs=0.005)


def test_the_best_model_is_the_one_of_highest_quality_not_the_dearest():
    ladder = Ladder.routes({"a": 1.0, "b": 20.0, "c": 5.0})
    assert [o.procedure for o in ladder.options] == ["a", "c", "b"]  # by cost
    replay = Replay(np.array([[0.9, 0.95, 0.5]] * 10), np.array([1.0, 5.0, 20.0]))
    out = routing_section(replay, ladder, {}, target=0.9)
    assert out["expensive"] == "c" and out["expensive_quality"] == pytest.approx(0.95)
    # `a` alone reaches 90% of `c`: the best single model within reach sends nothing to `c`
    assert out["expensive_share"]["best_single"] == 0.0 and out["cost_savings"]["best_single"] == 0.8


def test_a_target_above_the_best_quality_is_none_and_the_scorer_runs_the_sweep():
    true, replay, ladder = _two_routes()
    seen = []

    def scores(rep, pairs):
        seen.append(len(pairs))
        return [rep.score(v, b) for v, b in pairs]

    out = routing_section(replay, ladder, {"uniform": [np.full_like(true, 0.5)]}, target=1.01, scores=scores)
    assert out["expensive_share"] == {"hull": None, "best_single": None, "uniform": None}
    assert out["cost_savings"]["uniform"] is None and seen == [201]
