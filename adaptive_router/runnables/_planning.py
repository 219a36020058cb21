"""Planning for the router: inputs -> messages, probe -> values, values + budget -> one option per query.

Kept apart from the Runnable so the allocation logic has no LangChain plumbing in it. Three allocators:

- ``window``: a window of queries (a ``batch`` chunk or a micro-batch of concurrent ``ainvoke``) is allocated
  jointly by `WindowAllocator`, which carries unspent budget across windows in a ledger;
- ``threshold``: a query that arrives alone (``invoke``, ``stream``, a micro-batch of one) is decided by a
  `ThresholdAllocator` whose λ is calibrated on a reference set: the router's ``calibration_texts`` when
  given, otherwise the predicted values of the queries seen so far (refitted when that set doubles, up to
  256 rows).
  A credit ledger downgrades its choice when it would spend more than the budget paid in so far;
- ``uniform``: without a probe every query gets the most expensive option that fits the per-query budget.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue

from adaptive_router.predictors import CurvePredictor
from adaptive_router.errors import ConfigError, InfeasibleBudgetError, ProbeError
from adaptive_router.prompts.messages import prompt_text

__all__ = [
    "Decision",
    "Planner",
    "Prepared",
    "RunSettings",
    "check_probe_protocol",
    "plan_batch",
    "prepare_input",
    "read_budget",
    "windows_by_key",
]

_MAX_REFERENCE = 256


@dataclass(frozen=True)
class Prepared:
    """A validated input: its messages and the text the probe reads."""

    messages: list[BaseMessage]
    text: str


def prepare_input(value: Any) -> Prepared:
    """Validate one router input (str, message list, PromptValue) and turn it into messages.

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
    return Prepared(messages=messages, text=text)


def plan_batch(
    inputs: Sequence[Any],
    configs: Sequence[Any],
    *,
    settings: Callable[[Any], RunSettings],
    plan_window: Callable[[list[Prepared], RunSettings], Sequence[Any]],
    window_size: int,
) -> list[Any]:
    """Plan a batch: one slot per input, holding its plan or the exception that stopped it.

    Each input is validated with :func:`prepare_input` and ``settings(config)``; the valid ones are grouped
    by settings key (input order kept) and each group is planned in windows of ``window_size`` by
    ``plan_window(items, settings)``. A window whose planning raises gets that exception in all its slots.
    """
    slots: list[Any] = [None] * len(inputs)
    for i, (value, config) in enumerate(zip(inputs, configs, strict=False)):
        try:
            slots[i] = (prepare_input(value), settings(config))
        except Exception as exc:
            slots[i] = exc
    keys = [None if isinstance(slot, BaseException) else slot[1].key for slot in slots]
    for window in windows_by_key(keys, window_size):
        try:
            planned = plan_window([slots[i][0] for i in window], slots[window[0]][1])
        except Exception as exc:
            planned = [exc] * len(window)
        for i, plan in zip(window, planned, strict=False):
            slots[i] = plan
    return slots


def windows_by_key(keys: Sequence[Any], size: int) -> list[list[int]]:
    """Indices of the non-``None`` keys, grouped by key (input order kept) and cut into windows of `size`."""
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            groups.setdefault(key, []).append(i)
    return [idxs[s : s + size] for idxs in groups.values() for s in range(0, len(idxs), size)]


def read_budget(config: Mapping[str, Any] | None, default: float) -> float:
    """``config["configurable"]["budget_per_query"]`` (or `default`), checked to be a finite number."""
    conf = (config or {}).get("configurable") or {}
    budget = conf.get("budget_per_query", default)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget):
        raise ConfigError(f"budget_per_query must be a finite number, got {budget!r}")
    return float(budget)


def check_probe_protocol(probe: Any) -> None:
    """Reject a probe that does not satisfy `CurvePredictor` (``None`` means no probe and passes)."""
    if probe is not None and not isinstance(probe, CurvePredictor):
        raise ConfigError(
            f"probe must satisfy CurvePredictor (predict_curves, procedures, max_k, fallback_active), "
            f"got {type(probe).__name__}"
        )


@dataclass(frozen=True)
class RunSettings:
    """What a call may override through ``config["configurable"]``: strategy, budget and max_k."""

    strategy: Any
    strategy_name: str
    budget: float
    max_k: int | None

    @property
    def key(self) -> tuple[int, float, int | None]:
        """Calls with the same key share ledgers and micro-batches."""
        return (id(self.strategy), self.budget, self.max_k)


@dataclass
class Decision:
    """The option chosen for one query and why."""

    option: Any
    index: int
    values: list[float | None] | None
    fallback_active: bool
    allocator: str
    window: int
    shadow_price: float | None = None

    def summary(self) -> dict[str, Any]:
        """The predicted-curve part of the result metadata."""
        chosen = None if self.values is None else self.values[self.index]
        return {
            "values": self.values,
            "chosen_value": chosen,
            "fallback_active": self.fallback_active,
            "allocator": self.allocator,
            "window": self.window,
            "shadow_price": self.shadow_price,
        }


@dataclass
class _Ladder:
    options: list[Any]
    costs: np.ndarray
    ks: np.ndarray
    raw: Any
    strategy: Any


@dataclass
class _Threshold:
    allocator: Any = None
    reference: list[np.ndarray] = field(default_factory=list)
    fitted_rows: int = 0
    credit: float = 0.0


@dataclass
class _Ledger:
    queries: int = 0
    spend: float = 0.0


class Planner:
    """Probe + allocation state of one router (thread-safe)."""

    def __init__(self, *, probe: Any, calibration_texts: Sequence[str] | None) -> None:
        self.probe = probe
        self.calibration_texts = calibration_texts
        self._lock = threading.Lock()
        self._ladders: dict[int, _Ladder] = {}
        self._windows: dict[tuple[Any, ...], Any] = {}
        self._thresholds: dict[tuple[Any, ...], _Threshold] = {}
        self.ledgers: dict[tuple[Any, ...], _Ledger] = {}

    # ------------------------------------------------------------------ ladder / settings
    def ladder(self, strategy: Any) -> _Ladder:
        """The strategy's options, costs and k per option (cached)."""
        cached = self._ladders.get(id(strategy))
        if cached is None or cached.strategy is not strategy:
            raw = strategy.ladder
            options = list(raw.options)
            costs = np.asarray([float(o.cost) for o in options], dtype=np.float64)
            ks = np.asarray([int(o.k) for o in options], dtype=np.int64)
            cached = _Ladder(options=options, costs=costs, ks=ks, raw=raw, strategy=strategy)
            self._ladders[id(strategy)] = cached
        return cached

    def check_settings(self, settings: RunSettings) -> None:
        """Reject a budget below the cheapest option and a max_k below 1."""
        lad = self.ladder(settings.strategy)
        if settings.max_k is not None and settings.max_k < 1:
            raise ConfigError(f"max_k must be >= 1, got {settings.max_k!r}")
        allowed = lad.costs if settings.max_k is None else lad.costs[lad.ks <= settings.max_k]
        cheapest = float(allowed.min())
        if settings.budget < cheapest - 1e-12:
            raise InfeasibleBudgetError(
                f"budget_per_query={settings.budget:g} is below the cheapest option ({cheapest:g} units); "
                f"raise the budget to at least {cheapest:g}"
            )

    # ------------------------------------------------------------------ probe
    def predict(
        self, texts: Sequence[str], settings: RunSettings
    ) -> tuple[np.ndarray | None, list[Any], bool]:
        """Predicted values ``(n, m)`` (NaN = option not allowed), per-row errors, fallback flag."""
        n = len(texts)
        if self.probe is None:
            return None, [None] * n, False
        lad = self.ladder(settings.strategy)
        curves: Mapping[str, Any] = self.probe.predict_curves(list(texts))
        errors: list[Any] = [None] * n
        checked: dict[str, np.ndarray] = {}
        need_k = int(lad.ks.max())
        for proc in {o.procedure for o in lad.options}:
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
            bad = np.logical_not(np.isfinite(arr[:, :need_k]).all(axis=1))  # (n,) array, typed as one
            for i in np.flatnonzero(bad):
                errors[i] = ProbeError(
                    f"the probe predicted a non-finite reward curve for this query ({proc!r}); "
                    "check the probe (NaN in its features or weights)"
                )
            checked[proc] = np.where(bad[:, None], 0.0, arr)
        values = np.asarray(lad.raw.values(checked), dtype=np.float64)
        if settings.max_k is not None:
            values[:, lad.ks > settings.max_k] = np.nan
        return values, errors, bool(getattr(self.probe, "fallback_active", False))

    # ------------------------------------------------------------------ allocation
    def _uniform_index(self, lad: _Ladder, settings: RunSettings) -> int:
        ok = lad.costs <= settings.budget + 1e-12
        if settings.max_k is not None:
            ok &= lad.ks <= settings.max_k
        return int(np.flatnonzero(ok)[np.argmax(lad.costs[ok])])

    def spend_summary(self) -> list[dict[str, Any]]:
        """Allocated spend so far per run-settings group: queries, units allocated, units budgeted."""
        return [
            {
                "budget_per_query": budget,
                "max_k": max_k,
                "queries": ledger.queries,
                "allocated": ledger.spend,
                "budget": budget * ledger.queries,
            }
            for (_, budget, max_k), ledger in self.ledgers.items()
        ]

    def _record(self, settings: RunSettings, costs: Sequence[float]) -> None:
        ledger = self.ledgers.setdefault(settings.key, _Ledger())
        ledger.queries += len(costs)
        ledger.spend += float(sum(costs))

    def allocate_window(
        self, values: np.ndarray | None, errors: list[Any], fallback: bool, settings: RunSettings
    ) -> list[Decision | BaseException]:
        """Allocate the rows without errors jointly; a window of one goes to the threshold allocator."""
        lad = self.ladder(settings.strategy)
        good = [i for i, e in enumerate(errors) if e is None]
        out: list[Decision | BaseException] = list(errors)
        if not good:
            return out
        if values is None:
            idx = self._uniform_index(lad, settings)
            with self._lock:
                self._record(settings, [lad.costs[idx]] * len(good))
            for i in good:
                out[i] = Decision(lad.options[idx], idx, None, False, "uniform", len(good))
            return out
        if len(good) == 1:
            out[good[0]] = self.decide_single(values[good[0]], fallback, settings)
            return out
        from adaptive_router.allocation import WindowAllocator

        sub = values[good]
        with self._lock:
            self._remember(settings, sub)
            allocator = self._windows.get(settings.key)
            if allocator is None:
                allocator = WindowAllocator(budget_per_query=settings.budget)
                self._windows[settings.key] = allocator
            alloc = allocator.allocate(sub, lad.costs)
            choice = np.asarray(alloc.choice, dtype=np.int64)
            self._record(settings, lad.costs[choice].tolist())
        price = _float_or_none(getattr(alloc, "shadow_price", None))
        for row, i in enumerate(good):
            idx = int(choice[row])
            out[i] = Decision(lad.options[idx], idx, _row(sub[row]), fallback, "window", len(good), price)
        return out

    def _remember(self, settings: RunSettings, rows: np.ndarray) -> None:
        state = self._thresholds.setdefault(settings.key, _Threshold())
        room = _MAX_REFERENCE - len(state.reference)
        if self.calibration_texts is None and room > 0:
            state.reference.extend(np.array(r) for r in rows[:room])

    def calibrate(self, settings: RunSettings) -> None:
        """Fit the threshold allocator on ``calibration_texts`` now (otherwise it happens on first use)."""
        if self.calibration_texts is None or self.probe is None:
            return
        values, errors, _ = self.predict(self.calibration_texts, settings)
        assert values is not None
        rows = values[[i for i, e in enumerate(errors) if e is None]]
        if len(rows) == 0:
            raise ConfigError("no calibration text gave a usable prediction; check calibration_texts")
        from adaptive_router.allocation import ThresholdAllocator

        lad = self.ladder(settings.strategy)
        with self._lock:
            state = self._thresholds.setdefault(settings.key, _Threshold())
            state.allocator = ThresholdAllocator(budget_per_query=settings.budget).fit(rows, lad.costs)
            state.fitted_rows = len(rows)

    def decide_single(self, row: np.ndarray, fallback: bool, settings: RunSettings) -> Decision:
        """Choose the option of a query that arrives alone (threshold λ + credit ledger)."""
        from adaptive_router.allocation import ThresholdAllocator

        lad = self.ladder(settings.strategy)
        if (
            self.calibration_texts is not None
            and self._thresholds.get(settings.key, _Threshold()).allocator is None
        ):
            self.calibrate(settings)
        with self._lock:
            state = self._thresholds.setdefault(settings.key, _Threshold())
            self._remember(settings, row[None, :])
            n_ref = len(state.reference)
            if self.calibration_texts is None and (state.allocator is None or n_ref >= 2 * state.fitted_rows):
                ref = np.vstack(state.reference)
                state.allocator = ThresholdAllocator(budget_per_query=settings.budget).fit(ref, lad.costs)
                state.fitted_rows = n_ref
            chosen = state.allocator.choose(row[None, :], lad.costs)
            idx = int(np.asarray(getattr(chosen, "choice", chosen), dtype=np.int64).ravel()[0])
            available = state.credit + settings.budget
            if lad.costs[idx] > available + 1e-9:  # never spend more than paid in so far
                ok = np.isfinite(row) & (lad.costs <= available + 1e-9)
                planned = float(lad.costs[idx])
                idx = (
                    int(np.flatnonzero(ok)[np.argmax(lad.costs[ok])])
                    if ok.any()
                    else int(np.argmin(lad.costs))
                )
                state.allocator.settle(planned=planned, actual=float(lad.costs[idx]))
            state.credit = available - float(lad.costs[idx])
            self._record(settings, [lad.costs[idx]])
            price = _float_or_none(getattr(state.allocator, "shadow_price_", None))
        return Decision(lad.options[idx], idx, _row(row), fallback, "threshold", 1, price)


def _row(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


def _float_or_none(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
