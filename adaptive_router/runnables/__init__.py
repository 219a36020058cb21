"""LangChain Runnables: the AdaptiveRouter and its micro-batcher."""

from adaptive_router.runnables.batcher import MicroBatcher
from adaptive_router.runnables.router import AdaptiveRouter

__all__ = ["AdaptiveRouter", "MicroBatcher"]
