"""``label --ray``: label a dataset on a Ray cluster and write the outcome file a single-node run writes.

The tasks still to label become a ``ray.data`` Dataset; ``map_batches`` hands each shard (a batch of tasks)
to an actor pool of :class:`LabelWorker` s. Each worker holds its own backend client (built on its node
from a picklable factory, e.g. :class:`BackendSpec`) and runs the single-node request loop
(:func:`~adaptive_router.app.sampling.sample_tasks`) on its shard: at most ``concurrency`` requests in
flight per worker (``workers x concurrency`` in all), the backend's own retries, and scoring through the
same :func:`~adaptive_router.app.labeling.outcome_record` (sandboxed verifiers run in the app's sandbox on
the worker's node).

Nothing paid for is lost (:mod:`adaptive_router.app.ray_store`): every response is in the journal
``<out>.pending`` before its worker counts it, every record in its shard's part as soon as it is scored, and
a shard that Ray retries after its worker died requests only the samples still missing. At the end (also
after a failure or Ctrl-C) the parts are merged into ``out`` in dataset order, so the file is, line for line,
the one a single-node ``concurrency=1`` run writes (records of ids outside the dataset come first). A rerun
of the same command (with or without ``--ray``) resumes: finished ids are skipped, journalled responses
reused, and nothing is written twice.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptive_router.app.labeling import LabelInterrupted, check_label_run, outcome_record
from adaptive_router.app.ray_cluster import ClusterError, driver_node_affinity, ray_cause, require_ray
from adaptive_router.app.ray_store import OutcomeStore, ShardCommits, merge_parts, parts_dir
from adaptive_router.app.resume import (
    check_resume,
    completed_ids,
    journal_path,
    jsonl_lines,
    read_journal,
    read_records,
)
from adaptive_router.app.sampling import LabelSummary, Sample, as_sampler, sample_tasks
from adaptive_router.app.tasks import NO_VERIFIER, Task
from adaptive_router.app.verifiers import check_verifiers
from adaptive_router.errors import ConfigError

__all__ = ["BackendSpec", "LabelWorker", "check_ray_label", "label_tasks_ray"]

_POLL = 0.25
_COMMIT_INTERVAL = 0.005  # seconds between a worker's commits at most: fewer, larger ones


@dataclass(frozen=True)
class BackendSpec:
    """A ``--backend`` that every Ray worker opens on its own node: ``spec()`` is a context manager.

    ``llama:NAME`` starts the embedded model's llama.cpp server in each worker; ``openai:MODEL`` connects to
    ``base_url`` with the key from ``$api_key_env``, read on the driver and carried to the workers (never
    shown in ``repr``). ``settings`` go to the model (endpoint, temperature, retries...), as for one machine.

    Examples
    --------
    >>> BackendSpec("openai:m", base_url="http://h/v1", api_key="sk-secret")
    BackendSpec(backend='openai:m', base_url='http://h/v1', api_key_env='OPENAI_API_KEY', settings={}, \
local=('gemma', 'smollm'))
    """

    backend: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    settings: Mapping[str, Any] = field(default_factory=dict)
    api_key: str | None = field(default=None, repr=False)
    local: tuple[str, ...] = ("gemma", "smollm")

    @contextlib.contextmanager
    def __call__(self) -> Iterator[Any]:
        from adaptive_router.app.backends import sampling_model

        if self.api_key is not None:  # this worker's own process: where sampling_model reads the key
            os.environ.setdefault(self.api_key_env, self.api_key)
        with sampling_model(
            self.backend,
            local=self.local,
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            **dict(self.settings),
        ) as (model, _):
            yield model


class LabelWorker:
    """One worker of the actor pool: a backend client and the single-node request loop, one shard a call."""

    def __init__(
        self,
        backend: Callable[[], Any],
        store: Any,
        *,
        samples: int,
        procedure: str,
        cost: float | None,
        concurrency: int,
        keep_text: bool,
        verifiers: Sequence[str],
        reward_model: Any = None,
        drain_seconds: float = 10.0,
        final_answer: str | None = None,
    ) -> None:
        self._stack = contextlib.ExitStack()
        made = backend()
        if isinstance(made, contextlib.AbstractContextManager):
            made = self._stack.enter_context(made)
        self._sample = as_sampler(made)
        check_verifiers(set(verifiers))  # this node can score (and starts its sandbox) before any request
        self._store, self._reward_model = store, reward_model
        self._samples, self._procedure, self._cost = samples, procedure, cost
        self._concurrency, self._keep_text, self._drain = concurrency, keep_text, drain_seconds
        self._final_answer = final_answer

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        ray = require_ray()
        tasks = [Task(**json.loads(str(raw))) for raw in batch["task"]]
        shard = f"part-{int(batch['index'][0]):09d}"
        stopped, done, have = ray.get(self._store.claim.remote([t.id for t in tasks]))
        summary, kept = LabelSummary(), [0]
        if not stopped:
            commits = ShardCommits(self._store, shard, interval=_COMMIT_INTERVAL)

            def keep(tid: str, sample: Sample) -> None:
                commits.keep(tid, sample)
                kept[0] += 1

            def finish(task: Task, got: list[Sample]) -> None:
                rec = outcome_record(
                    task,
                    got,
                    self._procedure,
                    self._cost,
                    self._keep_text,
                    self._reward_model,
                    final_answer=self._final_answer,
                )
                commits.record(task.id, json.dumps(rec, ensure_ascii=False))

            finished = set(done)
            todo = [t for t in tasks if t.id not in finished]
            try:
                sample_tasks(
                    todo,
                    self._sample,
                    samples=self._samples,
                    concurrency=self._concurrency,
                    have=have,
                    keep=keep,
                    finish=finish,
                    summary=summary,
                    stopping=lambda: commits.stopped,
                    drain_seconds=self._drain,
                )
            finally:
                commits.close()
        return {
            "shard": [shard],
            "errors": [summary.calls - kept[0]],
            "failed": [json.dumps(summary.failed)],
            "stopped": [bool(stopped or summary.interrupted)],
        }


def check_ray_label(workers: int | None, batch_size: int | None = None, address: str | None = None) -> None:
    """The checks of :func:`label_tasks_ray`'s own settings, for a CLI that checks before loading anything.

    Examples
    --------
    >>> check_ray_label(2, address="ray://head:10001")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    adaptive_router.errors.ConfigError: label --ray cannot write --out through Ray Client ...
    """
    for name, value in (("workers", workers), ("batch_size", batch_size)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1
        ):
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    target = address or os.environ.get("RAY_ADDRESS") or ""
    if target.startswith("ray://"):
        raise ConfigError(
            f"label --ray cannot write --out through Ray Client ({target!r}): its files are written on the "
            "driver's node. Run the command on a node of the cluster with --ray-address auto (ssh, or "
            "`ray job submit -- adaptive-router label ... --ray --ray-address auto`)"
        )


def label_tasks_ray(
    tasks: Sequence[Task],
    backend: Callable[[], Any],
    out: str | Path,
    *,
    samples: int,
    procedure: str = "default",
    cost: float | None = None,
    concurrency: int = 4,
    workers: int = 1,
    batch_size: int | None = None,
    keep_text: bool = True,
    progress: Callable[[int, int], None] | None = None,
    reward_model: Any = None,
    drain_seconds: float = 10.0,
    cpus_per_worker: float = 1.0,
    address: str | None = None,
    final_answer: str | None = None,
) -> LabelSummary:
    """:func:`~adaptive_router.app.labeling.label_tasks` on the connected Ray cluster.

    Parameters
    ----------
    tasks, out, samples, procedure, cost, keep_text, reward_model, drain_seconds, final_answer
        As for ``label_tasks``; the same checks run first, before any worker starts.
    backend : callable
        Zero-argument and picklable (e.g. :class:`BackendSpec`): called once in each worker, it returns a
        backend (a chat model or ``prompt -> Sample``), or a context manager that yields one.
    concurrency : int
        Requests in flight per worker; ``workers x concurrency`` in all.
    workers : int
        Size of the actor pool (each worker holds one backend client).
    batch_size : int, optional
        Tasks per shard (default: four shards per worker, each 16 to 1024 rounds of ``concurrency``
        requests).
    progress : callable, optional
        ``progress(done_tasks, total_tasks)``, about four times a second.
    cpus_per_worker : float
        CPUs Ray reserves for each worker.
    address : str, optional
        Only checked here (Ray Client is refused: the store writes on the driver's node); connect first
        with :func:`~adaptive_router.app.ray_cluster.ray_session`.

    Raises
    ------
    ConfigError
        Before any request, as ``label_tasks``.
    ClusterError
        Ray failed; every record and response committed so far is kept (merged into ``out``).
    LabelInterrupted
        On Ctrl-C, after the workers stopped sending and the responses in flight were kept.

    Examples
    --------
    >>> from adaptive_router.app.ray_cluster import ray_session
    >>> from adaptive_router.app.tasks import arithmetic_tasks
    >>> with ray_session(num_cpus=1):                   # doctest: +SKIP
    ...     label_tasks_ray(arithmetic_tasks(4), lambda: (lambda p: " 7"), "o.jsonl", samples=2).calls
    8
    """
    check_label_run(
        tasks,
        out,
        samples=samples,
        procedure=procedure,
        cost=cost,
        concurrency=concurrency,
        reward_model=reward_model,
    )
    check_ray_label(workers, batch_size, address)
    for part in sorted(parts_dir(out).glob("part-*.jsonl")):  # a killed run's records, merged below
        check_resume(read_records(part), Path(out), procedure, cost)
    if not callable(backend):
        raise ConfigError(f"backend must be a zero-argument factory (e.g. BackendSpec), got {backend!r}")
    ray = require_ray()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    order = [t.id for t in tasks]
    merge_parts(out, order)  # a run that died before its merge: its records count as done
    done = completed_ids(out)
    journal = journal_path(out)
    todo = [(i, t) for i, t in enumerate(tasks) if t.id not in done]
    have = read_journal(journal, procedure)
    summary = LabelSummary(skipped=len(tasks) - len(todo))
    start = time.monotonic()
    if progress:
        progress(summary.skipped, len(tasks))
    if todo:
        settings = {
            "samples": samples,
            "procedure": procedure,
            "cost": cost,
            "concurrency": concurrency,
            "keep_text": keep_text,
            "reward_model": reward_model,
            "drain_seconds": drain_seconds,
            "final_answer": final_answer,
        }
        shard_size = batch_size or _shard_size(len(todo), workers, concurrency, samples)
        pool = _Pool(workers, shard_size, cpus_per_worker)
        _run_shards(ray, todo, order, done, backend, out, summary, have, progress, settings, pool)
    summary.seconds = time.monotonic() - start
    if summary.interrupted:
        raise LabelInterrupted(summary, journal)
    pending = {json.loads(raw)["id"] for _, raw in jsonl_lines(journal)}
    if not summary.failed and journal.exists() and not pending - completed_ids(out):
        journal.unlink()  # every query it holds is recorded
    return summary


@dataclass(frozen=True)
class _Pool:
    workers: int
    batch_size: int
    cpus_per_worker: float


def _run_shards(
    ray: Any,
    todo: Sequence[tuple[int, Task]],
    order: Sequence[str],
    done: set[str],
    backend: Callable[[], Any],
    out: Path,
    summary: LabelSummary,
    have: Mapping[str, list[Any]],
    progress: Callable[[int, int], None] | None,
    settings: dict[str, Any],
    pool: _Pool,
) -> None:
    """Shard ``todo`` over the actor pool, report progress, merge; fills ``summary`` in place."""
    ids = {t.id for _, t in todo}
    store_cls = ray.remote(num_cpus=0, max_restarts=0, scheduling_strategy=driver_node_affinity())
    store = store_cls(OutcomeStore).remote(
        str(out), settings["procedure"], sorted(done), {k: v for k, v in have.items() if k in ids}
    )
    rows = [{"index": i, "task": json.dumps(_task_json(t), ensure_ascii=False)} for i, t in todo]
    blocks = max(1, math.ceil(len(rows) / pool.batch_size))
    shards = ray.data.from_items(rows, override_num_blocks=blocks)
    verifiers = sorted({t.verifier for _, t in todo if t.verifier != NO_VERIFIER})
    labelled = shards.map_batches(
        LabelWorker,
        fn_constructor_args=(backend, store),
        fn_constructor_kwargs={**settings, "verifiers": verifiers},
        batch_size=pool.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(pool.workers, blocks)),
        num_cpus=pool.cpus_per_worker,
    )
    results: list[dict[str, Any]] = []
    error: list[BaseException] = []

    def consume() -> None:
        try:
            results.extend(labelled.iter_rows())
        except BaseException as exc:  # reported by the driver thread below, after the merge
            error.append(exc)

    thread = threading.Thread(target=consume, daemon=True, name="label-ray")
    thread.start()

    def report() -> None:
        written = ray.get(store.progress.remote())[0]
        if progress:
            progress(summary.skipped + written, len(order))

    try:
        while thread.is_alive():
            thread.join(_POLL)
            report()
    except KeyboardInterrupt:
        summary.interrupted = True
        store.stop.remote()
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C abandons the requests in flight
            thread.join(settings["drain_seconds"] + 5.0)
    finally:
        with contextlib.suppress(Exception):
            summary.written, responses, summary.kept = ray.get(store.close.remote(), timeout=30)
            summary.calls = responses
        ray.kill(store)
        merge_parts(out, order)
    for row in results:
        summary.calls += int(row["errors"])
        summary.failed.extend(json.loads(str(row["failed"])))
        summary.interrupted = summary.interrupted or bool(row["stopped"])
    if error and not summary.interrupted:
        raise ClusterError(
            f"the Ray job failed: {ray_cause(error[0])}. The {summary.written} records labelled so far are "
            f"in {out}; "
            "run the same command again to resume"
        ) from error[0]
    if progress and not summary.interrupted:
        progress(summary.skipped + summary.written + len(summary.failed), len(order))


def _shard_size(tasks: int, workers: int, concurrency: int, samples: int) -> int:
    """Four shards per worker: each shard ends with a partly filled round of requests, so few and large
    (but at least 16 rounds, and at most 1024 rounds of ``concurrency`` requests, so a retried shard after
    a worker died, or the last one, is not the whole run)."""
    rounds = math.ceil(tasks / (4 * workers)) * samples / concurrency
    return max(1, math.ceil(min(max(rounds, 16), 1024) * concurrency / samples))


def _task_json(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "prompt": task.prompt,
        "answer": task.answer,
        "verifier": task.verifier,
        "metadata": dict(task.metadata),
    }
