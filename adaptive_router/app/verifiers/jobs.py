"""The scoring jobs that run inside the sandbox (see :mod:`adaptive_router.app.verifiers.sandbox`).

Each job takes JSON arguments and returns a float reward; it may execute the reply it is given, which is why
it runs in a confined child process and never in the labeller. The ``load_*`` functions are trusted setup the
sandbox server runs once (``Sandbox.prepare``), so that every child inherits a warm scorer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = [
    "load_reasoning_gym",
    "math_verify",
    "python_tests",
    "reasoning_gym_dataset",
    "reasoning_gym_score",
]

_RG_SCORERS: dict[str, Callable[[Any, dict[str, Any]], float]] = {}


def load_reasoning_gym(name: str) -> None:
    """Build reasoning-gym dataset ``name``'s scorer once (trusted setup in the server; ``name`` is a key)."""
    if name not in _RG_SCORERS:
        import reasoning_gym

        _RG_SCORERS[name] = reasoning_gym.get_score_answer_fn(name)


def reasoning_gym_dataset(name: str, size: int, seed: int, config: dict[str, Any]) -> list[dict[str, Any]]:
    """reasoning-gym dataset ``name``'s entries as JSON (building ``codeio`` executes the code it bundles)."""
    import reasoning_gym

    data = reasoning_gym.create_dataset(name, size=size, seed=seed, **config)
    return [
        {
            "question": str(entry["question"]),
            "answer": str(entry["answer"]),
            "metadata": json.loads(json.dumps(entry.get("metadata", {}), default=str)),
        }
        for entry in data
    ]


def reasoning_gym_score(name: str, response: str, answer: str, metadata: dict[str, Any]) -> float:
    """reasoning-gym dataset ``name``'s own score of ``response`` (some of them ``eval`` it)."""
    load_reasoning_gym(name)
    return float(_RG_SCORERS[name](response, {"answer": answer, "metadata": metadata}))


def math_verify(response: str, answer: str) -> float:
    """1.0 when math-verify finds ``response`` equivalent to ``answer`` (it parses both with sympy)."""
    from math_verify import parse, verify

    return float(bool(verify(parse(answer), parse(response))))


def python_tests(program: str) -> float:
    """1.0 when ``program`` (the reply's code, then the task's tests) runs to the end without raising."""
    exec(compile(program, "<reply>", "exec"), {"__name__": "__main__"})  # only ever inside the sandbox
    return 1.0
