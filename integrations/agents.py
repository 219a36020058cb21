"""LangChain agent middleware: adaptive compute per model call inside ``create_agent`` (optional extra).

`AdaptiveRouterMiddleware` wraps each model call of an agent: it predicts the call's reward curves with the
probe, picks an option of the strategy with the router's planner (one call at a time: the calibrated
threshold, with the same never-over-budget ledger as `AdaptiveRouter`), switches the request to the chosen
model (``request.override(model=...)``) and, for k > 1, calls the model k times and keeps the response the
strategy's reranker scores highest (rerankers compare tool-call turns by their tool calls, see
`adaptive_router.strategies.rerankers.candidate_text`); when every call of the chosen model fails, the next
model in cost order is called if the budget covers it (as in `AdaptiveRouter`). The returned AIMessage carries
``response_metadata["adaptive_router"]`` (a `RouterMetadata`, as from the routers: its ``tokens`` and the
message's ``usage_metadata`` total all k calls).

The routers themselves are chat models too: ``create_agent(model=AdaptiveRouter(...), tools=[...])`` routes
every model turn of the agent through the router (its window, ledger and streaming); the middleware is the
way to keep the agent's own model and route per call.

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

from adaptive_router.allocation import PlanSpec
from adaptive_router.errors import ConfigError
from adaptive_router.prompts.messages import prompt_text
from adaptive_router.runnables.metadata import annotate, plan_metadata
from adaptive_router.runnables.plans import Plan, ProbePlanner, Query, RunSettings, check_probe
from adaptive_router.runnables.route_fallback import Fallback, falls_back
from adaptive_router.runnables.stages import check_calibration_texts
from adaptive_router.strategies import SamplingStrategy, StrategyResult
from adaptive_router.strategies.base import SampleBatch

__all__ = ["AdaptiveRouterMiddleware"]


def _last_ai(response: ModelResponse) -> AIMessage | None:
    for message in reversed(response.result):
        if isinstance(message, AIMessage):
            return message
    return None


def _candidates(outcomes: Sequence[Any]) -> tuple[SampleBatch, list[ModelResponse]]:
    """The k calls' accounting (each response's final AI message is its candidate) and the responses."""
    responses = [o for o in outcomes if not isinstance(o, BaseException)]
    messages = [
        o if isinstance(o, BaseException) else (_last_ai(o) or AIMessage(content="")) for o in outcomes
    ]
    return SampleBatch.of(messages), responses


class AdaptiveRouterMiddleware(AgentMiddleware):
    """Per-call model choice and best-of-k for LangChain agents.

    Parameters
    ----------
    strategy : BestOfK or Route
        Its models must be chat models (the agent binds tools to them).
    probe : CurvePredictor, optional
        Without one every call gets the most expensive option within the budget. It must predict the
        strategy's procedures up to its ``max_k`` (checked here, before any call).
    budget_per_query : float
        Average units per model call.
    max_k : int, optional
        Cap on samples per call.
    calibration_texts : list of str, optional
        Reference queries for the threshold (otherwise the calls seen so far).
    model_fallback : bool
        When every call of the chosen model fails, call the route's next model in cost order if the
        budget covers it (default, as `AdaptiveRouter`); False: the error.

    Raises
    ------
    ConfigError
        A strategy that is not a `SamplingStrategy`, a model that is not a chat model, a probe that does not
        predict the strategy's procedures or k, a bad budget or ``max_k``, empty ``calibration_texts``.
    InfeasibleBudgetError
        The budget is below the cheapest option.
    """

    def __init__(
        self,
        *,
        strategy: SamplingStrategy,
        probe: Any = None,
        budget_per_query: float = 1.0,
        max_k: int | None = None,
        calibration_texts: Sequence[str] | None = None,
        model_fallback: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(strategy, SamplingStrategy):
            raise ConfigError(f"strategy must be BestOfK or Route, got {type(strategy).__name__}")
        for name, model in strategy.models.items():
            if not isinstance(model, BaseChatModel):
                raise ConfigError(f"agent middleware needs chat models; {name!r} is {type(model).__name__}")
        ladder = strategy.ladder
        check_probe(probe, {"strategy": ladder})
        texts = check_calibration_texts(calibration_texts)
        self.strategy = strategy
        self.probe = probe
        self.budget_per_query = budget_per_query
        self.max_k = max_k
        self.calibration_texts = calibration_texts
        self.model_fallback = model_fallback
        self._settings = RunSettings(PlanSpec(ladder, budget_per_query, max_k), strategy)
        self._core = ProbePlanner(probe=probe, calibration_texts=texts)

    def _plan(self, request: ModelRequest) -> Plan:
        messages: list[BaseMessage] = list(request.messages)
        if request.system_message is not None:
            messages = [request.system_message, *messages]
        query = Query(messages, prompt_text(messages), self._settings)
        (plan,) = self._core.plan([query], [query.text], self._settings)
        if isinstance(plan, BaseException):
            raise plan
        return plan

    def _routed(self, request: ModelRequest, option: Any) -> ModelRequest:
        return request.override(model=self.strategy.models[option.procedure])

    def _failed(
        self, plan: Plan, fallback: Fallback | None, batch: SampleBatch
    ) -> tuple[Fallback, Any] | None:
        """After every call of an option failed: the fallback and its next option (charged to the ledger);
        None when the failure is not a model's (the strategy's `finish` then raises it); raises the original
        error when no fallback fits the budget."""
        if not self.model_fallback or not falls_back(plan, batch):
            return None
        fallback = fallback or Fallback(plan, self._core.planner)
        option = fallback.fail(batch)
        if option is None:
            raise fallback.error()
        return fallback, option

    @staticmethod
    def _response(
        plan: Plan, result: StrategyResult, responses: list[ModelResponse], fallback: Fallback | None
    ) -> ModelResponse:
        """The selected response, its final AI message carrying the decision metadata."""
        chosen = responses[result.selected]
        meta = plan_metadata(plan, result, fallback)
        out = list(chosen.result)
        for i in range(len(out) - 1, -1, -1):
            message = out[i]
            if isinstance(message, AIMessage):
                out[i] = annotate(message, meta)
                break
        return ModelResponse(result=out, structured_response=chosen.structured_response)

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        """Choose the model and k for this call; call it k times; return the best response.

        When every call fails, the next model in cost order is called instead if the budget covers it (as
        in `AdaptiveRouter`, see `adaptive_router.runnables.route_fallback`).
        """
        plan = self._plan(request)
        option, fallback = plan.decision.option, None
        while True:
            routed = self._routed(request, option)
            outcomes: list[Any] = []
            for _ in range(int(option.k)):
                try:
                    outcomes.append(handler(routed))
                except Exception as exc:
                    outcomes.append(exc)
            batch, responses = _candidates(outcomes)
            failed = None if batch.candidates else self._failed(plan, fallback, batch)
            if failed is None:
                break
            fallback, option = failed
        result = self.strategy.finish(list(request.messages), option, batch)
        return self._response(plan, result, responses, fallback)

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        """Async :meth:`wrap_model_call`: the probe runs in a worker thread, the k calls concurrently."""
        plan = await asyncio.to_thread(self._plan, request) if self.probe is not None else self._plan(request)
        option, fallback = plan.decision.option, None
        while True:
            routed = self._routed(request, option)
            k = int(option.k)
            outcomes = await asyncio.gather(*(handler(routed) for _ in range(k)), return_exceptions=True)
            batch, responses = _candidates(outcomes)
            failed = None if batch.candidates else self._failed(plan, fallback, batch)
            if failed is None:
                break
            fallback, option = failed
        result = await self.strategy.afinish(list(request.messages), option, batch)
        return self._response(plan, result, responses, fallback)
