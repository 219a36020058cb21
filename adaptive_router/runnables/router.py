"""`AdaptiveRouter`: a LangChain Runnable that decides per query how much compute to spend, and spends it.

``prompt | router | parser`` works like a chat model in a chain. For each query the router reads predicted
reward curves from a probe, allocates the budget over a window of queries, and executes the chosen option of
its strategy (best-of-k with a reranker, a cheap/expensive route, or both). ``batch``/``abatch`` allocate
per window of ``window_size`` inputs (the probe runs once per window); concurrent ``ainvoke`` calls are
gathered by a micro-batcher (``window_size`` items or ``max_wait_ms``) and allocated together; a lone
``invoke`` or ``stream`` uses the calibrated threshold (see `adaptive_router.allocation.planning`). The
stages are `BaseRouter`'s; this class only executes plans: it sends every planned option's requests (all
of a batch's at most ``max_concurrency`` at a time) and lets the strategy rerank them.

Run-time settings, per call, through ``config["configurable"]``: ``budget_per_query`` (units per query),
``max_k`` (cap on k) and ``strategy`` (a strategy object or a name in ``alternatives``).

Each output `AIMessage` carries ``response_metadata["adaptive_router"]`` (a `RouterMetadata`): the chosen
procedure and k, the predicted values, calls made, tokens, cost in units, reranker scores, and whether the
probe's uniform fallback was active.

Examples
--------
>>> from langchain_core.language_models import GenericFakeChatModel
>>> from langchain_core.messages import AIMessage
>>> from adaptive_router.strategies import BestOfK
>>> model = GenericFakeChatModel(messages=iter([AIMessage("7")] * 3))
>>> router = AdaptiveRouter(strategy=BestOfK(model, max_k=1), budget_per_query=1.0)
>>> message = router.invoke("3 + 4 =")
>>> message.content, message.response_metadata["adaptive_router"]["calls"]
('7', 1)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_executor_for_config, patch_config
from langchain_core.runnables.utils import gather_with_concurrency
from pydantic import Field, PrivateAttr
from typing_extensions import override

from adaptive_router.allocation import Ladder, PlanSpec
from adaptive_router.errors import ConfigError
from adaptive_router.runnables._with_config import config_arg, precompute_signatures
from adaptive_router.runnables.base import BaseRouter
from adaptive_router.runnables.metadata import METADATA_KEY, annotate, plan_metadata
from adaptive_router.runnables.plans import Plan, RunSettings, check_probe, prepare_input
from adaptive_router.strategies.base import Request, SampleBatch, Strategy, StrategyResult

__all__ = ["AdaptiveRouter"]


class AdaptiveRouter(BaseRouter):
    """Windowed budget allocation in front of a best-of-k / route strategy.

    Parameters
    ----------
    strategy : BestOfK or Route
        What a unit buys (see `adaptive_router.strategies`).
    probe : CurvePredictor, optional
        Predicts reward curves per procedure; without one every query gets the most expensive option that
        fits ``budget_per_query`` (uniform allocation).
    budget_per_query : float
        Average units per query (the cost of one sample of the cheapest model is usually 1).
    window_size : int
        Queries allocated together (batch chunks and micro-batches).
    max_wait_ms : float
        How long a concurrent ``ainvoke`` waits for others to fill its window.
    max_k : int, optional
        Cap on samples per query (on top of the strategy's ``max_k``).
    calibration_texts : list of str, optional
        Reference queries that calibrate the threshold used for lone ``invoke``/``stream`` calls.
    alternatives : dict of str to strategy
        Strategies selectable by name with ``config["configurable"]["strategy"]``.
    probe_in_thread : bool
        Run the probe in a worker thread on the async paths (keeps the event loop free).
    """

    strategy: Any
    max_k: int | None = None
    alternatives: dict[str, Any] = Field(default_factory=dict)

    _ladder: Ladder = PrivateAttr()
    _alternative_ladders: dict[str, Ladder] = PrivateAttr()

    @override
    def _validate(self) -> None:
        strategies = {"strategy": self.strategy, **self.alternatives}
        for name, strategy in strategies.items():
            if not isinstance(strategy, Strategy):
                raise ConfigError(f"{name} must be a strategy such as BestOfK or Route, got {strategy!r}")
        self._ladder = self.strategy.ladder
        self._alternative_ladders = {name: s.ladder for name, s in self.alternatives.items()}
        check_probe(self.probe, {"strategy": self._ladder, **self._alternative_ladders})

    @override
    def _settings(self, config: RunnableConfig | None) -> RunSettings:
        conf = (config or {}).get("configurable") or {}
        strategy = conf.get("strategy")
        name, ladder = "default", self._ladder
        if strategy is None:
            strategy = self.strategy
        elif isinstance(strategy, str):
            if strategy not in self.alternatives:
                raise ConfigError(f"unknown strategy {strategy!r}; choose one of {sorted(self.alternatives)}")
            name, ladder, strategy = (
                strategy,
                self._alternative_ladders[strategy],
                self.alternatives[strategy],
            )
        elif isinstance(strategy, Strategy):
            ladder = strategy.ladder
        else:
            raise ConfigError(f"configurable strategy must be a strategy or a name, got {strategy!r}")
        spec = PlanSpec(ladder, self._budget(config), conf.get("max_k", self.max_k))
        return RunSettings(spec, strategy, name)

    # ------------------------------------------------------------------ executing plans
    @override
    def _requests(self, slots: list[Any]) -> tuple[list[Any], dict[int, list[Request]]]:
        """The outputs so far (errors kept) and the requests of every planned slot."""
        out = list(slots)
        requests: dict[int, list[Request]] = {}
        for i, slot in enumerate(slots):
            if isinstance(slot, Plan):
                try:
                    requests[i] = slot.settings.strategy.requests(slot.item.messages, slot.decision.option)
                except Exception as exc:
                    out[i] = exc
        return out, requests

    @staticmethod
    def _finish_config(config: RunnableConfig) -> RunnableConfig:
        """A reranker's own requests (an LLM judge) run one at a time per query under a concurrency cap."""
        return patch_config(config, max_concurrency=1) if config.get("max_concurrency") else config

    def _finish(self, plan: Plan, batch: SampleBatch, config: RunnableConfig) -> Any:
        strategy = plan.settings.strategy
        try:
            result = strategy.finish(
                plan.item.messages, plan.decision.option, batch, self._finish_config(config)
            )
            return annotate(result.message, plan_metadata(plan, result))
        except Exception as exc:
            return exc

    async def _afinish(self, plan: Plan, batch: SampleBatch, config: RunnableConfig) -> Any:
        strategy = plan.settings.strategy
        try:
            result = await strategy.afinish(
                plan.item.messages, plan.decision.option, batch, self._finish_config(config)
            )
            return annotate(result.message, plan_metadata(plan, result))
        except Exception as exc:
            return exc

    @override
    def _results(
        self, slots: list[Any], batches: dict[int, SampleBatch], config: list[RunnableConfig]
    ) -> list[Any]:
        """Each plan's strategy reranks its candidates (in a thread pool sized by ``max_concurrency``)."""
        out = list(slots)
        if len(batches) == 1:
            ((i, batch),) = batches.items()
            out[i] = self._finish(slots[i], batch, config[i])
            return out
        with get_executor_for_config(config[0]) as executor:
            done = executor.map(lambda i: self._finish(slots[i], batches[i], config[i]), list(batches))
            for i, result in zip(list(batches), done, strict=True):
                out[i] = result
        return out

    @override
    async def _aresults(
        self, slots: list[Any], batches: dict[int, SampleBatch], config: list[RunnableConfig]
    ) -> list[Any]:
        out = list(slots)
        if len(batches) == 1:
            ((i, batch),) = batches.items()
            out[i] = await self._afinish(slots[i], batch, config[i])
            return out
        finishing = (self._afinish(slots[i], batch, config[i]) for i, batch in batches.items())
        done = await gather_with_concurrency(config[0].get("max_concurrency") or None, *finishing)
        for i, result in zip(list(batches), done, strict=True):
            out[i] = result
        return out

    # ------------------------------------------------------------------ streaming
    @staticmethod
    def _chunk(piece: AIMessageChunk | StrategyResult, plan: Plan) -> AIMessageChunk:
        if isinstance(piece, StrategyResult):
            return AIMessageChunk(content="", response_metadata={METADATA_KEY: plan_metadata(plan, piece)})
        return piece

    @staticmethod
    def _last_input(inputs: Iterator[Any] | Sequence[Any]) -> Any:
        final = None
        for value in inputs:
            final = value if final is None or not isinstance(final, str) else final + value
        return final

    @override
    def stream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[BaseMessage]:
        yield from self._transform_stream_with_config(
            iter([input]), config_arg(self._transform), config, **kwargs
        )

    def _transform(self, inputs: Iterator[Any], config: RunnableConfig) -> Iterator[BaseMessage]:
        settings = self._settings(config)
        (plan,) = self._plan_window([prepare_input(self._last_input(inputs), settings)])
        if isinstance(plan, BaseException):
            raise plan
        for piece in settings.strategy.stream(plan.item.messages, plan.decision.option, config):
            yield self._chunk(piece, plan)

    @override
    async def astream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[BaseMessage]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async for chunk in self._atransform_stream_with_config(
            one(), config_arg(self._atransform), config, **kwargs
        ):
            yield chunk

    async def _atransform(
        self, inputs: AsyncIterator[Any], config: RunnableConfig
    ) -> AsyncIterator[BaseMessage]:
        settings = self._settings(config)
        query = prepare_input(self._last_input([v async for v in inputs]), settings)
        (plan,) = await self._off_loop(self._plan_window, [query])
        if isinstance(plan, BaseException):
            raise plan
        async for piece in settings.strategy.astream(plan.item.messages, plan.decision.option, config):
            yield self._chunk(piece, plan)


precompute_signatures(AdaptiveRouter, ("_transform", "_atransform"))
