"""Live budgeted evaluation: run a dataset through the `AdaptiveRouter` against a real backend and verify.

- :func:`completion_model` turns a sampling backend (a LangChain chat model such as
  :class:`~adaptive_router.integrations.openai_backend.OpenAIChatModel` on llama.cpp's ``/v1/completions``,
  or a callable ``prompt -> Sample``) into a LangChain Runnable a strategy can call: the query's text goes out
  as one plain-text prompt.
- :class:`SharedSamples` gives each prompt one stream of real samples that several runs read from the start
  (common random numbers): comparing methods on the same queries then measures the allocation, not the luck
  of the draw, and a second method costs no new requests for samples already drawn.
- :func:`verifier_reranker`, :func:`vote_reranker` and :func:`live_reranker` pick the best of k live: by the
  task's verifier, by a majority vote over the answers the verifier would read, or by a reward model.
- :func:`run_live` executes a task list through a router and scores each answer with the task's verifier.

LangChain is imported lazily (only these functions need it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adaptive_router.app.labeling import Sample, as_sampler
from adaptive_router.app.tasks import Task
from adaptive_router.errors import ConfigError
from adaptive_router.prompts import prompt_text, render_prompt

__all__ = [
    "LIVE_RERANKERS",
    "LiveResult",
    "SharedSamples",
    "completion_model",
    "live_reranker",
    "run_live",
    "verifier_reranker",
    "vote_reranker",
]

LIVE_RERANKERS = ("verifier", "vote", "score")
"""How a live run picks the best of k: the task's verifier, a majority vote, a reward model's score."""


class SharedSamples:
    """Per-prompt sample streams shared by several runs (common random numbers).

    The i-th call for a prompt within a pass returns the prompt's i-th sample, drawing it from ``backend``
    (a chat model or a callable ``prompt -> Sample``, see
    :func:`~adaptive_router.app.labeling.as_sampler`) the
    first time it is needed; :meth:`new_pass` restarts every stream from its first sample.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._sample = as_sampler(backend)
        self._lock = threading.Lock()
        self._cache: dict[str, list[Sample]] = {}
        self._next: dict[str, int] = {}
        self.requests = 0

    def new_pass(self) -> None:
        with self._lock:
            self._next.clear()

    def __call__(self, prompt: str) -> Sample:
        with self._lock:
            i = self._next.get(prompt, 0)
            self._next[prompt] = i + 1
            cached = self._cache.setdefault(prompt, [])
            if i < len(cached):
                return cached[i]
        sample = self._sample(prompt)
        with self._lock:
            self.requests += 1
            cached = self._cache[prompt]
            # concurrent calls may fill slots out of order; keep the stream append-only
            cached.append(sample)
            return sample


def completion_model(backend: Any, *, name: str = "completion") -> Any:
    """A Runnable ``messages -> str`` that sends the query's text to ``backend`` as one plain-text prompt.

    ``backend`` is a chat model or a callable ``prompt -> Sample | str`` (see
    :func:`~adaptive_router.app.labeling.as_sampler`).
    """
    from langchain_core.runnables import RunnableLambda

    sample = as_sampler(backend)

    def call(value: Any) -> str:
        return sample(prompt_text(value)).text

    return RunnableLambda(call, name=name)


def verifier_reranker(tasks: Sequence[Task]) -> Any:
    """A `VerifierReranker` that scores a candidate with the verifier of the task whose prompt it answers."""
    from adaptive_router.strategies.rerankers import VerifierReranker

    by_prompt = {render_prompt(t.prompt): t for t in tasks}

    def verify(prompt: str, candidate: str) -> float:
        task = by_prompt.get(prompt)
        return task.score(candidate) if task is not None else 0.0

    return VerifierReranker(verify=verify)


def vote_reranker(tasks: Sequence[Task]) -> Any:
    """A `MajorityVoteReranker` over the answers the tasks' verifier reads (``extract_answer``).

    The reference answer is never used: the vote sees only the samples. Raises `ConfigError` when the
    tasks mix verifiers or theirs has no answer to read (``contains``, ``python_tests``, ``none``).
    """
    from adaptive_router.app.verifiers import extract_answer
    from adaptive_router.strategies.rerankers import MajorityVoteReranker

    kinds = sorted({t.verifier for t in tasks})
    if len(kinds) != 1:
        raise ConfigError(
            f"--reranker vote reads answers with one verifier, but the tasks use {kinds}; split the dataset "
            "by verifier or use --reranker verifier"
        )
    (verifier,) = kinds
    if extract_answer(verifier, "7") is None:
        raise ConfigError(
            f"--reranker vote needs an answer to count, but the {verifier!r} verifier reads none; use "
            "--reranker verifier"
        )

    def extract(text: str) -> str | None:
        return extract_answer(verifier, text)

    return MajorityVoteReranker(extract=extract)


def live_reranker(kind: str, tasks: Sequence[Task], *, reward_model: str | None = None) -> Any:
    """The reranker of a live run by name (see `LIVE_RERANKERS`).

    ``score`` needs ``reward_model``, a local sequence-classification checkpoint folder
    (`RewardModelReranker`). Raises `ConfigError` for an unknown name or a missing model.
    """
    if kind not in LIVE_RERANKERS:
        raise ConfigError(f"--reranker {kind!r}; choose one of {', '.join(LIVE_RERANKERS)}")
    if kind == "verifier":
        return verifier_reranker(tasks)
    if kind == "vote":
        return vote_reranker(tasks)
    if reward_model is None:
        raise ConfigError("--reranker score needs --reward-model FOLDER (a local reward-model checkpoint)")
    from adaptive_router.strategies.rerankers import RewardModelReranker

    return RewardModelReranker(model=reward_model)


@dataclass
class LiveResult:
    """Accuracy and spend of one live run."""

    quality: float
    spend: float
    calls: float
    seconds: float
    ks: list[int] = field(default_factory=list)
    procedures: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)

    def share(self, procedure: str) -> float:
        """Share of queries sent to ``procedure`` (e.g. the expensive route); 0 for an empty run."""
        return self.procedures.count(procedure) / len(self.procedures) if self.procedures else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "quality": self.quality,
            "spend": self.spend,
            "calls_per_query": self.calls,
            "seconds": self.seconds,
            "k_histogram": {str(k): self.ks.count(k) for k in sorted(set(self.ks))},
            "procedure_counts": {p: self.procedures.count(p) for p in sorted(set(self.procedures))},
        }


def run_live(tasks: Sequence[Task], router: Any, *, max_concurrency: int = 2) -> LiveResult:
    """Send every task through ``router.batch`` and score the answers with each task's verifier."""
    start = time.monotonic()
    prompts = [t.prompt for t in tasks]
    outputs = router.batch(prompts, config={"max_concurrency": max_concurrency})
    rewards, costs, calls, ks, procs = [], [], [], [], []
    for task, msg in zip(tasks, outputs, strict=True):
        meta = msg.response_metadata.get("adaptive_router", {})
        text = msg.content if isinstance(msg.content, str) else str(msg.content)
        rewards.append(task.score(text))
        costs.append(float(meta.get("cost", 0.0)))
        calls.append(int(meta.get("calls", 0)))
        ks.append(int(meta.get("k", 0)))
        procs.append(str(meta.get("procedure", "")))
    n = max(1, len(tasks))
    return LiveResult(
        quality=sum(rewards) / n,
        spend=sum(costs) / n,
        calls=sum(calls) / n,
        seconds=time.monotonic() - start,
        ks=ks,
        procedures=procs,
        rewards=rewards,
    )
