"""``allocate``: predicted reward ladders + a budget -> one option per query (numpy only).

The problem is the seed's integer program (a multiple-choice knapsack)::

    maximise  sum_i w_i * values[i, choice_i]   subject to   sum_i costs[i, choice_i] <= budget

with exactly one allowed option per query. It is solved in the threshold (shadow-price) form:

1. Each query's allowed options are replaced by their upper concave envelope (hull vertices, collinear
   points kept); consecutive vertices form *segments* with a gain, a cost and a slope (gain per cost).
   Concave rows are detected in one vectorised pass; only the others go through the hull routine.
2. Every query starts at its cheapest allowed option. Segments are ranked by slope (ties: query index,
   then option index); the longest prefix of that ranking whose cost fits the budget is taken. Its
   threshold is found from a sample of slopes and resolved exactly on the few segments near it, so
   the cost is a handful of passes over the ``(n, m)`` arrays, not a sort. Within a query the slopes
   of a concave chain are non-increasing, so the taken segments always form a prefix of its ladder.
3. The leftover budget is spent deterministically: every query that can move to a better option the
   leftover pays for proposes its best move (gain per cost); proposals are applied best first (ties:
   query index) in vectorised rounds until no affordable improving move is left.

Exactness. Step 2 is the optimum of the LP relaxation except for at most one fractional segment, so the
result is within ``shadow_price * leftover`` of the integer optimum (reported as ``gap_bound``). It is
exactly optimal (``gap_bound == 0``) when the budget does not bind, or when every query's allowed ladder
is concave and all useful envelope segments cost the same (best-of-k with a fixed cost per sample, any
ladder with equal cost steps). With unequal step costs the integer problem is a knapsack and no greedy is
exact; with non-concave ladders options below the envelope are used only by step 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation._segments import Segments, segments, take
from adaptive_router.allocation._validate import Problem, check_problem
from adaptive_router.errors import InfeasibleBudgetError
from adaptive_router.predictors import FloatArray, IntArray

__all__ = ["Allocation", "allocate"]

_SAMPLE = 1 << 17


@dataclass(frozen=True, eq=False)
class Allocation:
    """The result of :func:`allocate`.

    Attributes
    ----------
    choice : ndarray of int, shape (n,)
        Index of the chosen option of each query (a column of ``values``).
    cost : ndarray of float, shape (n,)
        Cost of each chosen option.
    spend : float
        ``cost.sum()``; never above the budget.
    value : float
        Predicted objective ``sum_i w_i * values[i, choice_i]``.
    shadow_price : float
        Marginal (weighted) reward per unit of cost at the optimum, the threshold slope: every envelope
        step with a higher gain per cost was bought. 0 when the budget does not bind.
    gap_bound : float
        Upper bound on how far ``value`` can be below the integer optimum; 0 when provably optimal.
    """

    choice: IntArray
    cost: FloatArray
    spend: float
    value: float
    shadow_price: float
    gap_bound: float = 0.0

    def __len__(self) -> int:
        return int(self.choice.shape[0])

    def __repr__(self) -> str:
        return (
            f"Allocation(n={len(self)}, spend={self.spend:.6g}, value={self.value:.6g}, "
            f"shadow_price={self.shadow_price:.6g}, gap_bound={self.gap_bound:.3g})"
        )


def allocate(
    values: npt.ArrayLike,
    costs: npt.ArrayLike,
    budget: float,
    *,
    min_cost: float | npt.ArrayLike | None = None,
    max_cost: float | npt.ArrayLike | None = None,
    weights: npt.ArrayLike | None = None,
) -> Allocation:
    """Choose one option per query to maximise total predicted reward within a total budget.

    Parameters
    ----------
    values : array-like, shape (n, m)
        Predicted expected reward of each query's options, ordered by cost; NaN marks an absent option.
    costs : array-like, shape (n, m) or (m,)
        Cost of each option, non-negative and non-decreasing along each row.
    budget : float
        Total budget for the ``n`` queries (e.g. ``budget_per_query * n``).
    min_cost, max_cost : float or array-like of shape (n,), optional
        Only options whose cost lies in ``[min_cost, max_cost]`` may be chosen (per query or for all).
    weights : array-like of shape (n,), optional
        Non-negative importance of each query; multiplies its values.

    Returns
    -------
    Allocation

    Raises
    ------
    InfeasibleBudgetError
        If ``budget`` is below the sum of every query's cheapest allowed option (a ``ValueError``).
    ConfigError
        For malformed inputs (shapes, inf/NaN costs, negative or decreasing costs, a query with no
        allowed option).

    Examples
    --------
    Three queries, best-of-1..3 at one unit per sample, a budget of 6 units:

    >>> import numpy as np
    >>> values = np.array([[0.9, 0.95, 0.97],    # easy
    ...                    [0.2, 0.36, 0.49],    # hard but improvable
    ...                    [0.0, 0.0, 0.01]])    # hopeless
    >>> result = allocate(values, [1.0, 2.0, 3.0], budget=6.0)
    >>> result.choice.tolist(), result.spend
    ([1, 2, 0], 6.0)
    >>> round(result.shadow_price, 2)  # the best step left unbought gains 0.02 per unit
    0.02
    """
    p = check_problem(values, costs, budget, min_cost=min_cost, max_cost=max_cost, weights=weights)
    n = p.values.shape[0]
    if n == 0:
        empty = np.zeros(0)
        return Allocation(np.zeros(0, dtype=np.int64), empty, 0.0, 0.0, 0.0, 0.0)
    seg = segments(p)
    base_cost = take(p.costs, seg.base)
    base_spend = float(base_cost.sum())
    if base_spend > p.budget:
        raise InfeasibleBudgetError(
            f"budget={p.budget:g} is below {base_spend:g}, the cost of every query's cheapest allowed "
            f"option ({n} queries); raise the budget to at least {base_spend:g} or lower min_cost"
        )
    counts, lam = _select(seg, p.budget - base_spend)
    choice = seg.choice_from_counts(counts)
    cost = take(p.costs, choice)
    spend = float(cost.sum())
    value1 = value = float(take(p.values, choice).sum())
    leftover1 = p.budget - spend
    first = choice
    if spend <= p.budget and lam > 0.0:  # lam == 0: every query already has its best option
        choice = _fill(p, choice, p.budget - spend)
    if choice is not first:
        cost = take(p.costs, choice)
        spend = float(cost.sum())
    if spend > p.budget:  # float rounding only: step back until the exact sum fits
        choice = _repair(p, seg, choice)
        cost = take(p.costs, choice)
        spend = float(cost.sum())
    if choice is not first:
        value = float(take(p.values, choice).sum())
    if lam == 0.0 or (seg.all_concave and seg.equal_costs()):
        gap = 0.0
    else:
        gap = max(0.0, value1 + lam * max(leftover1, 0.0) - value)
    return Allocation(choice.astype(np.int64), cost, spend, value, float(lam), float(gap))


# --------------------------------------------------------------------------------------------------------
# threshold selection

_TINY = float(np.nextafter(0.0, 1.0))


def _select(seg: Segments, room: float) -> tuple[IntArray, float]:
    """Segments taken per row (a prefix of the slope ranking that fits ``room``) and the shadow price.

    A threshold bracket ``[lo, hi]`` comes from a sample; the rows' counts above ``hi`` and at least ``lo``
    are checked on the full arrays, and only the segments inside the bracket are sorted.
    """
    key = seg.key
    n, m1 = key.shape
    hi, lo = _bracket(seg, room) if key.size > 4 * _SAMPLE else (np.inf, _TINY)
    for attempt in range(6):
        above = seg.counts(hi, strict=True) if np.isfinite(hi) else np.zeros(n, dtype=np.int64)
        w_hi = seg.prefix_cost(above)
        if w_hi > room:  # hi too low: raise it (to +inf after a few tries)
            hi = hi * 8.0 if attempt < 3 else np.inf
            continue
        upto = seg.counts(lo, strict=False)
        if seg.prefix_cost(upto) > room:
            break
        if lo <= _TINY:  # every useful segment fits: the budget does not bind
            return upto, 0.0
        lo = lo / 16.0 if attempt < 3 else _TINY  # lo too high: lower it (to every useful segment)
    else:  # unreachable in practice: bracket everything
        above = np.zeros(n, dtype=np.int64)
        w_hi = 0.0
        upto = seg.counts(_TINY, strict=False)
        if seg.prefix_cost(upto) <= room:
            return upto, 0.0
    # candidates: rank above[i] .. upto[i]-1 of every row, listed in (row, column) order
    rows = np.flatnonzero(upto > above)
    sizes = (upto - above)[rows]
    cand_rows = np.repeat(rows, sizes)
    starts = np.cumsum(sizes) - sizes
    ranks = np.arange(cand_rows.size) - np.repeat(starts, sizes) + np.repeat(above[rows], sizes)
    flat = cand_rows * m1 + seg.segment_cols(cand_rows, ranks)
    keys = key.ravel()[flat]
    order = np.argsort(-keys, kind="stable")  # ties keep (row, column) order
    cum = w_hi + np.cumsum(seg.weights_at(flat[order]))
    p = int(np.searchsorted(cum, room, side="right"))
    counts = above + np.bincount(cand_rows[order[:p]], minlength=n)
    lam = float(keys[order[min(p, order.size - 1)]]) if order.size else 0.0
    return counts, lam


def _bracket(seg: Segments, room: float) -> tuple[float, float]:
    """Slopes ``hi >= lo`` between which the budget runs out, estimated from a fixed random sample.

    Only speed depends on the sample: :func:`_select` checks the bracket on the full arrays.
    """
    flat = seg.key.ravel()
    idx = np.sort(np.random.default_rng(0).integers(0, flat.size, _SAMPLE))
    ks = flat[idx]
    keep = ks > 0
    if keep.sum() < 256:
        return np.inf, _TINY
    ks, ws = ks[keep], seg.weights_at(idx[keep])
    order = np.argsort(-ks)
    ks = ks[order]
    cw = np.cumsum(ws[order]) * (flat.size / _SAMPLE)  # estimated cost of taking the top of the ranking
    frac = min(max(room / cw[-1], 0.0), 1.0)
    margin = (5.0 * np.sqrt(max(frac * (1.0 - frac), 1e-3) / ks.size) + 1e-4) * cw[-1]
    ihi = int(np.searchsorted(cw, room - margin))
    ilo = int(np.searchsorted(cw, room + margin))
    if ihi >= ks.size:  # the sample says everything fits: check that first
        return np.inf, _TINY
    hi = float(ks[ihi]) if room - margin > 0 else np.inf
    lo = float(ks[ilo]) if ilo < ks.size else _TINY
    return hi, max(lo, _TINY)


# --------------------------------------------------------------------------------------------------------
# leftover: fill, and the rounding guard


def _fill(p: Problem, choice: IntArray, left: float) -> IntArray:
    """Spend the leftover on the best affordable improving moves (deterministic, vectorised rounds).

    Every query that can still improve within the leftover proposes its best move (highest gain per
    cost; ties: the cheaper option). Each round ranks the proposals by gain per cost (ties: query index)
    and applies the longest affordable prefix; queries that moved, or whose proposal no longer fits,
    propose again. It stops when no query can improve within what is left.
    """
    v, c = p.values, p.costs
    n, m = v.shape
    if m == 1 or left <= 0:
        return choice
    dc = np.diff(c, axis=-1)
    pos = dc[dc > 0]
    if pos.size == 0 or left < pos.min():
        return choice
    min_step = float(pos.min())
    allowed = p.allowed
    choice = choice.copy()

    def propose(rows: IntArray, budget_left: float) -> tuple[IntArray, FloatArray, FloatArray, IntArray]:
        k = np.arange(rows.size)
        every = rows.size == n
        vr = v if every else v[rows]
        cr = c if c.ndim == 1 else (c if every else c[rows])
        ch = choice[rows]
        gain = vr - take(vr, ch)[:, None]
        step = cr - (cr[ch] if cr.ndim == 1 else take(cr, ch))[:, None]
        with np.errstate(invalid="ignore"):
            ok = (gain > 0) & (step <= budget_left)
        if allowed is not None:
            ok &= allowed if every else allowed[rows]
        step = np.broadcast_to(step, ok.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(ok, np.where(step > 0, gain / step, np.inf), -np.inf)
        j = np.argmax(rate, axis=1)  # the cheapest of equal rates
        has = ok[k, j]
        return rows[has], rate[k, j][has], step[k, j][has], j[has]

    rows, rate, step, target = propose(np.arange(n), left)
    while rows.size:
        most = int(left // min_step) + 1  # no round can apply more moves than this
        if rows.size > most:
            cut = -np.partition(-rate, most - 1)[most - 1]
            sel = np.flatnonzero(rate >= cut)
        else:
            sel = np.arange(rows.size)
        order = sel[np.lexsort((rows[sel], -rate[sel]))]
        cum = np.cumsum(step[order])
        count = max(1, int(np.searchsorted(cum, left, side="right")))
        moved = order[:count]
        choice[rows[moved]] = target[moved]
        left = max(left - float(cum[count - 1]), 0.0)
        stale = step > left
        stale[moved] = True
        fresh = propose(rows[stale], left)
        keep = ~stale
        rows = np.concatenate([rows[keep], fresh[0]])
        rate = np.concatenate([rate[keep], fresh[1]])
        step = np.concatenate([step[keep], fresh[2]])
        target = np.concatenate([target[keep], fresh[3]])
    return choice


def _repair(p: Problem, seg: Segments, choice: IntArray) -> IntArray:
    """Undo the least valuable steps until the float sum of costs is within budget (rounding guard)."""
    choice = choice.copy()
    n, m = p.values.shape
    c2 = np.broadcast_to(p.costs, (n, m))
    allowed = np.ones((n, m), dtype=bool) if p.allowed is None else p.allowed
    j = np.arange(m)[None, :]
    while float(take(p.costs, choice).sum()) > p.budget:
        rows = np.flatnonzero(choice != seg.base)
        if rows.size == 0:
            break
        ch = choice[rows]
        cc = c2[rows, ch][:, None]
        saved = cc - c2[rows]
        down = allowed[rows] & (j < ch[:, None]) & (saved > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = np.where(down, (p.values[rows, ch][:, None] - p.values[rows]) / saved, np.inf)
        to = np.argmin(loss, axis=1)
        rate = loss[np.arange(rows.size), to]
        if not np.isfinite(rate).any():
            break
        k = rows.size - 1 - int(np.argmin(rate[::-1]))  # smallest loss; ties: the last query
        choice[rows[k]] = to[k]
    return choice
