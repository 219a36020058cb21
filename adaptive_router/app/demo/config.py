"""The demo's settings and its simulated outcome draws."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adaptive_router.app.tasks import Task
from adaptive_router.errors import ConfigError
from adaptive_router.outcomes import OutcomeRecord, OutcomeSet, ProcedureOutcome

__all__ = ["CHEAP", "EXPENSIVE", "DemoConfig", "draw_outcomes", "expected_best_of_k", "routing_outcomes"]

CHEAP, EXPENSIVE = "gemma-1", "gemma-best-of-4"
"""Routing pair: one sample, or best of four samples picked by the verifier (cost 1 vs 4)."""

_MIN_TRAIN, _MIN_TEST = 20, 10


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and settings of a demo run (the defaults fit a 2-core CPU in well under 15 minutes).

    Every value is checked here, so a bad one fails at once, before a model loads or a run folder exists.

    Examples
    --------
    >>> DemoConfig(n_train=120, n_test=40, max_k=4, budgets=(1.0, 2.0)).budgets
    (1.0, 2.0)
    >>> DemoConfig(samples=2, max_k=4)
    Traceback (most recent call last):
    ...
    adaptive_router.errors.ConfigError: samples (2) must be >= max_k (4): the best-of-k curves come \
from the recorded samples
    """

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

    def __post_init__(self) -> None:
        ints = {
            "n_train": (self.n_train, _MIN_TRAIN, "the probe cross-fits on the training queries"),
            "n_test": (
                self.n_test,
                _MIN_TEST,
                "the held-out side of the id-hash split must not come out empty",
            ),
            "samples": (self.samples, 1, ""),
            "max_k": (self.max_k, 1, ""),
            "verify_n": (
                self.verify_n,
                2 if self.live else 0,
                "the check correlates labels with real samples",
            ),
            "verify_samples": (self.verify_samples, 1, ""),
            "threads": (self.threads, 1, ""),
        }
        for name, (value, low, why) in ints.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ConfigError(
                    f"{name} must be an integer >= {low}{': ' + why if why else ''}, got {value!r}"
                )
        if self.samples < self.max_k:
            raise ConfigError(
                f"samples ({self.samples}) must be >= max_k ({self.max_k}): the best-of-k curves come "
                "from the recorded samples"
            )
        if self.routing and self.samples < 4:
            raise ConfigError(
                f"routing compares best-of-4 with one sample: samples must be >= 4, got {self.samples}"
            )
        if self.verify_n > self.n_train:
            raise ConfigError(
                f"verify_n ({self.verify_n}) must be <= n_train ({self.n_train}): it checks training queries"
            )
        budgets = tuple(self.budgets)
        if not budgets or not all(
            isinstance(b, numbers.Real) and math.isfinite(b) and b >= 1 for b in budgets
        ):
            raise ConfigError(f"budgets must be finite numbers >= 1 (calls per query), got {self.budgets!r}")
        object.__setattr__(self, "budgets", tuple(float(b) for b in budgets))
        if not (
            isinstance(self.temperature, numbers.Real)
            and math.isfinite(self.temperature)
            and self.temperature > 0
        ):
            raise ConfigError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        for name in ("featurizer", "out_dir"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")


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
