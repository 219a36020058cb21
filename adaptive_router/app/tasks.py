"""Datasets to label and the verifiers that score responses.

A dataset is a list of :class:`Task`: an ``id``, a ``prompt``, the reference ``answer`` and the name of the
verifier that scores a response against it. Sources:

- :func:`arithmetic_tasks`: graded few-shot equation prompts (``"3 + 4 = 7\\n...\\n12 + 30 ="``) whose
  difficulty grows with the digit counts; the demo's workload for a small base model.
- :func:`reasoning_gym_tasks`: any reasoning-gym dataset, scored by its own ``score_answer``
  (``pip install 'adaptive-router[tasks]'``).
- :func:`read_tasks`: a JSONL file of ``{"id", "prompt", "answer", "verifier"?}`` objects.

Verifiers (:data:`VERIFIERS`): ``first_line`` (the first line of the response equals the answer, numbers
compared as numbers), ``contains`` (the answer appears in the response), ``math`` (math-verify equivalence),
``reasoning_gym:<dataset>`` (that dataset's scorer), and :data:`NO_VERIFIER` (``"none"``: no reference answer;
such tasks are scored by a reward model when labelled, ``label_tasks(..., reward_model=...)``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptive_router.errors import ConfigError

__all__ = [
    "DIGIT_TIERS",
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

NO_VERIFIER = "none"
"""Verifier name of a task without a reference answer (``"verifier": "none"`` in a JSONL dataset)."""

_SHOTS = ("3 + 4 = 7", "12 + 5 = 17", "8 - 3 = 5", "25 + 13 = 38", "41 - 20 = 21")


@dataclass(frozen=True)
class Task:
    """One query to label: prompt, reference answer and the verifier that scores responses."""

    id: str
    prompt: str | list[dict[str, str]]
    answer: str
    verifier: str = "first_line"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def score(self, response: str) -> float:
        """Reward of ``response`` in [0, 1] under this task's verifier."""
        return score(self.verifier, response, self.answer, self.metadata)


def first_line(response: str) -> str:
    """The first non-empty line of a completion, stripped.

    Examples
    --------
    >>> first_line(" 17\\n3 + 4 = 7")
    '17'
    """
    for line in response.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _verify_first_line(response: str, answer: str, meta: Mapping[str, Any]) -> float:
    got = first_line(response)
    a, b = _as_number(got), _as_number(answer)
    if a is not None and b is not None:
        return float(abs(a - b) < 1e-9)
    return float(got == answer.strip())


def _verify_contains(response: str, answer: str, meta: Mapping[str, Any]) -> float:
    return float(answer.strip() in response)


def _verify_math(response: str, answer: str, meta: Mapping[str, Any]) -> float:
    try:
        from math_verify import parse, verify
    except ImportError:
        msg = "the 'math' verifier needs math-verify: pip install 'adaptive-router[tasks]'"
        raise ConfigError(msg) from None
    gold = parse(answer)
    return float(bool(verify(gold, parse(response))))


def _verify_reasoning_gym(name: str) -> Callable[[str, str, Mapping[str, Any]], float]:
    def verify(response: str, answer: str, meta: Mapping[str, Any]) -> float:
        try:
            import reasoning_gym
        except ImportError:
            raise ConfigError(
                "the reasoning_gym verifier needs reasoning-gym: pip install 'adaptive-router[tasks]'"
            ) from None
        scorer = reasoning_gym.get_score_answer_fn(name)
        entry = {"answer": answer, "metadata": dict(meta.get("rg_metadata", {}))}
        return float(scorer(first_line(response) or response, entry))

    return verify


VERIFIERS: dict[str, Callable[[str, str, Mapping[str, Any]], float]] = {
    "first_line": _verify_first_line,
    "contains": _verify_contains,
    "math": _verify_math,
}


def score(verifier: str, response: str, answer: str, metadata: Mapping[str, Any] | None = None) -> float:
    """Score ``response`` against ``answer`` with the named verifier.

    Examples
    --------
    >>> score("first_line", " 42\\n1 + 1 = 2", "42")
    1.0
    """
    if verifier == NO_VERIFIER:
        raise ConfigError(
            "this task has no verifier (verifier 'none'); score its responses with a reward model"
        )
    if verifier.startswith("reasoning_gym:"):
        fn = _verify_reasoning_gym(verifier.split(":", 1)[1])
    elif verifier in VERIFIERS:
        fn = VERIFIERS[verifier]
    else:
        raise ConfigError(
            f"unknown verifier {verifier!r}; choose one of {sorted(VERIFIERS)} or 'reasoning_gym:<dataset>'"
        )
    return fn(response, answer, metadata or {})


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


def reasoning_gym_tasks(name: str, n: int, *, seed: int = 0, **config: Any) -> list[Task]:
    """``n`` tasks from the reasoning-gym dataset ``name``, scored by its own scorer."""
    try:
        import reasoning_gym
    except ImportError:
        raise ConfigError("reasoning-gym is not installed: pip install 'adaptive-router[tasks]'") from None
    try:
        data = reasoning_gym.create_dataset(name, size=n, seed=seed, **config)
    except Exception as exc:  # reasoning-gym raises plain errors for unknown names or options
        raise ConfigError(f"reasoning-gym cannot build dataset {name!r} with {config}: {exc}") from None
    return [
        Task(
            id=f"{name}-{seed}-{i}",
            prompt=str(entry["question"]),
            answer=str(entry["answer"]),
            verifier=f"reasoning_gym:{name}",
            metadata={"rg_metadata": _jsonable(entry.get("metadata", {}))},
        )
        for i, entry in enumerate(data)
    ]


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def read_tasks(path: str | Path) -> list[Task]:
    """Read a JSONL dataset: ``{"id": str, "prompt": str | messages, "answer": str, "verifier"?: str}``.

    A line with ``"verifier": "none"`` (:data:`NO_VERIFIER`) needs no ``answer``: only a reward model can
    score it.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"dataset file {str(path)!r} does not exist")
    tasks = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None
        if (
            not isinstance(obj, dict)
            or not {"id", "prompt"} <= set(obj)
            or ("answer" not in obj and obj.get("verifier") != NO_VERIFIER)
        ):
            raise ConfigError(
                f"{path}: line {lineno}: expected "
                "{'id': str, 'prompt': str, 'answer': str, 'verifier'?: str} (or 'verifier': 'none' and no "
                "'answer' for a task only a reward model scores)"
            )
        verifier = str(obj.get("verifier", "first_line"))
        known = verifier in VERIFIERS or verifier == NO_VERIFIER
        if not known and not verifier.startswith("reasoning_gym:"):
            raise ConfigError(
                f"{path}: line {lineno}: unknown verifier {verifier!r}; choose one of {sorted(VERIFIERS)} "
                "or 'reasoning_gym:<dataset>'"
            )
        tasks.append(
            Task(
                id=str(obj["id"]),
                prompt=obj["prompt"],
                answer=str(obj.get("answer", "")),
                verifier=verifier,
                metadata=obj.get("metadata", {}),
            )
        )
    if not tasks:
        raise ConfigError(f"dataset file {str(path)!r} holds no tasks")
    return tasks


def load_dataset(spec: str) -> list[Task]:
    """Resolve a dataset spec: a JSONL path, ``arith:N[:SEED]`` or ``rg:NAME:N[:SEED]``.

    Examples
    --------
    >>> len(load_dataset("arith:10:3"))
    10
    """
    parts = spec.split(":")
    try:
        if parts[0] == "arith" and len(parts) in (2, 3):
            return arithmetic_tasks(int(parts[1]), seed=int(parts[2]) if len(parts) == 3 else 0)
        if parts[0] == "rg" and len(parts) in (3, 4):
            return reasoning_gym_tasks(parts[1], int(parts[2]), seed=int(parts[3]) if len(parts) == 4 else 0)
    except ValueError:
        raise ConfigError(f"bad dataset spec {spec!r}: counts and seeds must be integers") from None
    if parts[0] in ("arith", "rg"):
        raise ConfigError(f"bad dataset spec {spec!r}; use arith:N[:SEED] or rg:NAME:N[:SEED]")
    return read_tasks(spec)
