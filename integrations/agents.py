"""LangChain agent middleware: adaptive compute per model call inside ``create_agent`` (optional extra).

`AdaptiveRouterMiddleware` wraps each model call of an agent: it predicts the query's reward curves with the
probe, picks an option of the strategy with the calibrated threshold (one call at a time, the router's
``threshold`` path, with the same never-over-budget credit ledger), switches the request to the chosen model
(``request.override(model=...)``) and, for k > 1, calls the model k times and keeps the response whose final
message the reranker scores highest. The returned AIMessage carries ``response_metadata["adaptive_router"]``.

Needs ``pip install 'adaptive-router[agents]'`` (``langchain>=1.0``). Strategy models must be chat models.

Examples
--------
>>> from langchain.agents import create_agent                         # doctest: +SKIP
>>> middleware = AdaptiveRouterMiddleware(strategy=Route(cheap=small, expensive=large, costs=(1, 10)),
...                                       probe=probe, budget_per_query=3.0)  # doctest: +SKIP
>>> agent = create_agent(small, tools=[...], middleware=[middleware])  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from adaptive_router.errors import ConfigError
from adaptive_router.runnables._planning import Decision, Planner, RunSettings
from adaptive_router.prompts.messages import message_text, prompt_text
from adaptive_router.strategies.best_of_k import SamplingStrategy
from adaptive_router.strategies.rerankers import Scores

__all__ = ["AdaptiveRouterMiddleware"]


def _last_ai(response: ModelResponse) -> AIMessage | None:
    for message in reversed(response.result):
        if isinstance(message, AIMessage):
            return message
    return None


class AdaptiveRouterMiddleware(AgentMiddleware):
    """Per-call model choice and best-of-k for LangChain agents.

    Parameters
    ----------
    strategy : BestOfK or Route
        Its models must be chat models (the agent binds tools to them).
    probe : CurvePredictor, optional
        Without one every call gets the most expensive option within the budget.
    budget_per_query : float
        Average units per model call.
    max_k : int, optional
        Cap on samples per call.
    calibration_texts : list of str, optional
        Reference queries for the threshold (otherwise the calls seen so far).
    """

    def __init__(
        self,
        *,
        strategy: SamplingStrategy,
        probe: Any = None,
        budget_per_query: float = 1.0,
        max_k: int | None = None,
        calibration_texts: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(strategy, SamplingStrategy):
            raise ConfigError(f"strategy must be BestOfK or Route, got {type(strategy).__name__}")
        for name, model in strategy.models.items():
            if not isinstance(model, BaseChatModel):
                raise ConfigError(f"agent middleware needs chat models; {name!r} is {type(model).__name__}")
        self.strategy = strategy
        self.probe = probe
        self.budget_per_query = budget_per_query
        self.max_k = max_k
        self.calibration_texts = calibration_texts
        self._planner = Planner(probe=probe, calibration_texts=calibration_texts)
        self._settings = RunSettings(strategy, "default", float(budget_per_query), max_k)
        self._planner.check_settings(self._settings)

    def _decide(self, request: ModelRequest) -> Decision:
        messages: list[BaseMessage] = list(request.messages)
        if request.system_message is not None:
            messages = [request.system_message, *messages]
        values, errors, fallback = self._planner.predict([prompt_text(messages)], self._settings)
        (decision,) = self._planner.allocate_window(values, errors, fallback, self._settings)
        if isinstance(decision, BaseException):
            raise decision
        return decision

    def _select(
        self,
        request: ModelRequest,
        decision: Decision,
        outcomes: list[Any],
        score: Callable[[str, list[str]], Scores] | None,
    ) -> tuple[ModelResponse, dict[str, Any]]:
        """The response to keep and its metadata; `score` (None without a reranker) ranks k > 1 responses."""
        responses = [o for o in outcomes if not isinstance(o, BaseException)]
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if not responses:
            raise errors[0]
        scores = None
        best = 0
        if len(responses) > 1 and score is not None:
            texts = [message_text(m) if (m := _last_ai(r)) is not None else "" for r in responses]
            scores = score(prompt_text(list(request.messages)), texts).scores
            best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        meta = {
            "procedure": decision.option.procedure,
            "k": int(decision.option.k),
            "allocated_cost": float(decision.option.cost),
            "predicted": decision.summary(),
            "fallback_active": decision.fallback_active,
            "calls": len(outcomes),
            "failed_calls": len(errors),
            "reranker_scores": scores,
            "selected": best,
            "cost": float(self.strategy.costs[decision.option.procedure]) * len(outcomes),
        }
        return responses[best], meta

    @staticmethod
    def _annotate(response: ModelResponse, meta: dict[str, Any]) -> ModelResponse:
        result = list(response.result)
        for i in range(len(result) - 1, -1, -1):
            if isinstance(result[i], AIMessage):
                msg = result[i]
                update = {"response_metadata": {**msg.response_metadata, "adaptive_router": meta}}
                result[i] = msg.model_copy(update=update)
                break
        return ModelResponse(result=result, structured_response=response.structured_response)

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        """Choose the model and k for this call; call it k times; return the best response."""
        decision = self._decide(request)
        routed = request.override(model=self.strategy.models[decision.option.procedure])
        outcomes: list[Any] = []
        for _ in range(int(decision.option.k)):
            try:
                outcomes.append(handler(routed))
            except Exception as exc:
                outcomes.append(exc)
        reranker = self.strategy.reranker
        response, meta = self._select(request, decision, outcomes, reranker.score if reranker else None)
        return self._annotate(response, meta)

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        """Async :meth:`wrap_model_call`: the k calls run concurrently."""
        decision = self._decide(request)
        routed = request.override(model=self.strategy.models[decision.option.procedure])
        k = int(decision.option.k)
        outcomes = list(await asyncio.gather(*(handler(routed) for _ in range(k)), return_exceptions=True))
        for o in outcomes:
            if isinstance(o, BaseException) and not isinstance(o, Exception):
                raise o
        reranker = self.strategy.reranker
        if k > 1 and reranker is not None:
            texts = [message_text(m) if (m := _last_ai(r)) is not None else "" for r in outcomes
                     if not isinstance(r, BaseException)]  # fmt: skip
            scored = await reranker.ascore(prompt_text(list(request.messages)), texts)

            def score(prompt: str, candidates: list[str]) -> Scores:
                return scored

            response, meta = self._select(request, decision, outcomes, score)
        else:
            response, meta = self._select(request, decision, outcomes, None)
        return self._annotate(response, meta)
