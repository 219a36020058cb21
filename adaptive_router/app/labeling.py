"""Label a dataset: sample N responses per query from a backend, score them, append outcome records.

:func:`label_tasks` writes one JSONL outcome record per query (see :mod:`adaptive_router.outcomes`) as soon
as all its samples are scored, so a crash loses at most the queries in flight: run it again with the same
output file and it skips the ids already there (a half-written last line is cut off first).

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
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptive_router.errors import BackendError, ConfigError, OutcomeFormatError
from adaptive_router.outcomes import OutcomeRecord
from adaptive_router.prompts import render_prompt
from adaptive_router.app.tasks import NO_VERIFIER, Task

__all__ = ["LabelSummary", "Sample", "as_sampler", "completed_ids", "label_tasks", "to_sample"]


@dataclass(frozen=True)
class Sample:
    """One sampled response: its text and the completion tokens it used (0 when unknown)."""

    text: str
    tokens: int = 0


@dataclass
class LabelSummary:
    """What :func:`label_tasks` did."""

    written: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    calls: int = 0
    seconds: float = 0.0


def as_sampler(backend: Any) -> Callable[[Any], Sample]:
    """Wrap a backend as ``prompt -> Sample``.

    Parameters
    ----------
    backend : LangChain chat model, Runnable or callable
        Anything with ``.invoke`` (e.g. :class:`~adaptive_router.integrations.openai_backend.OpenAIChatModel`,
        whose retries, timeouts and deadline then apply) is invoked with the prompt; its message's text and
        ``usage_metadata["output_tokens"]`` become the sample. A plain callable ``prompt -> Sample | str``
        (tests, custom code) is called as is.
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


def completed_ids(path: str | Path) -> set[str]:
    """Ids already labelled in ``path``; a half-written last line (a crash mid-write) is cut off.

    Raises OutcomeFormatError for a malformed line anywhere else: nothing is dropped silently.
    """
    path = Path(path)
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        try:
            json.loads(data[cut:])
        except json.JSONDecodeError:
            with path.open("r+b") as fh:
                fh.truncate(cut)
            data = data[:cut]
        else:
            with path.open("ab") as fh:
                fh.write(b"\n")
    ids = set()
    for lineno, raw in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            ids.add(OutcomeRecord.from_json(json.loads(raw), line=lineno).id)
        except json.JSONDecodeError as exc:
            msg = f"{path}: invalid JSON ({exc.msg}); fix or remove the line"
            raise OutcomeFormatError(msg, line=lineno) from None
    return ids


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
) -> LabelSummary:
    """Sample ``samples`` responses per task, score them, append one outcome record per task to ``out``.

    Parameters
    ----------
    tasks : sequence of Task
    backend : LangChain chat model or callable
        A chat model (its own retries apply, e.g. ``OpenAIChatModel``) or ``prompt -> Sample | str``; see
        :func:`as_sampler`. Raising marks the task failed (it is retried on the next run).
    out : path
        JSONL outcome file; ids already in it are skipped.
    samples : int
        Independent samples per task.
    procedure : str
        Procedure name recorded in ``outcomes``.
    cost : float, optional
        Cost per call recorded in the record's ``cost``.
    concurrency : int
        Requests in flight at once.
    keep_text : bool
        Record each response's text beside its reward.
    progress : callable, optional
        Called as ``progress(done_tasks, total_tasks)``.
    reward_model : Reranker, optional
        Scores each task's samples together (``reward_model.score(prompt, texts)``). Tasks with a verifier
        record it as each sample's ``score`` (``reward`` stays the verifier's); tasks without one
        (``verifier == "none"``) record it as ``reward``. All tasks must be of one kind. It is tried once on
        the first task before any request is sent, so a broken model fails early.
    """
    if int(samples) < 1:
        raise ConfigError(f"samples must be >= 1, got {samples!r}")
    if int(concurrency) < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency!r}")
    sample = as_sampler(backend)
    _check_reward_model(tasks, reward_model)
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ConfigError("task ids must be unique")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = completed_ids(out)
    todo = [t for t in tasks if t.id not in done]
    summary = LabelSummary(skipped=len(tasks) - len(todo))
    start = time.monotonic()
    if progress:
        progress(summary.skipped, len(tasks))
    results: dict[str, list[Sample | None]] = {t.id: [None] * int(samples) for t in todo}
    remaining = {t.id: int(samples) for t in todo}
    by_id = {t.id: t for t in todo}
    with ThreadPoolExecutor(max_workers=int(concurrency)) as pool, out.open("a", encoding="utf-8") as fh:
        futures = {pool.submit(sample, t.prompt): (t.id, j) for t in todo for j in range(int(samples))}
        for fut in as_completed(futures):
            tid, j = futures[fut]
            summary.calls += 1
            if tid not in remaining:
                continue  # the task already failed
            try:
                got = fut.result()
            except Exception as exc:
                remaining.pop(tid)
                summary.failed.append(f"{tid}: {exc}")
                _cancel(futures, tid)
                continue
            results[tid][j] = got
            remaining[tid] -= 1
            if remaining[tid] == 0:
                remaining.pop(tid)
                rec = _record(by_id[tid], results.pop(tid), procedure, cost, keep_text, reward_model)
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                summary.written += 1
                if progress:
                    progress(summary.skipped + summary.written + len(summary.failed), len(tasks))
    summary.seconds = time.monotonic() - start
    return summary


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


def _cancel(futures: dict[Any, tuple[str, int]], tid: str) -> None:
    for fut, (other, _) in futures.items():
        if other == tid:
            fut.cancel()


def _record(
    task: Task,
    samples: Sequence[Sample | None],
    procedure: str,
    cost: float | None,
    keep_text: bool,
    reward_model: Any = None,
) -> dict[str, Any]:
    if any(s is None for s in samples):  # pragma: no cover - every slot is filled before writing
        raise BackendError(f"task {task.id!r} has a missing sample")
    done = [s for s in samples if s is not None]
    scores: list[float] | None = None
    if reward_model is not None:
        got = reward_model.score(render_prompt(task.prompt), [s.text for s in done])
        scores = [float(v) for v in got.scores]
    outs = []
    for j, s in enumerate(done):
        if task.verifier == NO_VERIFIER and scores is not None:
            item: dict[str, Any] = {"reward": scores[j]}
        else:
            item = {"reward": task.score(s.text)}
            if scores is not None:
                item["score"] = scores[j]
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
