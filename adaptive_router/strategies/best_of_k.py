"""Best-of-k sampling with a reranker, over one or several models (the engine behind `BestOfK` and `Route`).

`SamplingStrategy` holds named models with a cost per sample, an optional reranker and ``max_k``; its ladder
(`adaptive_router.allocation.Ladder`) lists the options ``(procedure, k, cost)``. Executing an option draws k
samples from the procedure's model (one ``n=k`` request where the backend honours ``n``, else k concurrent
requests), reranks the successful ones and returns the best. A sample that fails is reported, not retried and
not charged twice; only when every sample fails does the option raise (the first error, with its type).

Examples
--------
>>> from langchain_core.language_models import GenericFakeChatModel
>>> from langchain_core.messages import AIMessage, HumanMessage
>>> from adaptive_router.strategies import BestOfK, MajorityVoteReranker
>>> model = GenericFakeChatModel(messages=iter([AIMessage("4"), AIMessage("5"), AIMessage("4")]))
>>> strategy = BestOfK(model=model, reranker=MajorityVoteReranker(), max_k=3)
>>> option = strategy.ladder.options[-1]
>>> result = strategy.execute([HumanMessage("2 + 2 =")], option)
>>> result.message.content, result.calls, sorted(result.scores)
('4', 3, [0.3333333333333333, 0.6666666666666666, 0.6666666666666666])
"""

from __future__ import annotations

import copy
import math
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import add_usage
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config

from adaptive_router.errors import ConfigError
from adaptive_router.prompts.messages import prompt_text
from adaptive_router.strategies.base import (
    Reading,
    Request,
    SampleBatch,
    StrategyResult,
    asend_all,
    honours_n,
    merge,
    requests_for,
    send_all,
    unbound,
    usage_of,
)
from adaptive_router.strategies.rerankers import MajorityVoteReranker, Reranker, Scores, candidate_text

__all__ = ["BestOfK", "SamplingStrategy"]


def _as_runnable(model: Any, name: str) -> Runnable[Any, Any]:
    if isinstance(model, Runnable):
        return model
    raise ConfigError(f"model {name!r} is a {type(model).__name__}; pass a LangChain chat model or Runnable")


class SamplingStrategy:
    """Named models, a cost per sample each, an optional reranker and ``max_k``.

    Parameters
    ----------
    models : mapping of str to Runnable
        Procedure name -> chat model (or Runnable returning a message or str). Names must match the
        procedures the probe predicts curves for.
    costs : mapping of str to float
        Units one sample of each procedure costs (> 0).
    reranker : Reranker, optional
        Picks the best of k candidates; required when ``max_k > 1``.
    max_k : int
        Largest number of samples per query.
    use_n : bool, optional
        Force (True) or forbid (False) one ``n=k`` request; ``None`` asks the model (`honours_n`).
    """

    def __init__(
        self,
        *,
        models: Mapping[str, Any],
        costs: Mapping[str, float],
        reranker: Reranker | None = None,
        max_k: int = 1,
        use_n: bool | None = None,
    ) -> None:
        self.models = models
        self.costs = costs
        self.reranker = reranker
        self.max_k = max_k
        self.use_n = use_n
        self._validate()

    # ------------------------------------------------------------------ validation / ladder
    def _validate(self) -> None:
        if not self.models:
            raise ConfigError("a strategy needs at least one model")
        if set(self.models) != set(self.costs):
            raise ConfigError(
                f"costs must name exactly the models: models {sorted(self.models)}, "
                f"costs {sorted(self.costs)}"
            )
        for name, cost in self.costs.items():
            if not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost <= 0:
                raise ConfigError(f"cost of {name!r} must be a finite number > 0, got {cost!r}")
        self.models = {name: _as_runnable(m, name) for name, m in self.models.items()}
        if isinstance(self.max_k, bool) or not isinstance(self.max_k, int) or self.max_k < 1:
            raise ConfigError(f"max_k must be an int >= 1, got {self.max_k!r}")
        if self.max_k > 1 and self.reranker is None:
            raise ConfigError(
                f"max_k={self.max_k} needs a reranker to pick the best sample: pass e.g. "
                "reranker=MajorityVoteReranker() or VerifierReranker(verify=...)"
            )
        if self.reranker is not None and not isinstance(self.reranker, Reranker):
            raise ConfigError(f"reranker must be a Reranker, got {type(self.reranker).__name__}")

    @property
    def procedures(self) -> tuple[str, ...]:
        """Procedure names, cheapest first."""
        return tuple(sorted(self.costs, key=lambda p: self.costs[p]))

    def unit_costs(self) -> dict[str, float]:
        """Cost of one sample per procedure (plus the reranker's per-candidate cost when k can exceed 1)."""
        extra = self.reranker.cost_per_candidate if (self.reranker is not None and self.max_k > 1) else 0.0
        return {p: float(self.costs[p]) + float(extra) for p in self.procedures}

    @property
    def ladder(self) -> Any:
        """The options ``(procedure, k, cost)`` a query can get, as an allocation `Ladder`."""
        from adaptive_router.allocation import Ladder

        costs = self.unit_costs()
        if len(costs) == 1:
            ((procedure, cost),) = costs.items()
            return Ladder.best_of_k(self.max_k, cost=cost, procedure=procedure)
        if self.max_k == 1:
            return Ladder.routes(costs)
        return Ladder.grid(costs, max_k=self.max_k)

    @property
    def evidence(self) -> str | None:
        """What a round planner can read from each sample: the reranker's `Reranker.evidence` for one
        procedure; ``None`` (one-shot only) without a reranker or with several procedures."""
        if self.reranker is None or len(self.costs) != 1:
            return None
        return self.reranker.evidence

    def _check_option(self, option: Any) -> Runnable[Any, Any]:
        model = self.models.get(option.procedure)
        if model is None:
            raise ConfigError(f"option procedure {option.procedure!r} is not one of {sorted(self.models)}")
        if not 1 <= int(option.k) <= self.max_k:
            raise ConfigError(f"option k={option.k} is outside 1..max_k={self.max_k}")
        return model

    def fallbacks(self, option: Any) -> tuple[Any, ...]:
        """The options to try, in order, when every request of `option` failed: the same k on the other
        models, the dearer ones first (cheapest of them first), then the cheaper ones (dearest first).

        A dearer model is the likelier to answer well what the planned one could not; a cheaper one is
        the likelier to fit what the budget has left. One model: none.

        Examples
        --------
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> from adaptive_router.strategies import Route
        >>> m = GenericFakeChatModel(messages=iter([]))
        >>> route = Route(models={"small": m, "mid": m, "large": m}, costs={"small": 1, "mid": 3, "large": 9})
        >>> mid = route.ladder.options[1]
        >>> [o.procedure for o in route.fallbacks(mid)]
        ['large', 'small']
        """
        others = [o for o in self.ladder if o.k == option.k and o.procedure != option.procedure]
        dearer = sorted((o for o in others if o.cost >= option.cost), key=lambda o: o.cost)
        cheaper = sorted((o for o in others if o.cost < option.cost), key=lambda o: -o.cost)
        return (*dearer, *cheaper)

    def spent(self, option: Any, batch: SampleBatch) -> float:
        """Units `option`'s requests cost: every candidate asked for (failed ones included: they may have
        been billed), without a reranker's.

        Examples
        --------
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> s = BestOfK(GenericFakeChatModel(messages=iter([])), max_k=1, cost=2.5)
        >>> s.spent(s.ladder.options[0], SampleBatch.of([RuntimeError("down")]))
        2.5
        """
        return float(self.costs[option.procedure]) * batch.requested

    def with_models(self, fn: Callable[[Runnable[Any, Any]], Any]) -> SamplingStrategy:
        """A copy whose models are ``fn(model)`` (e.g. with tools bound), the rest shared.

        Examples
        --------
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> from langchain_core.runnables import RunnableBinding
        >>> s = BestOfK(GenericFakeChatModel(messages=iter([])), max_k=1)
        >>> bound = s.with_models(lambda m: m.bind(stop=["END"]))
        >>> isinstance(bound.model, RunnableBinding), bound.models["default"] is bound.model
        (True, True)
        """
        new = copy.copy(self)
        new.models = {name: _as_runnable(fn(m), name) for name, m in self.models.items()}
        for attr, name in (
            ("model", getattr(self, "procedure", None)),
            ("cheap", "cheap"),
            ("expensive", "expensive"),
        ):
            if getattr(self, attr, None) is not None and name in new.models:
                setattr(new, attr, new.models[name])
        return new

    def _use_n(self, model: Any) -> bool:
        return honours_n(model) if self.use_n is None else bool(self.use_n)

    # ------------------------------------------------------------------ execution
    def requests(self, messages: list[BaseMessage], option: Any) -> list[Request]:
        """The requests `option` sends: one ``n=k`` request where the model honours ``n``, else k."""
        model = self._check_option(option)
        return requests_for(model, messages, int(option.k), use_n=self._use_n(model))

    def _reranking(
        self, messages: list[BaseMessage], batch: SampleBatch
    ) -> tuple[Reranker, str, list[str]] | None:
        """The reranker, prompt and candidate texts to score, or ``None`` when there is nothing to choose.

        Raises the first request's error when no request succeeded (keeping its type, e.g.
        RetryExhaustedError).
        """
        batch.raise_if_empty()
        if len(batch.candidates) < 2 or self.reranker is None:
            return None
        return self.reranker, prompt_text(messages), [candidate_text(c) for c in batch.candidates]

    def finish(
        self,
        messages: list[BaseMessage],
        option: Any,
        batch: SampleBatch,
        config: RunnableConfig | None = None,
    ) -> StrategyResult:
        """Rerank the candidates `option`'s requests returned, and account for them."""
        rerank = self._reranking(messages, batch)
        scores = None if rerank is None else rerank[0].score(rerank[1], rerank[2], config=config)
        return self._result(option, batch, scores)

    async def afinish(
        self,
        messages: list[BaseMessage],
        option: Any,
        batch: SampleBatch,
        config: RunnableConfig | None = None,
    ) -> StrategyResult:
        """Async :meth:`finish`."""
        rerank = self._reranking(messages, batch)
        scores = None if rerank is None else await rerank[0].ascore(rerank[1], rerank[2], config=config)
        return self._result(option, batch, scores)

    # ------------------------------------------------------------------ rounds: read as they arrive
    def _reader(self, texts: list[str]) -> tuple[Reranker, str | None]:
        kind = self.evidence
        if self.reranker is None or kind is None:
            raise ConfigError(f"{self!r} gives no evidence per sample; it can only run one-shot")
        if kind == "answers" and not callable(getattr(self.reranker, "answers", None)):
            raise ConfigError(f"{type(self.reranker).__name__} gives answers but has no answers(candidates)")
        return self.reranker, kind

    def read(
        self, messages: list[BaseMessage], candidates: list[AIMessage], config: RunnableConfig | None = None
    ) -> Reading:
        """The evidence of new `candidates` (one each: reward, answer or score), each read once.

        Examples
        --------
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> from langchain_core.messages import HumanMessage
        >>> from adaptive_router.strategies import VerifierReranker
        >>> verifier = VerifierReranker(verify=lambda prompt, candidate: candidate == "7")
        >>> s = BestOfK(GenericFakeChatModel(messages=iter([])), verifier)
        >>> s.read([HumanMessage("3 + 4 =")], [AIMessage("7"), AIMessage("8")]).evidence
        [1.0, 0.0]
        """
        texts = [candidate_text(c) for c in candidates]
        reranker, kind = self._reader(texts)
        if kind == "answers":
            return Reading(list(reranker.answers(texts)))  # type: ignore[attr-defined]
        scores = reranker.score(prompt_text(messages), texts, config=config)
        return Reading(list(scores.scores), scores.calls, scores.usage)

    async def aread(
        self, messages: list[BaseMessage], candidates: list[AIMessage], config: RunnableConfig | None = None
    ) -> Reading:
        """Async :meth:`read`."""
        texts = [candidate_text(c) for c in candidates]
        reranker, kind = self._reader(texts)
        if kind == "answers":
            return Reading(list(reranker.answers(texts)))  # type: ignore[attr-defined]
        scores = await reranker.ascore(prompt_text(messages), texts, config=config)
        return Reading(list(scores.scores), scores.calls, scores.usage)

    def finish_read(self, option: Any, batch: SampleBatch, reading: Reading) -> StrategyResult:
        """The result of candidates read as they arrived (`read`), without scoring any of them again.

        The best reward or score is selected; answers by their vote share (ties: the earliest).
        """
        batch.raise_if_empty()
        ev = reading.evidence
        values = MajorityVoteReranker.shares(ev) if self.evidence == "answers" else [float(x) for x in ev]
        return self._result(option, batch, Scores(values, reading.calls, reading.usage))

    def _result(self, option: Any, batch: SampleBatch, scores: Scores | None) -> StrategyResult:
        selected = 0
        usage = batch.usage
        if scores is not None:
            if len(scores.scores) != len(batch.candidates):
                raise ConfigError(
                    f"the reranker returned {len(scores.scores)} scores "
                    f"for {len(batch.candidates)} candidates"
                )
            selected = max(range(len(scores.scores)), key=lambda i: (scores.scores[i], -i))
            usage = add_usage(usage, scores.usage)
        judge_calls = scores.calls if scores is not None else 0
        judge_cost = self.reranker.cost_per_candidate * judge_calls if self.reranker is not None else 0.0
        return StrategyResult(
            message=batch.candidates[selected],
            procedure=option.procedure,
            k=int(option.k),
            allocated_cost=float(option.cost),
            calls=batch.calls,
            failed_calls=batch.failed_calls,
            candidates=len(batch.candidates),
            usage=usage,
            cost=self.spent(option, batch) + judge_cost,
            scores=None if scores is None else [float(s) for s in scores.scores],
            selected=selected,
            judge_calls=judge_calls,
            errors=[f"{type(e).__name__}: {e}" for e in batch.errors],
            run_ids=list(batch.run_ids),
            model_usage=batch.usage,
        )

    def execute(
        self,
        messages: list[BaseMessage],
        option: Any,
        config: RunnableConfig | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> StrategyResult:
        """Run `option` for `messages` and return the best candidate with its accounting.

        At most ``config["max_concurrency"]`` of its requests run at a time; `kwargs` go with every request.
        """
        config = ensure_config(config)
        pairs = [(r.with_kwargs(kwargs or {}), config) for r in self.requests(messages, option)]
        return self.finish(messages, option, merge(send_all(pairs, config.get("max_concurrency"))), config)

    async def aexecute(
        self,
        messages: list[BaseMessage],
        option: Any,
        config: RunnableConfig | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> StrategyResult:
        """Async :meth:`execute`."""
        config = ensure_config(config)
        pairs = [(r.with_kwargs(kwargs or {}), config) for r in self.requests(messages, option)]
        batch = merge(await asend_all(pairs, config.get("max_concurrency")))
        return await self.afinish(messages, option, batch, config)

    # ------------------------------------------------------------------ streaming
    def _streamed(self, option: Any, chunks: list[AIMessageChunk], run_id: Any) -> StrategyResult:
        merged: AIMessageChunk = chunks[0]
        for chunk in chunks[1:]:
            merged = merged + chunk
        usage = usage_of(merged)
        message = AIMessage(
            content=merged.content,
            tool_calls=merged.tool_calls,
            invalid_tool_calls=merged.invalid_tool_calls,
            response_metadata=dict(merged.response_metadata),
            usage_metadata=usage,
        )
        return StrategyResult(
            message=message,
            procedure=option.procedure,
            k=1,
            allocated_cost=float(option.cost),
            calls=1,
            failed_calls=0,
            candidates=1,
            usage=usage,
            cost=float(self.costs[option.procedure]),
            run_ids=[run_id],
            model_usage=usage,
        )

    def stream(
        self,
        messages: list[BaseMessage],
        option: Any,
        config: RunnableConfig | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> Iterator[AIMessageChunk | StrategyResult]:
        """Yield the answer's chunks, then the `StrategyResult`.

        With k == 1 the chosen model's own stream is passed through; with k > 1 nothing is yielded until the
        reranker has chosen, then the `StrategyResult` alone (the caller streams the chosen message).
        """
        model = self._check_option(option)
        config = ensure_config(config)
        if int(option.k) > 1:
            yield self.execute(messages, option, config, kwargs)
            return
        run_id = uuid.uuid4()
        chunks: list[AIMessageChunk] = []
        target, call = unbound(model, kwargs or {})
        for piece in target.stream(messages, {**config, "run_id": run_id}, **call):
            chunk = _to_chunk(piece)
            chunks.append(chunk)
            yield chunk
        yield self._streamed(option, chunks or [AIMessageChunk(content="")], run_id)

    async def astream(
        self,
        messages: list[BaseMessage],
        option: Any,
        config: RunnableConfig | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[AIMessageChunk | StrategyResult]:
        """Async :meth:`stream`."""
        model = self._check_option(option)
        config = ensure_config(config)
        if int(option.k) > 1:
            yield await self.aexecute(messages, option, config, kwargs)
            return
        run_id = uuid.uuid4()
        chunks: list[AIMessageChunk] = []
        target, call = unbound(model, kwargs or {})
        async for piece in target.astream(messages, {**config, "run_id": run_id}, **call):
            chunk = _to_chunk(piece)
            chunks.append(chunk)
            yield chunk
        yield self._streamed(option, chunks or [AIMessageChunk(content="")], run_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(procedures={list(self.procedures)}, max_k={self.max_k})"


def _to_chunk(piece: Any) -> AIMessageChunk:
    if isinstance(piece, AIMessageChunk):
        return piece
    if isinstance(piece, BaseMessage):
        return AIMessageChunk(content=piece.content)
    if isinstance(piece, str):
        return AIMessageChunk(content=piece)
    raise ConfigError(f"a streamed model yielded {type(piece).__name__}; it must yield message chunks or str")


class BestOfK(SamplingStrategy):
    """Best-of-k sampling from one model: k = 1..max_k samples, the reranker returns the best.

    Parameters
    ----------
    model : Runnable
        A chat model (or Runnable returning a message or str).
    reranker : Reranker, optional
        Required when ``max_k > 1``.
    max_k : int
        Largest k.
    cost : float
        Units one sample costs.
    procedure : str
        The procedure name the probe's curves use for this model.
    use_n : bool, optional
        See `SamplingStrategy`.
    """

    def __init__(
        self,
        model: Any,
        reranker: Reranker | None = None,
        max_k: int = 4,
        *,
        cost: float = 1.0,
        procedure: str = "default",
        use_n: bool | None = None,
    ) -> None:
        self.model = model
        self.cost = cost
        self.procedure = procedure
        super().__init__(
            models={procedure: model}, costs={procedure: cost}, reranker=reranker, max_k=max_k, use_n=use_n
        )
