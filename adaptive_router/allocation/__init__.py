"""Allocation: predicted reward curves + a budget -> one option per query (numpy only).

- :func:`allocate` solves one window exactly (threshold form, vectorised); :class:`Allocation` is its result.
- :class:`Ladder` / :class:`Option` describe which options (procedure, k, cost) a query has.
- :class:`WindowAllocator` and :class:`ThresholdAllocator` allocate a stream under a per-query budget.
- :class:`Planner` plans windows, lone queries and uniform spend under a :class:`PlanSpec`, one
  :class:`Ledger` per spec.
- :class:`Replay` scores a policy on recorded outcomes (allocate on predicted, score on true values).
- :class:`RoundPlanner` spends a window's budget in rounds, reading evidence in between
  (:class:`VerifierEvidence`, :class:`VoteEvidence`, :class:`ScoreEvidence`); :func:`replay_rounds` replays
  it and the :class:`UniformRounds` / :class:`EarlyStoppingSC` / :class:`RoundRobinUnsolved` /
  :class:`AdaptiveConsistency` baselines sequentially on recorded outcomes; :class:`Rounds` is a router's
  round settings (a planner per window).
- :class:`CascadePlanner` runs cascades in rounds (cheap samples, then escalation where the evidence pays for
  it, in one budget), valued by a :class:`CascadeModel` learned from training outcomes.
- :class:`Frontier` is the non-decreasing cost-quality hull of (cost, quality) points and :func:`aiq`
  RouterBench's AIQ, its mean over a cost range.
"""

from __future__ import annotations

from adaptive_router.allocation.cascade import CascadePlanner
from adaptive_router.allocation.cascade_model import CascadeModel
from adaptive_router.allocation.engine import Allocation, allocate
from adaptive_router.allocation.evidence import EvidenceModel, ScoreEvidence, VerifierEvidence, VoteEvidence
from adaptive_router.allocation.frontier import Frontier, aiq
from adaptive_router.allocation.ladders import Ladder, Option
from adaptive_router.allocation.planning import Decision, Grant, Ledger, Planner, PlanSpec
from adaptive_router.allocation.replay import Replay, ReplayScore
from adaptive_router.allocation.round_baselines import (
    AdaptiveConsistency,
    EarlyStoppingSC,
    RoundRobinUnsolved,
    UniformRounds,
)
from adaptive_router.allocation.round_settings import RoundChoice, Rounds
from adaptive_router.allocation.rounds import RoundPlanner, RoundPolicy
from adaptive_router.allocation.sequential import ReplayResult, replay_rounds
from adaptive_router.allocation.streaming import ThresholdAllocator, WindowAllocator

__all__ = [
    "AdaptiveConsistency",
    "Allocation",
    "CascadeModel",
    "CascadePlanner",
    "Decision",
    "EarlyStoppingSC",
    "EvidenceModel",
    "Frontier",
    "Grant",
    "Ladder",
    "Ledger",
    "Option",
    "PlanSpec",
    "Planner",
    "Replay",
    "ReplayResult",
    "ReplayScore",
    "RoundChoice",
    "RoundPlanner",
    "RoundPolicy",
    "RoundRobinUnsolved",
    "Rounds",
    "ScoreEvidence",
    "ThresholdAllocator",
    "UniformRounds",
    "VerifierEvidence",
    "VoteEvidence",
    "WindowAllocator",
    "aiq",
    "allocate",
    "replay_rounds",
]
