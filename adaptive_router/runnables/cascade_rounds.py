"""Cascades in rounds, live: cheap samples in rounds, escalations to the expensive model in the same rounds.

A `CascadeRouter` given a fitted ``cascade_model`` plans each window as one `CascadeWindow`: a `LiveWindow`
whose round planner is an `adaptive_router.allocation.CascadePlanner`. The router's stages drive it
exactly as they drive `AdaptiveRouter`'s rounds (`RoundSlot`, ``round_requests``, ``advance``, ``outputs``
in `adaptive_router.runnables.rounds`), one send per round for every window of a batch:

1. ``start`` reserves nothing itself: the window's budget is the `Grant` the router's `Planner` reserved;
   it builds the planner (cheap sample = ``costs[0]``, escalation = ``costs[1]``) and issues round 1;
2. each round a query gets either cheap samples (one ``n=k`` request where the cheap model honours ``n``,
   else k requests), read by the reranker (a `MajorityVoteReranker`'s answers or a `VerifierReranker`'s
   rewards), or its escalation: one call of the expensive model, after which it is finished. The
   planner's last decision may be a round of escalations alone;
3. ``settle`` records the planner's ``spent_`` (every cheap sample and escalation issued, failed ones
   included) in the ledger and returns the rest of the grant.

The answer is the expensive model's when its escalation answered, else the cheap samples' choice (the
plurality, ties to the earliest; the best reward). Nothing paid for is lost: a failed escalation keeps the
cheap answer and says why in ``escalation_error``; a query whose every cheap request of a round failed
gets no further cheap samples (the planner may still escalate it); a query with no answer at all is that
item's error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from langchain_core.messages import AIMessage
from langchain_core.messages.ai import add_usage
from langchain_core.runnables import RunnableConfig

from adaptive_router.allocation import CascadeModel, CascadePlanner
from adaptive_router.allocation.planning import Grant, Planner
from adaptive_router.errors import ConfigError
from adaptive_router.prompts.messages import message_text
from adaptive_router.runnables.metadata import RoundRecord, RoundsMetadata, annotate, plan_metadata
from adaptive_router.runnables.plans import Plan, Query, RunSettings
from adaptive_router.runnables.rounds import LiveWindow, _jsonable, _Live
from adaptive_router.strategies.base import (
    Reading,
    Request,
    SampleBatch,
    StrategyResult,
    honours_n,
    requests_for,
)
from adaptive_router.strategies.rerankers import MajorityVoteReranker, Reranker, candidate_text

__all__ = ["CascadeSetup", "CascadeWindow"]


@dataclass(frozen=True)
class CascadeSetup:
    """What a `CascadeWindow` runs with, from its `CascadeRouter` (validated there).

    ``reader`` reads the cheap samples (its ``evidence`` is the model's ``needs``), ``costs`` are the units
    of one cheap sample and one escalation, ``procedures`` the names of keeping the cheap answer and of
    escalating, ``max_k`` the most cheap samples a query may get.
    """

    cheap: Any
    expensive: Any
    reader: Reranker
    model: CascadeModel
    costs: tuple[float, float]
    procedures: tuple[str, str]
    max_k: int


class CascadeWindow(LiveWindow):
    """The rounds of one window of cascades (see the module docstring).

    Parameters
    ----------
    queries, settings, grant, planner, fallback_active, probe_ms
        As for `LiveWindow`; ``settings.rounds`` gives ``max_rounds``.
    setup : CascadeSetup
        The models, the reader, the fitted `CascadeModel`, the costs and names.
    """

    def __init__(
        self,
        queries: list[Query],
        settings: RunSettings,
        grant: Grant,
        planner: Planner,
        setup: CascadeSetup,
        *,
        fallback_active: bool = False,
        probe_ms: float = 0.0,
    ) -> None:
        super().__init__(
            queries, settings, grant, planner, fallback_active=fallback_active, probe_ms=probe_ms
        )
        self.setup = setup
        self.procedure = setup.procedures[0]
        self.unit_cost = float(setup.costs[0])
        self.escalate_cost = float(setup.costs[1])
        self.max_k = int(setup.max_k)
        self.kind = str(setup.reader.evidence)
        self.cascade: CascadePlanner | None = None
        self.escalations: dict[int, SampleBatch] = {}
        """What each escalated query's call to the expensive model returned."""
        self._escalating: frozenset[int] = frozenset()

    # ------------------------------------------------------------------ rounds
    @property
    def active(self) -> bool:
        """Whether a round (cheap samples or escalations) is issued and not yet advanced past."""
        return bool(self.units.any()) or bool(self._escalating)

    def start(self) -> None:
        """Build the `CascadePlanner` on the grant and issue round 1 (an error becomes every query's)."""
        n = len(self.live)
        try:
            rounds = self.settings.rounds
            if rounds is None:
                raise ConfigError("a CascadeWindow needs run settings with rounds")
            cascade = CascadePlanner(
                evidence=rounds.evidence_for(self.kind),
                model=self.setup.model,
                budget_per_query=self.grant.units / n,
                max_k=self.max_k,
                unit_cost=self.unit_cost,
                escalate_cost=self.escalate_cost,
                max_rounds=rounds.max_rounds,
                price=self.grant.price,  # a lone query's threshold: an action must pay for itself
            )
            self.units = cascade.start(n=n)
        except Exception as exc:
            self.error, self.units = exc, np.zeros(n, dtype=np.int64)
            return
        self.cascade = self.round_planner = cascade

    def requests(self, row: int) -> list[Request]:
        """`row`'s requests this round: its escalation, or its cheap samples (none when it sits out)."""
        query = self.live[row].query
        if row in self._escalating:
            return [Request(self.setup.expensive, query.messages, kwargs=query.kwargs)]
        k = int(self.units[row])
        if k == 0:
            return []
        cheap = self.setup.cheap
        return [
            r.with_kwargs(query.kwargs)
            for r in requests_for(cheap, query.messages, k, use_n=honours_n(cheap))
        ]

    def record(self, row: int, batch: SampleBatch) -> bool:
        """Take what `row`'s round returned; whether it has new cheap candidates to read."""
        live = self.live[row]
        if row not in self._escalating:
            fresh = super().record(row, batch)
            live.rounds[-1]["escalated"] = False
            return fresh
        self.escalations[row] = batch
        live.rounds.append(
            RoundRecord(
                round=0 if self.cascade is None else int(self.cascade.rounds_),
                units=0,
                calls=batch.calls,
                failed_calls=batch.failed_calls,
                cost=self.escalate_cost,
                evidence=[],
                best=live.rounds[-1]["best"] if live.rounds else None,
                escalated=True,
            )
        )
        return False

    def _read_new(self, live: _Live, config: RunnableConfig) -> Reading:
        """The reranker's evidence of the new cheap samples: answers, or the verifier's rewards."""
        reader = self.setup.reader
        texts = [candidate_text(c) for c in live.new]
        if self.kind == "answers":
            return Reading(list(reader.answers(texts)))  # type: ignore[attr-defined]
        scores = reader.score(live.query.text, texts, config=config)
        return Reading(list(scores.scores), scores.calls, scores.usage)

    async def _aread_new(self, live: _Live, config: RunnableConfig) -> Reading:
        """Async :meth:`_read_new`."""
        reader = self.setup.reader
        texts = [candidate_text(c) for c in live.new]
        if self.kind == "answers":
            return Reading(list(reader.answers(texts)))  # type: ignore[attr-defined]
        scores = await reader.ascore(live.query.text, texts, config=config)
        return Reading(list(scores.scores), scores.calls, scores.usage)

    def advance(self) -> None:
        """Give the planner the round's evidence; issue the next round's cheap samples and escalations.

        A round without cheap samples is the planner's last (its escalations alone): nothing follows it.
        """
        cascade = self.cascade
        self._escalating = frozenset()
        if cascade is None or not self.units.any():
            self.units = np.zeros(len(self.live), dtype=np.int64)
            return
        self._hand_over(cascade)
        self.units = cascade.next_round()
        self._escalating = frozenset(int(i) for i in cascade.new_escalations_)

    # ------------------------------------------------------------------ results
    def output(self, row: int) -> AIMessage | BaseException:
        """`row`'s answer (the expensive model's, else the cheap samples' choice) with its metadata."""
        if self.error is not None:
            return self.error
        live = self.live[row]
        cheap, escalation = live.batch, self.escalations.get(row)
        escalated = escalation is not None and bool(escalation.candidates)
        evidence = live.reading.evidence
        read = cheap.candidates[: len(evidence)] if evidence else cheap.candidates  # unread: a failed reading
        if not escalated and not read:
            return _no_answer(live, cheap, escalation)
        values = _values(self.kind, evidence, len(read))
        chosen = max(range(len(read)), key=lambda j: (values[j], -j)) if read else 0
        result = self._result(live, read, chosen, values if evidence else None, escalation, escalated)
        index = 0 if escalation is None else 1
        plan = Plan(live.query, self.settings, self.grant.decision(index, row), self.fallback_active,
                    self.probe_ms)  # fmt: skip
        meta = plan_metadata(plan, result)
        meta["allocated_cost"] = result.cost
        prices = self.settings.prices
        if prices is not None:
            keep, escalate = self.setup.procedures
            meta["cost_usd"] = float(prices.usage_cost(keep, cheap.usage)) + (
                0.0 if escalation is None else float(prices.usage_cost(escalate, escalation.usage))
            )
        meta["rounds"] = RoundsMetadata(
            evidence=self.kind,
            stop_reason=None if self.cascade is None else self.cascade.stop_reason_,
            rule="cascade",
            prior_weight=None,
            per_round=live.rounds,
        )
        meta["escalated"] = escalated
        meta["draft"] = message_text(read[chosen]) if escalation is not None and read else None
        failed = escalation is not None and not escalated
        meta["escalation_error"] = _describe(_first_error(escalation)) if failed else None
        meta["draft_evidence"] = [_jsonable(v) for v in evidence]
        return annotate(result.message, meta)

    def _result(
        self,
        live: _Live,
        read: list[AIMessage],
        chosen: int,
        scores: list[float] | None,
        escalation: SampleBatch | None,
        escalated: bool,
    ) -> StrategyResult:
        """What `live`'s rounds cost and returned: every cheap sample and the escalation counted."""
        cheap = live.batch
        units = int(sum(r["units"] for r in live.rounds))
        cost = units * self.unit_cost + (0.0 if escalation is None else self.escalate_cost)
        esc = escalation or SampleBatch()
        failures = [*cheap.errors, *esc.errors, *([] if live.error is None else [live.error])]
        usage = add_usage(cheap.usage, esc.usage) if escalation is not None else cheap.usage
        keep, escalate = self.setup.procedures
        return StrategyResult(
            message=esc.candidates[0] if escalated else read[chosen],
            procedure=escalate if escalated else keep,
            k=1 if escalated else units,
            allocated_cost=cost,
            calls=cheap.calls + esc.calls,
            failed_calls=cheap.failed_calls + esc.failed_calls,
            candidates=1 if escalated else len(read),
            usage=usage,
            cost=cost,
            scores=None if escalated else scores,
            selected=0 if escalated else chosen,
            errors=[_describe(e) for e in failures],
            run_ids=esc.run_ids + cheap.run_ids if escalated else cheap.run_ids + esc.run_ids,
            model_usage=usage,
        )


def _values(kind: str, evidence: list[Any], n: int) -> list[float]:
    """How the cheap candidates rank: vote shares, or the verifier's rewards (all 0 when none was read)."""
    if not evidence:
        return [0.0] * n
    if kind == "answers":
        return MajorityVoteReranker.shares(evidence)
    return [float(v) for v in evidence]


def _first_error(batch: SampleBatch | None) -> BaseException | None:
    return batch.errors[0] if batch is not None and batch.errors else None


def _describe(error: BaseException | None) -> str:
    return "" if error is None else f"{type(error).__name__}: {error}"


def _no_answer(live: _Live, cheap: SampleBatch, escalation: SampleBatch | None) -> BaseException:
    """The error of a query with no answer: its failed escalation's, else its cheap requests' first."""
    return (
        _first_error(escalation)
        or live.error
        or _first_error(cheap)
        or ConfigError("the cheap model returned no candidates")  # pragma: no cover - a failure has an error
    )
