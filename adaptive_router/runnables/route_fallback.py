"""Cross-model fallback: when a planned model fails, the next model in cost order, if the budget covers it.

No I/O happens here. When every request of a query's planned option failed (the model raised after its own
retries: a `BackendError`, `RetryExhaustedError`, a timeout; not a `ConfigError`, which is the caller's to
fix), `Fallback` picks the next option of the strategy's `SamplingStrategy.fallbacks` (the same k on the
next-dearer model first, else the next-cheaper one) whose cost the spec's ledger still covers, and charges
it with `adaptive_router.allocation.Planner.charge` (extra units out of the balance earlier plans left
unspent; no query is added, so the spend never exceeds the budget). `AdaptiveRouter` (and the agent
middleware) sends what it says and finishes the answer with it; the answer's metadata has a ``fallback``
record (`FallbackMetadata`) and totals every attempt's calls, tokens and cost. When no fallback fits, or
every one fails too, the query's error is the planned model's original one, with a note (``add_note``)
saying what was tried.

Examples
--------
>>> from langchain_core.language_models import GenericFakeChatModel
>>> from langchain_core.messages import AIMessage
>>> from adaptive_router.runnables.plans import ProbePlanner, RunSettings, prepare_input
>>> from adaptive_router.strategies import Route
>>> from adaptive_router.strategies.base import SampleBatch
>>> route = Route(cheap=GenericFakeChatModel(messages=iter([])),
...               expensive=GenericFakeChatModel(messages=iter([AIMessage("ok")])), costs=(1, 4))
>>> core = ProbePlanner(probe=None)
>>> settings = RunSettings(PlanSpec(route.ladder, budget_per_query=3.0), route)
>>> plans = core.plan([prepare_input(q, settings) for q in "ab"], ["a", "b"], settings)  # 2 units left
>>> failed = SampleBatch.of([RuntimeError("cheap is down")])
>>> Fallback(plans[0], core.planner).fail(failed).procedure   # 4 units: the balance covers them
'expensive'
>>> core.planner.ledger(settings.spec).allocated               # 2 planned + 4 charged
6.0
>>> second = Fallback(plans[1], core.planner)
>>> second.fail(failed) is None, str(second.error())           # nothing left to fall back on
(True, 'cheap is down')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.messages.ai import UsageMetadata

from adaptive_router.allocation import Planner, PlanSpec
from adaptive_router.errors import ConfigError
from adaptive_router.runnables.plans import Plan
from adaptive_router.strategies.base import SampleBatch

__all__ = ["FailedAttempt", "Fallback", "falls_back"]


def falls_back(plan: Plan, batch: SampleBatch) -> bool:
    """Whether `plan`'s query may fall back to another model: every request of its option failed, not
    through a `ConfigError`, and its strategy has other models (`SamplingStrategy.fallbacks`)."""
    if batch.candidates or not batch.errors or isinstance(batch.errors[0], ConfigError):
        return False
    fallbacks = getattr(plan.settings.strategy, "fallbacks", None)
    return callable(fallbacks) and bool(fallbacks(plan.decision.option))


@dataclass(frozen=True)
class FailedAttempt:
    """One option whose every request failed: what it was, what it cost, and why it failed."""

    option: Any
    calls: int
    usage: UsageMetadata
    cost: float
    errors: tuple[BaseException, ...]

    @property
    def error(self) -> BaseException:
        """The first request's error (the one the query raises when nothing answers)."""
        return self.errors[0]


class Fallback:
    """One query's fallback: its failed attempts, the option to try now and the extra units charged.

    Parameters
    ----------
    plan : Plan
        The query's plan (its option is the first attempt).
    planner : Planner
        Holds the spec's ledger; every fallback option is charged to it before it is sent.
    """

    def __init__(self, plan: Plan, planner: Planner) -> None:
        self.plan = plan
        self.planner = planner
        self.option: Any = plan.decision.option
        self.failures: list[FailedAttempt] = []
        self.charged = 0.0
        self._declined: list[Any] = []

    @property
    def spec(self) -> PlanSpec:
        """The spec whose ledger pays."""
        return self.plan.settings.spec

    def fail(self, batch: SampleBatch) -> Any | None:
        """Record that every request of the current option failed; the next option (charged), or None.

        The next option is the first of the strategy's fallbacks not tried yet whose cost the ledger's
        balance covers; None when none does (`error` is then the query's error).
        """
        strategy = self.plan.settings.strategy
        errors = tuple(batch.errors) or (ConfigError("the model returned no candidates"),)
        spent = getattr(strategy, "spent", None)  # a strategy of our own protocol without it: the option's
        cost = float(spent(self.option, batch)) if callable(spent) else float(self.option.cost)
        self.failures.append(FailedAttempt(self.option, batch.calls, batch.usage, cost, errors))
        tried = [f.option for f in self.failures]
        self._declined = []
        for option in strategy.fallbacks(self.plan.decision.option):
            if option in tried:
                continue
            if self.planner.charge(self.spec, float(option.cost)):
                self.option = option
                self.charged += float(option.cost)
                return option
            self._declined.append(option)
        return None

    def error(self) -> BaseException:
        """The planned model's original error, with a note on the fallbacks tried or declined."""
        first = self.failures[0].error
        tried = [f"{f.option.procedure} ({type(f.error).__name__}: {f.error})" for f in self.failures[1:]]
        declined = [f"{o.procedure} ({o.cost:g} units)" for o in self._declined]
        notes = []
        if tried:
            notes.append(f"fell back to {', '.join(tried)}, which failed too")
        if declined:
            balance = self.planner.ledger(self.spec).balance
            notes.append(
                f"no fallback to {', '.join(declined)}: the budget's balance ({balance:g} units) does not "
                "cover it; raise budget_per_query to leave room for a fallback"
            )
        if notes:
            planned = self.failures[0].option.procedure
            _add_note(first, f"adaptive_router: {planned} failed; " + "; ".join(notes))
        return first


def _add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)`` (Python 3.11+); on 3.10 the note is kept in ``__notes__`` all the same."""
    add = getattr(error, "add_note", None)
    if callable(add):
        add(note)
    else:  # pragma: no cover - Python 3.10
        error.__notes__ = [*getattr(error, "__notes__", []), note]  # type: ignore[attr-defined]
