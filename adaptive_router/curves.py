"""Recorded outcomes -> true reward curves (numpy only).

These estimators turn the outcomes recorded for a query (``s`` sampled answers, each with a reward and
possibly a reranker score) into the *expected reward with a budget of k samples*, for every k. They are the
labels the probe is trained on and the truth that evaluations score against. All of them are unbiased:
they equal the exact expectation over drawing ``k`` of the ``s`` recorded samples without replacement.

- :func:`pass_at_k`: binary outcomes (``c`` successes of ``s``) -> ``1 - C(s-c, k) / C(s, k)``.
- :func:`expected_best_of_k`: continuous rewards -> expected maximum of ``k`` draws (order statistics).
- :func:`expected_reranked_best_of_k`: the reward of the draw a *scorer* ranks highest (a reranker or
  reward model that is not the reward itself); ties in the score are broken uniformly at random.
- :func:`expected_majority_vote`: the reward of the plurality answer of ``k`` draws (self-consistency),
  ties split evenly, computed exactly over the answer classes' hypergeometric counts.
- :func:`upper_concave_envelope`: the least concave majorant of a curve, evaluated at its own costs.

Where ``k`` exceeds the number of recorded samples the expectation is undefined and the result is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from adaptive_router.errors import ConfigError
from adaptive_router.predictors import FloatArray

__all__ = [
    "expected_best_of_k",
    "expected_majority_vote",
    "expected_reranked_best_of_k",
    "pass_at_k",
    "upper_concave_envelope",
]


def _check_ks(ks: int | Sequence[int] | npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Return ``ks`` as a 1-D int array; an int ``K`` means ``1..K``."""
    if np.ndim(ks) == 0:
        kmax = int(ks)  # type: ignore[arg-type]
        if kmax < 1:
            raise ConfigError(f"ks={kmax!r}: pass a positive max k or a list of k >= 1")
        return np.arange(1, kmax + 1, dtype=np.int64)
    arr = np.asarray(ks)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"ks={ks!r}: pass a non-empty 1-D list of integers k >= 1")
    if (arr < 1).any():
        raise ConfigError(f"ks contains {int(arr.min())}: every k must be >= 1")
    return arr.astype(np.int64)


def pass_at_k(
    successes: npt.ArrayLike, samples: npt.ArrayLike, ks: int | Sequence[int] | npt.ArrayLike
) -> FloatArray:
    """Unbiased pass@k from ``c`` successes out of ``s`` samples, per query.

    Parameters
    ----------
    successes, samples : array-like of int, shape (n,)
        Successes ``c`` and samples ``s`` recorded for each query (``0 <= c <= s``).
    ks : int or sequence of int
        The budgets; an int ``K`` means ``1..K``.

    Returns
    -------
    ndarray of shape (n, len(ks))
        ``1 - C(s - c, k) / C(s, k)``; NaN where ``k > s``.

    Examples
    --------
    >>> pass_at_k([1, 2], [4, 4], [1, 2, 4])
    array([[0.25      , 0.5       , 1.        ],
           [0.5       , 0.83333333, 1.        ]])
    """
    c = np.asarray(successes)
    s = np.asarray(samples)
    if c.ndim != 1 or s.shape != c.shape:
        raise ConfigError(
            f"successes {c.shape} and samples {s.shape} must be 1-D arrays of the same length"
        )
    integral = np.issubdtype(c.dtype, np.integer) and np.issubdtype(s.dtype, np.integer)
    if not integral and not (np.array_equal(c, np.round(c)) and np.array_equal(s, np.round(s))):
        raise ConfigError("successes and samples must be whole numbers (counts)")
    c = c.astype(np.int64)
    s = s.astype(np.int64)
    if (c < 0).any() or (c > s).any():
        bad = int(np.flatnonzero((c < 0) | (c > s))[0])
        raise ConfigError(
            f"query {bad}: successes={int(c[bad])} is not in [0, samples={int(s[bad])}]"
        )
    k = _check_ks(ks)
    kmax = int(k.max())
    # C(s-c, k)/C(s, k) = prod_{i<k} (s-c-i)/(s-i): a running product, exact enough and never overflows.
    i = np.arange(kmax, dtype=np.float64)
    num = np.clip((s - c)[:, None] - i[None, :], 0.0, None)
    den = s[:, None] - i[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    fail_all = np.cumprod(ratio, axis=1)[:, k - 1]
    out: FloatArray = np.subtract(1.0, fail_all, dtype=np.float64)
    out[k[None, :] > s[:, None]] = np.nan
    return out


def _as_rewards(rewards: npt.ArrayLike, name: str) -> FloatArray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2:
        raise ConfigError(f"{name} must be a 2-D (n queries, s samples) array, got shape {r.shape}")
    if np.isinf(r).any():
        raise ConfigError(f"{name} contains inf; rewards and scores must be finite (NaN pads ragged rows)")
    return r


def _order_weights(s: int, k: npt.NDArray[np.int64]) -> FloatArray:
    """``W[j, t] = C(j, k_t - 1) / C(s, k_t)``: chance the (j+1)-th smallest of ``s`` is the max of ``k_t``.

    Built by the stable recursion ``W[s-1] = k/s`` and ``W[j-1] = W[j] * (j + 1 - k) / j``.
    """
    w = np.zeros((s, k.size))
    if s == 0:
        return w
    kf = k.astype(np.float64)
    w[s - 1] = np.where(k <= s, kf / s, 0.0)
    for j in range(s - 1, 0, -1):
        w[j - 1] = w[j] * np.clip(j + 1 - kf, 0.0, None) / j
    return w


def _sorted_weighted(
    r_sorted: FloatArray, counts: npt.NDArray[np.int64], k: npt.NDArray[np.int64]
) -> FloatArray:
    """Sum ``r_sorted[i, :s_i] @ W(s_i, k)`` grouped by the row's sample count ``s_i``."""
    out = np.full((r_sorted.shape[0], k.size), np.nan)
    for s in np.unique(counts):
        rows = np.flatnonzero(counts == s)
        if s == 0:
            continue
        vals = r_sorted[rows, :s] @ _order_weights(int(s), k)
        vals[:, k > s] = np.nan
        out[rows] = vals
    return out


def expected_best_of_k(rewards: npt.ArrayLike, ks: int | Sequence[int] | npt.ArrayLike) -> FloatArray:
    """Unbiased expected best-of-k reward: the mean maximum of ``k`` of the recorded samples.

    With the row's ``s`` rewards sorted ascending ``r_(1) <= ... <= r_(s)``, the estimate is
    ``sum_j r_(j) * C(j-1, k-1) / C(s, k)``: exactly the mean of ``max`` over all ``C(s, k)`` subsets.

    Parameters
    ----------
    rewards : array-like, shape (n, s)
        Recorded rewards per query; pad ragged rows with NaN.
    ks : int or sequence of int
        The budgets; an int ``K`` means ``1..K``.

    Returns
    -------
    ndarray of shape (n, len(ks))
        NaN where ``k`` exceeds the row's number of samples.

    Examples
    --------
    >>> expected_best_of_k([[0.0, 1.0, 0.5], [1.0, 0.0, float("nan")]], 3)
    array([[0.5       , 0.83333333, 1.        ],
           [0.5       , 1.        ,        nan]])
    """
    r = _as_rewards(rewards, "rewards")
    k = _check_ks(ks)
    counts = (~np.isnan(r)).sum(axis=1)
    return _sorted_weighted(np.sort(r, axis=1), counts, k)


def expected_reranked_best_of_k(
    rewards: npt.ArrayLike, scores: npt.ArrayLike, ks: int | Sequence[int] | npt.ArrayLike
) -> FloatArray:
    """Unbiased expected reward of the sample a scorer picks among ``k`` draws.

    The best-of-k pick is the draw with the highest *score* (a reranker, a reward model, the model's
    own log-probability), and the result is that draw's *reward*. Equal scores are broken uniformly at
    random, which is the same as giving every sample in a tie the mean reward of its tie group.

    Parameters
    ----------
    rewards, scores : array-like, shape (n, s)
        Reward and score of each recorded sample; NaN (in both, at the same places) pads ragged rows.
    ks : int or sequence of int
        The budgets; an int ``K`` means ``1..K``.

    Returns
    -------
    ndarray of shape (n, len(ks))

    Examples
    --------
    A scorer that prefers the wrong answer makes more samples worse:

    >>> expected_reranked_best_of_k([[1.0, 0.0, 0.0]], [[0.1, 0.9, 0.5]], [1, 2, 3])
    array([[0.33333333, 0.        , 0.        ]])
    """
    r = _as_rewards(rewards, "rewards")
    sc = _as_rewards(scores, "scores")
    if sc.shape != r.shape:
        raise ConfigError(f"scores {sc.shape} must have the shape of rewards {r.shape}")
    if not np.array_equal(np.isnan(r), np.isnan(sc)):
        raise ConfigError("rewards and scores must be NaN at the same places (NaN marks a missing sample)")
    k = _check_ks(ks)
    counts = (~np.isnan(r)).sum(axis=1)
    order = np.argsort(sc, axis=1, kind="stable")  # NaN last
    r_by_score = np.take_along_axis(r, order, axis=1)
    s_sorted = np.take_along_axis(sc, order, axis=1)
    # Replace rewards inside each run of equal scores by the run's mean (random tie-breaking).
    n, s = r.shape
    if s > 1:
        new_run = np.ones((n, s), dtype=bool)
        new_run[:, 1:] = s_sorted[:, 1:] != s_sorted[:, :-1]
        if not new_run.all():
            run_id = np.cumsum(new_run.ravel()) - 1
            filled = np.nan_to_num(r_by_score.ravel())
            sums = np.bincount(run_id, weights=filled)
            sizes = np.bincount(run_id)
            r_by_score = np.where(np.isnan(r_by_score), np.nan, (sums / sizes)[run_id].reshape(n, s))
    return _sorted_weighted(r_by_score, counts, k)


def upper_concave_envelope(values: npt.ArrayLike, costs: npt.ArrayLike) -> FloatArray:
    """The least concave majorant of each row's points ``(costs[j], values[j])``, at the same costs.

    Options ordered by cost; NaN values mark absent options and stay NaN. Points below the envelope get
    the envelope's value at their cost (linear interpolation between the neighbouring hull vertices);
    the envelope is never below the curve, and equals it exactly where the curve is concave.

    Parameters
    ----------
    values : array-like, shape (n, m) or (m,)
    costs : array-like, shape (n, m) or (m,)
        Non-decreasing along each row (among present options).

    Returns
    -------
    ndarray of the shape of ``values``

    Examples
    --------
    >>> upper_concave_envelope([0.1, 0.1, 0.7, 0.8], [1, 2, 3, 4])
    array([0.1, 0.4, 0.7, 0.8])
    """
    from adaptive_router.allocation.hull import hull_mask  # numpy-only, shared with the allocator

    v = np.asarray(values, dtype=np.float64)
    one_d = v.ndim == 1
    v2 = np.atleast_2d(v)
    c2 = np.broadcast_to(np.asarray(costs, dtype=np.float64), v2.shape)
    present = ~np.isnan(v2)
    if (present & ~np.isfinite(c2)).any():
        raise ConfigError("costs must be finite wherever the option is present")
    alive = hull_mask(v2, c2, present)
    n, m = v2.shape
    j = np.arange(m)
    # previous and next hull vertex of every point (a vertex is its own neighbour)
    prev = np.maximum.accumulate(np.where(alive, j, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(alive, j, m)[:, ::-1], axis=1)[:, ::-1]
    inside = present & (prev >= 0) & (nxt < m)
    rows = np.arange(n)[:, None]
    a, b = np.clip(prev, 0, m - 1), np.clip(nxt, 0, m - 1)
    va, vb, ca, cb = v2[rows, a], v2[rows, b], c2[rows, a], c2[rows, b]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(cb > ca, (c2 - ca) / (cb - ca), 0.0)
    out = np.where(inside, va + t * (vb - va), np.nan)
    # points cheaper than the first vertex or dearer than the last share its cost: take the vertex value
    out = np.where(present & ~inside, np.where(prev >= 0, va, vb), out)
    out = np.where(alive, v2, out)
    return out[0] if one_d else out


def _binomial_table(rows: int, cols: int) -> FloatArray:
    """``T[a, c] = C(a, c)`` for ``a < rows``, ``c < cols`` (0 where ``c > a``), Pascal's rule in float64."""
    t = np.zeros((rows, cols))
    t[:, 0] = 1.0
    for a in range(1, rows):
        t[a, 1:] = t[a - 1, 1:] + t[a - 1, :-1]
    return t


def _answer_classes(
    codes: npt.NDArray[np.int64], r: FloatArray
) -> tuple[npt.NDArray[np.int64], FloatArray, npt.NDArray[np.int64], FloatArray]:
    """Per row: answer-class sizes and mean rewards (largest class first), abstainer count and mean reward.

    Present samples (reward not NaN) with a code >= 0 vote for their code; a code < 0 is an abstention.
    """
    n, s = r.shape
    present = ~np.isnan(r)
    votes = present & (codes >= 0)
    big = np.iinfo(np.int64).max
    order = np.argsort(np.where(votes, codes, big), axis=1, kind="stable")
    sc = np.take_along_axis(np.where(votes, codes, big), order, axis=1)
    sr = np.take_along_axis(np.where(votes, r, 0.0), order, axis=1)
    sv = np.take_along_axis(votes, order, axis=1)
    new = sv.copy()
    new[:, 1:] &= sc[:, 1:] != sc[:, :-1]
    cls = np.cumsum(new, axis=1) - 1  # class index within the row (voters only)
    flat = (np.arange(n)[:, None] * s + np.where(sv, cls, 0)).ravel()
    sizes = np.bincount(flat, weights=sv.ravel(), minlength=n * s).reshape(n, s)
    sums = np.bincount(flat, weights=sr.ravel(), minlength=n * s).reshape(n, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(sizes > 0, sums / np.where(sizes > 0, sizes, 1.0), 0.0)
    by_size = np.argsort(-sizes, axis=1, kind="stable")
    sizes = np.take_along_axis(sizes, by_size, axis=1).astype(np.int64)
    means = np.take_along_axis(means, by_size, axis=1)
    width = max(int((sizes > 0).sum(axis=1).max(initial=0)), 1)
    abst = present & (codes < 0)
    n_abst = abst.sum(axis=1).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_abst = np.where(n_abst > 0, np.where(abst, r, 0.0).sum(axis=1) / np.maximum(n_abst, 1), 0.0)
    return sizes[:, :width], means[:, :width], n_abst, mean_abst


def expected_majority_vote(
    answer_codes: npt.ArrayLike, rewards: npt.ArrayLike, ks: int | Sequence[int] | npt.ArrayLike
) -> FloatArray:
    """Exact expected reward of majority voting (self-consistency) over ``k`` of the recorded samples.

    For each ``k``: draw ``k`` of the row's ``s`` recorded samples without replacement, return the plurality
    answer (ties split evenly: a uniformly random one of the tied answers) and score it with the reward of a
    random drawn sample carrying that answer. The expectation over all ``C(s, k)`` draws is computed exactly
    from the answer classes' sizes (multivariate hypergeometric counts), not by Monte Carlo.

    A present sample whose code is negative produced no answer (an abstention, as
    :class:`~adaptive_router.strategies.MajorityVoteReranker` scores ``None``): it takes a draw but casts no
    vote, and is returned only when none of the ``k`` drawn samples voted.

    Parameters
    ----------
    answer_codes : array-like of int, shape (n, s)
        The normalised final answer of each sample as an integer code (equal codes = equal answers, compared
        within a row); negative = no answer. Must be negative where ``rewards`` is NaN (padding).
    rewards : array-like, shape (n, s)
        Reward of each recorded sample; NaN pads ragged rows.
    ks : int or sequence of int
        The budgets; an int ``K`` means ``1..K``.

    Returns
    -------
    ndarray of shape (n, len(ks))
        NaN where ``k`` exceeds the row's number of samples.

    Notes
    -----
    For every possible winning count ``M`` the generating polynomial
    ``prod_i (sum_{c < M} C(m_i, c) x^c + y C(m_i, M) x^M)`` over the answer classes (sizes ``m_i``) counts
    the draws in which every class has at most ``M`` votes, ``y`` marking the classes tied at ``M``; a second
    polynomial carries the winner's reward. The ``1 / (number tied)`` split is ``integral_0^1 y^(t-1) dy``,
    integrated exactly by Gauss-Legendre quadrature in ``y``. Only classes with at least ``M`` samples enter
    the product for ``M`` (the rest contribute ``(1 + x)^size``), so the cost per row is about
    ``s * max(ks)^2`` multiply-adds, vectorised over rows.

    Examples
    --------
    Two samples answer "a" (correct), one answers "b": a second vote cannot beat a 1-1 tie, a third can.

    >>> expected_majority_vote([[0, 0, 1]], [[1.0, 1.0, 0.0]], [1, 2, 3])
    array([[0.66666667, 0.66666667, 1.        ]])
    >>> expected_majority_vote([[0, 1, -1, -1]], [[1.0, 0.0, 0.0, float("nan")]], 3)
    array([[0.33333333, 0.5       , 0.5       ]])
    """
    r = _as_rewards(rewards, "rewards")
    c = np.asarray(answer_codes)
    if c.shape != r.shape:
        raise ConfigError(f"answer_codes {c.shape} must have the shape of rewards {r.shape}")
    if c.size and (c.dtype == bool or not np.issubdtype(c.dtype, np.integer)):
        raise ConfigError(
            "answer_codes must be integers (equal codes = equal answers, negative = no answer), "
            f"got {c.dtype}"
        )
    codes = c.astype(np.int64)
    k = _check_ks(ks)
    present = ~np.isnan(r)
    if (~present & (codes >= 0)).any():
        i, j = np.argwhere(~present & (codes >= 0))[0]
        raise ConfigError(
            f"answer_codes[{i}, {j}] = {codes[i, j]} but rewards[{i}, {j}] is NaN (padding); "
            "give padding the code -1"
        )
    n = r.shape[0]
    counts = present.sum(axis=1).astype(np.int64)
    kmax = int(k.max())
    out = np.full((n, k.size), np.nan)
    if n == 0 or counts.max(initial=0) == 0:
        return out
    sizes, means, n_abst, mean_abst = _answer_classes(codes, r)
    length = kmax + 1
    binom = _binomial_table(int(counts.max()) + 1, length + 1)
    num = np.zeros((n, length))
    for m_win in range(1, kmax + 1):
        able = sizes >= m_win
        n_able = able.sum(axis=1)
        if not n_able.any():
            break
        rows = np.flatnonzero(n_able)
        rows = rows[np.argsort(-n_able[rows], kind="stable")]  # most classes first: active rows are a prefix
        n_able = n_able[rows]
        rest = counts[rows] - np.where(able[rows], sizes[rows], 0).sum(axis=1)
        deg = min(kmax // m_win, int(n_able[0]))  # at most this many classes tie at m_win
        y, w = np.polynomial.legendre.leggauss(max(1, -(-deg // 2)))
        y, w = (y + 1.0) / 2.0, w / 2.0
        p0 = np.repeat(binom[rest, :length][:, None, :], y.size, axis=1)  # (rows, nodes, x-degree)
        p1 = np.zeros_like(p0)
        for slot in range(int(n_able[0])):
            na = int(np.count_nonzero(n_able > slot))
            m_i = sizes[rows[:na], slot]
            a = binom[m_i, :m_win]  # C(m_i, c) for c < m_win
            b = binom[m_i, m_win][:, None, None]
            yb = y[None, :, None] * b
            q0, q1 = p0[:na], p1[:na]
            n0 = q0 * a[:, 0, None, None]
            n1 = q1 * a[:, 0, None, None]
            for cnt in range(1, min(m_win, length)):
                n0[..., cnt:] += a[:, cnt, None, None] * q0[..., :-cnt]
                n1[..., cnt:] += a[:, cnt, None, None] * q1[..., :-cnt]
            if m_win < length:
                win = means[rows[:na], slot, None, None] * b
                n1[..., m_win:] += yb * q1[..., :-m_win] + win * q0[..., :-m_win]
                n0[..., m_win:] += yb * q0[..., :-m_win]
            p0[:na], p1[:na] = n0, n1
        num[rows] += np.einsum("rgl,g->rl", p1, w)
    total = binom[counts][:, k]
    abst = mean_abst[:, None] * binom[n_abst][:, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        vals = (num[:, k] + abst) / total
    out[:] = np.where(k[None, :] <= counts[:, None], vals, np.nan)
    return out
