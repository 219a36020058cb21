"""What ``label --ray`` and ``train --ray`` run: the command's values in, Ray's session and progress around.

The CLI checks every value first (as without ``--ray``), then calls these; they connect
(:func:`~adaptive_router.app.ray_cluster.ray_session`), run the distributed step and disconnect. Progress
goes to stderr, so stdout keeps the command's one-line result.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adaptive_router.app.options import sigterm_interrupts
from adaptive_router.app.ray_cluster import ray_session
from adaptive_router.app.sampling import LabelSummary
from adaptive_router.app.tasks import Task

__all__ = ["label_on_ray", "ray_featurizer"]


@contextmanager
def _progress(what: str, total: int) -> Iterator[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as prog:
        bar = prog.add_task(what, total=total)
        yield lambda done, _total: prog.update(bar, completed=done)


def label_on_ray(
    tasks: Sequence[Task],
    out: Path,
    *,
    backend: str,
    base_url: str | None,
    api_key_env: str,
    settings: Mapping[str, Any],
    address: str | None,
    workers: int | None,
    **kwargs: Any,
) -> LabelSummary:
    """``label --ray``: :func:`~adaptive_router.app.ray_label.label_tasks_ray` with the CLI's backend.

    ``workers`` defaults to one per node of the cluster; ``kwargs`` are ``label_tasks_ray``'s (samples,
    procedure, cost, concurrency, reward_model). SIGTERM stops it as Ctrl-C does.
    """
    from adaptive_router.app.ray_label import BackendSpec, label_tasks_ray

    spec = BackendSpec(
        backend,
        base_url=base_url,
        api_key_env=api_key_env,
        settings=dict(settings),
        api_key=os.environ.get(api_key_env),
    )
    with sigterm_interrupts(), ray_session(address) as info, _progress("labelling", len(tasks)) as tick:
        return label_tasks_ray(
            tasks,
            spec,
            out,
            workers=workers or max(1, info.nodes),
            address=address,
            progress=tick,
            **kwargs,
        )


@contextmanager
def ray_featurizer(featurizer: Any, *, address: str | None, workers: int | None) -> Iterator[Any]:
    """``train --ray``: inside, ``featurizer`` wrapped so that ``transform`` runs on the cluster.

    GPU workers (one per GPU) when the cluster has GPUs, else ``workers`` CPU workers (default: one per
    node); see :class:`~adaptive_router.app.ray_featurize.RayFeaturizer`.
    """
    from adaptive_router.app.ray_featurize import RayFeaturizer

    with ray_session(address) as info:
        gpus = int(info.gpus)
        yield RayFeaturizer(
            featurizer,
            workers=workers or (gpus if gpus else max(1, info.nodes)),
            gpus_per_worker=1.0 if gpus else 0.0,
        )


@contextmanager
def ray_replays(*, address: str | None, workers: int | None) -> Iterator[tuple[Any, Any]]:
    """``evaluate --ray``: inside, ``(scores, replay_fn)`` that run the one-shot replays and the sequential
    replay's seeds on the cluster, for `evaluate_allocation` and `add_round_methods` (same results)."""
    import functools

    from adaptive_router.app.ray_evaluate import ReplayPool, replay_rounds_ray

    with ray_session(address) as info:
        n = workers or max(1, int(info.cpus))
        yield ReplayPool(workers=n).score, functools.partial(replay_rounds_ray, workers=n)
