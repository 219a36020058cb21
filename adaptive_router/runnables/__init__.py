"""LangChain Runnables: the AdaptiveRouter, the CascadeRouter, their shared base and the micro-batcher.

Every routed answer carries ``response_metadata["adaptive_router"]``, typed `RouterMetadata`
(`router_metadata(message)` reads it back; sampled in rounds, its ``rounds`` key is a `RoundsMetadata`).
"""

from adaptive_router.runnables.base import BaseRouter
from adaptive_router.runnables.batcher import MicroBatcher
from adaptive_router.runnables.cascade import CascadeRouter
from adaptive_router.runnables.metadata import (
    Predicted,
    RoundRecord,
    RoundsMetadata,
    RouterMetadata,
    router_metadata,
)
from adaptive_router.runnables.router import AdaptiveRouter

__all__ = [
    "AdaptiveRouter",
    "BaseRouter",
    "CascadeRouter",
    "MicroBatcher",
    "Predicted",
    "RoundRecord",
    "RoundsMetadata",
    "RouterMetadata",
    "router_metadata",
]
