"""The decision metadata every routed answer carries: ``response_metadata["adaptive_router"]``.

`RouterMetadata` is its type (the same keys from `AdaptiveRouter`, `CascadeRouter` and the agent middleware;
the cascade adds ``escalated``, ``draft`` and ``escalation_error``; a route that fell back to another model
``fallback``, a `FallbackMetadata`), `Predicted` the allocation part of it.
`router_metadata(message)` reads it back typed.

Examples
--------
>>> from langchain_core.messages import AIMessage
>>> router_metadata(AIMessage("4", response_metadata={"adaptive_router": {"k": 2, "cost": 2.0}}))["k"]
2
>>> router_metadata(AIMessage("4"))
Traceback (most recent call last):
...
adaptive_router.errors.ConfigError: this message carries no response_metadata['adaptive_router']: ...
"""

# No ``from __future__ import annotations`` here: TypedDict reads ``NotRequired`` at runtime.
from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata, add_usage, subtract_usage
from typing_extensions import NotRequired, TypedDict

from adaptive_router.errors import ConfigError
from adaptive_router.runnables.plans import Plan
from adaptive_router.strategies.base import StrategyResult

if TYPE_CHECKING:
    from adaptive_router.runnables.route_fallback import Fallback

__all__ = [
    "METADATA_KEY",
    "CandidateRuns",
    "FailedAttemptRecord",
    "FallbackMetadata",
    "Predicted",
    "RoundRecord",
    "RoundsMetadata",
    "RouterMetadata",
    "annotate",
    "plan_metadata",
    "router_metadata",
]

METADATA_KEY = "adaptive_router"
"""The ``response_metadata`` key of the decision metadata."""


class Predicted(TypedDict):
    """How the option was chosen."""

    values: list[float | None] | None
    """Predicted reward of every option (``None``: disallowed; the whole list ``None`` without a probe)."""
    chosen_value: float | None
    fallback_active: bool
    allocator: str
    """``window``, ``threshold``, ``uniform``, or ``fixed`` (chosen by the router when the probe failed)."""
    window: int
    shadow_price: float | None


class RoundRecord(TypedDict):
    """One round of one query (an entry of `RoundsMetadata` ``per_round``)."""

    round: int
    """The window's round (1 for the first); a query may sit out rounds that others take part in."""
    units: int
    """Samples issued to the query in this round."""
    calls: int
    """Requests sent (one for an ``n=k`` request), failed ones included."""
    failed_calls: int
    cost: float
    """Units this round spent on the query (``units`` times the cost of a sample, failed samples included)."""
    evidence: list[float | str | None]
    """What the reranker read from each successful candidate of the round: the verifier's reward, the
    extracted answer (``None``: no answer) or the score."""
    best: float | str | None
    """The best evidence after this round: the top reward or score, or the plurality answer so far."""
    escalated: NotRequired[bool]
    """Cascade in rounds (`CascadeRouter` with ``cascade_model``), on every round: whether this round sent
    the query to the expensive model (one call; ``units`` is then 0, ``cost`` the escalation's, ``evidence``
    empty and ``best`` the cheap samples' best so far) rather than cheap samples."""


class RoundsMetadata(TypedDict):
    """How an answer was sampled in rounds (``RouterMetadata["rounds"]``)."""

    evidence: str
    """``rewards`` (a verifier), ``answers`` (majority vote) or ``scores`` (a reward model or judge)."""
    stop_reason: str | None
    """Why the window's round planner stopped: ``budget``, ``max_rounds``, ``max_units`` or ``no_gain``."""
    rule: str
    """How the window was planned: ``posterior`` (the evidence model's posterior gains), ``learned`` (a
    `CascadeModel`'s stopping rule, ``Rounds(model=...)``) or ``cascade`` (a `CascadeRouter`)."""
    prior_weight: float | None
    """The weight of the probe's prediction in the posterior's prior (`Rounds.prior_weight`; None: the
    probe's curves as they are, or no probe)."""
    per_round: list[RoundRecord]
    """Every round the query took part in, in order."""


class FailedAttemptRecord(TypedDict):
    """An option whose every request failed before a fallback (an entry of `FallbackMetadata` ``failed``)."""

    procedure: str
    k: int
    error_type: str
    """The error's class name, e.g. ``RetryExhaustedError``."""
    error: str
    """The error's message."""
    calls: int
    cost: float
    """Units its requests spent (counted in the answer's ``cost``: they may have been billed)."""


class FallbackMetadata(TypedDict):
    """A fallback to another model after the planned one failed (``RouterMetadata["fallback"]``)."""

    failed: list[FailedAttemptRecord]
    """Every option that failed, the planned one first."""
    answered: str
    """The procedure (model) that answered (also ``procedure``)."""
    extra_cost: float
    """Units charged to the ledger beyond the plan's option (every fallback option tried); included in
    ``allocated_cost``."""


class CandidateRuns(TypedDict):
    """Which candidate runs (their ``run_id``s, as strings) the reranker chose and rejected."""

    chosen: str | None
    rejected: list[str]


class RouterMetadata(TypedDict):
    """``response_metadata["adaptive_router"]`` of a routed answer."""

    procedure: str
    """The procedure (model) whose answer this is."""
    k: int
    strategy: str
    budget_per_query: float
    allocated_cost: float
    predicted: Predicted
    fallback_active: bool
    calls: int
    """Requests sent (one for an ``n=k`` request), failed ones included."""
    failed_calls: int
    candidates: int
    judge_calls: int
    tokens: dict[str, Any]
    """Every request's tokens (all candidates, a judge's, a cascade's draft and escalation), a langchain-core
    ``UsageMetadata``; the answer's ``usage_metadata`` is the same total."""
    cost: float
    """Units spent (failed requests included: they may have been billed)."""
    cost_usd: float | None
    """Dollars the requests cost, from the router's ``prices`` (``None`` without a price table)."""
    candidate_runs: CandidateRuns
    reranker_scores: list[float] | None
    selected: int
    errors: list[str]
    probe_ms: float
    rounds: NotRequired[RoundsMetadata]
    """Present when the answer was sampled in rounds: every round's units, spend and evidence. ``k`` is
    then the samples of all rounds, ``allocated_cost`` their cost, ``predicted["allocator"]`` how the budget
    was granted (``window``, or ``threshold`` for a lone query). A cascade in rounds: ``k`` is 1 for an
    escalated answer, ``cost`` and ``allocated_cost`` every cheap sample's and the escalation's."""
    fallback: NotRequired[FallbackMetadata]
    """Present when the planned model failed and another answered: which failed and why, who answered, and
    the extra units charged. ``calls``, ``failed_calls``, ``tokens``, ``cost``, ``cost_usd`` and ``errors``
    then total every attempt; ``predicted`` stays the plan's."""
    escalated: NotRequired[bool]
    """Cascade: the answer is the expensive model's."""
    draft: NotRequired[str | None]
    """Cascade: the cheap draft's text when an escalation was attempted."""
    draft_evidence: NotRequired[list[float | str | None]]
    """Cascade with ``draft_evidence``: what was read from each draft (a reward, or an answer)."""
    escalation_error: NotRequired[str | None]
    """Cascade: why the draft was kept although escalation was planned (the probe or the expensive model
    failed); the answer is then the paid draft."""


def _predicted(plan: Plan) -> Predicted:
    decision = plan.decision
    return Predicted(
        values=None if decision.values is None else list(decision.values),
        chosen_value=decision.chosen_value,
        fallback_active=plan.fallback_active,
        allocator=decision.allocator,
        window=decision.window,
        shadow_price=decision.shadow_price,
    )


def _runs(result: StrategyResult) -> CandidateRuns:
    ids = [None if r is None else str(r) for r in result.run_ids]
    chosen = ids[result.selected] if result.selected < len(ids) else None
    return CandidateRuns(chosen=chosen, rejected=sorted({r for r in ids if r is not None and r != chosen}))


def usd(prices: Any, procedure: str, result: StrategyResult) -> float | None:
    """Dollars `result`'s requests cost: the answering model's tokens at `procedure`'s price, a judge's at
    ``prices["judge"]`` (``None`` without a price table)."""
    if prices is None:
        return None
    model_usage = result.usage if result.model_usage is None else result.model_usage
    cost = float(prices.usage_cost(procedure, model_usage))
    judged: UsageMetadata = subtract_usage(result.usage, model_usage)
    if judged.get("total_tokens") or judged.get("input_tokens") or judged.get("output_tokens"):
        cost += float(prices.usage_cost("judge", judged))
    return cost


def plan_metadata(plan: Plan, result: StrategyResult, fallback: "Fallback | None" = None) -> RouterMetadata:
    """The metadata of `result`, an execution of `plan` (of its `fallback` option when one answered)."""
    meta = RouterMetadata(
        procedure=result.procedure,
        k=result.k,
        strategy=plan.settings.strategy_name,
        budget_per_query=plan.settings.budget,
        allocated_cost=float(plan.decision.option.cost),
        predicted=_predicted(plan),
        fallback_active=plan.fallback_active,
        calls=result.calls,
        failed_calls=result.failed_calls,
        candidates=result.candidates,
        judge_calls=result.judge_calls,
        tokens=dict(result.usage),
        cost=result.cost,
        cost_usd=usd(plan.settings.prices, result.procedure, result),
        candidate_runs=_runs(result),
        reranker_scores=result.scores,
        selected=result.selected,
        errors=list(result.errors),
        probe_ms=plan.probe_ms,
    )
    if fallback is not None and fallback.failures:
        _add_failures(meta, plan, fallback)
    return meta


def _add_failures(meta: RouterMetadata, plan: Plan, fallback: "Fallback") -> None:
    """Count the failed attempts before a fallback into `meta` (nothing paid for is lost)."""
    failed = fallback.failures
    prices = plan.settings.prices
    usage = meta["tokens"]
    for f in failed:
        usage = dict(add_usage(cast(UsageMetadata, usage), f.usage))
    meta["tokens"] = usage
    meta["calls"] += sum(f.calls for f in failed)
    meta["failed_calls"] += sum(f.calls for f in failed)
    meta["cost"] += sum(f.cost for f in failed)
    meta["allocated_cost"] += fallback.charged
    if prices is not None and meta["cost_usd"] is not None:
        meta["cost_usd"] += sum(float(prices.usage_cost(f.option.procedure, f.usage)) for f in failed)
    meta["errors"] = [f"{type(e).__name__}: {e}" for f in failed for e in f.errors] + meta["errors"]
    meta["fallback"] = FallbackMetadata(
        failed=[
            FailedAttemptRecord(
                procedure=f.option.procedure,
                k=int(f.option.k),
                error_type=type(f.error).__name__,
                error=str(f.error),
                calls=f.calls,
                cost=f.cost,
            )
            for f in failed
        ],
        answered=meta["procedure"],
        extra_cost=fallback.charged,
    )


def annotate(message: AIMessage, meta: RouterMetadata) -> AIMessage:
    """A copy of `message` carrying `meta` under ``response_metadata["adaptive_router"]``, its
    ``usage_metadata`` the tokens of every request the query made (``meta["tokens"]``)."""
    return message.model_copy(
        update={
            "response_metadata": {**message.response_metadata, METADATA_KEY: meta},
            "usage_metadata": cast(UsageMetadata, dict(meta["tokens"])),
        }
    )


def router_metadata(message: BaseMessage) -> RouterMetadata:
    """The decision metadata of a routed answer.

    Raises
    ------
    ConfigError
        The message did not come from an adaptive router.
    """
    meta = message.response_metadata.get(METADATA_KEY)
    if not isinstance(meta, dict):
        raise ConfigError(
            f"this message carries no response_metadata[{METADATA_KEY!r}]: it did not come from "
            "AdaptiveRouter, CascadeRouter or AdaptiveRouterMiddleware"
        )
    return cast(RouterMetadata, meta)
