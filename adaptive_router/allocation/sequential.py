"""Sequential replay: run a round policy on recorded outcomes, each query's samples in a seeded order.

:func:`replay_rounds` serves a policy's requests from a random permutation of each query's recorded
samples, the queries themselves presented in a random order (Monte Carlo over orderings; the standard
error over seeds is reported), and scores the answer the policy returns: any verified sample
(``best``), the plurality answer with ties split evenly (``vote``), or the top-scored sample (``score``).

numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation.rounds import RoundPolicy
from adaptive_router.errors import ConfigError
from adaptive_router.predictors import FloatArray, IntArray

__all__ = ["ReplayResult", "replay_rounds"]

# --------------------------------------------------------------------------------------------------------
# sequential replay


@dataclass(frozen=True)
class ReplayResult:
    """Sequential replay of a policy over seeded orderings of the recorded samples.

    Attributes
    ----------
    quality, quality_se : float
        Mean reward of the returned answers, and its standard error over seeds.
    spend, spend_se : float
        Mean spend per query (units x unit cost), and its standard error over seeds.
    max_spend : float
        The largest spend per query of any seed.
    rounds : float
        Mean number of rounds.
    per_seed_quality, per_seed_spend : ndarray
    escalated : float
        Mean share of queries a cascade escalated (0 for other policies).
    """

    quality: float
    quality_se: float
    spend: float
    spend_se: float
    max_spend: float
    rounds: float
    per_seed_quality: FloatArray
    per_seed_spend: FloatArray
    escalated: float = 0.0


def _dense_codes(codes: IntArray) -> IntArray:
    """Codes renumbered ``0..C-1`` within each row (negatives stay -1)."""
    n, s = codes.shape
    key = np.where(codes >= 0, codes, np.iinfo(np.int64).max)
    order = np.argsort(key, axis=1, kind="stable")
    sk = np.take_along_axis(key, order, axis=1)
    new = np.ones((n, s), dtype=bool)
    new[:, 1:] = sk[:, 1:] != sk[:, :-1]
    dense = np.cumsum(new, axis=1) - 1
    out = np.empty_like(dense)
    np.put_along_axis(out, order, dense, axis=1)
    return np.where(codes >= 0, out, -1)


def _returned_reward(
    kind: str, drawn: npt.NDArray[np.bool_], r: FloatArray, codes: IntArray | None, scores: FloatArray | None
) -> FloatArray:
    """Reward of the answer each query returns from its drawn samples (ties: the mean over tied answers)."""
    n, s = r.shape
    r0 = np.where(drawn, r, 0.0)
    if kind == "best":
        return np.where(drawn, r, -np.inf).max(axis=1)
    if kind == "score" and scores is not None:
        sc = np.where(drawn, scores, -np.inf)
        tied = drawn & (sc == sc.max(axis=1, keepdims=True))
        return (r0 * tied).sum(axis=1) / tied.sum(axis=1)
    if kind != "vote" or codes is None:
        raise ConfigError(f"cannot score returned answers by {kind!r} without the matching answers / scores")
    votes = drawn & (codes >= 0)
    flat = (np.arange(n)[:, None] * s + np.where(votes, codes, 0)).ravel()
    count = np.bincount(flat, weights=votes.ravel(), minlength=n * s).reshape(n, s)
    total = np.bincount(flat, weights=np.where(votes, r, 0.0).ravel(), minlength=n * s).reshape(n, s)
    top = count.max(axis=1, keepdims=True)
    tied = (count == top) & (count > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(tied, total / np.where(count > 0, count, 1.0), 0.0)
        vote = mean.sum(axis=1) / tied.sum(axis=1)
        fallback = r0.sum(axis=1) / drawn.sum(axis=1)  # nobody voted: a random drawn sample
    return np.where(top[:, 0] > 0, vote, fallback)


def replay_rounds(
    policy: RoundPolicy | Callable[[], RoundPolicy],
    rewards: npt.ArrayLike,
    *,
    answers: npt.ArrayLike | None = None,
    scores: npt.ArrayLike | None = None,
    prior_curves: npt.ArrayLike | None = None,
    seeds: int | Sequence[int] = 8,
    shuffle_queries: bool = True,
    escalation_rewards: npt.ArrayLike | None = None,
) -> ReplayResult:
    """Run a round policy on recorded outcomes, each query's samples drawn in a seeded random order.

    Every seed permutes each query's recorded samples, then serves the policy's requests from that order
    (a query never gets more units than it has samples: ``max_units`` is the row's sample count). It also
    presents the queries to the policy in a random order: a policy breaks ties between queries in the same
    state by their index, and in a fixed order that would give the same queries the spare units in every
    seed (on arith40 it moved the planner against `RoundRobinUnsolved` by up to 0.4 points, with opposite
    signs on the two halves of the split). The
    returned answer is scored with the recorded rewards by ``policy.quality``: ``"best"`` the best drawn
    reward (a verifier: any success counts), ``"vote"`` the reward of the plurality answer (ties split
    evenly; abstentions as in :func:`~adaptive_router.curves.expected_majority_vote`), ``"score"`` the
    reward of the best-scored drawn sample (ties split evenly).

    Parameters
    ----------
    policy : RoundPlanner, UniformRounds, EarlyStoppingSC, or a zero-argument factory of one
        Restarted (``start``) for every seed.
    rewards : array-like, shape (n, s)
        Recorded rewards, NaN-padded.
    answers : array-like of int, shape (n, s), optional
        Answer codes (negative = none), for policies that need ``"answers"`` or score by ``"vote"``.
    scores : array-like, shape (n, s), optional
        Reward-model scores, for ``"scores"`` / ``"score"``.
    prior_curves : array-like, shape (n, K), optional
        Passed to ``policy.start``.
    seeds : int or sequence of int
        ``range(seeds)`` or the seeds themselves.
    shuffle_queries : bool
        Present the queries in a seeded random order (default); ``False`` keeps the rows' order, so that
        the policy's state (``units_``) can be read by row afterwards.
    escalation_rewards : array-like, shape (n,) or (n, s2), optional
        For a cascade (:class:`~adaptive_router.allocation.CascadePlanner`): the strong procedure's recorded
        rewards. An escalated query returns the strong answer, scored by its row's mean (the expected
        reward of one call), and its spend includes ``escalate_cost``.

    Returns
    -------
    ReplayResult

    Examples
    --------
    >>> import numpy as np
    >>> from adaptive_router.allocation import UniformRounds
    >>> rewards = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    >>> res = replay_rounds(UniformRounds(k=2), rewards, seeds=200)
    >>> round(res.quality, 1), res.spend    # pass@2 = (1 + 0.5) / 2
    (0.8, 2.0)
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] == 0:
        raise ConfigError(f"rewards must be a non-empty (n, s) array, got shape {r.shape}")
    present = ~np.isnan(r)
    counts = present.sum(axis=1)
    if (counts == 0).any():
        raise ConfigError(f"query {int(np.flatnonzero(counts == 0)[0])} has no recorded sample")
    if (present[:, 1:] & ~present[:, :-1]).any():
        raise ConfigError("pad ragged rows at the end: NaN may only follow the recorded samples")
    codes = None if answers is None else _dense_codes(np.asarray(answers).astype(np.int64))
    sc = None if scores is None else np.asarray(scores, dtype=np.float64)
    for name, arr in (("answers", codes), ("scores", sc)):
        if arr is not None and arr.shape != r.shape:
            raise ConfigError(f"{name} {arr.shape} must have the shape of rewards {r.shape}")
    seed_list = list(range(seeds)) if isinstance(seeds, int | np.integer) else [int(x) for x in seeds]
    if not seed_list:
        raise ConfigError("seeds must name at least one seed")
    n, s = r.shape
    strong = None
    if escalation_rewards is not None:
        e = np.asarray(escalation_rewards, dtype=np.float64)
        e = e[:, None] if e.ndim == 1 else e
        if e.ndim != 2 or e.shape[0] != n or np.isnan(e).all(axis=1).any():
            raise ConfigError(f"escalation_rewards must be (n,) or (n, s2), a reward in every row; n = {n}")
        strong = np.nanmean(e, axis=1)
    quality, spend, rounds, lifted = [], [], [], []
    for seed in seed_list:
        pol = (
            cast(RoundPolicy, policy)
            if hasattr(policy, "start")
            else cast(Callable[[], RoundPolicy], policy)()
        )
        needs, kind = pol.needs, pol.quality
        source = {"rewards": r, "answers": codes, "scores": sc}.get(needs)
        if source is None or (kind == "vote" and codes is None) or (kind == "score" and sc is None):
            raise ConfigError(
                f"{type(pol).__name__} needs {needs!r} and scores by {kind!r}: pass answers= / scores="
            )
        rng = np.random.default_rng(seed)
        keys = rng.random((n, s))
        order = np.argsort(np.where(present, keys, np.inf), axis=1)
        # the policy sees row perm[i] as query i; the outcome arrays stay in their order
        perm = rng.permutation(n) if shuffle_queries else np.arange(n)
        pc = None if prior_curves is None else np.asarray(prior_curves)[perm]
        used = np.zeros(n, dtype=np.int64)
        units = pol.start(pc, n=n, max_units=counts[perm])
        for _ in range(100 * s + 10):
            if not units.any():
                break
            got = np.empty_like(units)
            got[perm] = units  # units per row of the outcome arrays
            if (used + got > counts).any():
                raise ConfigError(f"{type(pol).__name__} asked for more samples than query has recorded")
            queries = np.repeat(np.arange(n), units)
            rows = perm[queries]
            offs = np.arange(rows.size) - np.repeat(np.cumsum(units) - units, units) + used[rows]
            cols = order[rows, offs]
            pol.observe(queries, source[rows, cols])
            used += got
            units = pol.next_round()
        else:  # pragma: no cover - a policy that never stops
            raise ConfigError(f"{type(pol).__name__} did not stop")
        drawn = np.zeros((n, s), dtype=bool)
        np.put_along_axis(drawn, order, np.arange(s)[None, :] < used[:, None], axis=1)
        returned = _returned_reward(kind, drawn, r, codes, sc)
        cost = float(used.sum()) * float(pol.unit_cost)
        escalated = getattr(pol, "escalated_", None)
        lifted.append(0.0 if escalated is None else float(np.mean(escalated)))
        if escalated is not None and escalated.any():
            if strong is None:
                raise ConfigError(f"{type(pol).__name__} escalated queries: pass escalation_rewards=")
            up = np.zeros(n, dtype=bool)
            up[perm] = escalated
            returned = np.where(up, strong, returned)
            cost += float(up.sum()) * float(pol.escalate_cost)  # type: ignore[attr-defined]
        quality.append(float(returned.mean()))
        spend.append(cost / n)
        rounds.append(pol.rounds_)
    q, sp = np.array(quality), np.array(spend)

    def se(a: FloatArray) -> float:
        return float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else 0.0

    return ReplayResult(
        float(q.mean()), se(q), float(sp.mean()), se(sp), float(sp.max()), float(np.mean(rounds)), q, sp,
        float(np.mean(lifted)),
    )
