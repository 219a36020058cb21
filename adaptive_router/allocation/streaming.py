"""Allocation for queries that arrive over time, under a budget per query (numpy only).

- :class:`WindowAllocator` solves each window jointly with :func:`allocate` under the window's share of
  the budget plus whatever earlier windows left unspent (a ledger). It never spends more than has been
  granted so far: the ledger balance is never negative.
- :class:`ThresholdAllocator` serves queries one at a time (or in small batches) with a shadow price λ
  calibrated on reference ladders, so that the expected spend per query equals the target. A ledger
  correction moves λ when the stream spends more or less than planned, so the long-run spend per query
  converges to the target (the drift shrinks like ``1 / number of queries``).
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation._segments import segments, take
from adaptive_router.allocation._validate import Problem, check_problem
from adaptive_router.allocation.engine import Allocation, allocate
from adaptive_router.errors import ConfigError, InfeasibleBudgetError, NotFittedError

__all__ = ["ThresholdAllocator", "WindowAllocator"]


def _check_budget_per_query(value: Any) -> float:
    try:
        b = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"budget_per_query={value!r} must be a number (cost units per query)") from None
    if not np.isfinite(b) or b < 0:
        raise ConfigError(f"budget_per_query={value!r} must be finite and >= 0")
    return b


def _plain_choice(p: Problem, lam: float) -> tuple[int, float, float, float] | None:
    """One row's choice at threshold `lam` (> 0 slopes at least `lam` are bought): ``(option, cost,
    value, lam)``, in plain floats; None unless the row is one that `segments` reads as it is (every option
    present, one cost row rising strictly, slopes never rising), which then decides the same option.

    A lone query's row usually is: this spares it `segments`' arrays (numpy's per-call work on a 1-row
    problem is most of a lone decision's time).
    """
    if p.allowed is not None or p.costs.ndim != 1:
        return None
    v, c = p.values[0].tolist(), p.costs.tolist()
    slopes = []
    for j in range(len(c) - 1):
        step = c[j + 1] - c[j]
        if not step > 0:
            return None
        slopes.append((v[j + 1] - v[j]) / step)
    if any(b > a for a, b in itertools.pairwise(slopes)):
        return None
    bought = sum(1 for s in slopes if s >= lam and s > 0)  # the option reached: one per segment bought
    return bought, c[bought], v[bought], lam


class _Ledger:
    """Budget granted, spent and carried (shared bookkeeping of both allocators)."""

    granted_: float
    spent_: float
    balance_: float
    n_seen_: int

    def reset(self) -> _Ledger:
        """Forget the ledger (granted, spent, balance) and start a new stream."""
        self.granted_ = 0.0
        self.spent_ = 0.0
        self.balance_ = 0.0
        self.n_seen_ = 0
        return self

    def _ensure_ledger(self) -> None:
        if not hasattr(self, "balance_"):
            self.reset()

    def settle(self, *, planned: float, actual: float) -> None:
        """Record that a decision planned to cost ``planned`` actually cost ``actual``.

        The difference is taken from (or returned to) the balance, so later decisions pay for overruns.
        """
        self._ensure_ledger()
        delta = float(actual) - float(planned)
        if not np.isfinite(delta):
            raise ConfigError(f"planned={planned!r} and actual={actual!r} must be finite")
        self.spent_ += delta
        self.balance_ -= delta


class WindowAllocator(_Ledger):
    """Allocate a stream window by window, carrying unspent budget forward.

    Parameters
    ----------
    budget_per_query : float
        Average budget per query; a window of ``n`` queries is granted ``n * budget_per_query``.
    min_cost, max_cost : float, optional
        Default per-query limits on the chosen option's cost (overridable per call).

    Attributes
    ----------
    granted_, spent_, balance_ : float
        Budget granted so far, spent so far, and ``granted_ - spent_`` (never negative).
    n_seen_, windows_ : int
        Queries and windows allocated so far.

    Examples
    --------
    >>> import numpy as np
    >>> alloc = WindowAllocator(budget_per_query=2.0)
    >>> costs = np.array([1.0, 2.0, 3.0])
    >>> alloc.allocate(np.array([[0.9, 0.9, 0.9]]), costs).choice.tolist()  # easy: 1 unit, carries 1
    [0]
    >>> alloc.balance_
    1.0
    >>> alloc.allocate(np.array([[0.1, 0.4, 0.6]]), costs).choice.tolist()  # hard: uses the carry
    [2]
    >>> alloc.balance_
    0.0
    """

    def __init__(
        self,
        *,
        budget_per_query: float,
        min_cost: float | None = None,
        max_cost: float | None = None,
    ) -> None:
        self.budget_per_query = budget_per_query
        self.min_cost = min_cost
        self.max_cost = max_cost

    def allocate(
        self,
        values: npt.ArrayLike,
        costs: npt.ArrayLike,
        *,
        weights: npt.ArrayLike | None = None,
        min_cost: float | npt.ArrayLike | None = None,
        max_cost: float | npt.ArrayLike | None = None,
    ) -> Allocation:
        """Allocate one window under its share of the budget plus the ledger balance.

        Raises :class:`InfeasibleBudgetError` (and leaves the ledger untouched) when even the cheapest
        allowed options do not fit what has been granted.
        """
        b = _check_budget_per_query(self.budget_per_query)
        self._ensure_ledger()
        if not hasattr(self, "windows_"):
            self.windows_ = 0
        v = np.asarray(values, dtype=np.float64)
        n = int(v.shape[0]) if v.ndim == 2 else 0
        grant = b * n
        available = max(self.balance_ + grant, 0.0)
        try:
            result = allocate(
                v,
                costs,
                available,
                min_cost=self.min_cost if min_cost is None else min_cost,
                max_cost=self.max_cost if max_cost is None else max_cost,
                weights=weights,
            )
        except InfeasibleBudgetError as exc:
            raise InfeasibleBudgetError(
                f"window of {n} queries: {exc} (this window's share {grant:g} + carried balance "
                f"{self.balance_:g}); raise budget_per_query or allow cheaper options"
            ) from None
        self.granted_ += grant
        self.spent_ += result.spend
        self.balance_ = available - result.spend
        self.n_seen_ += n
        self.windows_ += 1
        return result

    def reset(self) -> WindowAllocator:
        super().reset()
        self.windows_ = 0
        return self


class ThresholdAllocator(_Ledger):
    """Serve queries one at a time with a shadow price calibrated to a spend target.

    ``fit`` computes, on reference ladders (predicted curves of past or held-out queries), the expected
    spend per query of every threshold λ ("buy every envelope step worth at least λ per unit of cost")
    and picks the one that spends the target. ``choose`` applies the threshold; its ledger correction
    aims each decision at ``budget_per_query + balance_ / horizon``, so overspending raises λ and
    underspending lowers it, and the long-run spend per query converges to the target.

    Parameters
    ----------
    budget_per_query : float
        Target average spend per query.
    min_cost, max_cost : float, optional
        Per-query limits on the chosen option's cost.
    horizon : float, default=256
        Number of queries over which a ledger imbalance is paid back (smaller: tighter spend, more
        jitter in λ).

    Attributes
    ----------
    shadow_price_ : float
        The calibrated λ (before any ledger correction).
    expected_spend_ : float
        Expected reference spend per query: the target, or less when every useful step of the
        reference fits in it. Between two reference levels λ is dithered deterministically.
    thresholds_, spend_at_ : ndarray
        Every reference threshold (decreasing) and the reference spend per query when buying every
        step with a slope at least that threshold.
    granted_, spent_, balance_, n_seen_ :
        The ledger, as in :class:`WindowAllocator` (here the balance may dip below zero).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.beta(0.5, 1.5, size=(2000, 1))
    >>> reference = 1 - (1 - p) ** np.arange(1, 9)        # best-of-1..8 pass@k curves
    >>> ta = ThresholdAllocator(budget_per_query=3.0).fit(reference, np.arange(1.0, 9))
    >>> round(ta.expected_spend_, 6)
    3.0
    >>> stream = 1 - (1 - rng.beta(0.5, 1.5, size=(4000, 1))) ** np.arange(1, 9)
    >>> spent = sum(ta.choose(row, np.arange(1.0, 9)).spend for row in stream[:2000])
    >>> bool(abs(spent / 2000 - 3.0) < 0.15)
    True
    """

    def __init__(
        self,
        *,
        budget_per_query: float,
        min_cost: float | None = None,
        max_cost: float | None = None,
        horizon: float = 256.0,
    ) -> None:
        self.budget_per_query = budget_per_query
        self.min_cost = min_cost
        self.max_cost = max_cost
        self.horizon = horizon

    def fit(
        self, reference_values: npt.ArrayLike, costs: npt.ArrayLike, *, weights: npt.ArrayLike | None = None
    ) -> ThresholdAllocator:
        """Calibrate λ on ``(n_ref, m)`` reference ladders so the expected spend per query is the target.

        Refitting (e.g. on a grown reference set) keeps the ledger of the stream served so far; call
        :meth:`reset` to start a new stream.
        """
        b = _check_budget_per_query(self.budget_per_query)
        if not (np.isfinite(float(self.horizon)) and float(self.horizon) >= 1):
            raise ConfigError(f"horizon={self.horizon!r} must be a finite number >= 1 (queries)")
        p = check_problem(
            reference_values, costs, 0.0, min_cost=self.min_cost, max_cost=self.max_cost, weights=weights
        )
        n = p.values.shape[0]
        if n == 0:
            raise ConfigError("reference_values is empty; pass predicted ladders of at least one query")
        seg = segments(p)
        base = float(take(p.costs, seg.base).mean())
        if base > b:
            raise InfeasibleBudgetError(
                f"budget_per_query={b:g} is below {base:g}, the mean cost of the reference queries' "
                f"cheapest allowed options; raise it to at least {base:g} or lower min_cost"
            )
        flat = np.flatnonzero(seg.key.ravel() > 0)
        keys = seg.key.ravel()[flat]
        order = np.argsort(-keys, kind="stable")
        keys = keys[order]
        spend = base + np.cumsum(seg.weights_at(flat[order])) / n
        # one entry per distinct slope: the spend after buying every step at least that steep
        last = np.ones(keys.size, dtype=bool)
        last[:-1] = keys[1:] != keys[:-1]
        self.thresholds_ = keys[last]
        self.spend_at_ = spend[last]
        # the same levels as floats: `_bracket` runs once per decision, and a bisection of a list is
        # cheaper than numpy's search and scalar reads on arrays this small
        self._levels = (self.spend_at_.tolist(), self.thresholds_.tolist())
        self.base_spend_ = base
        lam, spend_lo, _, frac = self._bracket(b)
        spend_hi = float(self.spend_at_[self.spend_at_ > spend_lo][0]) if frac > 0 else spend_lo
        self.shadow_price_ = lam
        self.expected_spend_ = spend_lo + frac * (spend_hi - spend_lo)
        self.costs_ = np.asarray(costs, dtype=np.float64)
        self._ensure_ledger()  # a refit mid-stream keeps the ledger; reset() starts a new stream
        return self

    def _bracket(self, target: float) -> tuple[float, float, float, float]:
        """Thresholds just above and below ``target`` spend, their spends' fraction, and the level below.

        Returns ``(lam, spend, lam_next, frac)``: buying at ``lam`` spends ``spend <= target``; buying at
        ``lam_next`` spends more; ``frac`` of queries at ``lam_next`` hits the target on average.
        """
        spend_at, thresholds = self._levels
        i = bisect.bisect_right(spend_at, target) - 1
        if i < 0:
            lam, spend = float("inf"), self.base_spend_
        else:
            lam, spend = thresholds[i], spend_at[i]
        if i + 1 >= len(thresholds):
            return lam, spend, lam, 0.0
        nxt = spend_at[i + 1]
        frac = (target - spend) / (nxt - spend) if nxt > spend else 0.0
        return lam, spend, thresholds[i + 1], min(max(frac, 0.0), 1.0)

    def choose(
        self,
        values: npt.ArrayLike,
        costs: npt.ArrayLike | None = None,
        *,
        weights: npt.ArrayLike | None = None,
    ) -> Allocation:
        """Choose options for the queries that just arrived (one row ``(m,)`` or a batch ``(k, m)``).

        Every envelope step whose gain per cost is at least the current (ledger-corrected) λ is
        bought; ``costs`` defaults to the costs given to :meth:`fit`.
        """
        self._check_fitted()
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 1:
            v = v[None, :]
        c = self.costs_ if costs is None else costs
        p = check_problem(v, c, 0.0, min_cost=self.min_cost, max_cost=self.max_cost, weights=weights)
        return self.choose_checked(p)

    def choose_checked(self, p: Problem) -> Allocation:
        """:meth:`choose` for a problem validated already: what ``check_problem`` returns for the rows, the
        costs and this allocator's ``min_cost`` / ``max_cost``.

        For a caller that validated the rows itself (`adaptive_router.allocation.Planner` plans every lone
        query against its ladder's costs), so that they are not checked twice per query.
        """
        self._check_fitted()
        n = p.values.shape[0]
        target = float(self.budget_per_query)
        lam, _, lam_next, frac = self._bracket(target + self.balance_ / float(self.horizon))
        # Deterministic dithering between the two reference levels around the target (error diffusion):
        # without it, identical ladders (the probe's fallback) could only spend one level or the next.
        self.dither_ += frac * n
        extra = min(n, int(self.dither_))
        self.dither_ -= extra
        lone = _plain_choice(p, lam_next if extra else lam) if n == 1 else None
        if lone is None:
            seg = segments(p)
            row_lam = np.full(n, lam)
            row_lam[:extra] = lam_next
            taken = seg.key >= row_lam[:, None]
            taken &= seg.key > 0
            choice = seg.choice_from(taken)
            cost = take(p.costs, choice)
            spend, value, price = float(cost.sum()), float(take(p.values, choice).sum()), float(row_lam.min())
        else:
            j, spend, value, price = lone
            choice, cost = np.array([j], dtype=np.int64), np.array([spend])
        self.granted_ += target * n
        self.spent_ += spend
        self.balance_ = self.granted_ - self.spent_
        self.n_seen_ += n
        return Allocation(choice, cost, spend, value, price, 0.0)

    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise NotFittedError("ThresholdAllocator is not fitted; call fit(reference_values, costs) first")

    def reset(self) -> ThresholdAllocator:
        super().reset()
        self.dither_ = 0.0
        return self
