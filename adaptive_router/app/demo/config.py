"""The demo's settings and its simulated outcome draws."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaptive_router.outcomes import OutcomeRecord, OutcomeSet, ProcedureOutcome
from adaptive_router.app.tasks import Task

__all__ = ["CHEAP", "EXPENSIVE", "DemoConfig", "draw_outcomes", "expected_best_of_k", "routing_outcomes"]

CHEAP, EXPENSIVE = "gemma-1", "gemma-best-of-4"
"""Routing pair: one sample, or best of four samples picked by the verifier (cost 1 vs 4)."""


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and settings of a demo run (the defaults fit a 2-core CPU in well under 15 minutes)."""

    n_train: int = 300
    n_test: int = 100
    samples: int = 16
    max_k: int = 8
    budgets: tuple[float, ...] = (1.0, 2.0, 4.0)
    verify_n: int = 24
    verify_samples: int = 8
    featurizer: str = "gemma-3-270m"
    temperature: float = 0.8
    live: bool = True
    routing: bool = True
    seed: int = 0
    out_dir: str = "runs"
    threads: int = 2


def draw_outcomes(
    tasks: Sequence[Task], p: np.ndarray, samples: int, *, seed: int = 0, procedure: str = "gemma"
) -> tuple[OutcomeSet, np.ndarray]:
    """Outcome records whose samples are independent draws with each task's success probability ``p``.

    Returns the set (compact binary form, ``p_correct`` kept in ``meta``) and the ``(n, samples)`` draws.
    """
    rng = np.random.default_rng(seed)
    draws = rng.random((len(tasks), samples)) < np.asarray(p)[:, None]
    recs = [
        OutcomeRecord(
            id=t.id,
            prompt=t.prompt if isinstance(t.prompt, str) else str(t.prompt),
            outcomes={procedure: ProcedureOutcome.binary(int(d.sum()), samples)},
            cost={procedure: 1.0},
            meta={
                "answer": t.answer,
                "p_correct": float(pi),
                "tier": t.metadata.get("tier"),
                "label_source": "gemma-3-270m exact answer probability, independent draws",
            },
        )
        for t, pi, d in zip(tasks, p, draws, strict=True)
    ]
    return OutcomeSet(recs), draws


def routing_outcomes(base: OutcomeSet, draws: np.ndarray) -> OutcomeSet:
    """The routing pair from the same draws: ``gemma-1`` = each draw, ``gemma-best-of-4`` = any of 4."""
    groups = draws.shape[1] // 4
    recs = []
    for rec, d in zip(base, draws, strict=True):
        best4 = d[: groups * 4].reshape(groups, 4).any(axis=1)
        recs.append(
            OutcomeRecord(
                id=rec.id,
                prompt=rec.prompt,
                outcomes={
                    CHEAP: ProcedureOutcome.binary(int(d.sum()), d.size),
                    EXPENSIVE: ProcedureOutcome.binary(int(best4.sum()), groups),
                },
                cost={CHEAP: 1.0, EXPENSIVE: 4.0},
                meta=rec.meta,
            )
        )
    return OutcomeSet(recs)


def expected_best_of_k(p: np.ndarray, ks: Sequence[int]) -> float:
    """Mean over queries of P(at least one of its ``ks[i]`` samples is right), success probability ``p[i]``.

    Examples
    --------
    >>> expected_best_of_k(np.array([0.5, 0.5]), [1, 2])
    0.625
    """
    return float(np.mean(1.0 - (1.0 - p) ** np.asarray(ks)))
