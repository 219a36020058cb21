"""`AdaptiveRouter`: a LangChain Runnable that decides per query how much compute to spend, and spends it.

``prompt | router | parser`` works like a chat model in a chain. For each query the router reads predicted
reward curves from a probe, allocates the budget over a window of queries, and executes the chosen option of
its strategy (best-of-k with a reranker, a cheap/expensive route, or both). ``batch``/``abatch`` allocate
per window of ``window_size`` inputs (the probe runs once per window); concurrent ``ainvoke`` calls are
gathered by a micro-batcher (``window_size`` items or ``max_wait_ms``) and allocated together; a lone
``invoke`` or ``stream`` uses the calibrated threshold (see `adaptive_router.allocation.planning`). The
stages are `BaseRouter`'s; this class only executes plans: it sends every planned option's requests (all
of a batch's at most ``max_concurrency`` at a time) and lets the strategy rerank them.

With a best-of-k whose reranker gives evidence per sample (a verifier's pass/fail, a majority vote's
answers; a reward model or judge with a fitted ``ScoreEvidence``), ``rounds="auto"`` (the default) samples in
rounds instead: every query of the window gets its first samples, the reranker reads them, and the window's
`adaptive_router.allocation.RoundPlanner` spends the rest of the window's budget where the evidence says
more samples still pay (a solved query stops), one round of requests at a time for the whole batch. The
probe's curves are its prior. A lone ``invoke`` keeps sampling while a sample's expected gain exceeds the
calibrated threshold's λ, within ``max_k`` and the ledger. ``rounds=None`` (or ``"off"``) samples one-shot:
the planned k at once. Streaming with rounds yields the chosen answer once the last round is read.

Run-time settings, per call, through ``config["configurable"]``: ``budget_per_query`` (units per query),
``max_k`` (cap on k), ``strategy`` (a strategy object or a name in ``alternatives``) and ``rounds``.

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

In rounds, a verifier stops a query as soon as one sample passes:

>>> from adaptive_router.strategies import VerifierReranker
>>> model = GenericFakeChatModel(messages=iter([AIMessage("7")] * 8))
>>> verifier = VerifierReranker(verify=lambda prompt, answer: answer == "7")
>>> router = AdaptiveRouter(strategy=BestOfK(model, verifier, max_k=4), budget_per_query=2.0)
>>> [m.response_metadata["adaptive_router"]["k"] for m in router.batch(["3 + 4 =", "5 + 2 ="])]
[1, 1]
>>> router.spend_summary()[0]["allocated"]            # the unspent 2 units carry over to later windows
2.0
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

from adaptive_router.allocation import Ladder, PlanSpec, Rounds
from adaptive_router.errors import ConfigError
from adaptive_router.runnables._with_config import config_arg, precompute_signatures
from adaptive_router.runnables.base import BaseRouter
from adaptive_router.runnables.metadata import METADATA_KEY, annotate, plan_metadata
from adaptive_router.runnables.plans import Plan, RunSettings, check_probe, prepare_input
from adaptive_router.runnables.rounds import RoundSlot
from adaptive_router.strategies.base import Request, SampleBatch, Strategy, StrategyResult

__all__ = ["DEFAULT_ROUNDS", "AdaptiveRouter"]


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
    rounds : {"auto", "off"}, Rounds or None
        ``"auto"`` (default): sample in rounds when the strategy's reranker gives evidence the planner can
        read (`BestOfK` with a `VerifierReranker` or a `MajorityVoteReranker`, ``max_k > 1``), one-shot
        otherwise. A `Rounds` object: rounds with those settings (a strategy without evidence is a
        `ConfigError`). ``None`` or ``"off"``: one-shot. Per call: ``config["configurable"]["rounds"]``.
    """

    strategy: Any
    max_k: int | None = None
    alternatives: dict[str, Any] = Field(default_factory=dict)
    rounds: Any = "auto"

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
        rounds = _rounds(conf.get("rounds", self.rounds), strategy, spec)
        evidence = None if rounds is None else getattr(strategy, "evidence", None)
        return RunSettings(spec, strategy, name, rounds, evidence)

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

    @staticmethod
    def _answer_chunks(message: Any) -> Iterator[AIMessageChunk]:
        """A finished answer as a stream: its text, then a chunk with the metadata."""
        if isinstance(message, BaseException):
            raise message
        yield AIMessageChunk(content=message.content)
        meta = message.response_metadata[METADATA_KEY]
        yield AIMessageChunk(content="", response_metadata={METADATA_KEY: meta})

    def _transform(self, inputs: Iterator[Any], config: RunnableConfig) -> Iterator[BaseMessage]:
        settings = self._settings(config)
        (plan,) = self._plan_window([prepare_input(self._last_input(inputs), settings)])
        if isinstance(plan, BaseException):
            raise plan
        if isinstance(plan, RoundSlot):  # rounds: the answer is known only after the last round
            (answer,) = self._execute([plan], [config])
            yield from self._answer_chunks(answer)
            return
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
        if isinstance(plan, RoundSlot):
            (answer,) = await self._aexecute([plan], [config])
            for chunk in self._answer_chunks(answer):
                yield chunk
            return
        async for piece in settings.strategy.astream(plan.item.messages, plan.decision.option, config):
            yield self._chunk(piece, plan)


def _rounds(value: Any, strategy: Any, spec: PlanSpec) -> Rounds | None:
    """The `Rounds` a call runs with, or None for one-shot.

    ``"auto"``: rounds when the reranker gives evidence; an explicit `Rounds` with a strategy that gives none
    is a `ConfigError`. A call capped at one sample (``max_k=1``) has nothing to decide: one-shot.
    """
    if value is None or value == "off":
        return None
    kind = getattr(strategy, "evidence", None)
    rounds: Rounds | None
    if isinstance(value, Rounds):
        value.evidence_for(kind)  # a clear error now, before anything is sent
        rounds = value
    elif value == "auto":
        rounds = DEFAULT_ROUNDS if DEFAULT_ROUNDS.gives_evidence(kind) else None
    else:
        raise ConfigError(f"rounds={value!r}; choose 'auto', 'off', None or a Rounds(...)")
    max_k = int(spec.ladder.max_k) if spec.max_k is None else min(int(spec.ladder.max_k), spec.max_k)
    return rounds if max_k > 1 else None


DEFAULT_ROUNDS = Rounds()
"""The settings ``rounds="auto"`` runs with."""

precompute_signatures(AdaptiveRouter, ("_transform", "_atransform"))
