"""`AdaptiveRouter`: a LangChain Runnable that decides per query how much compute to spend, and spends it.

``prompt | router | parser`` works like a chat model in a chain. For each query the router reads predicted
reward curves from a probe, allocates the budget over a window of queries, and executes the chosen option of
its strategy (best-of-k with a reranker, a cheap/expensive route, or both). ``batch``/``abatch`` allocate
per window of ``window_size`` inputs (the probe runs once per window); concurrent ``ainvoke`` calls are
gathered by a micro-batcher (``window_size`` items or ``max_wait_ms``) and allocated together; a lone
``invoke`` or ``stream`` uses the calibrated threshold (see `adaptive_router.runnables._planning`).

Run-time settings, per call, through ``config["configurable"]``: ``budget_per_query`` (units per query),
``max_k`` (cap on k) and ``strategy`` (a strategy object or a name in ``alternatives``).

Each output `AIMessage` carries ``response_metadata["adaptive_router"]``: the chosen procedure and k, the
predicted values, calls made, tokens, cost in units, reranker scores, and whether the probe's uniform fallback
was active.

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

import asyncio
import contextlib
import math
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeVar

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import get_executor_for_config
from pydantic import ConfigDict, Field, PrivateAttr
from typing_extensions import override

from adaptive_router.errors import ConfigError
from adaptive_router.runnables._planning import (
    Decision,
    Planner,
    Prepared,
    RunSettings,
    check_probe_protocol,
    plan_batch,
    prepare_input,
    read_budget,
)
from adaptive_router.runnables._with_config import config_arg, precompute_signatures
from adaptive_router.runnables.batcher import MicroBatcher
from adaptive_router.strategies.base import StrategyResult, reraise_config_errors

__all__ = ["AdaptiveRouter"]

_Plan = tuple[Prepared, RunSettings, Decision, float]
_T = TypeVar("_T")
def _is_strategy(obj: Any) -> bool:
    return all(hasattr(obj, name) for name in ("ladder", "execute", "aexecute", "stream", "astream"))


class AdaptiveRouter(RunnableSerializable[LanguageModelInput, BaseMessage]):
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

    model_config = ConfigDict(arbitrary_types_allowed=True)

    strategy: Any
    probe: Any = None
    budget_per_query: float = 1.0
    window_size: int = 32
    max_wait_ms: float = 2.0
    max_k: int | None = None
    calibration_texts: list[str] | None = None
    alternatives: dict[str, Any] = Field(default_factory=dict)
    probe_in_thread: bool = True

    _planner: Planner = PrivateAttr()
    _batchers: Any = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        with reraise_config_errors():
            super().__init__(**kwargs)

    @override
    def model_post_init(self, context: Any, /) -> None:
        strategies = {"strategy": self.strategy, **self.alternatives}
        for name, strategy in strategies.items():
            if not _is_strategy(strategy):
                raise ConfigError(f"{name} must be a strategy such as BestOfK or Route, got {strategy!r}")
        check_probe_protocol(self.probe)
        if self.probe is not None:
            for name, strategy in strategies.items():
                missing = sorted({o.procedure for o in strategy.ladder.options} - set(self.probe.procedures))
                if missing:
                    raise ConfigError(
                        f"{name} uses procedures {missing} the probe does not predict (it has "
                        f"{list(self.probe.procedures)}); name the strategy's procedures after the probe's"
                    )
                if int(strategy.ladder.max_k) > int(self.probe.max_k):
                    raise ConfigError(
                        f"{name} goes up to k={strategy.ladder.max_k} but the probe's curves stop at "
                        f"k={self.probe.max_k}; lower max_k or train the probe with a larger max_k"
                    )
        if isinstance(self.window_size, bool) or self.window_size < 1:
            raise ConfigError(f"window_size must be an int >= 1, got {self.window_size!r}")
        if not math.isfinite(self.max_wait_ms) or self.max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be a finite number >= 0, got {self.max_wait_ms!r}")
        self._planner = Planner(probe=self.probe, calibration_texts=self.calibration_texts)
        self._batchers = weakref.WeakKeyDictionary()
        self._planner.check_settings(self._settings(None))

    # ------------------------------------------------------------------ settings
    def _settings(self, config: RunnableConfig | None) -> RunSettings:
        conf = (config or {}).get("configurable") or {}
        budget = read_budget(config, self.budget_per_query)
        max_k = conf.get("max_k", self.max_k)
        if max_k is not None and (isinstance(max_k, bool) or not isinstance(max_k, int)):
            raise ConfigError(f"max_k must be an int or None, got {max_k!r}")
        strategy = conf.get("strategy")
        name = "default"
        if strategy is None:
            strategy = self.strategy
        elif isinstance(strategy, str):
            if strategy not in self.alternatives:
                raise ConfigError(f"unknown strategy {strategy!r}; choose one of {sorted(self.alternatives)}")
            name, strategy = strategy, self.alternatives[strategy]
        elif not _is_strategy(strategy):
            raise ConfigError(f"configurable strategy must be a strategy or a name, got {strategy!r}")
        settings = RunSettings(strategy=strategy, strategy_name=name, budget=float(budget), max_k=max_k)
        self._planner.check_settings(settings)
        return settings

    # ------------------------------------------------------------------ output
    def _output(self, result: StrategyResult, plan: _Plan) -> AIMessage:
        _, settings, decision, probe_ms = plan
        meta = {
            "procedure": result.procedure,
            "k": result.k,
            "strategy": settings.strategy_name,
            "budget_per_query": settings.budget,
            "allocated_cost": result.allocated_cost,
            "predicted": decision.summary(),
            "fallback_active": decision.fallback_active,
            "calls": result.calls,
            "failed_calls": result.failed_calls,
            "judge_calls": result.judge_calls,
            "candidates": result.candidates,
            "tokens": dict(result.usage),
            "cost": result.cost,
            "reranker_scores": result.scores,
            "selected": result.selected,
            "errors": result.errors,
            "probe_ms": probe_ms,
        }
        message = result.message
        return message.model_copy(
            update={"response_metadata": {**message.response_metadata, "adaptive_router": meta}}
        )

    # ------------------------------------------------------------------ planning
    async def _off_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)``, in a worker thread when it runs the probe and ``probe_in_thread`` is set."""
        if self.probe is not None and self.probe_in_thread:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    def _plan_window(self, items: list[Prepared], settings: RunSettings) -> list[Any]:
        start = time.perf_counter()
        values, errors, fallback = self._planner.predict([p.text for p in items], settings)
        probe_ms = (time.perf_counter() - start) * 1000.0
        decisions = self._planner.allocate_window(values, errors, fallback, settings)
        return [
            d if isinstance(d, BaseException) else (p, settings, d, probe_ms)
            for p, d in zip(items, decisions, strict=False)
        ]

    def _plan_batch(self, inputs: Sequence[Any], configs: Sequence[RunnableConfig]) -> list[Any]:
        """One slot per input: its plan or the exception that stopped it (see `plan_batch`)."""
        return plan_batch(
            inputs,
            configs,
            settings=self._settings,
            plan_window=self._plan_window,
            window_size=self.window_size,
        )

    # ------------------------------------------------------------------ invoke / batch
    @override
    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> BaseMessage:
        return self._call_with_config(config_arg(self._invoke), input, config, **kwargs)

    def _invoke(self, input: LanguageModelInput, config: RunnableConfig) -> BaseMessage:
        settings = self._settings(config)
        (plan,) = self._plan_window([prepare_input(input)], settings)
        if isinstance(plan, BaseException):
            raise plan
        return self._output(settings.strategy.execute(plan[0].messages, plan[2].option, config), plan)

    @override
    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[BaseMessage]:
        if not inputs:
            return []
        return self._batch_with_config(
            config_arg(self._batch), list(inputs), config, return_exceptions=return_exceptions, **kwargs
        )

    def _batch(self, inputs: list[Any], config: list[RunnableConfig]) -> list[Any]:
        slots = self._plan_batch(inputs, config)

        def run(i: int) -> Any:
            plan = slots[i]
            if isinstance(plan, BaseException):
                return plan
            try:
                result = plan[1].strategy.execute(plan[0].messages, plan[2].option, config[i])
                return self._output(result, plan)
            except Exception as exc:
                return exc

        with get_executor_for_config(config[0]) as executor:
            return list(executor.map(run, range(len(inputs))))

    # ------------------------------------------------------------------ async
    def _batcher(self, settings: RunSettings) -> MicroBatcher[Prepared, Any]:
        per_loop = self._batchers.setdefault(asyncio.get_running_loop(), {})
        batcher = per_loop.get(settings.key)
        if batcher is None:

            async def process(items: list[Prepared]) -> list[Any]:
                try:
                    return await self._off_loop(self._plan_window, items, settings)
                except Exception as exc:
                    return [exc] * len(items)

            batcher = MicroBatcher(
                process=process, max_batch_size=self.window_size, max_wait_ms=self.max_wait_ms
            )
            per_loop[settings.key] = batcher
        return batcher

    @override
    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> BaseMessage:
        return await self._acall_with_config(config_arg(self._ainvoke), input, config, **kwargs)

    async def _ainvoke(self, input: LanguageModelInput, config: RunnableConfig) -> BaseMessage:
        settings = self._settings(config)
        prepared = prepare_input(input)
        plan = await self._batcher(settings).submit(prepared)
        result = await settings.strategy.aexecute(prepared.messages, plan[2].option, config)
        return self._output(result, plan)

    @override
    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[BaseMessage]:
        if not inputs:
            return []
        return await self._abatch_with_config(
            config_arg(self._abatch), list(inputs), config, return_exceptions=return_exceptions, **kwargs
        )

    async def _abatch(self, inputs: list[Any], config: list[RunnableConfig]) -> list[Any]:
        slots = await self._off_loop(self._plan_batch, inputs, config)
        limit = config[0].get("max_concurrency")
        slot_limit = asyncio.Semaphore(limit) if limit else contextlib.nullcontext()

        async def run(i: int) -> Any:
            plan = slots[i]
            if isinstance(plan, BaseException):
                return plan
            try:
                async with slot_limit:
                    result = await plan[1].strategy.aexecute(plan[0].messages, plan[2].option, config[i])
                return self._output(result, plan)
            except Exception as exc:
                return exc

        return list(await asyncio.gather(*(run(i) for i in range(len(inputs)))))

    # ------------------------------------------------------------------ streaming
    def _stream_chunks(self, piece: Any, plan: _Plan) -> AIMessageChunk:
        if isinstance(piece, StrategyResult):
            meta = self._output(piece, plan).response_metadata["adaptive_router"]
            return AIMessageChunk(content="", response_metadata={"adaptive_router": meta})
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
        (plan,) = self._plan_window([prepare_input(self._last_input(inputs))], settings)
        if isinstance(plan, BaseException):
            raise plan
        for piece in settings.strategy.stream(plan[0].messages, plan[2].option, config):
            yield self._stream_chunks(piece, plan)

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
        values = [v async for v in inputs]
        (plan,) = await self._off_loop(self._plan_window, [prepare_input(self._last_input(values))], settings)
        if isinstance(plan, BaseException):
            raise plan
        async for piece in settings.strategy.astream(plan[0].messages, plan[2].option, config):
            yield self._stream_chunks(piece, plan)

    # ------------------------------------------------------------------ accounting
    def spend_summary(self) -> list[dict[str, Any]]:
        """Allocated spend so far per run-settings group: queries, units allocated, units budgeted."""
        return self._planner.spend_summary()


precompute_signatures(
    AdaptiveRouter, ("_invoke", "_ainvoke", "_batch", "_abatch", "_transform", "_atransform")
)
