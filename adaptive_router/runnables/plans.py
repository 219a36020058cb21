"""What a router decides before it calls a model: validated queries, run settings, probe values, plans.

No I/O happens here. `prepare_input` validates one input into a `Query`; `ProbePlanner` reads the probe's
curves for a window of texts (a non-finite curve is that query's `ProbeError`) and hands the values to an
`adaptive_router.allocation.Planner`, which chooses one option per query and keeps the ledgers. The routers
(`AdaptiveRouter`, `CascadeRouter`) and the agent middleware only execute the `Plan`s it returns.

Examples
--------
>>> from adaptive_router.allocation import Ladder, PlanSpec
>>> settings = RunSettings(PlanSpec(Ladder.best_of_k(4), budget_per_query=2.0))
>>> query = prepare_input("3 + 4 =", settings)
>>> (plan,) = ProbePlanner(probe=None).plan([query], [query.text], settings)   # no probe: uniform
>>> plan.decision.option.k, plan.decision.allocator
(2, 'uniform')
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue

from adaptive_router.allocation import Decision, Ladder, Planner, PlanSpec, Rounds
from adaptive_router.allocation.planning import DEFAULT_MAX_GROUPS, Grant
from adaptive_router.errors import ConfigError, ProbeError
from adaptive_router.predictors import CurvePredictor, FloatArray
from adaptive_router.prompts.messages import prompt_text

__all__ = ["Plan", "ProbePlanner", "Query", "RunSettings", "check_probe", "prepare_input"]


@dataclass(frozen=True)
class RunSettings:
    """What one call runs under: the plan spec (ladder, budget, max_k) and the strategy that executes it.

    ``rounds`` (an `adaptive_router.allocation.Rounds`) and ``evidence`` (what the strategy's reranker gives
    per sample) are set when the call samples in rounds. ``prices`` (a `adaptive_router.prices.PriceTable`)
    turns the answers' tokens into dollars.
    """

    spec: PlanSpec
    strategy: Any = None
    strategy_name: str = "default"
    rounds: Rounds | None = None
    evidence: str | None = None
    prices: Any = field(default=None, compare=False)

    @property
    def budget(self) -> float:
        """Units per query."""
        return self.spec.budget_per_query

    @property
    def group(self) -> tuple[PlanSpec, Rounds | None, str | None]:
        """What queries planned (and micro-batched) together share; the ledger is the spec's alone."""
        return self.spec, self.rounds, self.evidence


@dataclass(frozen=True)
class Query:
    """A validated input: its messages, the text the probe reads, its run settings, and the keyword
    arguments every request for it sends to a wrapped model (``stop``, what was bound to the router)."""

    messages: list[BaseMessage]
    text: str
    settings: RunSettings
    kwargs: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Plan:
    """What to execute for one planned item (a `Query`, or a router's own item such as a drafted query).

    ``error`` is set when the decision was not the planner's own: the probe failed and the router chose a
    fixed option instead (a cascade keeps the draft it paid for).
    """

    item: Any
    settings: RunSettings
    decision: Decision
    fallback_active: bool
    probe_ms: float
    error: BaseException | None = None


def prepare_input(value: Any, settings: RunSettings, kwargs: Mapping[str, Any] | None = None) -> Query:
    """Validate one router input (str, message list, PromptValue) into a `Query` (`kwargs`: its requests').

    Raises
    ------
    ConfigError
        Empty prompt, a non-text type, or messages LangChain cannot parse.
    """
    if isinstance(value, PromptValue):
        messages = value.to_messages()
    elif isinstance(value, str):
        messages = [HumanMessage(content=value)]
    elif isinstance(value, BaseMessage):
        messages = [value]
    elif isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError("empty message list: pass at least one message, e.g. [('user', 'Hi')]")
        try:
            messages = convert_to_messages(value)
        except (ValueError, TypeError, NotImplementedError, KeyError) as exc:
            raise ConfigError(f"cannot read the input as chat messages: {exc}"[:400]) from exc
    else:
        raise ConfigError(
            f"router input must be a str, a list of messages or a PromptValue, got {type(value).__name__}"
        )
    text = prompt_text(messages)
    if not text.strip():
        raise ConfigError("empty prompt: the input has no text; send a non-empty question")
    return Query(messages=messages, text=text, settings=settings, kwargs=dict(kwargs or {}))


def check_probe(probe: Any, ladders: Mapping[str, Ladder]) -> None:
    """Reject a probe that is not a `CurvePredictor`, or lacks a procedure or the k a ladder needs.

    ``None`` (no probe: uniform allocation) passes. `ladders` names each strategy's ladder for the message.
    """
    if probe is None:
        return
    if not isinstance(probe, CurvePredictor):
        raise ConfigError(
            f"probe must satisfy CurvePredictor (predict_curves, procedures, max_k, fallback_active), "
            f"got {type(probe).__name__}"
        )
    for name, ladder in ladders.items():
        missing = sorted(set(ladder.procedures) - set(probe.procedures))
        if missing:
            raise ConfigError(
                f"{name} uses procedures {missing} the probe does not predict (it has "
                f"{list(probe.procedures)}); name the strategy's procedures after the probe's"
            )
        if int(ladder.max_k) > int(probe.max_k):
            raise ConfigError(
                f"{name} goes up to k={ladder.max_k} but the probe's curves stop at k={probe.max_k}; "
                "lower max_k or train the probe with a larger max_k"
            )


class ProbePlanner:
    """The probe and the allocation `Planner` of one router (thread-safe through the planner).

    Parameters
    ----------
    probe : CurvePredictor, optional
        Without one every query gets the most expensive option within the budget (uniform).
    calibration_texts : list of str, optional
        Reference queries whose predicted values calibrate the threshold of lone queries.
    max_groups : int
        Run-settings groups whose ledgers are kept (least recently used forgotten first).
    """

    def __init__(
        self,
        *,
        probe: Any,
        calibration_texts: Sequence[str] | None = None,
        max_groups: int = DEFAULT_MAX_GROUPS,
    ) -> None:
        self.probe = probe
        predict = getattr(probe, "predict_curves", None)
        self._reweights = callable(predict) and "shrinkage" in inspect.signature(predict).parameters
        """Whether the probe's ``predict_curves`` takes ``shrinkage=`` (a rounds prior's weight)."""
        self.calibration_texts = None if calibration_texts is None else list(calibration_texts)
        reference = self._reference if (probe is not None and self.calibration_texts is not None) else None
        self.planner = Planner(reference=reference, max_groups=max_groups)

    def _reference(self, spec: PlanSpec) -> FloatArray:
        values, errors, _ = self.predict(self.calibration_texts or [], spec)
        rows = [] if values is None else [i for i, e in enumerate(errors) if e is None]
        if not rows or values is None:
            raise ConfigError("no calibration text gave a usable prediction; check calibration_texts")
        return values[rows]

    def predict(
        self, texts: Sequence[str], spec: PlanSpec, shrinkage: float | None = None
    ) -> tuple[FloatArray | None, list[ProbeError | None], bool]:
        """Predicted values ``(n, m)`` of the spec's options, a `ProbeError` per unusable row, fallback flag.

        ``shrinkage`` (a rounds prior's `Rounds.prior_weight`) is passed to the probe's ``predict_curves``.

        Raises
        ------
        ProbeError
            The probe lacks a procedure of the ladder or returned curves of the wrong shape.
        ConfigError
            ``shrinkage`` with a probe whose ``predict_curves`` takes none.
        """
        n = len(texts)
        if self.probe is None:
            return None, [None] * n, False
        ladder = spec.ladder
        curves: Mapping[str, Any]
        if shrinkage is None:
            curves = self.probe.predict_curves(list(texts))
        elif self._reweights:
            curves = self.probe.predict_curves(list(texts), shrinkage=shrinkage)
        else:
            raise ConfigError(
                f"Rounds(prior_weight={shrinkage}) re-weights the probe's prediction, but "
                f"{type(self.probe).__name__}.predict_curves takes no shrinkage=; use a Probe or "
                "prior_weight=None"
            )
        errors: list[ProbeError | None] = [None] * n
        checked: dict[str, FloatArray] = {}
        need_k = int(ladder.max_k)
        for proc in sorted(set(ladder.procedures)):
            if proc not in curves:
                raise ProbeError(
                    f"the probe has no curve for procedure {proc!r}; it predicts {sorted(curves)}"
                )
            arr = np.asarray(curves[proc], dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < need_k:
                raise ProbeError(
                    f"the probe returned curves of shape {arr.shape} for {proc!r}; "
                    f"expected ({n}, >= {need_k})"
                )
            bad = np.logical_not(np.isfinite(arr[:, :need_k]).all(axis=1))
            if bad.any():  # (rare) each such row gets its error, and zeros in place of its curve
                for i in np.flatnonzero(bad):
                    errors[i] = ProbeError(
                        f"the probe predicted a non-finite reward curve for this query ({proc!r}); "
                        "check the probe (NaN in its features or weights)"
                    )
                arr = np.where(bad[:, None], 0.0, arr)
            checked[proc] = arr
        values = np.asarray(ladder.values(checked), dtype=np.float64)
        return values, errors, bool(getattr(self.probe, "fallback_active", False))

    def plan(
        self,
        items: Sequence[Any],
        texts: Sequence[str],
        settings: RunSettings,
        adjust: Callable[[FloatArray | None], FloatArray | None] | None = None,
    ) -> list[Plan | BaseException]:
        """One `Plan` per item (or the `ProbeError` of its prediction); `texts` are what the probe reads.

        The items are planned together: a window for two or more, the threshold for one. ``adjust`` maps
        the predicted ``(n, m)`` values (None without a probe) to the values planned on (a cascade's
        evidence from its drafts).
        """
        start = time.perf_counter()
        values, errors, fallback = self.predict(texts, settings.spec)
        if adjust is not None:
            values = adjust(values)
        probe_ms = (time.perf_counter() - start) * 1000.0
        good = [i for i, e in enumerate(errors) if e is None]
        rows = None if values is None else values[good]
        decisions = iter(self.planner.plan(settings.spec, rows, n=len(good)) if good else [])
        return [
            Plan(item, settings, next(decisions), fallback, probe_ms) if error is None else error
            for item, error in zip(items, errors, strict=True)
        ]

    def reserve(
        self, texts: Sequence[str], settings: RunSettings
    ) -> tuple[Grant | None, list[ProbeError | None], bool, float]:
        """Reserve the budget of queries that run in rounds: the grant (None when no query has a usable
        curve), a `ProbeError` per unusable row, the fallback flag and the probe's time in ms.

        The grant's values (the queries with a usable curve, in order) are the rounds' prior.
        """
        start = time.perf_counter()
        rounds = settings.rounds
        weight = None if rounds is None or rounds.model is not None else rounds.prior_weight
        values, errors, fallback = self.predict(texts, settings.spec, weight)
        probe_ms = (time.perf_counter() - start) * 1000.0
        good = [i for i, e in enumerate(errors) if e is None]
        rows = None if values is None else values[good]
        grant = self.planner.reserve(settings.spec, rows, n=len(good)) if good else None
        return grant, errors, fallback, probe_ms

    def fixed(self, item: Any, settings: RunSettings, index: int, error: BaseException) -> Plan:
        """A plan for option `index` chosen without the probe (it failed with `error`), on the ledger."""
        (decision,) = self.planner.fixed(settings.spec, index)
        return Plan(item, settings, decision, False, 0.0, error)

    def spend_summary(self) -> list[dict[str, Any]]:
        """Allocated spend per run-settings group: queries, units allocated, units budgeted."""
        return [ledger.as_dict() for ledger in self.planner.ledgers()]
