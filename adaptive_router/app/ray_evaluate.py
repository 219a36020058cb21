"""``evaluate --ray``: the replays of an evaluation, sharded across Ray workers, with single-node results.

An evaluation report is many independent replays: each method's value arrays (one per seed for
``random``) at every budget of the sweep (one-shot, :class:`~adaptive_router.allocation.Replay`), and the
seeds of a sequential replay (Monte Carlo over sample orderings,
:func:`~adaptive_router.allocation.replay_rounds`). Every one is pure numpy on data the driver already
holds, so the workers compute exactly what one machine would, bit for bit:

- :class:`ReplayPool` scores ``(values, budget)`` pairs with ``Replay.score``: the replay and each value
  array are put in the object store once for the pool's life (however many calls score them), and chunks
  of pairs go to ``workers`` tasks at a time; the scores come back in the order of the pairs.
- :func:`replay_rounds_ray` runs the seeds of ``replay_rounds`` as tasks (one seed each) and combines them
  as ``replay_rounds`` does (mean, standard error over seeds, max spend, mean rounds).

What is sharded is the allocation, ``O(n m log(n m))`` per pair; building the report from the scores stays
on the driver.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from adaptive_router.app.ray_cluster import require_ray
from adaptive_router.errors import ConfigError

__all__ = ["ReplayPool", "replay_rounds_ray"]

_CHUNKS_PER_WORKER = 4


def _check_workers(workers: Any, cpus: Any) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if not isinstance(cpus, (int, float)) or not math.isfinite(cpus) or cpus <= 0:
        raise ConfigError(f"cpus_per_worker must be a finite number > 0, got {cpus!r}")


def _bounded(ray: Any, submit: Callable[[Any], Any], chunks: Sequence[Any], workers: int) -> list[Any]:
    """Run ``submit(chunk)`` for every chunk with at most ``workers`` tasks in flight; results in order."""
    results: list[Any] = [None] * len(chunks)
    pending: dict[Any, int] = {}
    todo: Iterator[tuple[int, Any]] = iter(enumerate(chunks))
    for i, chunk in todo:
        pending[submit(chunk)] = i
        if len(pending) >= workers:
            break
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            results[pending.pop(ref)] = ray.get(ref)
            nxt = next(todo, None)
            if nxt is not None:
                pending[submit(nxt[1])] = nxt[0]
    return results


def _chunks(n: int, workers: int) -> list[range]:
    size = max(1, math.ceil(n / (workers * _CHUNKS_PER_WORKER)))
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


def _score_chunk(replay: Any, items: Sequence[tuple[int, float]], *values: Any) -> list[Any]:
    return [replay.score(values[j], b) for j, b in items]


class ReplayPool:
    """``Replay.score`` over many ``(values, budget)`` pairs, on ``workers`` Ray tasks at a time.

    Parameters
    ----------
    workers : int
        Tasks in flight at once (each one CPU-bound allocation after another).
    cpus_per_worker : float
        CPUs Ray reserves per task.

    Examples
    --------
    >>> import numpy as np
    >>> from adaptive_router.allocation import Replay
    >>> replay = Replay(np.array([[0.2, 0.5], [0.6, 0.7]]), costs=[1.0, 2.0])
    >>> pairs = [(replay.true_values, 1.5), (np.ones((2, 2)), 1.5)]
    >>> [s.quality for s in ReplayPool(workers=2).score(replay, pairs)]   # doctest: +SKIP
    [0.55, 0.5]
    """

    def __init__(self, *, workers: int = 1, cpus_per_worker: float = 1.0) -> None:
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker

    def _put(self, ray: Any, obj: Any) -> Any:
        """``ray.put(obj)`` once per object for the pool's life (a report scores one replay many times)."""
        puts: dict[int, tuple[Any, Any]] = self.__dict__.setdefault("_puts", {})
        if id(obj) not in puts:
            puts[id(obj)] = (obj, ray.put(obj))  # the object is kept, so its id is not reused
        return puts[id(obj)][1]

    def score(self, replay: Any, pairs: Sequence[tuple[npt.ArrayLike, float]]) -> list[Any]:
        """``[replay.score(values, budget) for values, budget in pairs]``, computed on the cluster."""
        _check_workers(self.workers, self.cpus_per_worker)
        if not pairs:
            return []
        ray = require_ray()
        arrays: dict[int, int] = {}
        refs: list[Any] = []
        items: list[tuple[int, float]] = []
        for values, budget in pairs:
            key = id(values)
            if key not in arrays:
                arrays[key] = len(refs)
                refs.append(self._put(ray, values))
            items.append((arrays[key], float(budget)))
        replay_ref = self._put(ray, replay)
        task = ray.remote(num_cpus=self.cpus_per_worker)(_score_chunk)

        def submit(chunk: range) -> Any:
            used = sorted({items[i][0] for i in chunk})
            local = {j: k for k, j in enumerate(used)}
            part = [(local[items[i][0]], items[i][1]) for i in chunk]
            return task.remote(replay_ref, part, *[refs[j] for j in used])

        done = _bounded(ray, submit, _chunks(len(items), self.workers), self.workers)
        return [score for chunk in done for score in chunk]

    def __repr__(self) -> str:
        return f"ReplayPool(workers={self.workers}, cpus_per_worker={self.cpus_per_worker:g})"


def _rounds_chunk(policy: Any, rewards: Any, seeds: Sequence[int], kwargs: dict[str, Any]) -> list[Any]:
    from adaptive_router.allocation import replay_rounds

    out = []
    for seed in seeds:
        res = replay_rounds(policy, rewards, seeds=[seed], **kwargs)
        out.append((float(res.per_seed_quality[0]), float(res.per_seed_spend[0]), res.rounds, res.escalated))
    return out


def replay_rounds_ray(
    policy: Any,
    rewards: npt.ArrayLike,
    *,
    seeds: int | Sequence[int] = 8,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    **kwargs: Any,
) -> Any:
    """:func:`~adaptive_router.allocation.replay_rounds` with its seeds sharded over Ray tasks.

    Same arguments (``answers``, ``scores``, ``prior_curves`` go through ``kwargs``) and the same
    ``ReplayResult``: every seed's replay is the single-node one, and they are combined the same way.
    The first seed also runs here first, so bad inputs raise ``ConfigError`` before any task is sent.

    Examples
    --------
    >>> import numpy as np
    >>> from adaptive_router.allocation import UniformRounds
    >>> rewards = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    >>> replay_rounds_ray(UniformRounds(k=2), rewards, seeds=200, workers=2).spend   # doctest: +SKIP
    2.0
    """
    from adaptive_router.allocation import ReplayResult, replay_rounds

    _check_workers(workers, cpus_per_worker)
    seed_list = list(range(seeds)) if isinstance(seeds, int | np.integer) else [int(x) for x in seeds]
    if not seed_list:
        raise ConfigError("seeds must name at least one seed")
    replay_rounds(policy, rewards, seeds=seed_list[:1], **kwargs)  # input errors here, before the cluster
    ray = require_ray()
    policy_ref, rewards_ref = ray.put(policy), ray.put(np.asarray(rewards, dtype=np.float64))
    task = ray.remote(num_cpus=cpus_per_worker)(_rounds_chunk)
    chunks = [[seed_list[i] for i in c] for c in _chunks(len(seed_list), workers)]
    done = _bounded(ray, lambda c: task.remote(policy_ref, rewards_ref, c, kwargs), chunks, workers)
    per_seed = [x for chunk in done for x in chunk]
    q = np.array([x[0] for x in per_seed])
    sp = np.array([x[1] for x in per_seed])
    rounds = [x[2] for x in per_seed]
    escalated = [x[3] for x in per_seed]

    def se(a: npt.NDArray[np.float64]) -> float:  # as replay_rounds computes it
        return float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else 0.0

    return ReplayResult(
        float(q.mean()), se(q), float(sp.mean()), se(sp), float(sp.max()), float(np.mean(rounds)), q, sp,
        float(np.mean(escalated)),
    )
