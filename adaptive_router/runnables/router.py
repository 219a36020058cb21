"""`AdaptiveRouter`: a LangChain chat model that decides per query how much compute to spend, and spends it.

It is a `langchain_core.language_models.BaseChatModel` (see `adaptive_router.runnables.base`): ``prompt |
router | parser``, ``create_agent(model=router, tools=[...])``, ``bind_tools`` and
``with_structured_output`` (forwarded to every wrapped model) work as with any chat model.

For each query the router reads predicted reward curves from a probe, allocates the budget over a window of
queries, and executes the chosen option of its strategy (best-of-k with a reranker, a cheap/expensive
route, or both). ``batch``/``abatch`` (and ``generate`` over many prompts) allocate per window of
``window_size`` inputs (the probe runs once per window); concurrent ``ainvoke`` calls are gathered by a
micro-batcher (``window_size`` items or ``max_wait_ms``) and allocated together; a lone ``invoke`` or
``stream`` uses the calibrated threshold (see `adaptive_router.allocation.planning`). The stages are
`BaseRouter`'s; this class only executes plans: it sends every planned option's requests (all of a batch's
at most ``max_concurrency`` at a time) and lets the strategy rerank them.

With a best-of-k whose reranker gives evidence per sample (a verifier's pass/fail, a majority vote's
answers; a reward model or judge with a fitted ``ScoreEvidence``), ``rounds="auto"`` (the default) samples in
rounds instead: every query of the window gets its first samples, the reranker reads them, and the window's
`adaptive_router.allocation.RoundPlanner` spends the rest of the window's budget where the evidence says
more samples still pay (a solved query stops), one round of requests at a time for the whole batch. The
probe's curves are its prior. A lone ``invoke`` keeps sampling while a sample's expected gain exceeds the
calibrated threshold's λ, within ``max_k`` and the ledger. ``rounds=None`` (or ``"off"``) samples one-shot:
the planned k at once.

Streaming: k = 1 streams the chosen model's tokens as they come; k > 1 samples the candidates without
streaming them (their runs are hidden from streaming handlers, see `adaptive_router.runnables.tracing`)
and streams the chosen answer once the reranker has chosen; in rounds, once the last round is read. The
last chunk carries the usage of every request, a finish reason and the metadata.

Run-time settings, per call, through ``config["configurable"]``: ``budget_per_query`` (units per query),
``max_k`` (cap on k), ``strategy`` (a strategy object or a name in ``alternatives``) and ``rounds``.

Each output `AIMessage` carries ``response_metadata["adaptive_router"]`` (a `RouterMetadata`): the chosen
procedure and k, the predicted values, calls made, tokens (every request's; also the message's
``usage_metadata``), cost in units and, with ``prices``, in dollars, reranker scores, the chosen and
rejected candidate runs, and whether the probe's uniform fallback was active.

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
>>> [spec.id for spec in router.config_specs]
['budget_per_query', 'max_k', 'strategy', 'rounds']

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

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar

from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_executor_for_config, patch_config
from langchain_core.runnables.utils import gather_with_concurrency
from pydantic import Field, PrivateAttr
from typing_extensions import override

from adaptive_router.allocation import Ladder, PlanSpec, Rounds
from adaptive_router.errors import ConfigError
from adaptive_router.runnables.base import BaseRouter, answer_chunks, last_chunk
from adaptive_router.runnables.metadata import METADATA_KEY, annotate, plan_metadata
from adaptive_router.runnables.plans import Plan, RunSettings, check_probe
from adaptive_router.runnables.route_fallback import Fallback, falls_back
from adaptive_router.strategies.base import Request, SampleBatch, Strategy, StrategyResult

__all__ = ["DEFAULT_ROUNDS", "AdaptiveRouter"]


class AdaptiveRouter(BaseRouter):
    """Windowed budget allocation in front of a best-of-k / route strategy; a LangChain chat model.

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
    model_fallback : bool
        When every request of a route's model fails, try its other models in cost order if the ledger's
        balance covers one (default; see `adaptive_router.runnables.route_fallback`). False: the error.
    prices, stop, temperature, max_tokens, streaming
        See `BaseRouter`; ``prices`` must price every procedure of every strategy (and ``"judge"`` for an
        LLM judge's tokens).
    """

    strategy: Any
    max_k: int | None = None
    alternatives: dict[str, Any] = Field(default_factory=dict)
    rounds: Any = "auto"
    model_fallback: bool = True

    _ladder: Ladder = PrivateAttr()
    _alternative_ladders: dict[str, Ladder] = PrivateAttr()

    _CONFIGURABLE: ClassVar[dict[str, tuple[Any, str]]] = {
        "budget_per_query": (float, "Average units per query for this call."),
        "max_k": (int, "Cap on samples per query for this call."),
        "strategy": (Any, "A strategy object, or the name of one in the router's alternatives."),
        "rounds": (Any, "'auto', 'off'/None or a Rounds(...): how this call samples."),
    }

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
    def _priced(self) -> list[str]:
        names: set[str] = set()
        for strategy in [self.strategy, *self.alternatives.values()]:
            names.update(strategy.ladder.procedures)
            if getattr(getattr(strategy, "reranker", None), "cost_per_candidate", 0.0):
                names.add("judge")
        return sorted(names)

    @override
    def _with_models(self, fn: Callable[[Any], Any]) -> AdaptiveRouter:
        def mapped(strategy: Any) -> Any:
            with_models = getattr(strategy, "with_models", None)
            if with_models is None:
                raise ConfigError(f"{strategy!r} cannot rebind its models (it has no with_models(fn))")
            return with_models(fn)

        update = {
            "strategy": mapped(self.strategy),
            "alternatives": {name: mapped(s) for name, s in self.alternatives.items()},
        }
        return self._copy_with(**update)  # type: ignore[return-value]

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
        rounds = _rounds(conf.get("rounds", self.rounds), strategy, spec, self.probe)
        evidence = None if rounds is None else getattr(strategy, "evidence", None)
        return RunSettings(spec, strategy, name, rounds, evidence, self.prices)

    # ------------------------------------------------------------------ executing plans
    @override
    def _requests(self, slots: list[Any]) -> tuple[list[Any], dict[int, list[Request]]]:
        """The outputs so far (errors kept) and the requests of every planned slot."""
        out = list(slots)
        requests: dict[int, list[Request]] = {}
        for i, slot in enumerate(slots):
            if isinstance(slot, Plan):
                try:
                    reqs = slot.settings.strategy.requests(slot.item.messages, slot.decision.option)
                    requests[i] = [r.with_kwargs(slot.item.kwargs) for r in reqs]
                except Exception as exc:
                    out[i] = exc
        return out, requests

    @staticmethod
    def _finish_config(config: RunnableConfig) -> RunnableConfig:
        """A reranker's own requests (an LLM judge) run one at a time per query under a concurrency cap."""
        return patch_config(config, max_concurrency=1) if config.get("max_concurrency") else config

    def _finish(
        self, plan: Plan, batch: SampleBatch, config: RunnableConfig, fallback: Fallback | None = None
    ) -> Any:
        strategy = plan.settings.strategy
        option = plan.decision.option if fallback is None else fallback.option
        try:
            result = strategy.finish(plan.item.messages, option, batch, self._finish_config(config))
            return annotate(result.message, plan_metadata(plan, result, fallback))
        except Exception as exc:
            return exc

    async def _afinish(
        self, plan: Plan, batch: SampleBatch, config: RunnableConfig, fallback: Fallback | None = None
    ) -> Any:
        strategy = plan.settings.strategy
        option = plan.decision.option if fallback is None else fallback.option
        try:
            result = await strategy.afinish(plan.item.messages, option, batch, self._finish_config(config))
            return annotate(result.message, plan_metadata(plan, result, fallback))
        except Exception as exc:
            return exc

    def _fall_back(
        self,
        slots: list[Any],
        batches: dict[int, SampleBatch],
        out: list[Any],
        fallbacks: dict[int, Fallback],
    ) -> dict[int, list[Request]]:
        """The requests of the queries that fall back to another model now (each charged to its ledger);
        a query with nothing left to try gets its original error."""
        requests: dict[int, list[Request]] = {}
        for i, batch in batches.items():
            plan = slots[i]
            if not self.model_fallback or not isinstance(out[i], Exception) or not falls_back(plan, batch):
                continue
            fallback = fallbacks.setdefault(i, Fallback(plan, self._core.planner))
            option = fallback.fail(batch)
            if option is None:
                out[i] = fallback.error()
                continue
            try:
                reqs = plan.settings.strategy.requests(plan.item.messages, option)
                requests[i] = [r.with_kwargs(plan.item.kwargs) for r in reqs]
            except Exception as exc:  # pragma: no cover - the ladder's own options always have requests
                out[i] = exc
        return requests

    @override
    def _results(
        self, slots: list[Any], batches: dict[int, SampleBatch], config: list[RunnableConfig]
    ) -> list[Any]:
        """Each plan's strategy reranks its candidates (in a thread pool sized by ``max_concurrency``); a
        query whose model failed falls back to the next one the budget covers (`route_fallback`)."""
        out = list(slots)
        fallbacks: dict[int, Fallback] = {}

        def finish(pair: tuple[int, SampleBatch]) -> Any:
            return self._finish(slots[pair[0]], pair[1], config[pair[0]], fallbacks.get(pair[0]))

        while batches:
            if len(batches) == 1:
                done = [finish(next(iter(batches.items())))]
            else:
                with get_executor_for_config(config[0]) as executor:
                    done = list(executor.map(finish, list(batches.items())))
            for i, result in zip(list(batches), done, strict=True):
                out[i] = result
            batches = self._send(self._fall_back(slots, batches, out, fallbacks), config)
        return out

    @override
    async def _aresults(
        self, slots: list[Any], batches: dict[int, SampleBatch], config: list[RunnableConfig]
    ) -> list[Any]:
        out = list(slots)
        fallbacks: dict[int, Fallback] = {}
        while batches:
            finishing = [self._afinish(slots[i], b, config[i], fallbacks.get(i)) for i, b in batches.items()]
            if len(finishing) == 1:
                done = [await finishing[0]]
            else:
                done = await gather_with_concurrency(config[0].get("max_concurrency") or None, *finishing)
            for i, result in zip(list(batches), done, strict=True):
                out[i] = result
            batches = await self._asend(self._fall_back(slots, batches, out, fallbacks), config)
        return out

    # ------------------------------------------------------------------ streaming
    @staticmethod
    def _passed(piece: AIMessageChunk, seen: dict[str, Any]) -> AIMessageChunk:
        """A chunk of the chosen model's stream as the router's: its usage and response metadata go to the
        last chunk instead (the total of every request, and a finish reason given once)."""
        seen.update(piece.response_metadata)
        return piece.model_copy(
            update={"usage_metadata": None, "response_metadata": {}, "chunk_position": None}
        )

    def _pieces(self, plan: Plan, piece: AIMessageChunk | StrategyResult, seen: dict[str, Any],
                fallback: Fallback | None = None) -> Iterator[AIMessageChunk]:  # fmt: skip
        if not isinstance(piece, StrategyResult):
            if piece.content or piece.tool_call_chunks:
                yield self._passed(piece, seen)
            else:  # an empty chunk (the model's own "last" marker): only its metadata is kept
                seen.update(piece.response_metadata)
            return
        message = annotate(piece.message, plan_metadata(plan, piece, fallback))
        if int(plan.decision.option.k) > 1:  # the chosen candidate, once the reranker has chosen
            yield from answer_chunks(message)
            return
        meta = {**seen, METADATA_KEY: message.response_metadata[METADATA_KEY]}
        yield last_chunk(meta, message.usage_metadata, bool(message.tool_calls), None)

    def _stream_failed(
        self, plan: Plan, option: Any, fallback: Fallback | None, error: Exception
    ) -> tuple[Fallback, Any]:
        """After a stream failed before its first chunk: the fallback and its next option (charged), or
        raise the original error when there is none."""
        calls = len(plan.settings.strategy.requests(plan.item.messages, option))
        batch = SampleBatch(calls=calls, failed_calls=calls, errors=[error], requested=int(option.k))
        if not self.model_fallback or not falls_back(plan, batch):
            raise error
        fallback = fallback or Fallback(plan, self._core.planner)
        option = fallback.fail(batch)
        if option is None:
            raise fallback.error()
        return fallback, option

    @override
    def _stream_slot(self, slot: Any, config: RunnableConfig) -> Iterator[AIMessageChunk]:
        """The chosen model's stream; a fallback's when it fails before its first chunk."""
        if not isinstance(slot, Plan):  # an error, or rounds: the answer is known after the last round
            yield from super()._stream_slot(slot, config)
            return
        strategy, option, fallback = slot.settings.strategy, slot.decision.option, None
        while True:
            seen: dict[str, Any] = {}
            started = False
            try:
                for piece in strategy.stream(slot.item.messages, option, config, slot.item.kwargs):
                    for chunk in self._pieces(slot, piece, seen, fallback):
                        started = True
                        yield chunk
                return
            except Exception as exc:
                if started:
                    raise
                fallback, option = self._stream_failed(slot, option, fallback, exc)

    @override
    async def _astream_slot(self, slot: Any, config: RunnableConfig) -> AsyncIterator[AIMessageChunk]:
        if not isinstance(slot, Plan):
            async for chunk in super()._astream_slot(slot, config):
                yield chunk
            return
        strategy, option, fallback = slot.settings.strategy, slot.decision.option, None
        while True:
            seen: dict[str, Any] = {}
            started = False
            try:
                async for piece in strategy.astream(slot.item.messages, option, config, slot.item.kwargs):
                    for chunk in self._pieces(slot, piece, seen, fallback):
                        started = True
                        yield chunk
                return
            except Exception as exc:
                if started:
                    raise
                fallback, option = self._stream_failed(slot, option, fallback, exc)


def _rounds(value: Any, strategy: Any, spec: PlanSpec, probe: Any = None) -> Rounds | None:
    """The `Rounds` a call runs with, or None for one-shot.

    ``"auto"``: rounds when the reranker gives evidence, with the settings the probe's training chose for
    the call's budget and that evidence (``probe.round_choices``, from ``rounds.json``) or else
    ``DEFAULT_ROUNDS``; an explicit `Rounds` with a strategy that gives none is a `ConfigError`. A call
    capped at one sample (``max_k=1``) has nothing to decide: one-shot.
    """
    if value is None or value == "off":
        return None
    kind = getattr(strategy, "evidence", None)
    rounds: Rounds | None
    if isinstance(value, Rounds):
        value.evidence_for(kind)  # a clear error now, before anything is sent
        rounds = value
    elif value == "auto":
        chosen = (getattr(probe, "round_choices", None) or {}).get(kind)
        rounds = DEFAULT_ROUNDS if chosen is None else chosen.at(spec.budget_per_query)
        rounds = rounds if rounds.gives_evidence(kind) else None
    else:
        raise ConfigError(f"rounds={value!r}; choose 'auto', 'off', None or a Rounds(...)")
    max_k = int(spec.ladder.max_k) if spec.max_k is None else min(int(spec.ladder.max_k), spec.max_k)
    return rounds if max_k > 1 else None


DEFAULT_ROUNDS = Rounds()
"""The settings ``rounds="auto"`` runs with."""
