"""The offline main job: label -> train -> evaluate -> run live, on Gemma-3-270M and graded arithmetic.

1. Generate graded few-shot arithmetic tasks (``"3 + 4 = 7\\n...\\n{a} + {b} ="``, 1- to 3-digit operands).
2. Label them with Gemma-3-270M: the exact probability ``p`` that one sample's first line is the right answer
   (one teacher-forced forward pass; ``adaptive_router.probe.answer_probabilities``), checked on a subset
   against real samples from the llama.cpp server; each query's recorded outcomes are independent draws
   from that probability.
3. Train the probe on Gemma's own hidden states (best-of-k curves, and a cheap/expensive routing pair).
4. Replay held-out queries under uniform / random / adaptive / oracle allocation (expected accuracy).
5. Run adaptive and uniform best-of-k live THROUGH THE ROUTER against the llama.cpp server with the real
   verifier, and the routing pair live, and write ``runs/demo-<timestamp>/`` (report.md, report.json, PNGs,
   the exact command).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.outcomes import OutcomeRecord, OutcomeSet, ProcedureOutcome
from adaptive_router.tasks import Task

__all__ = ["DemoConfig", "draw_outcomes", "routing_outcomes", "run_demo"]

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


def _expected_best_of_k(p: np.ndarray, ks: Sequence[int]) -> float:
    return float(np.mean(1.0 - (1.0 - p) ** np.asarray(ks)))


def run_demo(
    config: DemoConfig | None = None, *, console: Any = None, argv: Sequence[str] | None = None
) -> Path:
    """Run the whole demo and return the run folder (see the module docstring for the steps)."""
    from adaptive_router._demo_run import DemoRun

    run = DemoRun(config or DemoConfig(), console=console, argv=list(argv if argv is not None else sys.argv))
    return run.run()


def _environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _command(argv: Sequence[str]) -> str:
    prog = Path(argv[0]).name if argv else "adaptive-router"
    if prog in ("__main__.py", "cli.py"):
        prog = "adaptive-router"
    return " ".join([prog, *map(shlex.quote, argv[1:])])


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n", encoding="utf-8")
