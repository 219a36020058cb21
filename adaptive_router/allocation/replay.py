"""One replay: allocate on predicted values, score the choices with the true ones (numpy only).

Every figure that compares allocation policies on recorded outcomes comes from :class:`Replay`: the probe's
validation (the shrinkage weight, the neighbour weight, the uniform-fallback decision) and
``adaptive-router evaluate`` (uniform, random, adaptive and oracle rows). At a per-query budget ``B`` it

1. allocates ``B × n`` over the ``n`` queries with :func:`~adaptive_router.allocation.allocate` on the
   *predicted* option values, and
2. scores every query by the *true* value (the expected reward from the recorded outcomes) of what it got.

**Exchangeable queries.** Queries whose predicted rows are identical cannot be told apart by the policy:
which of them gets the dearer option is an accident of their order (the allocator breaks ties by query
index). The replay scores such a group by the expectation over every assignment of the group's options to
its members: each member gets option ``j`` with probability ``count_j / size``, where ``count_j`` is how many
of the group the allocator gave option ``j``. A policy without information (every row identical) therefore
scores exactly the mixture of options it buys, never one lucky or unlucky assignment.

**Uniform** is defined once, here: every query gets the same option (a *fixed policy*). The fixed policies
are the points (cost of option ``j``, mean true value of option ``j``); uniform at budget ``B`` is the point
of their upper concave hull, from the cheapest option up to the best one, above ``B``: it mixes the two hull
vertices whose costs bracket ``B`` in the proportion that spends ``B`` (beyond the best option it stays
there). For best-of-k with a concave mean curve the hull is the whole curve; for two routes it is the line
from the cheap one to the expensive one. :meth:`Replay.uniform` computes it with the same replay, by
allocating on the *population* rows (every query's predicted row is the mean true row): the allocator buys
the hull's steps in order, in whole queries, and spends the remainder (less than one hull step) on whatever
improving moves still fit, so uniform is within one query's step of the exact mixture and never above ``B``.
A probe that falls back predicts its population curve for every query, so it scores exactly as uniform
whenever that curve's hull has the same vertices (always for best-of-k and for two routes).

**The hull and the best single option** are the same baseline read exactly, without the allocator's whole
queries: :attr:`Replay.frontier` is the fixed policies' non-decreasing hull
(:class:`~adaptive_router.allocation.frontier.Frontier`); :meth:`Replay.hull` scores its mixture at ``B`` with
fractional shares (each query gets the two bracketing options in the mixture's proportions), and
:meth:`Replay.best_single` gives every query the best single option that costs at most ``B`` (no mixing).
Uniform is within one query's step below the hull; the hull never falls as ``B`` rises, and never mixes two
options that merely sit next to each other in cost.

Examples
--------
>>> import numpy as np
>>> true = np.array([[0.9, 0.95], [0.1, 0.6], [0.5, 0.5], [0.2, 0.3]])   # 4 queries, k = 1 or 2
>>> replay = Replay(true, costs=[1.0, 2.0])
>>> replay.oracle(1.25).quality                        # the one extra sample goes to query 1
0.55
>>> round(replay.uniform(1.25).quality, 6)             # a quarter of the mean k=2 gain: 0.425 + 0.1625 / 4
0.465625
>>> round(replay.score(np.ones((4, 2)) * [0.5, 0.7], 1.25).quality, 6)   # identical rows: exactly uniform
0.465625
>>> round(replay.hull(1.25).quality, 6), replay.best_single(1.25).quality   # exact mix; k=1 alone
(0.465625, 0.425)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation.engine import allocate
from adaptive_router.allocation.frontier import Frontier
from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.predictors import FloatArray

__all__ = ["Replay", "ReplayScore"]

_SLACK = 1e-12
"""Relative slack on ``B × n``, so a budget that exactly pays for a mixture is not lost to rounding."""


@dataclass(frozen=True, eq=False)
class ReplayScore:
    """One policy replayed at one budget (expectations over exchangeable queries; see the module).

    Attributes
    ----------
    budget : float
        Per-query budget ``B`` in cost units.
    quality : float
        Mean true reward per query.
    spend : float
        Mean cost per query (never above ``budget``).
    shares : ndarray, shape (m,)
        Share of queries given each option.
    per_query : ndarray, shape (n,)
        Expected true reward of each query, for paired comparisons between policies.
    """

    budget: float
    quality: float
    spend: float
    shares: FloatArray
    per_query: FloatArray

    def __repr__(self) -> str:
        return f"ReplayScore(budget={self.budget:g}, quality={self.quality:.6g}, spend={self.spend:.6g})"


class Replay:
    """Recorded queries to replay allocation policies on (see the module docstring).

    Parameters
    ----------
    true_values : array-like, shape (n, m)
        True expected reward of each query's options (e.g. ``Ladder.values(outcomes.true_curves(K))``),
        finite everywhere.
    costs : array-like, shape (m,)
        Cost of each option, non-decreasing (a ladder's ``costs``), shared by every query.

    Examples
    --------
    >>> replay = Replay([[0.2, 0.9], [0.6, 0.7]], costs=[1.0, 10.0])
    >>> replay.min_budget
    1.0
    >>> replay.score([[0.2, 0.9], [0.6, 0.7]], 5.5).shares.tolist()   # half the queries get option 1
    [0.5, 0.5]
    """

    def __init__(self, true_values: npt.ArrayLike, costs: npt.ArrayLike) -> None:
        tv = np.asarray(true_values, dtype=np.float64)
        if tv.ndim != 2 or 0 in tv.shape:
            raise ConfigError(f"true_values must be a non-empty (n queries, m options) array, got {tv.shape}")
        if not np.isfinite(tv).all():
            i, j = np.argwhere(~np.isfinite(tv))[0]
            raise ConfigError(
                f"true_values[{i}, {j}] is {tv[i, j]}: every option needs a true value to be scored; "
                "lower max_k to the samples every query recorded"
            )
        c = np.asarray(costs, dtype=np.float64)
        if c.shape != (tv.shape[1],) or not np.isfinite(c).all() or (np.diff(c) < 0).any():
            raise ConfigError(
                f"costs must be a finite, non-decreasing ({tv.shape[1]},) array (one per option), got {c}"
            )
        self.true_values = tv
        self.costs = c
        self.n, self.m = tv.shape
        self.population_values = tv.mean(axis=0)
        """(m,) mean true value of each option: the fixed policies' qualities."""
        self.frontier = Frontier(c, self.population_values)
        """The fixed policies' non-decreasing cost-quality hull (what :meth:`hull` reads)."""

    @property
    def min_budget(self) -> float:
        """Cost of the cheapest option: no per-query budget below it can be spent."""
        return float(self.costs.min())

    def check_budget(self, budget: float) -> float:
        """``budget`` as a float, or `InfeasibleBudgetError` when it cannot pay every query's cheapest option.

        >>> Replay([[0.5, 0.6]], costs=[1.0, 2.0]).check_budget(0.5)
        Traceback (most recent call last):
        ...
        adaptive_router.errors.InfeasibleBudgetError: budget 0.5 per query is below the cheapest option's \
cost 1: every query gets at least one option, so no policy can spend less; use budgets >= 1
        """
        b = float(budget)
        if not np.isfinite(b) or b < self.min_budget * (1.0 - _SLACK):
            raise InfeasibleBudgetError(
                f"budget {b:g} per query is below the cheapest option's cost {self.min_budget:g}: every "
                "query gets at least one option, so no policy can spend less; "
                f"use budgets >= {self.min_budget:g}"
            )
        return b

    def score(self, predicted_values: npt.ArrayLike, budget: float) -> ReplayScore:
        """Allocate ``budget`` per query on ``predicted_values`` (n, m) and score with the true values."""
        pv = np.asarray(predicted_values, dtype=np.float64)
        if pv.shape != (self.n, self.m):
            raise ConfigError(
                f"predicted values have shape {pv.shape}; the replay holds {self.n} queries x {self.m} "
                "options"
            )
        b = self.check_budget(budget)
        choice = np.asarray(allocate(pv, self.costs, b * self.n * (1.0 + _SLACK)).choice, dtype=np.int64)
        probs = _assignment_probabilities(pv, choice, self.m)
        if probs is None:  # no two rows alike: the assignment is the policy's own
            per_query = self.true_values[np.arange(self.n), choice]
            shares = np.bincount(choice, minlength=self.m) / self.n
        else:
            per_query = np.einsum("ij,ij->i", probs, self.true_values)
            shares = probs.mean(axis=0)
        return ReplayScore(
            budget=b,
            quality=float(per_query.mean()),
            spend=float(shares @ self.costs),
            shares=shares,
            per_query=per_query,
        )

    def uniform(self, budget: float) -> ReplayScore:
        """The fixed policies' hull mix at ``budget`` (see the module): allocation on the population rows."""
        return self.score(np.broadcast_to(self.population_values, (self.n, self.m)), budget)

    def hull(self, budget: float) -> ReplayScore:
        """The fixed policies' hull at ``budget``, exactly: its mixture with fractional shares.

        Each query's value is the mixture's expectation over its (at most two) options, so ``per_query``
        pairs with the other policies' and ``quality`` is :attr:`frontier` at ``budget``.
        """
        b = self.check_budget(budget)
        picks, weights = self.frontier.mixture(max(b, self.frontier.min_cost))
        shares = np.zeros(self.m)
        shares[list(picks)] = weights
        return self._fixed(b, shares)

    def best_single(self, budget: float) -> ReplayScore:
        """Every query gets the best option that costs at most ``budget`` (ties: the cheapest); no mixing."""
        b = self.check_budget(budget)
        affordable = self.costs <= b * (1.0 + _SLACK)
        quality = np.where(affordable, self.population_values, -np.inf)
        shares = np.zeros(self.m)
        shares[int(np.argmax(quality))] = 1.0  # argmax: the first of equal qualities, the cheapest
        return self._fixed(b, shares)

    def _fixed(self, budget: float, shares: FloatArray) -> ReplayScore:
        per_query = self.true_values @ shares
        return ReplayScore(
            budget=budget,
            quality=float(per_query.mean()),
            spend=float(shares @ self.costs),
            shares=shares,
            per_query=per_query,
        )

    def oracle(self, budget: float) -> ReplayScore:
        """Allocation on the true values: the most any policy gets from these queries at ``budget``."""
        return self.score(self.true_values, budget)

    def __repr__(self) -> str:
        return f"Replay(n={self.n}, m={self.m}, costs={self.costs.tolist()})"


def _assignment_probabilities(values: FloatArray, choice: npt.NDArray[np.int64], m: int) -> FloatArray | None:
    """``(n, m)`` probability of each query getting each option when identical rows are exchangeable.

    None when every row is distinct (each query simply has its own choice).
    """
    n = values.shape[0]
    key = np.nan_to_num(values, nan=-np.inf)  # absent options group with absent options
    _, group, sizes = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    if sizes.size == n:
        return None
    group = group.ravel()
    counts = np.zeros((sizes.size, m))
    np.add.at(counts, (group, choice), 1.0)
    return (counts / sizes[:, None])[group]
