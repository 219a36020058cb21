"""LangChain Runnables: the AdaptiveRouter, the CascadeRouter, their shared base and the micro-batcher.

Every routed answer carries ``response_metadata["adaptive_router"]``, typed `RouterMetadata`
(`router_metadata(message)` reads it back; sampled in rounds, its ``rounds`` key is a `RoundsMetadata`;
answered by a fallback model, its ``fallback`` key is a `FallbackMetadata` listing each
`FailedAttemptRecord`).
"""

from adaptive_router.runnables.base import BaseRouter
from adaptive_router.runnables.batcher import MicroBatcher
from adaptive_router.runnables.cascade import CascadeRouter
from adaptive_router.runnables.metadata import (
    FailedAttemptRecord,
    FallbackMetadata,
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
    "FailedAttemptRecord",
    "FallbackMetadata",
    "MicroBatcher",
    "Predicted",
    "RoundRecord",
    "RoundsMetadata",
    "RouterMetadata",
    "router_metadata",
]
