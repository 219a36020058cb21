"""Vectorised upper concave hull of many small point sets (numpy only; private).

Each row ``i`` is a point set ``{(costs[i, j], values[i, j]) : present[i, j]}`` with costs non-decreasing in
``j``. :func:`hull_mask` marks the vertices of each row's upper concave hull, from the cheapest point to
the most expensive one, keeping collinear points (so a straight stretch of a ladder keeps every step).

It is Andrew's monotone chain run on all rows at once: points are pushed column by column onto one stack
per row, and a row pops its top while the top lies strictly below the chord from the point beneath it to
the new point (by more than a relative 1e-12, so rounding does not split a straight stretch). Of points
with equal cost only the best survives (the first one on equal values). The Python loop runs over the m
columns and, per column, over the deepest pop; every step is a vector operation over the rows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from adaptive_router.predictors import FloatArray

__all__ = ["hull_mask"]

_RTOL = 1e-12


def hull_mask(values: FloatArray, costs: FloatArray, present: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Boolean ``(n, m)`` mask of upper-hull vertices (see the module docstring).

    ``values`` and ``costs`` are ``(n, m)`` (``costs`` may be a broadcast view); entries where ``present``
    is False are ignored. Rows with no present point get an all-False mask.
    """
    n, m = values.shape
    alive = np.zeros((n, m), dtype=bool)
    if n == 0 or m == 0:
        return alive
    # Transposed copies: column j of every row is one contiguous vector.
    vt = np.ascontiguousarray(values.T)
    ct = np.ascontiguousarray(np.broadcast_to(costs, values.shape).T)
    pt = np.ascontiguousarray(present.T)
    vf, cf = vt.ravel(), ct.ravel()
    stack = np.zeros(m * n, dtype=np.int64)  # stack[t * n + row]: option index at depth t
    top = np.zeros(n, dtype=np.int64)  # stack size per row
    for j in range(m):
        act = np.flatnonzero(pt[j])
        vj_all, cj_all = vt[j], ct[j]
        while act.size:
            t = top[act]
            vj, cj = vj_all[act], cj_all[act]
            k1 = stack[np.maximum(t - 1, 0) * n + act] * n + act
            v1, c1 = vf[k1], cf[k1]
            same = (t >= 1) & (c1 == cj)
            pop_same = same & (v1 < vj)
            k2 = stack[np.maximum(t - 2, 0) * n + act] * n + act
            v2, c2 = vf[k2], cf[k2]
            tol = _RTOL * (np.abs(v2) + np.abs(v1) + np.abs(vj)) * (cj - c2)
            below = (t >= 2) & ~same & ((v1 - v2) * (cj - c2) < (vj - v2) * (c1 - c2) - tol)
            pop = pop_same | below
            top[act[pop]] -= 1
            push = act[~pop & ~same]
            stack[top[push] * n + push] = j
            top[push] += 1
            act = act[pop]
    stack = stack.reshape(m, n)
    for depth in range(m):
        rows = np.flatnonzero(top > depth)
        alive[rows, stack[depth, rows]] = True
    return alive
