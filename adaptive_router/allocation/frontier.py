"""The cost-quality frontier of a set of policies, and AIQ, the area under it (numpy only).

A policy measured at a cost ``c`` with quality ``q`` is a point ``(c, q)``; a set of policies can also be
*mixed* (each query goes to one policy at random, in fixed proportions), which reaches every point on a
chord between two of them. :class:`Frontier` is the best any mixture reaches while spending at most ``c``:
the upper concave hull of the points, from the cheapest point up to the best one, flat beyond it (never
paying more for less). It is *non-decreasing* in ``c`` by construction: a larger budget can always be spent
as a smaller one.

:func:`aiq` is RouterBench's *Average Improvement in Quality* (Hu et al., 2024): the area under a method's
frontier over a stated cost range ``[c_min, c_max]``, divided by ``c_max - c_min``, i.e. the frontier's mean
quality over the range (cost on a linear axis). Below a frontier's cheapest point no mixture exists and the
area counts nothing there. With the range set by the cheapest and dearest single model, a method that is
exactly the single models' frontier scores the frontier's AIQ, and a router that adds nothing scores no
more.

Examples
--------
>>> f = Frontier([1.0, 2.0, 4.0, 5.0], [0.2, 0.6, 0.8, 0.7])   # the last model is dearer and worse
>>> f.costs_.tolist(), f.qualities_.tolist(), f.index_.tolist()
([1.0, 2.0, 4.0], [0.2, 0.6, 0.8], [0, 1, 2])
>>> f(3.0), f(5.0)                                  # halfway from 2 to 4; flat beyond the best model
(0.7, 0.8)
>>> round(aiq([1.0, 2.0, 4.0, 5.0], [0.2, 0.6, 0.8, 0.7], (1.0, 5.0)), 12)   # (0.4 + 1.4 + 0.8) / 4
0.65
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation.hull import hull_mask
from adaptive_router.errors import ConfigError
from adaptive_router.predictors import FloatArray, IntArray

__all__ = ["Frontier", "aiq"]


class Frontier:
    """The non-decreasing upper concave hull of ``(cost, quality)`` points (see the module docstring).

    Parameters
    ----------
    costs, qualities : array-like, shape (p,)
        The points, in any order; finite, at least one.

    Attributes
    ----------
    costs_, qualities_ : ndarray, shape (v,)
        The hull's vertices by increasing cost, from the cheapest point to the first point of the highest
        quality (collinear points are kept; of points with equal cost only the best).
    index_ : ndarray of int, shape (v,)
        Position of each vertex among the given points.

    Examples
    --------
    >>> f = Frontier([10.0, 1.0, 5.0], [0.9, 0.5, 0.52])    # the middle model lies below the chord
    >>> f.index_.tolist()
    [1, 0]
    >>> f.mixture(5.5)                                       # options 1 and 0, half each
    ((1, 0), (0.5, 0.5))
    """

    def __init__(self, costs: npt.ArrayLike, qualities: npt.ArrayLike) -> None:
        c = np.asarray(costs, dtype=np.float64).ravel()
        q = np.asarray(qualities, dtype=np.float64).ravel()
        if c.shape != q.shape or c.size == 0 or not (np.isfinite(c).all() and np.isfinite(q).all()):
            raise ConfigError(
                f"a frontier needs finite costs and qualities of the same non-zero length, got {c.size} "
                f"costs and {q.size} qualities"
            )
        order = np.lexsort((-q, c))  # by cost; of equal costs the best first
        alive = hull_mask(q[order][None, :], c[order][None, :], np.ones((1, c.size), dtype=bool))[0]
        idx = order[alive]
        best = int(np.argmax(q[idx]))  # the first (cheapest) vertex of the highest quality
        self.index_: IntArray = idx[: best + 1].astype(np.int64)
        self.costs_: FloatArray = c[self.index_]
        self.qualities_: FloatArray = q[self.index_]

    @property
    def min_cost(self) -> float:
        """Cost of the cheapest point: no mixture spends less."""
        return float(self.costs_[0])

    def __call__(self, cost: float) -> float:
        """Best mixture quality spending at most ``cost``; NaN below the cheapest point."""
        c = float(cost)
        if c < self.min_cost:
            return float("nan")
        return float(np.interp(c, self.costs_, self.qualities_))

    def mixture(self, cost: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """The points (by position) and proportions of the frontier's mixture at ``cost``.

        Two points when ``cost`` falls between two vertices, one at a vertex or beyond the best point.
        A cost below the cheapest point raises :class:`ConfigError`.
        """
        c = float(cost)
        if c < self.min_cost:
            raise ConfigError(f"cost {c:g} is below the frontier's cheapest point {self.min_cost:g}")
        j = int(np.searchsorted(self.costs_, c, side="left"))
        if j >= self.costs_.size:
            return (int(self.index_[-1]),), (1.0,)
        if self.costs_[j] == c or j == 0:
            return (int(self.index_[j]),), (1.0,)
        c0, c1 = self.costs_[j - 1], self.costs_[j]
        w = float((c - c0) / (c1 - c0))
        return (int(self.index_[j - 1]), int(self.index_[j])), (1.0 - w, w)

    def area(self, low: float, high: float, *, log: bool = False) -> float:
        """Integral of the frontier over ``[low, high]`` (zero where it has no point, below ``min_cost``).

        ``log=True`` integrates over ``ln(cost)`` instead (``low`` must be > 0), exactly on each straight
        stretch: ``∫ (a + b c) dc / c = a ln(c1 / c0) + b (c1 - c0)``.
        """
        lo, hi = float(low), float(high)
        if log and lo <= 0:
            raise ConfigError(f"an area over log cost needs low > 0, got {lo:g}")
        start = max(lo, self.min_cost)
        if hi <= start:
            return 0.0
        inside = self.costs_[(self.costs_ > start) & (self.costs_ < hi)]
        xs = np.concatenate([[start], inside, [hi]])
        ys = np.interp(xs, self.costs_, self.qualities_)
        x0, x1, y0, y1 = xs[:-1], xs[1:], ys[:-1], ys[1:]
        if not log:
            return float(np.sum((x1 - x0) * (y0 + y1) / 2.0))
        slope = (y1 - y0) / (x1 - x0)
        return float(np.sum((y0 - slope * x0) * np.log(x1 / x0) + slope * (x1 - x0)))

    def __repr__(self) -> str:
        pts = ", ".join(f"({c:g}, {q:.4g})" for c, q in zip(self.costs_, self.qualities_, strict=True))
        return f"Frontier([{pts}])"


def aiq(
    costs: npt.ArrayLike, qualities: npt.ArrayLike, cost_range: Sequence[float], *, log: bool = False
) -> float:
    """Mean quality of the points' :class:`Frontier` over ``cost_range = (c_min, c_max)``.

    ``c_min == c_max`` gives the frontier's quality at that cost (0 below its cheapest point). ``log=True``
    averages over log cost instead (each decade weighs the same; ``c_min`` must be > 0): RouterBench's AIQ
    is the linear one, which for costs spanning decades mostly measures the flat top.

    Examples
    --------
    >>> aiq([1.0, 3.0], [0.0, 1.0], (1.0, 3.0))        # a triangle: half of the unit square
    0.5
    >>> aiq([1.0, 2.0], [0.5, 0.5], (0.0, 4.0))        # nothing below cost 1: 0.5 x 3 / 4
    0.375
    >>> round(aiq([1.0, 100.0], [0.0, 1.0], (1.0, 100.0), log=True), 4)   # (99 - ln 100) / (99 ln 100)
    0.207
    """
    lo, hi = (float(x) for x in cost_range)
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
        raise ConfigError(f"cost_range must be finite (c_min, c_max) with c_min <= c_max, got {cost_range!r}")
    frontier = Frontier(costs, qualities)
    if hi == lo:
        value = frontier(lo)
        return 0.0 if np.isnan(value) else value
    if log:
        return frontier.area(lo, hi, log=True) / float(np.log(hi / lo))  # area() refuses c_min <= 0
    return frontier.area(lo, hi) / (hi - lo)
