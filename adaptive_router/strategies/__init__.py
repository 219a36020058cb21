"""Strategies that spend the allocated units: best-of-k with a reranker, cheap/expensive routes."""

from adaptive_router.strategies.base import StrategyResult
from adaptive_router.strategies.best_of_k import BestOfK, SamplingStrategy
from adaptive_router.strategies.rerankers import (
    LLMJudgeReranker,
    MajorityVoteReranker,
    Reranker,
    RewardModelReranker,
    Scores,
    VerifierReranker,
)
from adaptive_router.strategies.route import Route

__all__ = [
    "BestOfK",
    "LLMJudgeReranker",
    "MajorityVoteReranker",
    "Reranker",
    "RewardModelReranker",
    "Route",
    "SamplingStrategy",
    "Scores",
    "StrategyResult",
    "VerifierReranker",
]
