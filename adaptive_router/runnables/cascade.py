"""`CascadeRouter`: draft with the cheap model, read the draft, escalate only the drafts that look wrong.

Every query first gets a *draft* from the cheap model. A probe then reads the query **and** the draft (the
text ``join_draft(query, draft)``, see `adaptive_router.probe.signals`) and predicts the expected reward of
keeping the draft (procedure ``procedures[0]``) and of escalating to the expensive model (``procedures[1]``).
The router's `Planner` allocates the budget over a window of drafted queries exactly as it does for
`AdaptiveRouter`: a ``batch``/``abatch`` window of ``window_size`` goes to the `WindowAllocator` (with its
ledger), a lone ``invoke``/``ainvoke`` to the calibrated threshold with its credit ledger, and without a probe
the choice is uniform (escalate every query when the budget pays for it, otherwise none).

Costs include the draft: a kept draft costs ``costs[0]`` units, an escalated query ``costs[0] + costs[1]``,
so with budget ``B`` per query the escalated share is ``(B - costs[0]) / costs[1]``.

Each output `AIMessage` (the kept draft, or the expensive model's answer) carries
``response_metadata["adaptive_router"]``: ``procedure``, ``escalated``, ``budget_per_query``,
``allocated_cost``, ``predicted``, ``fallback_active``, ``calls`` (1 or 2), ``tokens`` (both calls),
``cost`` (units), ``draft`` (the draft's text when escalated, else ``None``) and ``probe_ms``.

Examples
--------
>>> from langchain_core.language_models import GenericFakeChatModel
>>> from langchain_core.messages import AIMessage
>>> cheap = GenericFakeChatModel(messages=iter([AIMessage("8")] * 2))
>>> expensive = GenericFakeChatModel(messages=iter([AIMessage("7")] * 2))
>>> router = CascadeRouter(cheap=cheap, expensive=expensive, costs=(1.0, 10.0), budget_per_query=11.0)
>>> message = router.invoke("3 + 4 =")  # no probe, budget pays for escalation: every query escalates
>>> meta = message.response_metadata["adaptive_router"]
>>> message.content, meta["escalated"], meta["draft"], meta["calls"], meta["cost"]
('7', True, '8', 2, 11.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import get_executor_for_config
from pydantic import ConfigDict, PrivateAttr
from typing_extensions import override

from adaptive_router.allocation import Ladder
from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.prompts.messages import message_text
from adaptive_router.prompts.text import join_draft, split_draft
from adaptive_router.runnables._planning import (
    Decision,
    Planner,
    Prepared,
    RunSettings,
    check_probe_protocol,
    prepare_input,
    read_budget,
    windows_by_key,
)
from adaptive_router.runnables._with_config import config_arg, precompute_signatures
from adaptive_router.strategies.base import (
    SampleBatch,
    add_usage,
    asample,
    reraise_config_errors,
    sample,
)

__all__ = ["CascadeRouter"]

_T = TypeVar("_T")


# ---------------------------------------------------------------------- the stages of one query
@dataclass(frozen=True)
class _Query:
    """A validated input with its run settings: waiting for its draft."""

    prepared: Prepared
    settings: RunSettings

    @property
    def messages(self) -> list[BaseMessage]:
        return self.prepared.messages


@dataclass(frozen=True)
class _Drafted:
    """A query with the cheap model's draft: waiting for the probe and the allocator."""

    query: _Query
    draft: AIMessage
    usage: dict[str, int]

    @property
    def probe_text(self) -> str:
        return join_draft(self.query.prepared.text, message_text(self.draft))


@dataclass(frozen=True)
class _Planned:
    """A drafted query with its allocation: escalated (waiting for the expensive model) or kept."""

    drafted: _Drafted
    decision: Decision
    probe_ms: float
    escalate: bool

    @property
    def messages(self) -> list[BaseMessage]:
        return self.drafted.query.messages


@dataclass(frozen=True)
class _Options:
    """What the `Planner` needs from a strategy: only its ladder (keep the draft, or escalate)."""

    ladder: Any


class CascadeRouter(RunnableSerializable[LanguageModelInput, BaseMessage]):
    """Cheap draft first; a probe that reads the draft decides, within the budget, which ones to escalate.

    Parameters
    ----------
    cheap, expensive : Runnable
        Chat models (or Runnables returning a message or a string): the drafting and the escalation model.
    probe : CurvePredictor, optional
        Reads ``join_draft(query, draft)`` texts and predicts both procedures' rewards (normally a `Probe`
        trained with a `WithAnswerSignals` featurizer). Without one the choice is uniform.
    costs : (float, float)
        Units per call of the cheap and of the expensive model.
    procedures : (str, str)
        The probe's curve names for keeping the draft and for escalating.
    budget_per_query : float
        Average units per query, the draft included (at least ``costs[0]``; ``costs[0] + costs[1]``
        escalates everything). Per call: ``config["configurable"]["budget_per_query"]``.
    window_size : int
        Drafted queries allocated together in ``batch``/``abatch``.
    calibration_texts : list of str, optional
        ``join_draft(query, draft)`` texts that calibrate the threshold used for lone ``invoke`` calls.

    ``stream``/``astream`` are LangChain's defaults: the whole answer as one chunk (the draft has to be read
    before anything can be streamed).

    Examples
    --------
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> from langchain_core.messages import AIMessage
    >>> cheap = GenericFakeChatModel(messages=iter([AIMessage("draft")] * 2))
    >>> expensive = GenericFakeChatModel(messages=iter([AIMessage("better")] * 2))
    >>> router = CascadeRouter(cheap=cheap, expensive=expensive, budget_per_query=1.0)
    >>> [m.content for m in router.batch(["q1", "q2"])]  # uniform, budget = the draft only: keep both
    ['draft', 'draft']
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cheap: Any
    expensive: Any
    probe: Any = None
    costs: tuple[float, float] = (1.0, 10.0)
    procedures: tuple[str, str] = ("cheap", "expensive")
    budget_per_query: float
    window_size: int = 32
    calibration_texts: list[str] | None = None

    _planner: Planner = PrivateAttr()
    _options: _Options = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        with reraise_config_errors():
            super().__init__(**kwargs)

    # ------------------------------------------------------------------ validation / settings
    @override
    def model_post_init(self, context: Any, /) -> None:
        for name in ("cheap", "expensive"):
            model = getattr(self, name)
            if not isinstance(model, Runnable):
                raise ConfigError(
                    f"{name} must be a LangChain chat model or Runnable, got {type(model).__name__}"
                )
        cheap_cost, expensive_cost = self.costs
        if not all(math.isfinite(c) and c > 0 for c in self.costs):
            raise ConfigError(
                f"costs must be two positive finite numbers (cheap, expensive), got {self.costs!r}"
            )
        keep, escalate = self.procedures
        if not (keep and escalate) or keep == escalate:
            raise ConfigError(f"procedures must be two different non-empty names, got {self.procedures!r}")
        self._check_probe()
        if isinstance(self.window_size, bool) or self.window_size < 1:
            raise ConfigError(f"window_size must be an int >= 1, got {self.window_size!r}")
        missing = [i for i, t in enumerate(self.calibration_texts or []) if split_draft(t)[1] is None]
        if missing:
            raise ConfigError(
                f"calibration_texts[{missing[0]}] has no draft: calibrate on join_draft(query, draft) texts"
            )
        self._options = _Options(
            ladder=Ladder.routes({keep: cheap_cost, escalate: cheap_cost + expensive_cost}),
        )
        self._planner = Planner(probe=self.probe, calibration_texts=self.calibration_texts)
        self._settings(None)

    def _check_probe(self) -> None:
        check_probe_protocol(self.probe)
        if self.probe is None:
            return
        missing = [p for p in self.procedures if p not in tuple(self.probe.procedures)]
        if missing:
            raise ConfigError(
                f"the probe does not predict procedures {missing} (it has {list(self.probe.procedures)}); "
                "pass procedures=(keep_draft_name, escalate_name) naming the probe's curves"
            )

    def _settings(self, config: RunnableConfig | None) -> RunSettings:
        budget = read_budget(config, self.budget_per_query)
        draft_cost = self.costs[0]
        if budget < draft_cost - 1e-12:
            raise InfeasibleBudgetError(
                f"budget_per_query={budget:g} is below the cost of the draft every query gets "
                f"({draft_cost:g} units); raise the budget to at least {draft_cost:g}"
            )
        return RunSettings(strategy=self._options, strategy_name="cascade", budget=budget, max_k=None)

    # ------------------------------------------------------------------ the steps shared by sync and async
    def _prepare(self, inputs: Sequence[Any], configs: Sequence[RunnableConfig]) -> list[Any]:
        """One slot per input: a `_Query`, or the error that stops it (bad input or settings)."""
        slots: list[Any] = []
        for value, config in zip(inputs, configs, strict=True):
            try:
                slots.append(_Query(prepare_input(value), self._settings(config)))
            except Exception as exc:
                slots.append(exc)
        return slots

    def _model_for(self, slot: Any) -> Any:
        """The model a slot waits for: cheap for a draft, expensive for an escalation, else ``None``."""
        if isinstance(slot, _Query):
            return self.cheap
        if isinstance(slot, _Planned) and slot.escalate:
            return self.expensive
        return None

    def _advance(self, slot: Any, batch: SampleBatch | None) -> Any:
        """The slot's next stage, given what its model call returned (``None``: no call was needed)."""
        if batch is not None:
            batch.raise_if_empty()
        if isinstance(slot, _Query):
            assert batch is not None
            return _Drafted(query=slot, draft=batch.candidates[0], usage=dict(batch.usage))
        if isinstance(slot, _Planned):
            return self._output(slot, batch)
        return slot

    def _plan(self, slots: list[Any]) -> list[Any]:
        """Probe + allocation for every drafted slot, per settings group and window (other slots pass)."""
        out = list(slots)
        keys = [s.query.settings.key if isinstance(s, _Drafted) else None for s in slots]
        for window in windows_by_key(keys, self.window_size):
            try:
                planned = self._plan_window([slots[i] for i in window])
            except Exception as exc:
                planned = [exc] * len(window)
            for i, plan in zip(window, planned, strict=True):
                out[i] = plan
        return out

    def _plan_window(self, items: list[_Drafted]) -> list[Any]:
        settings = items[0].query.settings
        start = time.perf_counter()
        values, errors, fallback = self._planner.predict([d.probe_text for d in items], settings)
        probe_ms = (time.perf_counter() - start) * 1000.0
        decisions = self._planner.allocate_window(values, errors, fallback, settings)
        escalate = self.procedures[1]
        return [
            d
            if isinstance(d, BaseException)
            else _Planned(item, d, probe_ms, escalate=d.option.procedure == escalate)
            for item, d in zip(items, decisions, strict=True)
        ]

    def _output(self, plan: _Planned, batch: SampleBatch | None) -> AIMessage:
        drafted, decision = plan.drafted, plan.decision
        message = drafted.draft if batch is None else batch.candidates[0]
        escalated = batch is not None
        meta = {
            "procedure": decision.option.procedure,
            "escalated": escalated,
            "budget_per_query": drafted.query.settings.budget,
            "allocated_cost": float(decision.option.cost),
            "predicted": decision.summary(),
            "fallback_active": decision.fallback_active,
            "calls": 2 if escalated else 1,
            "tokens": drafted.usage if batch is None else add_usage(drafted.usage, batch.usage),
            "cost": self.costs[0] + (self.costs[1] if escalated else 0.0),
            "draft": message_text(drafted.draft) if escalated else None,
            "probe_ms": plan.probe_ms,
        }
        return message.model_copy(
            update={"response_metadata": {**message.response_metadata, "adaptive_router": meta}}
        )

    # ------------------------------------------------------------------ sync
    def _step(self, slot: Any, config: RunnableConfig) -> Any:
        """Advance one slot by one stage (one model call at most); an error becomes the slot's value."""
        if isinstance(slot, BaseException):
            return slot
        try:
            model = self._model_for(slot)
            batch = None if model is None else sample(model, slot.messages, 1, config, use_n=False)
            return self._advance(slot, batch)
        except Exception as exc:
            return exc

    def _steps(self, slots: list[Any], configs: list[RunnableConfig]) -> list[Any]:
        if len(slots) == 1:
            return [self._step(slots[0], configs[0])]
        with get_executor_for_config(configs[0]) as executor:
            return list(executor.map(self._step, slots, configs))

    def _run(self, inputs: list[Any], config: list[RunnableConfig]) -> list[Any]:
        """Outputs (or per-item errors) in input order: draft all, plan per window, escalate the chosen.

        `config` is one config per input (LangChain passes it by that name, with the child callbacks).
        """
        drafted = self._steps(self._prepare(inputs, config), config)
        return self._steps(self._plan(drafted), config)

    @override
    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> BaseMessage:
        return self._call_with_config(config_arg(self._invoke), input, config, **kwargs)

    def _invoke(self, input: LanguageModelInput, config: RunnableConfig) -> BaseMessage:
        return _raise_or_return(self._run([input], [config])[0])

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
            config_arg(self._run), list(inputs), config, return_exceptions=return_exceptions, **kwargs
        )

    # ------------------------------------------------------------------ async
    async def _astep(self, slot: Any, config: RunnableConfig, gate: Any) -> Any:
        """Async `_step`; `gate` bounds the concurrent model calls (``max_concurrency``)."""
        if isinstance(slot, BaseException):
            return slot
        try:
            model = self._model_for(slot)
            batch = None
            if model is not None:
                async with gate:
                    batch = await asample(model, slot.messages, 1, config, use_n=False)
            return self._advance(slot, batch)
        except Exception as exc:
            return exc

    async def _asteps(self, slots: list[Any], configs: list[RunnableConfig]) -> list[Any]:
        limit = configs[0].get("max_concurrency")
        gate = asyncio.Semaphore(limit) if limit else contextlib.nullcontext()
        steps = (self._astep(s, c, gate) for s, c in zip(slots, configs, strict=True))
        return list(await asyncio.gather(*steps))

    async def _off_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in a worker thread when a probe runs in it (keeps the event loop free)."""
        if self.probe is not None:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    async def _arun(self, inputs: list[Any], config: list[RunnableConfig]) -> list[Any]:
        """Async `_run`: the probe runs in a worker thread."""
        drafted = await self._asteps(self._prepare(inputs, config), config)
        return await self._asteps(await self._off_loop(self._plan, drafted), config)

    @override
    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> BaseMessage:
        return await self._acall_with_config(config_arg(self._ainvoke), input, config, **kwargs)

    async def _ainvoke(self, input: LanguageModelInput, config: RunnableConfig) -> BaseMessage:
        return _raise_or_return((await self._arun([input], [config]))[0])

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
            config_arg(self._arun), list(inputs), config, return_exceptions=return_exceptions, **kwargs
        )

    # ------------------------------------------------------------------ accounting
    def spend_summary(self) -> list[dict[str, Any]]:
        """Allocated spend so far per budget: queries, units allocated (drafts included), units budgeted."""
        return [{k: v for k, v in row.items() if k != "max_k"} for row in self._planner.spend_summary()]


def _raise_or_return(out: Any) -> BaseMessage:
    if isinstance(out, BaseException):
        raise out
    return out


precompute_signatures(CascadeRouter, ("_invoke", "_ainvoke", "_run", "_arun"))
