"""Vectorised upper concave hull of many small point sets (numpy only; private).

Each row ``i`` is a point set ``{(costs[i, j], values[i, j]) : present[i, j]}`` with costs non-decreasing in
``j``. :func:`hull_mask` marks the vertices of each row's upper concave hull, keeping collinear points
(so a straight stretch of a ladder keeps every one of its steps). It works on all rows at once by
repeatedly deleting points that cannot be vertices:

- a point strictly below the chord between its live neighbours (by more than a relative 1e-12, so
  that rounding does not split a straight stretch);
- a point with the same cost as a live neighbour and a lower value (equal values: the later one goes).

At the fixed point every live interior point is on or above its neighbours' chord, so the live points of
a row form a concave chain: its upper hull, from the cheapest option to the most expensive one.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from adaptive_router._types import FloatArray

__all__ = ["hull_mask"]

_RTOL = 1e-12


def hull_mask(values: FloatArray, costs: FloatArray, present: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Boolean ``(n, m)`` mask of upper-hull vertices (see the module docstring).

    ``values`` and ``costs`` are ``(n, m)`` (``costs`` may be a broadcast view); entries where ``present``
    is False are ignored. Rows with no present point get an all-False mask.
    """
    n, m = values.shape
    if n == 0 or m == 0:
        return np.zeros((n, m), dtype=bool)
    # Work transposed, (m, n): accumulations along the short axis become fast row-wise vector ops.
    v = np.ascontiguousarray(values.T)
    c = np.ascontiguousarray(np.broadcast_to(costs, values.shape).T)
    alive = np.ascontiguousarray(present.T).copy()
    v = np.where(alive, v, 0.0)
    c = np.where(alive, c, 0.0)
    j = np.arange(m)[:, None]
    active = np.arange(n)  # columns (rows of the caller) not yet at their fixed point
    while active.size:
        k = active.size
        a, va, ca = alive[:, active], v[:, active], c[:, active]
        prev = np.maximum.accumulate(np.where(a, j, -1), axis=0)
        prev = np.vstack([np.full((1, k), -1), prev[:-1]])
        nxt = np.minimum.accumulate(np.where(a, j, m)[::-1], axis=0)[::-1]
        nxt = np.vstack([nxt[1:], np.full((1, k), m)])
        has_p = a & (prev >= 0)
        has_n = a & (nxt < m)
        cols = np.arange(k)[None, :]
        pi = np.clip(prev, 0, m - 1)
        ni = np.clip(nxt, 0, m - 1)
        vp, cp = va[pi, cols], ca[pi, cols]
        vn, cn = va[ni, cols], ca[ni, cols]
        dup_next = has_n & (cn == ca) & (vn > va)
        dup_prev = has_p & (cp == ca) & (vp >= va)
        inner = has_p & has_n & (cp < ca) & (ca < cn)
        # strictly below, beyond rounding: nearly collinear points stay (their steps are kept)
        tol = _RTOL * (np.abs(vp) + np.abs(va) + np.abs(vn)) * (cn - cp)
        below = inner & ((va - vp) * (cn - cp) < (vn - vp) * (ca - cp) - tol)
        remove = dup_next | dup_prev | below
        changed = remove.any(axis=0)
        alive[:, active] = a & ~remove
        active = active[changed]
    return np.ascontiguousarray(alive.T)
