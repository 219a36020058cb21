"""LangChain Runnables: the AdaptiveRouter, the CascadeRouter and the micro-batcher."""

from adaptive_router.runnables.batcher import MicroBatcher
from adaptive_router.runnables.cascade import CascadeRouter
from adaptive_router.runnables.router import AdaptiveRouter

__all__ = ["AdaptiveRouter", "CascadeRouter", "MicroBatcher"]
