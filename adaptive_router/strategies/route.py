"""Cheap/expensive routes, and ladders that combine a route with best-of-k.

`Route` sends a query to one of several models with different costs per call. With ``max_k > 1`` (and a
reranker) every model can also be sampled k times, so the options are the grid ``(model, k)`` with cost
``k * cost[model]`` (`Ladder.grid`); the allocator picks the cheapest mix that maximises predicted reward.

Examples
--------
>>> from langchain_core.language_models import GenericFakeChatModel
>>> from langchain_core.messages import AIMessage
>>> cheap = GenericFakeChatModel(messages=iter([AIMessage("cheap answer")]))
>>> expensive = GenericFakeChatModel(messages=iter([AIMessage("expensive answer")]))
>>> route = Route(cheap=cheap, expensive=expensive, costs={"cheap": 1, "expensive": 10})
>>> route.procedures
('cheap', 'expensive')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adaptive_router.errors import ConfigError
from adaptive_router.strategies.best_of_k import SamplingStrategy
from adaptive_router.strategies.rerankers import Reranker

__all__ = ["Route"]


class Route(SamplingStrategy):
    """Route each query to a cheap or an expensive model (or any number of named models).

    Parameters
    ----------
    cheap, expensive : Runnable, optional
        The two-model case; their procedure names are ``"cheap"`` and ``"expensive"``.
    costs : mapping of str to float or (float, float)
        Units per call for each model; a pair means ``(cheap, expensive)``.
    models : mapping of str to Runnable, optional
        More than two models, by procedure name (instead of `cheap`/`expensive`).
    reranker : Reranker, optional
        Needed for ``max_k > 1``.
    max_k : int
        1 for a pure route; above 1 combines the route with best-of-k.
    use_n : bool, optional
        See `SamplingStrategy`.
    """

    def __init__(
        self,
        cheap: Any = None,
        expensive: Any = None,
        costs: Mapping[str, float] | tuple[float, float] = (1.0, 10.0),
        *,
        models: Mapping[str, Any] | None = None,
        reranker: Reranker | None = None,
        max_k: int = 1,
        use_n: bool | None = None,
    ) -> None:
        self.cheap = cheap
        self.expensive = expensive
        if models is None:
            if cheap is None or expensive is None:
                raise ConfigError("Route needs cheap= and expensive= models, or models={name: model, ...}")
            models = {"cheap": cheap, "expensive": expensive}
        elif cheap is not None or expensive is not None:
            raise ConfigError("pass either cheap=/expensive= or models=, not both")
        if isinstance(costs, tuple):
            if len(costs) != 2 or set(models) != {"cheap", "expensive"}:
                raise ConfigError(f"a cost pair needs exactly cheap and expensive models, got {costs!r}")
            costs = {"cheap": costs[0], "expensive": costs[1]}
        super().__init__(models=models, costs=dict(costs), reranker=reranker, max_k=max_k, use_n=use_n)
