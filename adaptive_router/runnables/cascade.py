"""`CascadeRouter`: draft with the cheap model, read the draft, escalate only the drafts that look wrong.

Every query first gets a *draft* from the cheap model. A probe then reads the query **and** the draft (the
text ``join_draft(query, draft)``, see `adaptive_router.prompts.text`) and predicts the expected reward of
keeping the draft (procedure ``procedures[0]``) and of escalating to the expensive model (``procedures[1]``).
The stages are `BaseRouter`'s, as for `AdaptiveRouter`, with the drafts sent before planning: a
``batch``/``abatch`` window of ``window_size`` drafted queries is allocated jointly, concurrent ``ainvoke``
calls meet in a micro-batch, a lone ``invoke`` goes to the calibrated threshold, and without a probe the
choice is uniform (escalate every query when the budget pays for it, otherwise none). All of a batch's
requests, drafts and escalations, run at most ``max_concurrency`` at a time.

Costs include the draft: a kept draft costs ``costs[0]`` units, an escalated query ``costs[0] + costs[1]``,
so with budget ``B`` per query the escalated share is ``(B - costs[0]) / costs[1]``.

A paid draft is never lost: when the probe fails for a drafted query, or its escalation fails, the answer
is the draft, and ``escalation_error`` in its metadata says why.

Evidence-driven escalation (``draft_evidence=``, with ``drafts=`` cheap samples per query): the drafts are
read the way a round planner reads a round (a `VerifierReranker`'s pass/fail, a `MajorityVoteReranker`'s
agreement), and the value of keeping them is that evidence (the best draft's reward, or the plurality's
share of the drafts); escalating is worth the probe's escalation value (1 without a probe). The same exact
allocator then buys the largest gains within the window's budget, so a verified or unanimous draft is never
escalated (its gain is 0) and the drafts that fail or disagree are, as far as the budget goes: a two-step
ladder, cheap samples first, the expensive model when the evidence says so.

A `CascadeRouter` is a LangChain chat model like `AdaptiveRouter` (`stop`, ``bind_tools`` and
``with_structured_output`` reach both models; one chat-model run per query, started before its drafts).

Cascades in rounds (``cascade_model=``, a fitted `adaptive_router.allocation.CascadeModel`, with
``draft_evidence=`` of the model's kind): each window is one `CascadePlanner` run live
(`adaptive_router.runnables.cascade_rounds.CascadeWindow`). Cheap samples go out in rounds (concurrent within
a round, up to ``drafts`` per query) and are read by the reranker; between rounds the planner prices the
window's remaining budget and every open query takes the next action of the model's policy at that price
(stop, one more cheap sample, escalate); the escalations go to the expensive model (one call) in the next
send, with the other queries' cheap samples.
The budget is the same `Planner` grant and ledger as the one-shot paths': a cheap sample costs
``costs[0]``, an escalation ``costs[1]``, and what the rounds spent (failed requests included) is settled
exactly. The answer is the expensive model's when it answered, else the cheap samples' (plurality or best
reward); its metadata lists every round (``rounds``, with an ``escalated`` flag per round). No probe: the
planner reads the samples' evidence, not a draft.

Each output `AIMessage` (the kept draft, or the expensive model's answer) carries
``response_metadata["adaptive_router"]``, a `RouterMetadata` with ``escalated``, ``draft`` (the draft's text
when an escalation was attempted, else ``None``) and ``escalation_error`` (``None`` unless it failed).

See `CascadeRouter` for an example.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from langchain_core.messages import AIMessage
from langchain_core.messages.ai import add_usage
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import PrivateAttr
from typing_extensions import override

from adaptive_router.allocation import CascadeModel, Ladder, PlanSpec, Rounds
from adaptive_router.errors import ConfigError, InfeasibleBudgetError, NotFittedError
from adaptive_router.prompts.messages import message_text
from adaptive_router.prompts.text import join_draft, split_draft
from adaptive_router.runnables.base import BaseRouter
from adaptive_router.runnables.cascade_rounds import CascadeSetup, CascadeWindow
from adaptive_router.runnables.metadata import CandidateRuns, RouterMetadata, annotate, plan_metadata
from adaptive_router.runnables.plans import Plan, Query, RunSettings
from adaptive_router.runnables.rounds import RoundSlot
from adaptive_router.strategies.base import (
    Request,
    SampleBatch,
    StrategyResult,
    honours_n,
    requests_for,
)
from adaptive_router.strategies.rerankers import MajorityVoteReranker, Reranker

__all__ = ["CASCADE_ROUNDS", "CascadeRouter"]

CASCADE_ROUNDS = Rounds()
"""The round settings of a cascade in rounds: ``max_rounds`` (the first round is `CascadePlanner`'s
``"auto"``)."""


@dataclass(frozen=True)
class _Drafted:
    """A query with the cheap model's drafts: what the probe reads and the planner plans.

    ``chosen`` is the draft kept (the best-read one), ``keep`` the evidence's value of keeping it (None
    without ``draft_evidence``), ``evidence`` what was read from each draft.
    """

    query: Query
    batch: SampleBatch
    chosen: int = 0
    keep: float | None = None
    evidence: tuple[float | str | None, ...] = ()

    @property
    def settings(self) -> RunSettings:
        return self.query.settings

    @property
    def draft(self) -> AIMessage:
        return self.batch.candidates[self.chosen]


class CascadeRouter(BaseRouter):
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
        Drafted queries allocated together in ``batch``/``abatch`` and micro-batches.
    max_wait_ms : float
        How long a concurrent ``ainvoke``'s drafted query waits for others to fill its window.
    calibration_texts : list of str, optional
        ``join_draft(query, draft)`` texts that calibrate the threshold used for lone ``invoke`` calls.
    probe_in_thread : bool
        Run the probe in a worker thread on the async paths.
    drafts : int
        Cheap samples per query (one ``n=k`` request where the cheap model honours ``n``); each costs
        ``costs[0]``, so a kept query costs ``drafts * costs[0]``.
    draft_evidence : VerifierReranker or MajorityVoteReranker, optional
        Read the drafts and plan on that evidence (see the module docstring); majority votes need
        ``drafts >= 2``.
    cascade_model : CascadeModel, optional
        A fitted `adaptive_router.allocation.CascadeModel`: run every window as a cascade in rounds (see
        the module docstring), cheap samples read by ``draft_evidence`` (which must give what the model
        was fitted on: answers for votes, rewards for a verifier), escalations planned by the model.
        ``drafts`` is then the most cheap samples a query may get, and the budget must pay for one cheap
        sample per query (``costs[0]``). Needs ``probe=None``.

    prices, stop, temperature, max_tokens, streaming
        See `BaseRouter`; ``prices`` is keyed by the two ``procedures``.

    ``stream``/``astream`` yield the whole answer as one chunk, then a last chunk with the usage and the
    metadata (the draft has to be read before anything can be streamed).

    Examples
    --------
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> from langchain_core.messages import AIMessage
    >>> cheap = GenericFakeChatModel(messages=iter([AIMessage("8")] * 3))
    >>> expensive = GenericFakeChatModel(messages=iter([AIMessage("7")] * 3))
    >>> router = CascadeRouter(cheap=cheap, expensive=expensive, costs=(1.0, 10.0), budget_per_query=11.0)
    >>> message = router.invoke("3 + 4 =")  # no probe, the budget pays for escalation: every query escalates
    >>> meta = message.response_metadata["adaptive_router"]
    >>> message.content, meta["escalated"], meta["draft"], meta["calls"], meta["cost"]
    ('7', True, '8', 2, 11.0)
    >>> only_drafts = {"configurable": {"budget_per_query": 1.0}}  # the budget pays for the drafts alone
    >>> [m.content for m in router.batch(["q1", "q2"], only_drafts)]
    ['8', '8']
    """

    cheap: Any
    expensive: Any
    costs: tuple[float, float] = (1.0, 10.0)
    procedures: tuple[str, str] = ("cheap", "expensive")
    budget_per_query: float
    drafts: int = 1
    draft_evidence: Any = None
    cascade_model: Any = None

    _ladder: Ladder = PrivateAttr()
    _starts_early: ClassVar[bool] = True  # the drafts are the run's first requests

    # ------------------------------------------------------------------ validation / settings
    @property
    @override
    def _llm_type(self) -> str:
        return "cascade-router"

    @override
    def _priced(self) -> list[str]:
        return list(self.procedures)

    @override
    def _with_models(self, fn: Callable[[Any], Any]) -> CascadeRouter:
        return self._copy_with(cheap=fn(self.cheap), expensive=fn(self.expensive))  # type: ignore[return-value]

    @override
    def _validate(self) -> None:
        for name in ("cheap", "expensive"):
            model = getattr(self, name)
            if not isinstance(model, Runnable):
                raise ConfigError(
                    f"{name} must be a LangChain chat model or Runnable, got {type(model).__name__}"
                )
        if not all(math.isfinite(c) and c > 0 for c in self.costs):
            raise ConfigError(
                f"costs must be two positive finite numbers (cheap, expensive), got {self.costs!r}"
            )
        keep, escalate = self.procedures
        if not (keep and escalate) or keep == escalate:
            raise ConfigError(f"procedures must be two different non-empty names, got {self.procedures!r}")
        if self.probe is not None:
            missing = [p for p in self.procedures if p not in tuple(self.probe.procedures)]
            if missing:
                raise ConfigError(
                    f"the probe does not predict procedures {missing} "
                    f"(it has {list(self.probe.procedures)}); pass "
                    "procedures=(keep_draft_name, escalate_name) naming the probe's curves"
                )
        missing_drafts = [i for i, t in enumerate(self.calibration_texts or []) if split_draft(t)[1] is None]
        if missing_drafts:
            raise ConfigError(
                f"calibration_texts[{missing_drafts[0]}] has no draft: "
                "calibrate on join_draft(query, draft) texts"
            )
        if isinstance(self.drafts, bool) or not isinstance(self.drafts, int) or self.drafts < 1:
            raise ConfigError(f"drafts must be an int >= 1, got {self.drafts!r}")
        reader = self.draft_evidence
        if reader is not None:
            if not isinstance(reader, Reranker) or reader.evidence not in ("rewards", "answers"):
                raise ConfigError(
                    f"draft_evidence must be a VerifierReranker or a MajorityVoteReranker, got {reader!r}"
                )
            if reader.evidence == "answers" and self.drafts < 2:
                raise ConfigError("a majority vote over drafts needs drafts >= 2: one answer cannot disagree")
        if self.cascade_model is not None:
            self._check_cascade_model()
        draft_cost = self._first_cost()
        self._ladder = Ladder.routes({keep: draft_cost, escalate: draft_cost + self.costs[1]})

    def _check_cascade_model(self) -> None:
        """``cascade_model``: a fitted `CascadeModel` reading what ``draft_evidence`` gives, no probe."""
        model = self.cascade_model
        if not isinstance(model, CascadeModel):
            raise ConfigError(
                "cascade_model must be an adaptive_router.allocation.CascadeModel, got "
                f"{type(model).__name__}"
            )
        try:
            needs = model.needs
        except NotFittedError as exc:
            raise ConfigError(
                "cascade_model is not fitted: call CascadeModel().fit(cheap_rewards, strong_rewards, "
                "answers=...) (answers for votes, none for a verifier) or load one with from_dict"
            ) from exc
        reader = self.draft_evidence
        if reader is None:
            raise ConfigError(
                f"cascade_model (fitted on {needs!r}) needs draft_evidence=, the reranker that reads the "
                "cheap samples: MajorityVoteReranker for answers, VerifierReranker for rewards"
            )
        if reader.evidence != needs:
            raise ConfigError(
                f"cascade_model was fitted on {needs!r} but draft_evidence={reader!r} gives "
                f"{reader.evidence!r}; fit the model {'with' if reader.evidence == 'answers' else 'without'} "
                "answers= or pass the matching reranker"
            )
        if needs == "answers" and not callable(getattr(reader, "answers", None)):
            raise ConfigError(f"{type(reader).__name__} gives answers but has no answers(candidates)")
        if self.probe is not None:
            raise ConfigError(
                "cascade_model plans on the cheap samples' evidence, not on a probe: pass probe=None, or "
                "drop cascade_model for the probe's one-shot cascade"
            )

    def _first_cost(self) -> float:
        """Units every query spends before anything is decided: its drafts, or one cheap sample in rounds."""
        return self.costs[0] * (1 if self.cascade_model is not None else self.drafts)

    @override
    def _settings(self, config: RunnableConfig | None) -> RunSettings:
        budget = self._budget(config)
        draft_cost = self._first_cost()
        if isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget < draft_cost - 1e-12:
            what = "the cheap sample" if self.cascade_model is not None else "the draft"
            raise InfeasibleBudgetError(
                f"budget_per_query={budget:g} is below the cost of {what} every query gets "
                f"({draft_cost:g} units); raise the budget to at least {draft_cost:g}"
            )
        spec = PlanSpec(self._ladder, budget)
        if self.cascade_model is not None:
            evidence = self.draft_evidence.evidence
            return RunSettings(spec, None, "cascade", CASCADE_ROUNDS, evidence, prices=self.prices)
        return RunSettings(spec, None, "cascade", prices=self.prices)

    # ------------------------------------------------------------------ drafts (before planning)
    @override
    def _probe_text(self, item: Any) -> str:
        return join_draft(item.query.text, message_text(item.draft))

    @override
    def _pre_requests(self, slots: list[Any]) -> dict[int, list[Request]]:
        """Every valid query's drafts (none in rounds: round 1 is the cheap samples)."""
        if self.cascade_model is not None:
            return {}
        use_n = honours_n(self.cheap)
        return {
            i: [
                r.with_kwargs(s.kwargs)
                for r in requests_for(self.cheap, s.messages, self.drafts, use_n=use_n)
            ]
            for i, s in enumerate(slots)
            if isinstance(s, Query)
        }

    @override
    def _pre_results(self, slots: list[Any], batches: dict[int, SampleBatch]) -> list[Any]:
        """A drafted query, or the drafts' error (nothing usable was paid for: the probe never sees it)."""
        out = list(slots)
        for i, batch in batches.items():
            out[i] = self._read(slots[i], batch) if batch.candidates else batch.errors[0]
        return out

    def _read(self, query: Query, batch: SampleBatch) -> _Drafted:
        """The drafts with their evidence: the draft to keep and the value of keeping it.

        A verifier's best reward (its draft kept), or the plurality's share of all drafts (its first
        draft kept). A reader that raises leaves the value at 0: not verified, escalate if affordable.
        """
        reader = self.draft_evidence
        if reader is None:
            return _Drafted(query, batch)
        texts = [message_text(c) for c in batch.candidates]
        evidence: tuple[float | str | None, ...]
        try:
            if reader.evidence == "answers":
                answers = reader.answers(texts)
                values = MajorityVoteReranker.shares(answers)
                evidence = tuple(a if a is None or isinstance(a, str) else repr(a) for a in answers)
                values = [v * len(texts) / max(batch.requested, 1) for v in values]  # failed drafts: no vote
            else:
                values = [float(v) for v in reader.score(query.text, texts).scores]
                evidence = tuple(values)
        except Exception:
            return _Drafted(query, batch, 0, 0.0)
        chosen = max(range(len(values)), key=lambda j: (values[j], -j))
        keep = float(min(max(values[chosen], 0.0), 1.0))
        return _Drafted(query, batch, chosen, keep, evidence)

    # ------------------------------------------------------------------ cascades in rounds
    @override
    def _plan_rounds(self, items: list[Any]) -> list[Any]:
        """Reserve one window's budget for a cascade in rounds: a `RoundSlot` of one `CascadeWindow` per query
        (or the reservation's error)."""
        settings: RunSettings = items[0].settings
        try:
            grant, errors, fallback, probe_ms = self._core.reserve([q.text for q in items], settings)
        except Exception as exc:
            return [exc] * len(items)
        if grant is None:  # pragma: no cover - without a probe every query has a grant
            return list(errors)
        setup = CascadeSetup(
            cheap=self.cheap,
            expensive=self.expensive,
            reader=self.draft_evidence,
            model=self.cascade_model,
            costs=(float(self.costs[0]), float(self.costs[1])),
            procedures=(self.procedures[0], self.procedures[1]),
            max_k=self.drafts,
        )
        window = CascadeWindow(
            items, settings, grant, self._core.planner, setup, fallback_active=fallback, probe_ms=probe_ms
        )
        return [RoundSlot(window, row) for row in range(len(items))]

    @override
    def _adjust_values(self, items: list[Any], values: Any) -> Any:
        """With ``draft_evidence``: keep = the drafts' evidence, escalate = the probe's value (else 1)."""
        if self.draft_evidence is None:
            return values
        keep = np.array([item.keep for item in items], dtype=np.float64)
        escalate = np.ones(len(items)) if values is None else np.asarray(values, dtype=np.float64)[:, 1]
        return np.column_stack([keep, escalate])

    @override
    def _on_plan_error(self, item: Any, error: BaseException) -> Plan | BaseException:
        """The probe failed after the draft was paid for: keep the draft, say why."""
        try:
            return self._core.fixed(item, item.settings, 0, error)
        except Exception:  # pragma: no cover - the draft always fits the budget (checked in _settings)
            return error

    # ------------------------------------------------------------------ escalations (executing plans)
    @override
    def _requests(self, slots: list[Any]) -> tuple[list[Any], dict[int, list[Request]]]:
        """The escalations: the original prompt to the expensive model, for the plans that escalate."""
        escalate = self.procedures[1]
        return slots, {
            i: [Request(self.expensive, s.item.query.messages, kwargs=s.item.query.kwargs)]
            for i, s in enumerate(slots)
            if isinstance(s, Plan) and s.decision.option.procedure == escalate
        }

    @override
    def _results(
        self, slots: list[Any], batches: dict[int, SampleBatch], config: list[RunnableConfig]
    ) -> list[Any]:
        return [self._output(s, batches.get(i)) if isinstance(s, Plan) else s for i, s in enumerate(slots)]

    @override
    async def _aresults(
        self, slots: list[Any], batches: dict[int, SampleBatch], config: list[RunnableConfig]
    ) -> list[Any]:
        return self._results(slots, batches, config)  # no I/O left: the answers are built from the batches

    def _output(self, plan: Plan, escalation: SampleBatch | None) -> AIMessage:
        """The answer: the expensive model's when it answered, else the paid draft."""
        drafted: _Drafted = plan.item
        batch = drafted.batch
        error: BaseException | None = plan.error
        if escalation is not None:
            if escalation.candidates:
                batch = escalation
            else:
                error = escalation.errors[0]
        drafts = drafted.batch
        escalated = batch is escalation
        failures = drafts.errors + ([] if escalation is None else escalation.errors)
        result = StrategyResult(
            message=drafted.draft if not escalated else batch.candidates[0],
            procedure=self.procedures[1] if escalated else self.procedures[0],
            k=1 if escalated else drafts.requested,
            allocated_cost=float(plan.decision.option.cost),
            calls=drafts.calls + (escalation.calls if escalation is not None else 0),
            failed_calls=drafts.failed_calls + (escalation.failed_calls if escalation is not None else 0),
            candidates=1 if escalated else len(drafts.candidates),
            usage=add_usage(drafts.usage, escalation.usage) if escalation is not None else drafts.usage,
            cost=self.costs[0] * drafts.requested + (self.costs[1] if escalation is not None else 0.0),
            selected=0 if escalated else drafted.chosen,
            errors=[f"{type(e).__name__}: {e}" for e in failures],
        )
        meta: RouterMetadata = plan_metadata(plan, result)
        runs = [str(r) for r in drafts.run_ids + ([] if escalation is None else escalation.run_ids) if r]
        chosen = batch.run_ids[0 if escalated else drafted.chosen] if batch.run_ids else None
        meta["candidate_runs"] = CandidateRuns(
            chosen=None if chosen is None else str(chosen), rejected=[r for r in runs if r != str(chosen)]
        )
        if self.prices is not None:
            keep, escalate = self.procedures
            meta["cost_usd"] = float(self.prices.usage_cost(keep, drafts.usage)) + (
                0.0 if escalation is None else float(self.prices.usage_cost(escalate, escalation.usage))
            )
        meta["escalated"] = escalated
        meta["draft"] = message_text(drafted.draft) if escalation is not None else None
        meta["escalation_error"] = None if error is None else f"{type(error).__name__}: {error}"
        if self.draft_evidence is not None:
            meta["draft_evidence"] = list(drafted.evidence)
        return annotate(result.message, meta)

    # ------------------------------------------------------------------ accounting
    @override
    def spend_summary(self) -> list[dict[str, Any]]:
        """Allocated spend so far per budget: queries, units allocated (drafts included), units budgeted."""
        return [{k: v for k, v in row.items() if k != "max_k"} for row in super().spend_summary()]
