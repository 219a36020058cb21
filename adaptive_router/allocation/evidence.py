"""Evidence models for the round-based planner: what a query's samples so far say about more samples.

Each model turns a prior per query (the probe's curve, or a population prior fit on training outcomes) and
the evidence observed so far into an ``(n, j_max + 1)`` curve of the expected gain of ``j`` more units, the
input :func:`~adaptive_router.allocation.allocate` buys from (see :mod:`adaptive_router.allocation.rounds`):

- :class:`VerifierEvidence`: pass/fail per sample; a solved query gains nothing more, an unsolved one has a
  Beta posterior on its success rate.
- :class:`VoteEvidence`: answer counts; the chance that more samples change the plurality answer
  (Dirichlet/Beta posterior, as in Adaptive-Consistency).
- :class:`ScoreEvidence`: reward-model scores; the expected improvement of the best score.

numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation._params import EPS, int_param, params_repr, pos_param
from adaptive_router.errors import ConfigError, NotFittedError
from adaptive_router.predictors import FloatArray, IntArray

__all__ = ["EvidenceModel", "ScoreEvidence", "VerifierEvidence", "VoteEvidence"]

class EvidenceModel:
    """Base of the evidence models: prior + evidence so far -> expected gain of ``j`` more units per query.

    Subclasses set ``needs`` (what :meth:`update` takes per sample: ``"rewards"``, ``"answers"`` as integer
    codes, or ``"scores"``) and ``quality`` (how the returned answer is chosen: ``"best"`` reward, the
    plurality ``"vote"``, or the best ``"score"``), and implement :meth:`begin`, :meth:`update` and
    :meth:`gains`.
    The model holds only parameters and what ``fit`` learned; the per-window state is the object
    :meth:`begin` returns, owned by the planner.
    """

    needs: ClassVar[str]
    quality: ClassVar[str]
    concave: ClassVar[bool] = False
    """Whether every row of :meth:`gains` is concave in ``j`` by construction (then the planner reads a few
    columns first and more only where they can be bought); otherwise it reads all and checks."""
    _params: ClassVar[tuple[str, ...]] = ()

    def begin(self, prior: FloatArray | None, max_units: IntArray) -> Any:
        """State of a new window of ``len(max_units)`` queries; ``prior``: the probe's ``(n, K)`` curves."""
        raise NotImplementedError

    def update(self, state: Any, queries: IntArray, evidence: npt.NDArray[Any]) -> None:
        """Add one observed sample per entry of ``queries`` (``evidence`` aligned with it) to ``state``."""
        raise NotImplementedError

    def gains(self, state: Any, remaining: IntArray, jmax: int, rows: IntArray | None = None) -> FloatArray:
        """``(n, jmax + 1)`` expected gain of ``j = 0..jmax`` more units (0 at 0, NaN past ``remaining``).

        ``remaining`` is each query's horizon, the units it may still take in the window; only the first
        ``jmax + 1`` columns are returned, and they must not depend on ``jmax`` (the planner asks for a few
        columns first and more only when the allocator could use them). With ``rows``, only those queries
        (``remaining`` is then given for them): one row each, in that order.
        """
        raise NotImplementedError

    def leader(self, state: Any) -> IntArray:
        """``(n,)`` how strongly each query's samples so far back its current answer, as an integer a
        cascade's escalation table is keyed by: the leading answer's count (votes), 1 once solved
        (a verifier). Models without such a summary raise ``ConfigError``."""
        raise ConfigError(f"{type(self).__name__} has no leader summary: cascades read votes or a verifier")

    def __repr__(self) -> str:
        return params_repr(self, self._params)


def _mask_remaining(g: FloatArray, remaining: IntArray) -> FloatArray:
    if remaining.size and int(remaining.min()) < g.shape[1] - 1:
        g[np.arange(g.shape[1])[None, :] > remaining[:, None]] = np.nan
    return g


def _beta_from_curve(
    curve: FloatArray, max_strength: float, fallback: float | None
) -> tuple[FloatArray, ...]:
    """Moment-match ``Beta(a, b)`` per row to a pass@k curve: ``q(1) = E[p]``, ``q(2) = 1 - E[(1-p)^2]``."""
    mu = np.clip(curve[:, 0], EPS, 1 - EPS)
    if curve.shape[1] >= 2:
        var = (1.0 - curve[:, 1]) - (1.0 - mu) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            strength = np.where(var > 0, mu * (1 - mu) / np.where(var > 0, var, 1.0) - 1.0, max_strength)
    elif fallback is not None:
        strength = np.full(mu.shape, fallback)
    else:
        raise ConfigError(
            "a prior curve with K=1 does not identify a Beta prior; pass curves with k >= 2 or prior=(a, b)"
        )
    strength = np.clip(strength, 0.05, max_strength)
    return mu * strength, (1 - mu) * strength


@dataclass
class _VerifierState:
    a: FloatArray
    b: FloatArray
    failures: FloatArray
    solved: npt.NDArray[np.bool_]


class VerifierEvidence(EvidenceModel):
    """Pass/fail per sample: a solved query stops; an unsolved one is valued by its Beta posterior.

    Each query's success rate ``p`` has a ``Beta(a, b)`` prior: moment-matched to the probe's pass@k curve
    (``q(1)`` and ``q(2)``), else ``prior=(a, b)``, else the population Beta :meth:`fit` on training outcomes.
    After ``f`` failures (and no success) the value of ``j`` more samples is
    ``P(at least one success) = 1 - E[(1 - p)^j] = 1 - prod_{t<j} (b + f + t) / (a + b + f + t)`` under
    ``Beta(a, b + f)``: increasing and concave in ``j``. A query with a success has gain 0.

    Parameters
    ----------
    prior : (float, float), optional
        ``(a, b)`` of a Beta prior shared by every query, used when no prior curves are given.
    max_strength : float
        Cap on ``a + b`` (a curve that implies no spread between queries maps to this strength).

    Attributes
    ----------
    a_, b_ : float
        The population prior learned by :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> ev = VerifierEvidence(prior=(1.0, 1.0))
    >>> state = ev.begin(None, np.array([3, 3]))
    >>> ev.update(state, np.array([0, 1]), np.array([1.0, 0.0]))   # query 0 solved, query 1 failed once
    >>> ev.gains(state, np.array([2, 2]), 2).round(3)
    array([[0.   , 0.   , 0.   ],
           [0.   , 0.333, 0.5  ]])
    """

    needs = "rewards"
    quality = "best"
    concave = True
    _params = ("prior", "max_strength")

    def __init__(self, *, prior: tuple[float, float] | None = None, max_strength: float = 1e3) -> None:
        self.prior = prior
        self.max_strength = max_strength

    def fit(self, rewards: npt.ArrayLike) -> VerifierEvidence:
        """Fit the population ``Beta(a_, b_)`` to training rewards ``(n, s)`` (NaN-padded; >= 0.5 = success).

        Method of moments for the beta-binomial: the spread of per-query success rates beyond the binomial
        noise of ``s`` samples gives ``a + b``. Needs queries with at least two samples.
        """
        r = np.asarray(rewards, dtype=np.float64)
        if r.ndim != 2:
            raise ConfigError(f"rewards must be a 2-D (n queries, s samples) array, got shape {r.shape}")
        s = (~np.isnan(r)).sum(axis=1)
        keep = s > 0
        if keep.sum() < 2 or not (s[keep] >= 2).any():
            raise ConfigError("fit needs at least two queries and some with two or more samples")
        rate = (np.where(np.isnan(r), 0.0, r) >= 0.5).sum(axis=1)[keep] / s[keep]
        mu = float(np.clip(rate.mean(), EPS, 1 - EPS))
        inv_s = float(np.mean(1.0 / s[keep]))
        rho = (float(rate.var()) / (mu * (1 - mu)) - inv_s) / max(1.0 - inv_s, EPS)
        rho = min(max(rho, 1.0 / (self.max_strength + 1.0)), 1.0 - EPS)
        strength = 1.0 / rho - 1.0
        self.a_, self.b_ = mu * strength, (1 - mu) * strength
        return self

    def _population(self) -> tuple[float, float] | None:
        if self.prior is not None:
            a, b = (pos_param("prior a", self.prior[0]), pos_param("prior b", self.prior[1]))
            return a, b
        if hasattr(self, "a_"):
            return self.a_, self.b_
        return None

    def begin(self, prior: FloatArray | None, max_units: IntArray) -> _VerifierState:
        n = max_units.shape[0]
        max_strength = pos_param("max_strength", self.max_strength)
        pop = self._population()
        if prior is not None:
            a, b = _beta_from_curve(prior, max_strength, None if pop is None else pop[0] + pop[1])
        elif pop is not None:
            a, b = np.full(n, pop[0]), np.full(n, pop[1])
        else:
            raise NotFittedError(
                "VerifierEvidence needs a prior: pass the probe's curves to start(), prior=(a, b), "
                "or call fit(training_rewards) first"
            )
        return _VerifierState(a, b, np.zeros(n), np.zeros(n, dtype=bool))

    def update(self, state: _VerifierState, queries: IntArray, evidence: npt.NDArray[Any]) -> None:
        ok = np.asarray(evidence, dtype=np.float64) >= 0.5
        n = state.a.shape[0]
        state.solved |= np.bincount(queries[ok], minlength=n) > 0
        state.failures += np.bincount(queries[~ok], minlength=n)

    def leader(self, state: _VerifierState) -> IntArray:
        return state.solved.astype(np.int64)

    def gains(
        self, state: _VerifierState, remaining: IntArray, jmax: int, rows: IntArray | None = None
    ) -> FloatArray:
        ids = np.arange(state.a.shape[0]) if rows is None else rows
        open_ = np.flatnonzero(~state.solved[ids] & (remaining > 0))  # solved queries gain nothing
        a, b = state.a[ids[open_]], state.b[ids[open_]] + state.failures[ids[open_]]
        t = np.arange(jmax, dtype=np.float64)[None, :]
        g = np.zeros((ids.shape[0], jmax + 1))
        g[open_, 1:] = 1.0 - np.cumprod((b[:, None] + t) / ((a + b)[:, None] + t), axis=1)
        return _mask_remaining(g, remaining)


@dataclass
class _VoteState:
    codes: IntArray  # (n, cap) answer code of each class slot, -1 = empty
    counts: IntArray  # (n, cap)
    classes: IntArray  # (n,) slots in use
    other: IntArray  # (n,) samples without an answer
    accuracy: FloatArray  # (n,)
    top1: IntArray  # (n,) count of the leading answer
    top2: IntArray  # (n,) count of the runner-up (the leader's count when tied)
    answered: IntArray  # (n,) samples with an answer
    env_keys: IntArray  # sorted keys of the (c1, c2, rest, remaining) pairs whose gain curve is known
    env_rows: FloatArray  # (len(env_keys), cap + 1): their curves (the concave envelope, before accuracy)
    accuracy_is_one: bool


def _dedupe(key: IntArray) -> tuple[IntArray, IntArray]:
    """``np.unique(key, return_inverse=True)`` for ints >= 0; by counting when their range is small."""
    top = int(key.max(initial=0)) + 1
    if top > 4 * key.size + 1024:
        keys, inverse = np.unique(key, return_inverse=True)
        return keys, inverse.ravel()
    seen = np.zeros(top, dtype=bool)
    seen[key] = True
    return np.flatnonzero(seen), (np.cumsum(seen) - 1)[key]


def _log_rising(a: FloatArray, m: int) -> FloatArray:
    """``log [a]_t = sum_{u<t} log(a + u)`` for ``t = 0..m``, shape ``(len(a), m + 1)``."""
    with np.errstate(divide="ignore"):
        steps = np.log(a[:, None] + np.arange(m, dtype=np.float64)[None, :])
    return np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)


def _beta_binomial(alpha: FloatArray, beta: FloatArray, jmax: int) -> FloatArray:
    """``P[u, j, x]``: beta-binomial pmf of ``x`` successes in ``j`` trials, ``Beta(alpha_u, beta_u)`` mix."""
    j = np.arange(jmax + 1)
    x = j
    lf = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, jmax + 1)))])
    lc = lf[j][:, None] - lf[x][None, :] - lf[np.clip(j[:, None] - x[None, :], 0, None)]
    la, lb, lab = _log_rising(alpha, jmax), _log_rising(beta, jmax), _log_rising(alpha + beta, jmax)
    diff = np.clip(j[:, None] - x[None, :], 0, None)
    with np.errstate(invalid="ignore"):
        logp = lc[None] + la[:, None, :] + lb[:, diff] - lab[:, :, None]
    p = np.exp(logp)
    p[:, x[None, :] > j[:, None]] = 0.0
    return np.nan_to_num(p)


def _small_envelope(table: FloatArray) -> FloatArray:
    """Least concave majorant of each row over ``j = 0, 1, ...`` (NaN: absent, only after the present
    columns), as :func:`~adaptive_router.curves.upper_concave_envelope` gives it, for the few short rows of
    the vote model's distinct states: ``O(rows * m^2)`` numpy without a Python loop over columns.

    At ``j`` it is ``max over a <= j`` of ``v[a] + (j - a) * max over b >= j of slope(a, b)``: the highest
    chord over ``j`` (``b = j`` gives ``v[j]`` itself).
    """
    m = table.shape[1]
    present = ~np.isnan(table)
    v = np.where(present, table, -np.inf)
    j = np.arange(m)
    step = (j[None, :] - j[:, None]).astype(np.float64)  # step[a, b] = b - a
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (v[:, None, :] - v[:, :, None]) / step[None]
    slope[:, step <= 0] = -np.inf
    slope[~present] = -np.inf  # from an absent a
    best = np.maximum.accumulate(slope[:, :, ::-1], axis=2)[:, :, ::-1]  # max over b >= j
    with np.errstate(invalid="ignore"):
        reach = np.where(present[:, :, None], v[:, :, None], -np.inf) + np.maximum(step, 0.0)[None] * best
    reach[:, step < 0] = -np.inf  # a > j
    idx = np.arange(m)
    reach[:, idx, idx] = v  # a = j
    env = np.nan_to_num(reach, nan=-np.inf).max(axis=1)
    return np.where(present, env, np.nan)


def _half_cdf(n_max: int) -> FloatArray:
    """``T[N, a] = P(Binomial(N, 1/2) <= a)`` for ``N, a <= n_max``."""
    pmf = np.zeros((n_max + 1, n_max + 1))
    pmf[0, 0] = 1.0
    for row in range(1, n_max + 1):
        pmf[row, 0] = pmf[row - 1, 0] / 2
        pmf[row, 1:] = (pmf[row - 1, 1:] + pmf[row - 1, :-1]) / 2
    return np.cumsum(pmf, axis=1)


class VoteEvidence(EvidenceModel):
    """Answers so far: the value of more samples is the chance they correct a plurality that may be wrong.

    Correctness is unknown live, so the model follows Adaptive-Consistency (Aggarwal et al., 2023): a
    Dirichlet posterior over the answer classes, reduced to its leader, runner-up and "other" (every other
    answer, unseen ones and samples without an answer, concentration ``unseen``). By the Dirichlet's
    aggregation property the leader's share of the top two is ``Beta(c1 + 1, c2 + 1)`` and
    ``P(leader is the mode) = P(Beta > 1/2)``. The gain of ``j`` more samples is the expected increase of
    ``P(returned plurality is the mode)`` (a value of information: non-decreasing in ``j``), where the
    ``j`` samples fall in the top two with the Dirichlet's predictive odds and split between them
    beta-binomially; it is multiplied by ``accuracy`` (the chance the mode is correct: the maximum of the
    probe's vote curve when given) and replaced by its concave envelope in ``j``.

    Approximations: a third answer overtaking the top two is ignored, and so is the (small) chance that
    more samples flip a correct plurality to a wrong one beyond what the two-class model predicts.

    Parameters
    ----------
    unseen : float
        Dirichlet concentration of the "other" class (answers not among the top two).
    accuracy : float
        Probability that the most common answer is correct, used when no prior curves are given.

    Examples
    --------
    >>> import numpy as np
    >>> ev = VoteEvidence()
    >>> state = ev.begin(None, np.array([6, 6]))
    >>> ev.update(state, np.array([0, 0, 0, 1, 1, 1]), np.array([7, 7, 7, 7, 8, 9]))
    >>> g = ev.gains(state, np.array([3, 3]), 3)
    >>> bool(g[1, 3] > g[0, 3] > 0)        # unanimous answers gain least from more votes
    True
    """

    needs = "answers"
    quality = "vote"
    concave = True
    _params = ("unseen", "accuracy")

    def __init__(self, *, unseen: float = 0.5, accuracy: float = 1.0) -> None:
        self.unseen = unseen
        self.accuracy = accuracy

    def begin(self, prior: FloatArray | None, max_units: IntArray) -> _VoteState:
        n = max_units.shape[0]
        pos_param("unseen", self.unseen, zero_ok=True)
        acc = pos_param("accuracy", self.accuracy, zero_ok=True)
        if prior is not None:
            accuracy = np.clip(np.nanmax(prior, axis=1), 0.0, 1.0)
        else:
            accuracy = np.full(n, min(acc, 1.0))
        cap = max(int(max_units.max(initial=1)), 2)
        z = np.zeros(n, np.int64)
        return _VoteState(
            np.full((n, cap), -1, np.int64), np.zeros((n, cap), np.int64), z, z.copy(), accuracy,
            z.copy(), z.copy(), z.copy(), np.zeros(0, np.int64), np.zeros((0, cap + 1)),
            bool((accuracy == 1.0).all()),
        )

    def update(self, state: _VoteState, queries: IntArray, evidence: npt.NDArray[Any]) -> None:
        codes = np.asarray(evidence)
        if codes.size and (codes.dtype == bool or not np.issubdtype(codes.dtype, np.integer)):
            raise ConfigError(
                f"VoteEvidence takes integer answer codes (negative = no answer), got {codes.dtype}"
            )
        codes = codes.astype(np.int64)
        n = state.other.shape[0]
        state.other += np.bincount(queries[codes < 0], minlength=n)
        q, c = queries[codes >= 0], codes[codes >= 0]
        if not q.size:
            return
        # distinct (query, code) pairs in (query, code) order, and how often each was observed
        width = int(c.max()) + 1
        pairs, inverse = _dedupe(q * width + c)
        uq, uc, cnt = pairs // width, pairs % width, np.bincount(inverse, minlength=pairs.size)
        used = int(state.classes.max(initial=0))
        match = state.codes[uq, :used] == uc[:, None]
        slot = np.argmax(match, axis=1) if used else np.zeros(uq.size, dtype=np.int64)
        new = np.flatnonzero(~match.any(axis=1))
        if new.size:
            nq = uq[new]
            group = np.ones(new.size, dtype=bool)
            group[1:] = nq[1:] != nq[:-1]
            rank = np.arange(new.size) - np.maximum.accumulate(np.where(group, np.arange(new.size), 0))
            slot[new] = state.classes[nq] + rank
            if (slot[new] >= state.codes.shape[1]).any():
                raise ConfigError("more distinct answers observed for a query than units it may receive")
            state.codes[nq, slot[new]] = uc[new]
            state.classes += np.bincount(nq, minlength=n)
        state.counts[uq, slot] += cnt  # (query, slot) pairs are distinct
        state.answered += np.bincount(q, minlength=n)
        # the top two counts of the queries just observed (gains read them for every query each round)
        touched = uq[np.flatnonzero(np.r_[True, uq[1:] != uq[:-1]])]  # uq is sorted
        sub = state.counts[touched, : int(state.classes[touched].max(initial=1))]
        c1 = sub.max(axis=1)
        tied = (sub == c1[:, None]).sum(axis=1) > 1
        state.top1[touched] = c1
        state.top2[touched] = np.where(tied, c1, np.where(sub < c1[:, None], sub, 0).max(axis=1))

    def leader(self, state: _VoteState) -> IntArray:
        return state.top1.copy()

    def gains(
        self, state: _VoteState, remaining: IntArray, jmax: int, rows: IntArray | None = None
    ) -> FloatArray:
        ids = slice(None) if rows is None else rows
        c1, c2 = state.top1[ids], state.top2[ids]
        rest = state.answered[ids] - c1 - c2 + state.other[ids]
        base = state.env_rows.shape[1]  # every count and horizon is at most cap = base - 1
        keys, inverse = _dedupe((c1 * base + c2) * base + rest)
        # the envelope is taken over each query's own horizon: one curve per distinct (state, horizon)
        pairs, where = _dedupe(inverse * base + remaining)
        pair_keys = keys[pairs // base] * base + pairs % base
        at = np.searchsorted(state.env_keys, pair_keys)
        known = at < state.env_keys.size
        known[known] = state.env_keys[at[known]] == pair_keys[known]
        if not known.all():  # curves of states not seen before in this window, kept for later calls
            new = pair_keys[~known]
            state_key, horizon = new // base, new % base
            c1_, c2_, rest_ = state_key // base // base, state_key // base % base, state_key % base
            table = self._table(c1_, c2_, rest_, base - 1)
            table[np.arange(base)[None, :] > horizon[:, None]] = np.nan
            env = np.maximum(_small_envelope(table), 0.0)
            merged = np.concatenate([state.env_keys, new])
            order = np.argsort(merged, kind="stable")
            state.env_keys = merged[order]
            state.env_rows = np.concatenate([state.env_rows, env])[order]
            at = np.searchsorted(state.env_keys, pair_keys)
        # the curves are NaN past each pair's horizon already; columns past cap are absent for every query
        g = state.env_rows[at[where], : min(jmax + 1, base)]
        if not state.accuracy_is_one:
            g *= state.accuracy[ids, None]
        if g.shape[1] < jmax + 1:
            g = np.concatenate([g, np.full((g.shape[0], jmax + 1 - g.shape[1]), np.nan)], axis=1)
        return g

    def _table(self, c1: IntArray, c2: IntArray, rest: IntArray, jmax: int) -> FloatArray:
        """Gain of ``j = 0..jmax`` more samples per distinct ``(c1, c2, rest)`` state, before the envelope."""
        cdf = _half_cdf(int((c1 + c2).max(initial=0)) + jmax + 1)
        jp = np.arange(jmax + 1)
        c1f, c2f = c1.astype(np.float64), c2.astype(np.float64)
        split = _beta_binomial(
            c1f + 1.0, c2f + 1.0, jmax
        )  # (u, J', x): leader's share of J' new top-two votes
        lead = c1[:, None, None] + jp[None, None, :]
        total = (c1 + c2 + 1)[:, None, None] + jp[None, :, None]
        f_new = cdf[np.minimum(total, cdf.shape[0] - 1), np.minimum(lead, cdf.shape[1] - 1)]
        f_now = cdf[c1 + c2 + 1, c1]
        v2 = (split * np.maximum(f_new, 1.0 - f_new)).sum(axis=2) - np.maximum(f_now, 1.0 - f_now)[:, None]
        into_top = _beta_binomial(
            c1f + c2f + 2.0, rest.astype(np.float64) + float(self.unseen), jmax
        )  # (u, j, J')
        g = np.maximum(np.einsum("ujk,uk->uj", into_top, v2), 0.0)
        g[:, 0] = 0.0
        return g


@dataclass
class _ScoreState:
    best: FloatArray
    total: FloatArray
    count: FloatArray
    suffix0: FloatArray  # (N + 1, J + 1): tail sums of P(max of j residuals = r_l)
    suffix1: FloatArray  # the same weighted by r_l


class ScoreEvidence(EvidenceModel):
    """Reward-model scores: the expected improvement of the best score from ``j`` more samples.

    A query's scores are its own level plus a residual drawn from the population's within-query residuals
    (empirical, from training outcomes). After ``u`` scores with mean ``m`` the level is estimated as
    ``(u m + kappa mu) / (u + kappa)`` (shrunk to the population mean ``mu``; ``kappa`` = within / between
    variance). The gain of ``j`` more samples is ``E[max(best, level + max of j residuals)] - best`` (concave
    in ``j``), times ``reward_per_score_``, the within-query slope of reward on score (0 when scores do not
    predict reward: then every query stops after its first sample). The probe's prior curves are not used.

    Parameters
    ----------
    max_residuals : int
        The residual distribution is kept as this many quantiles.

    Attributes
    ----------
    residuals_ : ndarray
        Sorted within-query residuals (rescaled for the row mean's degrees of freedom).
    mu_, kappa_, reward_per_score_ : float

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.normal(size=(200, 1)) + rng.normal(size=(200, 8))
    >>> ev = ScoreEvidence().fit(scores, (scores > 1).astype(float))
    >>> state = ev.begin(None, np.array([4, 4]))
    >>> ev.update(state, np.array([0, 1]), np.array([2.5, -1.0]))
    >>> g = ev.gains(state, np.array([3, 3]), 3)
    >>> bool(g[1, 1] > g[0, 1] > 0), bool(np.all(np.diff(g[1], 2) <= 1e-12))
    (True, True)
    """

    needs = "scores"
    quality = "score"
    concave = True
    _params = ("max_residuals",)

    def __init__(self, *, max_residuals: int = 1024) -> None:
        self.max_residuals = max_residuals

    def fit(self, scores: npt.ArrayLike, rewards: npt.ArrayLike) -> ScoreEvidence:
        """Learn the residual distribution, shrinkage and reward slope from training ``(n, s)`` arrays."""
        sc = np.asarray(scores, dtype=np.float64)
        r = np.asarray(rewards, dtype=np.float64)
        if sc.ndim != 2 or sc.shape != r.shape:
            raise ConfigError(f"scores {sc.shape} and rewards {r.shape} must be 2-D arrays of the same shape")
        size = int_param("max_residuals", self.max_residuals, 8)
        s = (~np.isnan(sc)).sum(axis=1)
        rows = s >= 2
        if rows.sum() < 2:
            raise ConfigError("fit needs at least two queries with two or more scored samples")
        sc, r, s = sc[rows], r[rows], s[rows]
        m = np.nanmean(sc, axis=1)
        e = sc - m[:, None]
        within = float(np.nansum(e**2) / (s - 1).sum())
        between = max(float(m.var()) - float(np.mean(within / s)), within * 1e-3, 1e-12)
        resid = (e * np.sqrt(s / (s - 1.0))[:, None])[~np.isnan(e)]
        er = (r - np.nanmean(r, axis=1)[:, None])[~np.isnan(e)]
        denom = float((e[~np.isnan(e)] ** 2).sum())
        slope = float((e[~np.isnan(e)] * er).sum() / denom) if denom > 0 else 0.0
        q = (np.arange(size) + 0.5) / size
        self.residuals_ = np.sort(np.quantile(resid, q)) if resid.size > size else np.sort(resid)
        self.mu_ = float(m.mean())
        self.kappa_ = within / between
        self.reward_per_score_ = max(slope, 0.0)
        return self

    def begin(self, prior: FloatArray | None, max_units: IntArray) -> _ScoreState:
        if not hasattr(self, "residuals_"):
            raise NotFittedError(
                "ScoreEvidence is not fitted; call fit(training_scores, training_rewards) first"
            )
        n = max_units.shape[0]
        res = self.residuals_
        big_n = res.size
        jmax = int(max_units.max(initial=1))
        frac = np.arange(big_n + 1, dtype=np.float64) / big_n
        j = np.arange(jmax + 1, dtype=np.float64)
        w = np.diff(frac[:, None] ** j[None, :], axis=0)  # (N, J+1): P(max of j draws = r_l)
        suffix0 = np.concatenate([np.cumsum(w[::-1], axis=0)[::-1], np.zeros((1, jmax + 1))])
        suffix1 = np.concatenate([np.cumsum((w * res[:, None])[::-1], axis=0)[::-1], np.zeros((1, jmax + 1))])
        return _ScoreState(np.full(n, -np.inf), np.zeros(n), np.zeros(n), suffix0, suffix1)

    def update(self, state: _ScoreState, queries: IntArray, evidence: npt.NDArray[Any]) -> None:
        s = np.asarray(evidence, dtype=np.float64)
        if not np.isfinite(s).all():
            raise ConfigError("ScoreEvidence takes finite scores")
        n = state.best.shape[0]
        np.maximum.at(state.best, queries, s)
        state.total += np.bincount(queries, weights=s, minlength=n)
        state.count += np.bincount(queries, minlength=n)

    def gains(
        self, state: _ScoreState, remaining: IntArray, jmax: int, rows: IntArray | None = None
    ) -> FloatArray:
        ids = slice(None) if rows is None else rows
        count = state.count[ids]
        level = (state.total[ids] + self.kappa_ * self.mu_) / (count + self.kappa_)
        delta = np.where(count > 0, state.best[ids] - level, self.residuals_[0])
        idx = np.searchsorted(self.residuals_, delta, side="right")  # first residual above delta
        cols = slice(0, jmax + 1)
        g = state.suffix1[idx, cols] - delta[:, None] * state.suffix0[idx, cols]
        g = self.reward_per_score_ * np.maximum(g, 0.0)
        g[:, 0] = 0.0
        return _mask_remaining(g, remaining)


