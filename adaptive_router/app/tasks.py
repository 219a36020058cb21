"""Datasets to label: a list of :class:`Task`, each with the verifier that scores responses to it.

A dataset is a list of :class:`Task`: an ``id``, a ``prompt``, the reference ``answer`` and the name of the
verifier that scores a response against it. Sources:

- :func:`arithmetic_tasks`: graded few-shot equation prompts (``"3 + 4 = 7\\n...\\n12 + 30 ="``) whose
  difficulty grows with the digit counts; the demo's workload for a small base model.
- :func:`reasoning_gym_tasks`: any reasoning-gym dataset, scored by its own ``score_answer``
  (``pip install 'adaptive-router[tasks]'``).
- :func:`read_tasks`: a JSONL file of ``{"id", "prompt", "answer", "verifier"?, "metadata"?}`` objects.

Verifiers (:data:`VERIFIERS`, see :mod:`adaptive_router.app.verifiers`): ``first_line`` (the first line of
the response equals the answer, numbers compared as numbers), ``contains`` (the answer appears in the
response), ``math`` (math-verify equivalence), ``python_tests`` (the response's code passes the answer's
tests), ``reasoning_gym:<dataset>`` (that dataset's scorer), and :data:`NO_VERIFIER` (``"none"``: no reference
answer; such tasks are scored by a reward model when labelled, ``label_tasks(..., reward_model=...)``).
A verifier that could execute the reply runs it in a sandboxed subprocess, never in this process.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptive_router.app.verifiers import (
    NO_VERIFIER,
    VERIFIERS,
    SandboxLimits,
    check_verifiers,
    extract_answer,
    first_line,
    score,
    score_many,
    shared_sandbox,
)
from adaptive_router.errors import ConfigError

__all__ = [
    "DIGIT_TIERS",
    "GENERATION_LIMITS",
    "NO_VERIFIER",
    "VERIFIERS",
    "Task",
    "arithmetic_tasks",
    "first_line",
    "load_dataset",
    "read_tasks",
    "reasoning_gym_tasks",
    "score",
]

DIGIT_TIERS: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (2, 2), (2, 3), (3, 3))
"""Digit counts of the two operands, easiest first."""

GENERATION_LIMITS = SandboxLimits(
    cpu_seconds=300, wall_seconds=600, memory_bytes=4 << 30, max_file_bytes=64 << 20, max_result_bytes=1 << 30
)
"""Limits of building a reasoning-gym dataset in the sandbox (far above scoring's: it may be large)."""

_JOBS = "adaptive_router.app.verifiers.jobs"
_SHOTS = ("3 + 4 = 7", "12 + 5 = 17", "8 - 3 = 5", "25 + 13 = 38", "41 - 20 = 21")


@dataclass(frozen=True)
class Task:
    """One query to label: prompt, reference answer and the verifier that scores responses.

    ``metadata`` must be a JSON object (it is written into every outcome record); a bad one is rejected
    here, before anything is spent.
    """

    id: str
    prompt: str | list[dict[str, str]]
    answer: str
    verifier: str = "first_line"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, Mapping):
            kind = type(self.metadata).__name__
            raise ConfigError(f"task {self.id!r}: metadata must be a JSON object, got a {kind}")
        try:
            json.dumps({"prompt": self.prompt, "answer": self.answer, "metadata": dict(self.metadata)})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"task {self.id!r}: prompt, answer and metadata must be JSON ({exc})") from None

    def score(self, response: str) -> float:
        """Reward of ``response`` in [0, 1] under this task's verifier."""
        return score(self.verifier, response, self.answer, self.metadata, prompt=self.prompt)

    def score_many(self, responses: Sequence[str]) -> list[float]:
        """Rewards of several responses (a sandboxed verifier scores them side by side)."""
        return score_many(self.verifier, responses, self.answer, self.metadata, prompt=self.prompt)

    def extract_answer(self, response: str, *, final_answer: str | None = None) -> str | None:
        """The normalised final answer of ``response`` that votes count (see `extract_answer`)."""
        return extract_answer(self.verifier, response, self.answer, final_answer=final_answer)


def arithmetic_tasks(
    n: int,
    *,
    seed: int = 0,
    tiers: Sequence[tuple[int, int]] = DIGIT_TIERS,
    operators: str = "+-",
    shots: Sequence[str] = _SHOTS,
) -> list[Task]:
    """``n`` few-shot equation tasks cycling through digit ``tiers`` (mixed difficulty), seeded.

    Examples
    --------
    >>> t = arithmetic_tasks(2, seed=1)[1]
    >>> t.prompt.splitlines()[-1], t.answer, t.metadata["digits"]
    ('25 - 4 =', '21', [1, 2])
    """
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if not tiers or any(min(t) < 1 for t in tiers):
        raise ConfigError(f"tiers must be non-empty (digits_a, digits_b) pairs >= 1, got {tiers!r}")
    if not operators or set(operators) - set("+-*"):
        raise ConfigError(f"operators must be a subset of '+-*', got {operators!r}")
    rng = random.Random(seed)
    header = "\n".join(shots)
    tasks = []
    for i in range(n):
        da, db = tiers[i % len(tiers)]
        a = rng.randint(10 ** (da - 1) if da > 1 else 0, 10**da - 1)
        b = rng.randint(10 ** (db - 1) if db > 1 else 0, 10**db - 1)
        op = rng.choice(operators)
        if op == "-" and b > a:
            a, b = b, a
        value = a + b if op == "+" else a - b if op == "-" else a * b
        tasks.append(
            Task(
                id=f"arith-{seed}-{i}",
                prompt=f"{header}\n{a} {op} {b} =",
                answer=str(value),
                metadata={"digits": [da, db], "operator": op, "tier": f"{da}x{db}"},
            )
        )
    return tasks


def reasoning_gym_tasks(
    name: str, n: int, *, seed: int = 0, limits: SandboxLimits = GENERATION_LIMITS, **config: Any
) -> list[Task]:
    """``n`` tasks from the reasoning-gym dataset ``name``, scored by its own scorer.

    The dataset is built in the sandbox (building ``codeio`` executes the code it bundles) within
    ``limits``; it is scored in-process only when its scorer merely compares strings (see
    :mod:`adaptive_router.app.verifiers`).
    """
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    check_verifiers([f"reasoning_gym:{name}"])  # the extra is installed and the name is registered
    box = shared_sandbox()
    box.prepare("importlib:import_module", "reasoning_gym")
    got = box.run(f"{_JOBS}:reasoning_gym_dataset", name, n, seed, config, limits=limits)
    if not got.ok:
        why = got.error or f"stopped by the sandbox: {got.killed}"
        raise ConfigError(f"reasoning-gym cannot build dataset {name!r} with {config}: {why}")
    return [
        Task(
            id=f"{name}-{seed}-{i}",
            prompt=entry["question"],
            answer=entry["answer"],
            verifier=f"reasoning_gym:{name}",
            metadata={"rg_metadata": entry["metadata"]},
        )
        for i, entry in enumerate(got.value)
    ]


_TASK_SHAPE = (
    "expected {'id': str, 'prompt': str | messages, 'answer': str, 'verifier'?: str, 'metadata'?: object} "
    "(or 'verifier': 'none' and no 'answer' for a task only a reward model scores)"
)


def _parse_task(obj: Any, where: str) -> Task:
    if (
        not isinstance(obj, dict)
        or not {"id", "prompt"} <= set(obj)
        or ("answer" not in obj and obj.get("verifier") != NO_VERIFIER)
    ):
        raise ConfigError(f"{where}: {_TASK_SHAPE}")
    verifier = str(obj.get("verifier", "first_line"))
    known = verifier in VERIFIERS or verifier == NO_VERIFIER
    if not known and not (verifier.startswith("reasoning_gym:") and verifier != "reasoning_gym:"):
        raise ConfigError(
            f"{where}: unknown verifier {verifier!r}; choose one of {sorted(VERIFIERS)} "
            "or 'reasoning_gym:<dataset>'"
        )
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ConfigError(
            f"{where}: 'metadata' must be a JSON object, got {type(metadata).__name__} {metadata!r:.60}"
        )
    rg_meta = metadata.get("rg_metadata", {})
    if not isinstance(rg_meta, dict):
        raise ConfigError(f"{where}: 'metadata.rg_metadata' must be a JSON object, got {rg_meta!r:.60}")
    prompt = obj["prompt"]
    if not isinstance(prompt, (str, list)):
        raise ConfigError(f"{where}: 'prompt' must be a string or a list of messages, got {prompt!r:.60}")
    return Task(
        id=str(obj["id"]),
        prompt=prompt,
        answer=str(obj.get("answer", "")),
        verifier=verifier,
        metadata=metadata,
    )


def read_tasks(path: str | Path) -> list[Task]:
    """Read a JSONL dataset: ``{"id", "prompt": str | messages, "answer", "verifier"?, "metadata"?}`` lines.

    A line with ``"verifier": "none"`` (:data:`NO_VERIFIER`) needs no ``answer``: only a reward model can
    score it. The file must be UTF-8; every problem is a ConfigError naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"dataset file {str(path)!r} does not exist")
    tasks = []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path}: line {lineno}: not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1}); "
                "save the file as UTF-8"
            ) from None
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None
        tasks.append(_parse_task(obj, f"{path}: line {lineno}"))
    if not tasks:
        raise ConfigError(f"dataset file {str(path)!r} holds no tasks")
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConfigError(f"{path}: task id {dup!r} appears more than once; ids must be unique")
    return tasks


def _spec_int(text: str, what: str, spec: str, minimum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"bad dataset spec {spec!r}: {what} must be an integer, got {text!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"bad dataset spec {spec!r}: {what} must be >= {minimum}, got {value}")
    return value


def load_dataset(spec: str) -> list[Task]:
    """Resolve a dataset spec: a JSONL path, ``arith:N[:SEED]`` or ``rg:NAME:N[:SEED]`` (N >= 1).

    Examples
    --------
    >>> len(load_dataset("arith:10:3"))
    10
    """
    parts = spec.split(":")
    if parts[0] == "arith" and len(parts) in (2, 3):
        n = _spec_int(parts[1], "N (the number of tasks)", spec, minimum=1)
        seed = _spec_int(parts[2], "SEED", spec) if len(parts) == 3 else 0
        return arithmetic_tasks(n, seed=seed)
    if parts[0] == "rg" and len(parts) in (3, 4) and parts[1]:
        n = _spec_int(parts[2], "N (the number of tasks)", spec, minimum=1)
        seed = _spec_int(parts[3], "SEED", spec) if len(parts) == 4 else 0
        return reasoning_gym_tasks(parts[1], n, seed=seed)
    if parts[0] in ("arith", "rg"):
        raise ConfigError(f"bad dataset spec {spec!r}; use arith:N[:SEED] or rg:NAME:N[:SEED]")
    return read_tasks(spec)
