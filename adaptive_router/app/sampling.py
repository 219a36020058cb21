"""One request loop: sample the responses a list of tasks still misses, with bounded concurrency.

:func:`sample_tasks` is the loop :func:`~adaptive_router.app.labeling.label_tasks` runs on one machine and
every Ray worker of :mod:`adaptive_router.app.ray_label` runs on its shard: at most ``concurrency`` requests
in flight (none sent ahead), each response handed to ``keep`` (which persists it) the moment it arrives, a
task handed to ``finish`` (which scores and records it) once all its samples are in, and on Ctrl-C (or when
``stopping()`` turns true) nothing more sent while the requests in flight are awaited and kept.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adaptive_router.errors import ConfigError

if TYPE_CHECKING:
    from adaptive_router.app.tasks import Task

__all__ = ["LabelSummary", "Sample", "as_sampler", "sample_tasks", "to_sample"]

_log = logging.getLogger("adaptive_router.app.labeling")


@dataclass(frozen=True)
class Sample:
    """One sampled response: its text and the completion tokens it used (0 when unknown)."""

    text: str
    tokens: int = 0


@dataclass
class LabelSummary:
    """What a labelling run did: records ``written``, ids ``skipped`` (already there), ``failed`` queries,
    requests answered (``calls``), responses of unfinished queries ``kept`` in the journal, ``seconds``."""

    written: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    calls: int = 0
    kept: int = 0
    seconds: float = 0.0
    interrupted: bool = False


def as_sampler(backend: Any) -> Callable[[Any], Sample]:
    """Wrap a backend as ``prompt -> Sample``.

    Parameters
    ----------
    backend : LangChain chat model, Runnable or callable
        Anything with ``.invoke`` (e.g. :class:`~adaptive_router.integrations.openai_backend.OpenAIChatModel`,
        whose retries, timeouts and deadline then apply) is invoked with the prompt; its message's text and
        ``usage_metadata["output_tokens"]`` become the sample. A plain callable ``prompt -> Sample | str``
        (tests, custom code) is called as is.

    Examples
    --------
    >>> as_sampler(lambda prompt: " 7")("3 + 4 =")
    Sample(text=' 7', tokens=0)
    """
    if hasattr(backend, "invoke"):
        return lambda prompt: to_sample(backend.invoke(prompt))
    if callable(backend):
        return lambda prompt: to_sample(backend(prompt))
    kind = type(backend).__name__
    msg = f"backend must be a LangChain chat model or a callable prompt -> Sample, got {kind}"
    raise ConfigError(msg)


def to_sample(got: Any) -> Sample:
    """A :class:`Sample` from what a backend returned: a Sample, a message (``.content``) or text."""
    if isinstance(got, Sample):
        return got
    content = getattr(got, "content", None)
    if content is None:
        return Sample(text=str(got))
    text = content if isinstance(content, str) else str(content)
    usage = getattr(got, "usage_metadata", None) or {}
    return Sample(text=text, tokens=int(usage.get("output_tokens", 0) or 0))


class _Requests:
    """Daemon worker threads fed one request at a time: an abandoned request never blocks the exit.

    ``keep(tid, sample)`` runs in the worker the moment a response arrives: a Ctrl-C in the main thread
    cannot come between a response and its journal line.
    """

    def __init__(
        self, sample: Callable[[Any], Sample], workers: int, keep: Callable[[str, Sample], None]
    ) -> None:
        self._sample, self._keep = sample, keep
        self._jobs: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[tuple[str, Sample | None, BaseException | None]] = queue.SimpleQueue()
        self.in_flight = 0
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            tid, prompt = job
            try:
                answer = self._sample(prompt)
                self._keep(tid, answer)
            except BaseException as exc:  # a failed request fails its task; a KeyboardInterrupt stops the run
                self.done.put((tid, None, exc))
            else:
                self.done.put((tid, answer, None))

    def send(self, tid: str, prompt: Any) -> None:
        self.in_flight += 1
        self._jobs.put((tid, prompt))

    def next(self, timeout: float) -> tuple[str, Sample | None, BaseException | None] | None:
        try:
            got = self.done.get(timeout=timeout)
        except queue.Empty:
            return None
        self.in_flight -= 1
        return got

    def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)




def sample_tasks(
    todo: Sequence[Task],
    sample: Callable[[Any], Sample],
    *,
    samples: int,
    concurrency: int,
    have: Mapping[str, Sequence[tuple[str, int]]],
    keep: Callable[[str, Sample], None],
    finish: Callable[[Task, list[Sample]], None],
    summary: LabelSummary,
    stopping: Callable[[], bool] | None = None,
    drain_seconds: float = 10.0,
) -> dict[str, list[Sample]]:
    """Request the samples ``todo`` still misses, at most ``concurrency`` at a time.

    The loop of :func:`~adaptive_router.app.labeling.label_tasks`, shared with the Ray workers of
    :mod:`adaptive_router.app.ray_label`.

    Parameters
    ----------
    todo : sequence of Task
        Tasks without a record yet.
    sample : callable
        ``prompt -> Sample`` (:func:`as_sampler`); raising marks the task failed.
    have : mapping
        ``{id: [(text, tokens), ...]}``: responses already journalled
        (:func:`~adaptive_router.app.resume.read_journal`); only the missing ones are requested.
    keep : callable
        ``keep(id, sample)``, called in a request thread the moment a response arrives: it must persist
        it (and be thread-safe) before anything else happens to it.
    finish : callable
        ``finish(task, samples)``, called in this thread once a task has all its samples: score and record.
    summary : LabelSummary
        Updated in place: ``calls``, ``failed``, ``interrupted``.
    stopping : callable, optional
        Polled between responses; once true nothing more is sent and the requests in flight are awaited
        for up to ``drain_seconds`` (a Ctrl-C does the same and sets ``summary.interrupted``).

    Returns
    -------
    dict
        ``{id: [Sample, ...]}``: the responses of the tasks left unfinished (failed or interrupted).

    Examples
    --------
    >>> from adaptive_router.app.tasks import arithmetic_tasks
    >>> done, summary = [], LabelSummary()
    >>> left = sample_tasks(arithmetic_tasks(2), as_sampler(lambda p: " 7"), samples=2, concurrency=2,
    ...     have={}, keep=lambda tid, s: None, finish=lambda t, got: done.append(t.id), summary=summary)
    >>> sorted(done), summary.calls, left
    (['arith-0-0', 'arith-0-1'], 4, {})
    """
    got: dict[str, list[Sample]] = {t.id: [Sample(*x) for x in have.get(t.id, [])[:samples]] for t in todo}
    by_id = {t.id: t for t in todo}
    wanted = iter([(t.id, t.prompt) for t in todo for _ in range(samples - len(got[t.id]))])
    failed: set[str] = set()
    requests = _Requests(sample, concurrency, keep)

    def receive(item: tuple[str, Sample | None, BaseException | None]) -> None:
        tid, answer, exc = item
        summary.calls += 1
        if isinstance(exc, KeyboardInterrupt):  # raised by the backend: treated as Ctrl-C
            raise KeyboardInterrupt
        if tid in failed or tid not in got:
            return
        if exc is not None:
            failed.add(tid)
            summary.failed.append(f"{tid}: {exc}")
            return
        if answer is not None:
            got[tid].append(answer)
            if len(got[tid]) == samples:
                finish(by_id[tid], got.pop(tid))

    def refill() -> None:
        while requests.in_flight < concurrency:
            nxt = next(wanted, None)
            if nxt is None:
                return
            if nxt[0] not in failed:
                requests.send(*nxt)

    try:
        for tid in [t.id for t in todo if len(got[t.id]) == samples]:
            finish(by_id[tid], got.pop(tid))  # every sample was already journalled by an earlier run
        refill()
        while requests.in_flight:
            if stopping is not None and stopping():
                _drain(requests, receive, drain_seconds)
                break
            item = requests.next(timeout=0.25)
            if item is not None:
                receive(item)
                refill()
    except KeyboardInterrupt:
        summary.interrupted = True
        _drain(requests, receive, drain_seconds)
    finally:
        requests.stop()
    return got




def _drain(requests: _Requests, receive: Callable[[Any], None], seconds: float) -> None:
    """After Ctrl-C: send nothing more, keep what the requests in flight return, for up to ``seconds``."""
    if requests.in_flight:
        _log.warning(
            "interrupted: sending nothing more; waiting up to %gs for %d request(s) in flight "
            "(Ctrl-C again to abandon them)",
            seconds,
            requests.in_flight,
        )
    deadline = time.monotonic() + seconds
    try:
        while requests.in_flight and time.monotonic() < deadline:
            item = requests.next(timeout=min(0.25, max(deadline - time.monotonic(), 0.01)))
            if item is not None:
                receive(item)
    except KeyboardInterrupt:
        return


