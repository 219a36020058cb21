"""Baselines with the round planner's interface: `UniformRounds` and `EarlyStoppingSC` (numpy only).

:func:`~adaptive_router.allocation.sequential.replay_rounds` scores them and
:class:`~adaptive_router.allocation.RoundPlanner` on the same recorded outcomes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation._params import QUALITIES, int_param, pos_param
from adaptive_router.allocation.rounds import _Rounds
from adaptive_router.errors import ConfigError
from adaptive_router.predictors import IntArray

__all__ = ["EarlyStoppingSC", "UniformRounds"]


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
