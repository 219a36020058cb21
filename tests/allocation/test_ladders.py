"""Ladder / Option: construction, ordering, curves -> values."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.allocation import Ladder, Option
from adaptive_router.errors import ConfigError


def test_best_of_k_costs_and_values():
    ladder = Ladder.best_of_k(4, cost=0.5, procedure="gemma")
    assert len(ladder) == 4
    assert ladder.costs.tolist() == [0.5, 1.0, 1.5, 2.0]
    assert ladder.ks.tolist() == [1, 2, 3, 4]
    assert ladder.procedures == ("gemma",) * 4
    curves = {"gemma": np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])}
    assert ladder.values(curves).tolist() == [[0.1, 0.2, 0.3, 0.4]]


def test_routes_are_sorted_by_cost():
    ladder = Ladder.routes({"expensive": 10, "cheap": 1})
    assert [o.procedure for o in ladder] == ["cheap", "expensive"]
    assert ladder.costs.tolist() == [1.0, 10.0]
    assert ladder.max_k == 1


def test_grid_interleaves_by_cost_and_describes_choices():
    ladder = Ladder.grid({"cheap": 3, "expensive": 5}, max_k=2)
    pairs = [(o.procedure, o.k) for o in ladder]
    assert pairs == [("cheap", 1), ("expensive", 1), ("cheap", 2), ("expensive", 2)]
    curves = {"cheap": np.array([[0.1, 0.2], [0.3, 0.4]]), "expensive": np.array([[0.5, 0.6], [0.7, 0.8]])}
    np.testing.assert_allclose(ladder.values(curves), [[0.1, 0.5, 0.2, 0.6], [0.3, 0.7, 0.4, 0.8]])
    assert ladder.describe([3, 0]) == [Option("expensive", 2, 10.0), Option("cheap", 1, 3.0)]


def test_values_feed_allocate():
    from adaptive_router import allocate

    ladder = Ladder.best_of_k(3)
    curves = {"default": np.array([[0.9, 0.95, 0.96], [0.2, 0.4, 0.55]])}
    r = allocate(ladder.values(curves), ladder.costs, 4.0)
    assert [o.k for o in ladder.describe(r.choice)] == [1, 3]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Ladder.best_of_k(0), r"max_k=0 must be an integer >= 1"),
        (lambda: Ladder.routes({}), "pass procedures with their cost per call"),
        (lambda: Ladder.routes({"cheap": -1}), r"cost of procedure 'cheap' is -1"),
        (lambda: Ladder(()), "at least one option"),
        (lambda: Ladder((Option("a", 1, 1.0), Option("a", 1, 1.0))), "distinct"),
        (lambda: Option("a", 0, 1.0), r"k=0 must be an integer >= 1"),
        (lambda: Option("", 1, 1.0), "non-empty string"),
        (lambda: Option("a", 1, float("nan")), "finite and >= 0"),
    ],
)
def test_invalid_ladders(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_values_errors_name_missing_procedures_and_short_curves():
    ladder = Ladder.grid({"cheap": 1, "expensive": 10}, max_k=3)
    with pytest.raises(ConfigError, match=r"lack procedures \['expensive'\]"):
        ladder.values({"cheap": np.zeros((2, 3))})
    with pytest.raises(ConfigError, match=r"curves\['expensive'\] has K=2 but the ladder needs k up to 3"):
        ladder.values({"cheap": np.zeros((2, 3)), "expensive": np.zeros((2, 2))})
    with pytest.raises(ConfigError, match="disagree on the number of queries"):
        ladder.values({"cheap": np.zeros((2, 3)), "expensive": np.zeros((3, 3))})
