"""`CascadeModel`: what a query's cheap samples so far are worth, learned from recorded outcomes (numpy only).

The model half of a cascade in rounds (:mod:`adaptive_router.allocation.cascade` holds the planner): tables
over evidence states (cheap samples seen, the leading answer's count; or solved / not yet with a verifier)
of the cheap answer's expected reward, the chance that the next sample joins the leader, and one strong
call's expected reward, and the exact per-state policy they imply at a price per cost unit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation._params import EPS, int_param, pos_param
from adaptive_router.allocation.sequential import _dense_codes
from adaptive_router.errors import ConfigError, NotFittedError
from adaptive_router.predictors import FloatArray, IntArray

__all__ = ["CascadeModel"]

_BUCKETS = 5
"""Agreement buckets (leader's share of the samples) a vote state backs off to when training saw it rarely."""

def _bucket(m: IntArray, c: IntArray, kind: str) -> IntArray:
    """The coarser state a ``(samples, leader)`` state backs off to."""
    if kind == "rewards":
        return c
    share = np.floor(_BUCKETS * c / np.maximum(m, 1)).astype(np.int64)
    return np.where(c > 0, 1 + np.minimum(share, _BUCKETS - 1), 0)  # 0: no answer yet


class CascadeModel:
    """What a query's cheap samples so far are worth, with more cheap samples or with escalation.

    Fitted on training outcomes of the cheap procedure (several samples per query) and the strong one, by
    Monte Carlo over orderings of each query's cheap samples. The state after ``m`` cheap samples is
    ``(m, leader)``: the leading answer's count for votes (``answers=`` given to :meth:`fit`), or 1 once a
    sample passed and 0 before with a verifier. For each state it estimates

    - ``cheap_[m, c]``: the expected reward of the answer returned now (the plurality, ties split evenly; the
      best reward with a verifier);
    - ``up_[m, c]``: the probability that the next cheap sample joins the leader (the state moves to
      ``(m + 1, c + 1)``, else to ``(m + 1, c)``);
    - ``strong_[m, c]``: the expected reward of one call of the strong procedure.

    Row ``m = 0`` is a query without a sample (its requests failed): no cheap answer (0), and the population's
    strong reward. These make each query a small Markov decision process (stop, sample once more, escalate)
    that :meth:`policy` solves exactly at a price per cost unit.

    Each estimate is a mean over the training states, shrunk toward a coarser state (the leader's share of
    the samples in five buckets; solved or not) with weight ``smoothing``, which is shrunk toward the
    population in the same way. States past the largest sample count trained on are read at that count with
    the leader's share kept.

    Parameters
    ----------
    smoothing : float
        Pseudo-count of the shrinkage toward the coarser state.
    orderings : int
        Orderings of each query's cheap samples the tables average over.
    seed : int
        Seed of the orderings.

    Examples
    --------
    >>> import numpy as np
    >>> cheap = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]] * 10)
    >>> answers = np.array([[3, 3, 3, 3], [5, 3, 6, 7]] * 10)
    >>> strong = np.array([1.0, 1.0] * 10)
    >>> model = CascadeModel().fit(cheap, strong, answers=answers)
    >>> cheap_now, strong_now = model.values(np.array([2, 2]), np.array([2, 1]))
    >>> bool(cheap_now[0] > cheap_now[1]), bool(strong_now[1] - cheap_now[1] > 0.5)
    (True, True)
    """

    def __init__(self, *, smoothing: float = 4.0, orderings: int = 8, seed: int = 0) -> None:
        self.smoothing = smoothing
        self.orderings = orderings
        self.seed = seed

    def __repr__(self) -> str:
        return f"CascadeModel(smoothing={self.smoothing!r}, orderings={self.orderings!r}, seed={self.seed!r})"

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        cheap_rewards: npt.ArrayLike,
        strong_rewards: npt.ArrayLike | None = None,
        *,
        answers: npt.ArrayLike | None = None,
    ) -> CascadeModel:
        """Learn the tables from training outcomes.

        Without ``strong_rewards`` the model has no strong procedure (``strong_`` is 0): a learned stopping
        rule for the cheap samples alone (`CascadePlanner` with ``escalate_cost=None``, `Rounds(model=...)`).

        Parameters
        ----------
        cheap_rewards : array-like, shape (n, s)
            The cheap procedure's recorded rewards, NaN-padded at the end of a row.
        strong_rewards : array-like, shape (n,) or (n, s2), optional
            The strong procedure's rewards (a row's mean is the value of one call), NaN-padded.
        answers : array-like of int, shape (n, s), optional
            The cheap samples' answer codes (negative: no answer): a vote cascade. Without: a verifier's.
        """
        a = pos_param("smoothing", self.smoothing, zero_ok=True)
        orderings = int_param("orderings", self.orderings, 1)
        r = np.asarray(cheap_rewards, dtype=np.float64)
        if r.ndim != 2 or r.shape[0] < 2:
            raise ConfigError(f"cheap_rewards must be an (n >= 2, s) array, got shape {r.shape}")
        present = ~np.isnan(r)
        counts = present.sum(axis=1)
        if (counts == 0).any() or (present[:, 1:] & ~present[:, :-1]).any():
            raise ConfigError("every query needs a cheap sample, and NaN may only pad the end of a row")
        strong = np.zeros(r.shape[0]) if strong_rewards is None else _row_means(strong_rewards, r.shape[0])
        kind = "rewards" if answers is None else "answers"
        codes = None
        if answers is not None:
            codes = _dense_codes(np.asarray(answers).astype(np.int64))
            if codes.shape != r.shape:
                raise ConfigError(f"answers {codes.shape} must have the shape of cheap_rewards {r.shape}")
        n, s = r.shape
        size = (s + 1) * (s + 1)
        n_vc, s_v, s_s, n_up, s_up = (np.zeros(size) for _ in range(5))
        rng = np.random.default_rng(int(self.seed))
        for _ in range(orderings):
            order = np.argsort(np.where(present, rng.random((n, s)), np.inf), axis=1)
            state, value = _walk(r, codes, order, counts)  # (n, s): state key and value after m samples
            for m in range(1, s + 1):
                live = np.flatnonzero(counts >= m)
                key = state[live, m - 1]
                n_vc += np.bincount(key, minlength=size)
                s_v += np.bincount(key, weights=value[live, m - 1], minlength=size)
                s_s += np.bincount(key, weights=strong[live], minlength=size)
                if m < s:  # the next sample: does it join the leader?
                    ahead = live[counts[live] > m]
                    rose = state[ahead, m] % (s + 1) > state[ahead, m - 1] % (s + 1)
                    n_up += np.bincount(state[ahead, m - 1], minlength=size)
                    s_up += np.bincount(state[ahead, m - 1], weights=rose, minlength=size)
        m_of = np.repeat(np.arange(s + 1), s + 1)
        c_of = np.tile(np.arange(s + 1), s + 1)
        bucket = _bucket(m_of, c_of, kind)
        self.cheap_ = _shrunk(s_v, n_vc, bucket, a).reshape(s + 1, s + 1)
        self.strong_ = _shrunk(s_s, n_vc, bucket, a).reshape(s + 1, s + 1)
        self.up_ = _shrunk(s_up, n_up, bucket, a).reshape(s + 1, s + 1)
        # no sample yet (every request failed, or none taken): no cheap answer; the first sample leads if
        # it has an answer (votes) or passes (a verifier)
        self.cheap_[0], self.strong_[0, 0] = 0.0, float(strong.mean())
        first = n_vc[s + 1 : s + 3]  # states (1, 0) and (1, 1)
        self.up_[0, 0] = float(first[1] / first.sum()) if first.sum() > 0 else 1.0
        self.kind_ = kind
        self.max_samples_ = s
        self.n_train_ = n
        return self

    # ------------------------------------------------------------------ read
    @property
    def needs(self) -> str:
        """What the cheap samples must give: ``"answers"`` (votes) or ``"rewards"`` (a verifier)."""
        self._check_fitted()
        return str(self.kind_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "cheap_"):
            raise NotFittedError("CascadeModel is not fitted: call fit(cheap_rewards[, strong_rewards], ...)")

    def _keys(self, samples: IntArray, leader: IntArray) -> tuple[IntArray, IntArray]:
        m = np.asarray(samples, dtype=np.int64)
        c = np.asarray(leader, dtype=np.int64)
        top = int(self.max_samples_)
        over = m > top
        if over.any():  # past the training's largest count: read at that count, the leader's share kept
            c = np.where(over, np.rint(c * top / np.maximum(m, 1)).astype(np.int64), c)
            m = np.minimum(m, top)
        return m, np.clip(c, 0, m)

    def values(self, samples: npt.ArrayLike, leader: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """``(cheap, strong)``: the expected reward of the cheap answer now and of one strong call, per query
        with ``samples`` cheap samples of which ``leader`` back the leading answer (1 / 0: solved or not)."""
        self._check_fitted()
        m, c = self._keys(np.asarray(samples), np.asarray(leader))
        return self.cheap_[m, c], self.strong_[m, c]

    def policy(
        self, price: float, *, unit_cost: float, escalate_cost: float, cap: int, escalate: bool = True
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """The optimal action of every state at ``price`` per cost unit, by backward induction.

        Each query maximises its expected reward minus ``price`` times its expected cost: stop (keep the
        cheap answer), sample once more (``unit_cost``; not past ``cap`` samples), or escalate
        (``escalate_cost``; only with ``escalate``); an action must gain more than ``EPS`` (1e-6) over a
        cheaper one. Returns ``(action, value, cost)``, each
        ``(cap + 1, cap + 1)`` indexed ``[m, c]``: the action (0 stop, 1 sample, 2 escalate; ties go to the
        cheaper), the net value and the expected cost from that state on. States past the training's largest
        count are read as in :meth:`values`.
        """
        action, value, cost = self.policies(
            np.array([float(price)]), unit_cost=unit_cost, escalate_cost=escalate_cost, cap=cap,
            escalate=escalate,
        )  # fmt: skip
        return action[0], value[0], cost[0]

    def policies(
        self, prices: FloatArray, *, unit_cost: float, escalate_cost: float, cap: int, escalate: bool = True
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """:meth:`policy` at every price of ``prices`` at once: arrays ``(len(prices), cap + 1, cap + 1)``."""
        self._check_fitted()
        lam = np.asarray(prices, dtype=np.float64).reshape(-1, 1)
        c, big = float(unit_cost), float(escalate_cost)
        shape = (lam.shape[0], cap + 1, cap + 1)
        action, value, cost = np.zeros(shape, dtype=np.int64), np.zeros(shape), np.zeros(shape)
        tie = EPS  # a gain below it is the tables' smoothing, not evidence (a solved query's 1 - 1e-9)
        for m in range(cap, -1, -1):
            lead = np.arange(m + 1)
            mm, cc = self._keys(np.full(m + 1, m), lead) if m > self.max_samples_ else (m, lead)
            stop = np.broadcast_to(self.cheap_[mm, cc], (lam.shape[0], m + 1))
            more = np.full_like(stop, -np.inf)
            more_cost = np.zeros_like(stop)
            if m < cap:
                up = self.up_[mm, cc]
                more = up * value[:, m + 1, 1 : m + 2] + (1 - up) * value[:, m + 1, : m + 1] - lam * c
                more_cost = c + up * cost[:, m + 1, 1 : m + 2] + (1 - up) * cost[:, m + 1, : m + 1]
            lift = self.strong_[mm, cc] - lam * big if escalate else np.full_like(stop, -np.inf)
            best = np.maximum(np.maximum(stop, more), lift)
            act = np.where(stop >= best - tie, 0, np.where(more >= best - tie, 1, 2))  # the cheapest of ties
            action[:, m, : m + 1] = act
            value[:, m, : m + 1] = best
            cost[:, m, : m + 1] = np.where(act == 0, 0.0, np.where(act == 1, more_cost, big))
        return action, value, cost

    @staticmethod
    def sure_samples(action: IntArray) -> IntArray:
        """How many samples in a row a policy (``action`` from :meth:`policies`, ``(..., cap + 1, cap + 1)``)
        takes from each state whatever they show: 0 where it stops or escalates, else one more than the
        least of its two successors'. Drawing them at once changes nothing but the number of rounds.

        >>> import numpy as np
        >>> action = np.zeros((3, 3), dtype=np.int64)
        >>> action[0, 0] = action[1, :2] = 1                  # sample from (0, 0) and from (1, *)
        >>> CascadeModel.sure_samples(action)[:2].tolist()
        [[2, 0, 0], [1, 1, 0]]
        """
        d = np.zeros_like(action)
        cap = action.shape[-1] - 1
        for m in range(cap - 1, -1, -1):
            nxt = np.minimum(d[..., m + 1, 1 : m + 2], d[..., m + 1, : m + 1])
            d[..., m, : m + 1] = np.where(action[..., m, : m + 1] == 1, 1 + nxt, 0)
        return d

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """The fitted model as JSON-able data (:meth:`from_dict` reads it back)."""
        self._check_fitted()
        return {
            "params": {"smoothing": self.smoothing, "orderings": self.orderings, "seed": self.seed},
            "kind": self.kind_, "max_samples": self.max_samples_, "n_train": self.n_train_,
            "cheap": self.cheap_.tolist(), "strong": self.strong_.tolist(),
            "up": self.up_.tolist(),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CascadeModel:
        """A model written by :meth:`to_dict`; a malformed one raises ``ConfigError``."""
        try:
            model = cls(**data["params"])
            s = int(data["max_samples"])
            model.cheap_ = np.asarray(data["cheap"], dtype=np.float64).reshape(s + 1, s + 1)
            model.strong_ = np.asarray(data["strong"], dtype=np.float64).reshape(s + 1, s + 1)
            model.up_ = np.asarray(data["up"], dtype=np.float64).reshape(s + 1, s + 1)
            model.kind_, model.max_samples_ = str(data["kind"]), s
            model.n_train_ = int(data["n_train"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"not a CascadeModel's data ({exc!r}); refit it") from exc
        if model.kind_ not in ("answers", "rewards") or not all(
            np.isfinite(x).all() for x in (model.cheap_, model.strong_, model.up_)
        ):
            raise ConfigError("not a CascadeModel's data (kind or tables); refit it")
        return model


def _row_means(values: npt.ArrayLike, n: int) -> FloatArray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[0] != n:
        raise ConfigError(f"strong_rewards must be (n,) or (n, s2) with n = {n}, got shape {v.shape}")
    if np.isnan(v).all(axis=1).any():
        raise ConfigError("every query needs a recorded reward of the strong procedure")
    return np.nanmean(v, axis=1)


def _walk(
    r: FloatArray, codes: IntArray | None, order: IntArray, counts: IntArray
) -> tuple[IntArray, FloatArray]:
    """State keys ``m * (s + 1) + leader`` and the returned answer's reward after each of ``m = 1..s``
    samples drawn in ``order`` (entries past a row's count are left 0)."""
    n, s = r.shape
    state = np.zeros((n, s), dtype=np.int64)
    value = np.zeros((n, s))
    rows = np.arange(n)
    if codes is None:  # a verifier: the best reward so far; the leader is "solved"
        best = np.full(n, -np.inf)
        for m in range(1, s + 1):
            live = rows[counts >= m]
            best[live] = np.maximum(best[live], r[live, order[live, m - 1]])
            state[live, m - 1] = m * (s + 1) + (best[live] >= 0.5)
            value[live, m - 1] = best[live]
        return state, value
    flat = np.where(codes >= 0, rows[:, None] * s + codes, 0)
    votes = codes >= 0
    cls_n = np.bincount(flat[votes], minlength=n * s).reshape(n, s)
    cls_r = np.bincount(flat[votes], weights=r[votes], minlength=n * s).reshape(n, s)
    cls_r = np.divide(cls_r, cls_n, out=np.zeros_like(cls_r), where=cls_n > 0)  # reward of each answer
    tally = np.zeros((n, s))
    drawn = np.zeros(n)
    for m in range(1, s + 1):
        live = rows[counts >= m]
        col = order[live, m - 1]
        code = codes[live, col]
        voted = code >= 0
        tally[live[voted], code[voted]] += 1
        drawn[live] += np.nan_to_num(r[live, col])
        t = tally[live]
        c1 = t.max(axis=1)
        tied = (t == c1[:, None]) & (c1[:, None] > 0)
        vote = (tied * cls_r[live]).sum(axis=1) / np.maximum(tied.sum(axis=1), 1)
        state[live, m - 1] = m * (s + 1) + c1.astype(np.int64)
        value[live, m - 1] = np.where(c1 > 0, vote, drawn[live] / m)  # nobody voted: a random sample
    return state, value


def _shrunk(total: FloatArray, count: FloatArray, bucket: IntArray, a: float) -> FloatArray:
    """Per-state means shrunk toward their bucket's, shrunk toward the population's (pseudo-count ``a``)."""
    pop = float(total.sum() / count.sum()) if count.sum() > 0 else 0.0
    width = int(bucket.max()) + 1
    b_total = np.bincount(bucket, weights=total, minlength=width)
    b_count = np.bincount(bucket, weights=count, minlength=width)
    parent = (b_total + a * pop) / np.maximum(b_count + a, 1e-12)
    return (total + a * parent[bucket]) / np.maximum(count + a, 1e-12) if a > 0 else np.where(
        count > 0, total / np.maximum(count, 1e-12), parent[bucket]
    )
