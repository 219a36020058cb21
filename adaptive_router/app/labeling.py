"""Label a dataset: sample N responses per query from a backend, score them, append outcome records.

:func:`label_tasks` keeps at most ``concurrency`` requests in flight and never loses a response it paid for:

- every response is appended to a journal beside the output (``<out>.pending``) the moment it arrives;
- a query's outcome record is appended to ``out`` as soon as all its samples are in and scored;
- run it again with the same output file and it skips the ids already there, reuses the journal's responses
  of unfinished queries and requests only the samples still missing (a half-written last line, from a crash
  mid-write, is cut off first); the journal is removed once every query is recorded.

On Ctrl-C (``KeyboardInterrupt``; the CLI turns SIGTERM into one too) nothing more is sent: the requests
already in flight are awaited for up to ``drain_seconds`` and kept (a second Ctrl-C abandons them), and
:class:`LabelInterrupted` reports what was written. Resuming into a file that holds another procedure's
outcomes, or another cost per call, is refused: one file, one procedure.

A backend is any LangChain chat model (e.g. ``adaptive_router.integrations.openai_backend.OpenAIChatModel``
on llama.cpp's, vLLM's or OpenAI's server, with its retries) or a plain callable ``prompt -> Sample`` (tests,
custom code); :func:`as_sampler` turns either into ``prompt -> Sample``.

With a ``reward_model`` (any :class:`~adaptive_router.strategies.rerankers.Reranker`, e.g.
``RewardModelReranker`` on a transformers sequence-classification checkpoint) every sample also gets the
model's score: recorded as the sample's ``score`` (a reranker score) while ``reward`` stays the verifier's,
or, for tasks without a verifier (``verifier == "none"``), recorded as the ``reward`` itself.
"""

from __future__ import annotations

import json
import math
import numbers
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adaptive_router.app.resume import (
    check_resume,
    completed_ids,
    journal_path,
    jsonl_lines,
    read_journal,
    read_records,
)
from adaptive_router.app.sampling import LabelSummary, Sample, as_sampler, sample_tasks, to_sample
from adaptive_router.app.tasks import NO_VERIFIER, Task
from adaptive_router.app.verifiers import check_verifiers
from adaptive_router.errors import ConfigError
from adaptive_router.prompts import render_prompt

__all__ = [
    "LabelInterrupted",
    "LabelSummary",
    "Sample",
    "as_sampler",
    "check_label_run",
    "completed_ids",
    "journal_path",
    "label_tasks",
    "outcome_record",
    "sample_tasks",
    "to_sample",
]


class LabelInterrupted(KeyboardInterrupt):
    """:func:`label_tasks` stopped on Ctrl-C; ``.summary`` says what was written and kept."""

    def __init__(self, summary: LabelSummary, journal: Path) -> None:
        super().__init__("interrupted")
        self.summary, self.journal = summary, journal


def check_label_run(
    tasks: Sequence[Task],
    out: str | Path,
    *,
    samples: int,
    procedure: str = "default",
    cost: float | None = None,
    concurrency: int = 4,
    reward_model: Any = None,
) -> None:
    """Every check :func:`label_tasks` makes before its first request, for callers that first start a backend.

    Raises ConfigError for bad settings, duplicate ids, a verifier that cannot score (it also starts the
    sandbox the verifiers need), a reward model that cannot score, or an ``out`` that is a folder or holds
    another procedure's outcomes (or another cost per call).
    """
    for name, value in (("samples", samples), ("concurrency", concurrency)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    if not isinstance(procedure, str) or not procedure.strip():
        raise ConfigError(f"procedure must be a non-empty name, got {procedure!r}")
    if cost is not None and (not isinstance(cost, numbers.Real) or not math.isfinite(cost) or cost < 0):
        raise ConfigError(f"cost per call must be a finite number >= 0, got {cost!r}")
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ConfigError("task ids must be unique")
    _check_reward_model(tasks, reward_model)
    check_verifiers({t.verifier for t in tasks if t.verifier != NO_VERIFIER})
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"the outcome file {str(out)!r} is a folder; give a file's path")
    check_resume(read_records(out), out, procedure, cost)


def label_tasks(
    tasks: Sequence[Task],
    backend: Any,
    out: str | Path,
    *,
    samples: int,
    procedure: str = "default",
    cost: float | None = None,
    concurrency: int = 4,
    keep_text: bool = True,
    progress: Callable[[int, int], None] | None = None,
    reward_model: Any = None,
    drain_seconds: float = 10.0,
    final_answer: str | None = None,
) -> LabelSummary:
    """Sample ``samples`` responses per task, score them, append one outcome record per task to ``out``.

    Parameters
    ----------
    tasks : sequence of Task
    backend : LangChain chat model or callable
        A chat model (its own retries apply, e.g. ``OpenAIChatModel``) or ``prompt -> Sample | str``; see
        :func:`as_sampler`. Raising marks the task failed (it is retried on the next run).
    out : path
        JSONL outcome file; ids already in it are skipped, and it must hold only ``procedure``'s outcomes.
    samples : int
        Independent samples per task.
    procedure : str
        Procedure name recorded in ``outcomes``.
    cost : float, optional
        Cost per call (finite, >= 0) recorded in the record's ``cost``.
    concurrency : int
        Requests in flight at once; no more are ever sent ahead.
    keep_text : bool
        Record each response's text beside its reward.
    progress : callable, optional
        Called as ``progress(done_tasks, total_tasks)``.
    reward_model : Reranker, optional
        Scores each task's samples together (``reward_model.score(prompt, texts)``). Tasks with a verifier
        record it as each sample's ``score`` (``reward`` stays the verifier's); tasks without one
        (``verifier == "none"``) record it as ``reward``. All tasks must be of one kind. It is tried once on
        the first task before any request is sent, so a broken model fails early.
    drain_seconds : float
        On Ctrl-C, how long to wait for the requests in flight (their responses are kept).
    final_answer : str, optional
        A regular expression whose first group captures a response's final answer, recorded as each
        sample's ``answer`` (votes); default: the verifier's own reading (see `Task.extract_answer`).

    Raises
    ------
    ConfigError
        Before any request: bad settings, duplicate ids, a verifier that cannot score, or an ``out`` that
        holds another procedure's outcomes.
    LabelInterrupted
        On ``KeyboardInterrupt``, after keeping every response that arrived.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from adaptive_router.app.tasks import arithmetic_tasks
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "o.jsonl"
    >>> label_tasks(arithmetic_tasks(2), lambda p: " 0", out, samples=3).calls
    6
    """
    sample = as_sampler(backend)
    check_label_run(
        tasks,
        out,
        samples=samples,
        procedure=procedure,
        cost=cost,
        concurrency=concurrency,
        reward_model=reward_model,
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = completed_ids(out)
    journal = journal_path(out)
    have = read_journal(journal, procedure)
    todo = [t for t in tasks if t.id not in done]
    summary = LabelSummary(skipped=len(tasks) - len(todo))
    start = time.monotonic()
    if progress:
        progress(summary.skipped, len(tasks))
    with out.open("a", encoding="utf-8") as fh, journal.open("a", encoding="utf-8") as jh:
        lock = threading.Lock()

        def keep(tid: str, answer: Sample) -> None:  # paid for: journalled first, whatever happens next
            line = {"id": tid, "procedure": procedure, "text": answer.text, "tokens": answer.tokens}
            with lock:
                jh.write(json.dumps(line, ensure_ascii=False) + "\n")
                jh.flush()

        def finish(task: Task, got: list[Sample]) -> None:
            rec = outcome_record(
                task, got, procedure, cost, keep_text, reward_model, final_answer=final_answer
            )
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
            summary.written += 1
            if progress:
                progress(summary.skipped + summary.written + len(summary.failed), len(tasks))

        left = sample_tasks(
            todo,
            sample,
            samples=samples,
            concurrency=concurrency,
            have=have,
            keep=keep,
            finish=finish,
            summary=summary,
            drain_seconds=drain_seconds,
        )
    summary.kept = sum(len(v) for v in left.values())
    summary.seconds = time.monotonic() - start
    if summary.interrupted:
        raise LabelInterrupted(summary, journal)
    if not summary.failed and _journal_done(journal, out):
        journal.unlink()  # every query it holds is recorded: it keeps nothing that is not in `out`
    return summary


def _journal_done(journal: Path, out: Path) -> bool:
    """Whether every id in the journal (of any procedure, from any run) now has its record in ``out``."""
    pending = {json.loads(raw)["id"] for _, raw in jsonl_lines(journal)}
    return not pending - completed_ids(out)


def _check_reward_model(tasks: Sequence[Task], reward_model: Any) -> None:
    unverified = [t.id for t in tasks if t.verifier == NO_VERIFIER]
    if unverified and reward_model is None:
        msg = (
            f"tasks {unverified[:3]} have no verifier (verifier 'none'); pass a reward model "
            "(--reward-model PATH) to score them"
        )
        raise ConfigError(msg)
    if reward_model is None or not tasks:
        return
    if not hasattr(reward_model, "score"):
        raise ConfigError(f"reward_model must be a Reranker, got {type(reward_model).__name__}")
    if unverified and len(unverified) < len(tasks):
        msg = (
            f"{len(unverified)} of {len(tasks)} tasks have no verifier: with a reward model label tasks "
            "that all have a verifier or all have none (its score is the reward only for the latter)"
        )
        raise ConfigError(msg)
    try:
        reward_model.score(render_prompt(tasks[0].prompt), ["test"])
    except Exception as exc:  # a missing checkpoint or a non-classifier surfaces here, not mid-run
        raise ConfigError(f"the reward model cannot score: {type(exc).__name__}: {exc}") from exc


def outcome_record(
    task: Task,
    samples: Sequence[Sample],
    procedure: str,
    cost: float | None,
    keep_text: bool,
    reward_model: Any = None,
    *,
    final_answer: str | None = None,
) -> dict[str, Any]:
    """The outcome record of ``task`` from its ``samples``, scored by its verifier (and ``reward_model``).

    Verifiers that could execute a reply score it in the app's sandbox (:mod:`.verifiers`), wherever this
    runs: on this machine for :func:`label_tasks`, on the worker's node for ``label --ray``.

    Examples
    --------
    >>> from adaptive_router.app.tasks import Task
    >>> rec = outcome_record(Task(id="a", prompt="3 + 4 =", answer="7"), [Sample(" 7"), Sample(" 8")],
    ...     "m", None, keep_text=False)
    >>> rec["outcomes"]
    {'m': [{'reward': 1.0, 'answer': '7'}, {'reward': 0.0, 'answer': '8'}]}

    Each sample records its normalised final ``answer`` (see `Task.extract_answer`; ``final_answer`` is a
    regular expression whose first group captures it) when the verifier has one, so votes can be replayed.
    """
    texts = [s.text for s in samples]
    scores: list[float] | None = None
    if reward_model is not None:
        scores = [float(v) for v in reward_model.score(render_prompt(task.prompt), texts).scores]
    rewards = scores if task.verifier == NO_VERIFIER and scores is not None else task.score_many(texts)
    outs = []
    for j, s in enumerate(samples):
        item: dict[str, Any] = {"reward": rewards[j]}
        if scores is not None and task.verifier != NO_VERIFIER:
            item["score"] = scores[j]
        extracted = task.extract_answer(s.text, final_answer=final_answer)
        if extracted is not None:
            item["answer"] = extracted
        if s.tokens:
            item["tokens"] = s.tokens
        if keep_text:
            item["text"] = s.text
        outs.append(item)
    rec: dict[str, Any] = {"id": task.id, "prompt": task.prompt, "outcomes": {procedure: outs}}
    if cost is not None:
        rec["cost"] = {procedure: float(cost)}
    rec["answer"] = task.answer
    rec["verifier"] = task.verifier
    if task.metadata:
        rec["metadata"] = dict(task.metadata)
    return rec
