"""Baselines with the round planner's interface (numpy only).

- `UniformRounds`: ``k`` samples each in one round (best-of-k, self-consistency at ``k``).
- `RoundRobinUnsolved`: with a verifier, one sample each, then the rest of the window's budget one sample
  per round to every query not solved yet.
- `EarlyStoppingSC` (ESC) and `AdaptiveConsistency`: vote baselines that stop a query when its answers agree.

:func:`~adaptive_router.allocation.sequential.replay_rounds` scores them and
:class:`~adaptive_router.allocation.RoundPlanner` on the same recorded outcomes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation._params import QUALITIES, int_param, pos_param
from adaptive_router.allocation.evidence import _half_cdf
from adaptive_router.allocation.rounds import _Rounds, _scramble, _units
from adaptive_router.errors import ConfigError
from adaptive_router.predictors import IntArray

__all__ = ["AdaptiveConsistency", "EarlyStoppingSC", "RoundRobinUnsolved", "UniformRounds"]


class UniformRounds(_Rounds):
    """Baseline: ``k`` units for every query in one round (self-consistency / best-of-k at fixed ``k``).

    Parameters
    ----------
    k : int
        Units per query.
    quality : {"best", "vote", "score"}
        How :func:`replay_rounds` picks the returned answer: best reward (a verifier), plurality vote, or the
        best score.
    unit_cost : float
        Cost of one unit (for the reported spend).

    Examples
    --------
    >>> UniformRounds(k=4).start(n=2).tolist()
    [4, 4]
    """

    _params = ("k", "quality", "unit_cost")
    needs = "rewards"

    def __init__(self, *, k: int, quality: str = "best", unit_cost: float = 1.0) -> None:
        self.k = k
        self.quality = quality
        self.unit_cost = unit_cost

    def start(
        self,
        prior_curves: npt.ArrayLike | None = None,
        *,
        n: int | None = None,
        max_units: npt.ArrayLike | None = None,
    ) -> IntArray:
        k = int_param("k", self.k, 1)
        if self.quality not in QUALITIES:
            raise ConfigError(f"quality={self.quality!r}; choose one of {list(QUALITIES)}")
        pos_param("unit_cost", self.unit_cost)
        self._begin(prior_curves, n, max_units, k)
        return self._issue(self.max_units_.copy())

    def observe(self, queries: npt.ArrayLike, evidence: npt.ArrayLike) -> UniformRounds:
        self._record(queries, evidence)
        return self

    def next_round(self) -> IntArray:
        self._check_started()
        return self._stop("max_rounds")


class EarlyStoppingSC(_Rounds):
    """Baseline: Early-Stopping Self-Consistency (Li et al., ICLR 2024).

    Sample in windows of ``window`` answers and stop a query as soon as one window's answers all agree, or
    at ``max_k`` samples; the returned answer is the plurality of all its samples. The default ``window=5``
    with ``max_k=40`` is the authors' GSM8K setting (their ``early_stop_gsm8k.py``: windows of 5 up to 40
    samples). A sample without an answer (code < 0) counts as one more answer value, as in their code.
    ESC has no budget: its spend is whatever the stopping rule leaves.

    Examples
    --------
    >>> esc = EarlyStoppingSC(window=2, max_k=6)
    >>> esc.start(n=2).tolist()
    [2, 2]
    >>> esc.observe([0, 0, 1, 1], [3, 3, 3, 4]).next_round().tolist()   # query 0's window agrees
    [0, 2]
    """

    _params = ("window", "max_k", "unit_cost")
    needs = "answers"
    quality = "vote"

    def __init__(self, *, window: int = 5, max_k: int = 40, unit_cost: float = 1.0) -> None:
        self.window = window
        self.max_k = max_k
        self.unit_cost = unit_cost

    def start(
        self,
        prior_curves: npt.ArrayLike | None = None,
        *,
        n: int | None = None,
        max_units: npt.ArrayLike | None = None,
    ) -> IntArray:
        w = int_param("window", self.window, 1)
        pos_param("unit_cost", self.unit_cost)
        self._begin(prior_curves, n, max_units, int_param("max_k", self.max_k, 1))
        self._first = np.zeros(self.n_, dtype=np.int64)
        self._agree = np.ones(self.n_, dtype=bool)
        self._window_start = np.zeros(self.n_, dtype=np.int64)
        self._stopped = np.zeros(self.n_, dtype=bool)
        return self._issue(np.minimum(w, self.max_units_))

    def observe(self, queries: npt.ArrayLike, evidence: npt.ArrayLike) -> EarlyStoppingSC:
        before = self.observed_.copy()
        q, ev = self._record(queries, evidence)
        codes = ev.astype(np.int64)
        fresh_q, first_at = np.unique(q, return_index=True)
        opening = before[fresh_q] == self._window_start[fresh_q]  # first answer of this window
        self._first[fresh_q[opening]] = codes[first_at[opening]]
        self._agree &= np.bincount(q, weights=codes != self._first[q], minlength=self.n_) == 0
        return self

    def next_round(self) -> IntArray:
        self._check_started()
        full = (self.observed_ == self.units_) & (self.units_ > self._window_start)
        self._stopped |= full & self._agree
        left = np.where(self._stopped, 0, self.max_units_ - self.units_)
        units = np.minimum(int(self.window), left)
        if not units.any():
            return self._stop("agreed_or_max")
        self._window_start = np.where(units > 0, self.units_, self._window_start)
        self._agree = np.where(units > 0, True, self._agree)
        return self._issue(units)


class RoundRobinUnsolved(_Rounds):
    """Baseline: one sample each, then the window's remaining budget round-robin over the unsolved queries.

    Every round gives one more sample to each query that no sample has solved yet (reward >= 0.5) and that
    may take more (``max_k``); when the budget left cannot pay for all of them, the queries with the fewest
    samples go first (ties in a fixed pseudo-random order of the index). It stops when the budget is spent,
    every query is solved or capped, or after ``max_rounds`` rounds. This is the simple policy a verifier
    suggests (issue #15's simulation: uniform best-of-4's accuracy at about 2.4 samples per query);
    :class:`~adaptive_router.allocation.RoundPlanner` must do at least as well at the same budget.

    Parameters
    ----------
    budget_per_query : float
        Average budget per query in cost units; the window's budget is ``budget_per_query * n``.
    max_k : int
        Most samples one query may receive.
    unit_cost : float
        Cost of one sample.
    max_rounds : int, optional
        Most rounds, the first included (None: as many as the budget pays for, at most ``max_k``).

    Examples
    --------
    >>> rr = RoundRobinUnsolved(budget_per_query=2.0, max_k=4)
    >>> rr.start(n=3).tolist()
    [1, 1, 1]
    >>> rr.observe([0, 1, 2], [1.0, 0.0, 0.0]).next_round().tolist()   # query 0 is solved
    [0, 1, 1]
    >>> rr.observe([1, 2], [0.0, 0.0]).next_round().tolist()           # one unit left: a fixed tie order
    [0, 0, 1]
    """

    _params = ("budget_per_query", "max_k", "unit_cost", "max_rounds")
    needs = "rewards"
    quality = "best"

    def __init__(
        self, *, budget_per_query: float, max_k: int, unit_cost: float = 1.0, max_rounds: int | None = None
    ) -> None:
        self.budget_per_query = budget_per_query
        self.max_k = max_k
        self.unit_cost = unit_cost
        self.max_rounds = max_rounds

    def start(
        self,
        prior_curves: npt.ArrayLike | None = None,
        *,
        n: int | None = None,
        max_units: npt.ArrayLike | None = None,
    ) -> IntArray:
        b = pos_param("budget_per_query", self.budget_per_query, zero_ok=True)
        c = pos_param("unit_cost", self.unit_cost)
        if self.max_rounds is not None:
            int_param("max_rounds", self.max_rounds, 1)
        self._begin(prior_curves, n, max_units, int_param("max_k", self.max_k, 1))
        self.budget_ = b * self.n_
        if self.n_ * c > self.budget_ * (1 + 1e-12):
            raise ConfigError(
                f"budget_per_query={b:g} cannot give every query one sample of cost {c:g}; raise it to {c:g}"
            )
        self._solved = np.zeros(self.n_, dtype=bool)
        self._tie = _scramble(self.n_)
        if self.n_ == 0:
            return self._stop("budget")
        return self._issue(np.ones(self.n_, dtype=np.int64))

    def observe(self, queries: npt.ArrayLike, evidence: npt.ArrayLike) -> RoundRobinUnsolved:
        q, ev = self._record(queries, evidence)
        self._solved[q[np.asarray(ev, dtype=np.float64) >= 0.5]] = True
        return self

    def next_round(self) -> IntArray:
        self._check_started()
        if self.done_:
            return np.zeros(self.n_, dtype=np.int64)
        c = float(self.unit_cost)
        afford = _units(self.budget_ - c * float(self.units_.sum()), c)
        if afford < 1:
            return self._stop("budget")
        if self.max_rounds is not None and self.rounds_ >= int(self.max_rounds):
            return self._stop("max_rounds")
        want = np.flatnonzero(~self._solved & (self.units_ < self.max_units_))
        if not want.size:
            return self._stop("no_gain" if self._solved.all() else "max_units")
        if want.size > afford:
            want = want[np.lexsort((self._tie[want], self.units_[want]))[:afford]]
        units = np.zeros(self.n_, dtype=np.int64)
        units[want] = 1
        return self._issue(units)


class AdaptiveConsistency(_Rounds):
    """Baseline: Adaptive-Consistency (Aggarwal et al., EMNLP 2023), one sample per round per open query.

    After every sample a query stops once ``P(leader is the mode) >= threshold``: with ``c1``, ``c2`` the
    counts of its two most common answers, the leader's share of the top two is ``Beta(c1 + 1, c2 + 1)``
    and the stopping statistic is ``P(Beta(c1 + 1, c2 + 1) > 1/2)`` (their ``BetaStoppingCriteria``;
    ``threshold=0.95`` and ``max_k=40`` are their defaults). Samples without an answer (code < 0) count as
    one more answer value, as for :class:`EarlyStoppingSC`. No budget: its spend is whatever the rule leaves.

    Examples
    --------
    >>> ac = AdaptiveConsistency(max_k=8)
    >>> ac.start(n=2).tolist()
    [1, 1]
    >>> for t in range(4):                  # query 0 always answers 5, query 1 alternates 5 and 6
    ...     units = ac.observe([0, 1], [5, 5 + t % 2]).next_round()
    >>> units.tolist(), ac.units_.tolist()  # four agreeing answers: P(Beta(5, 1) > 1/2) = 0.97 stops query 0
    ([0, 1], [4, 5])
    """

    _params = ("threshold", "max_k", "unit_cost")
    needs = "answers"
    quality = "vote"

    def __init__(self, *, threshold: float = 0.95, max_k: int = 40, unit_cost: float = 1.0) -> None:
        self.threshold = threshold
        self.max_k = max_k
        self.unit_cost = unit_cost

    def start(
        self,
        prior_curves: npt.ArrayLike | None = None,
        *,
        n: int | None = None,
        max_units: npt.ArrayLike | None = None,
    ) -> IntArray:
        t = pos_param("threshold", self.threshold)
        if t >= 1:
            raise ConfigError(f"threshold={self.threshold!r} must be in (0, 1)")
        pos_param("unit_cost", self.unit_cost)
        k = int_param("max_k", self.max_k, 1)
        self._begin(prior_curves, n, max_units, k)
        self._codes: list[dict[int, int]] = [{} for _ in range(self.n_)]
        self._cdf = _half_cdf(k + 1)
        self._stopped = np.zeros(self.n_, dtype=bool)
        return self._issue(np.minimum(1, self.max_units_))

    def observe(self, queries: npt.ArrayLike, evidence: npt.ArrayLike) -> AdaptiveConsistency:
        q, ev = self._record(queries, evidence)
        for i, code in zip(q.tolist(), np.asarray(ev).astype(np.int64).tolist(), strict=True):
            counts = self._codes[i]
            counts[code] = counts.get(code, 0) + 1
        return self

    def next_round(self) -> IntArray:
        self._check_started()
        if self.done_:
            return np.zeros(self.n_, dtype=np.int64)
        for i in np.flatnonzero(~self._stopped & (self.observed_ == self.units_)).tolist():
            top = [*sorted(self._codes[i].values(), reverse=True)[:2], 0]
            c1, c2 = top[0], top[1]
            # P(Beta(c1 + 1, c2 + 1) > 1/2) = P(Binomial(c1 + c2 + 1, 1/2) <= c1)
            self._stopped[i] = self._cdf[c1 + c2 + 1, c1] >= float(self.threshold)
        units = np.where(self._stopped | (self.units_ >= self.max_units_), 0, 1).astype(np.int64)
        if not units.any():
            return self._stop("agreed_or_max")
        return self._issue(units)
