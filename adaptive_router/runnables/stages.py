"""`RouterStages`: the stages every router runs, written once (no model call here; see `BaseRouter`).

Settings, input validation, windowing, the micro-batcher of concurrent ``ainvoke`` calls and the sending of
the plans' requests. A router subclass says what its settings are (`RouterStages._settings`) and executes
plans: the requests its plans send (`RouterStages._requests`; for a router that calls a model before
planning also `RouterStages._pre_requests`) and the answers built from what came back
(`RouterStages._results`, sync and async), the way httpx's ``BaseClient`` builds requests and
``Client``/``AsyncClient`` only send them: sending, sync and async, is written here once. The stages of one
call are listed in `adaptive_router.runnables.base`.
"""

from __future__ import annotations

import asyncio
import difflib
import math
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_executor_for_config
from langchain_core.runnables.utils import gather_with_concurrency
from pydantic import ConfigDict, PrivateAttr
from typing_extensions import override

from adaptive_router.allocation.planning import DEFAULT_MAX_GROUPS
from adaptive_router.errors import ConfigError
from adaptive_router.runnables.batcher import MicroBatcher
from adaptive_router.runnables.plans import Plan, ProbePlanner, RunSettings, check_probe, prepare_input
from adaptive_router.runnables.rounds import (
    LiveWindow,
    RoundSlot,
    advance,
    outputs,
    round_requests,
    windows_of,
)
from adaptive_router.runnables.tracing import AsyncRuns, Runs
from adaptive_router.strategies.base import (
    Request,
    SampleBatch,
    asend_all,
    merge,
    reraise_config_errors,
    send_all,
)

__all__ = ["RouterStages", "check_calibration_texts"]

_T = TypeVar("_T")
_NEAR_MISS = 0.75
"""How close (difflib's ratio, case-insensitive) an unknown configurable key must be to a valid one to be
taken for a misspelling of it."""


def _windows(keys: Sequence[Any], size: int) -> list[list[int]]:
    """Indices of the non-``None`` keys, grouped by key (input order kept) and cut into windows of `size`."""
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            groups.setdefault(key, []).append(i)
    return [idxs[s : s + size] for idxs in groups.values() for s in range(0, len(idxs), size)]


def check_calibration_texts(texts: Any) -> list[str] | None:
    """`texts` as a list of reference queries (``None`` stays ``None``), checked before any call.

    An empty list would be accepted only to fail on the first lone call (the threshold has nothing to be
    calibrated on), and a bare string would calibrate on its characters.

    Raises
    ------
    ConfigError
        An empty sequence, a string instead of a list of them, or an item that is not a non-empty string.

    Examples
    --------
    >>> check_calibration_texts(("2 + 2 =", "12 * 7 ="))
    ['2 + 2 =', '12 * 7 =']
    >>> check_calibration_texts([])
    Traceback (most recent call last):
    ...
    adaptive_router.errors.ConfigError: calibration_texts is empty: pass reference queries ...
    """
    if texts is None:
        return None
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ConfigError(
            f"calibration_texts must be a list of query strings, got {type(texts).__name__}; "
            "e.g. calibration_texts=['2 + 2 =', ...]"
        )
    if not texts:
        raise ConfigError(
            "calibration_texts is empty: pass reference queries like the ones the router will see, "
            "or None to calibrate on the queries planned so far"
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"calibration_texts[{i}] must be a non-empty string, got {text!r}")
    return list(texts)


def _regroup(requests: Mapping[int, list[Request]], sent: Sequence[SampleBatch]) -> dict[int, SampleBatch]:
    """The flat results of `send_all` back into one `SampleBatch` per slot."""
    results = iter(sent)
    return {i: merge([next(results) for _ in reqs]) for i, reqs in requests.items()}


def _raise_or_return(out: Any) -> Any:
    if isinstance(out, BaseException):
        raise out
    return out


class RouterStages(BaseChatModel):
    """The settings every router shares and the stages it runs; `BaseRouter` documents the parameters."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    probe: Any = None
    budget_per_query: float = 1.0
    window_size: int = 32
    max_wait_ms: float = 2.0
    calibration_texts: list[str] | None = None
    probe_in_thread: bool = True
    prices: Any = None
    stop: list[str] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    streaming: bool = False

    _core: ProbePlanner = PrivateAttr()
    _batchers: Any = PrivateAttr()

    _CONFIGURABLE: ClassVar[dict[str, tuple[Any, str]]] = {
        "budget_per_query": (float, "Average units per query for this call."),
    }
    _starts_early: ClassVar[bool] = False
    """Whether a query's run starts before planning (a router that calls a model before planning)."""

    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(type(self).model_fields))
        if unknown:
            raise ConfigError(
                f"{type(self).__name__} got unknown parameters {unknown}; it takes "
                f"{sorted(type(self).model_fields)} (a wrapped model's own settings, such as api_key or "
                "timeout, go to that model)"
            )
        with reraise_config_errors():
            super().__init__(**kwargs)

    @override
    def model_post_init(self, context: Any, /) -> None:
        if isinstance(self.window_size, bool) or self.window_size < 1:
            raise ConfigError(f"window_size must be an int >= 1, got {self.window_size!r}")
        if not math.isfinite(self.max_wait_ms) or self.max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be a finite number >= 0, got {self.max_wait_ms!r}")
        check_probe(self.probe, {})
        check_calibration_texts(self.calibration_texts)
        self._validate()
        self._check_prices()
        self._core = ProbePlanner(probe=self.probe, calibration_texts=self.calibration_texts)
        self._batchers = weakref.WeakKeyDictionary()
        self._run_settings(None)

    # ------------------------------------------------------------------ what a router defines
    def _validate(self) -> None:
        """Check the subclass's own parameters (after the shared ones)."""

    def _priced(self) -> list[str]:
        """The names `prices` must price (the procedures of every model the router can call)."""
        return []

    def _settings(self, config: RunnableConfig | None) -> RunSettings:
        """The run settings of one call (its ``config["configurable"]`` overrides), validated."""
        raise NotImplementedError

    def _with_models(self, fn: Callable[[Any], Any]) -> Any:
        """A copy whose wrapped models are ``fn(model)`` (sharing this router's ledgers)."""
        raise NotImplementedError

    def _probe_text(self, item: Any) -> str:
        """The text the probe reads for a planned item."""
        return str(item.text)

    def _adjust_values(self, items: list[Any], values: Any) -> Any:
        """The values a window is planned on, from the probe's (None without a probe); by default those."""
        return values

    def _on_plan_error(self, item: Any, error: BaseException) -> Plan | BaseException:
        """What an item whose planning failed becomes (by default: the error)."""
        return error

    def _pre_requests(self, slots: list[Any]) -> dict[int, list[Request]]:
        """Requests to send before planning, per slot (by default none; a cascade's drafts)."""
        return {}

    def _pre_results(self, slots: list[Any], batches: dict[int, SampleBatch]) -> list[Any]:
        """The plannable items, given what the pre-planning requests returned (by default the slots)."""
        return slots

    def _requests(self, slots: list[Any]) -> tuple[list[Any], dict[int, list[Request]]]:
        """The requests executing the `Plan` slots sends, per slot (slots that cannot run become errors)."""
        raise NotImplementedError

    def _results(
        self, slots: list[Any], batches: dict[int, SampleBatch], config: list[RunnableConfig]
    ) -> list[Any]:
        """Outputs (or per-item errors) from what the plans' requests returned."""
        raise NotImplementedError

    async def _aresults(
        self, slots: list[Any], batches: dict[int, SampleBatch], config: list[RunnableConfig]
    ) -> list[Any]:
        """Async :meth:`_results`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ settings and inputs
    def _check_prices(self) -> None:
        if self.prices is None:
            return
        from adaptive_router.prices import PriceTable

        if not isinstance(self.prices, PriceTable):
            raise ConfigError(
                f"prices must be an adaptive_router.prices.PriceTable, got {type(self.prices).__name__}"
            )
        missing = sorted(set(self._priced()) - set(self.prices))
        if missing:
            raise ConfigError(
                f"prices has no price for {missing} (it has {sorted(self.prices)}); price every procedure "
                "the router can call, by procedure name"
            )

    def _run_settings(self, config: RunnableConfig | None) -> RunSettings:
        """`_settings`, after checking the configurable keys that look meant for this router."""
        conf = (config or {}).get("configurable") or {}
        valid = set(self._CONFIGURABLE)
        for key in conf:
            if key in valid or not isinstance(key, str) or key.startswith("__"):
                continue
            lowered = key.lower()
            near = difflib.get_close_matches(lowered, valid, n=1, cutoff=_NEAR_MISS)
            if near or lowered.startswith("adaptive_router"):
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ConfigError(
                    f"unknown configurable key {key!r} for {type(self).__name__}{hint}; its keys are "
                    f"{sorted(valid)} (keys that are no near-miss of these are left to others, e.g. "
                    "LangGraph's thread_id)"
                )
        return self._settings(config)

    def _budget(self, config: RunnableConfig | None) -> Any:
        """The budget a call asks for (checked by `PlanSpec`)."""
        return ((config or {}).get("configurable") or {}).get("budget_per_query", self.budget_per_query)

    def _call_kwargs(self, stop: list[str] | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """What goes with every request to a wrapped model: the router's defaults, then the call's."""
        out: dict[str, Any] = {
            k: v for k in ("stop", "temperature", "max_tokens") if (v := getattr(self, k)) is not None
        }
        out.update(kwargs)
        if stop is not None:
            out["stop"] = stop
        return out

    def _prepare(
        self, inputs: Sequence[Any], config: Sequence[RunnableConfig], kwargs: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """One slot per input: its `Query`, or the error that stops it (bad input or settings)."""
        slots: list[Any] = []
        for value, conf in zip(inputs, config, strict=True):
            try:
                slots.append(prepare_input(value, self._run_settings(conf), kwargs))
            except Exception as exc:
                slots.append(exc)
        return slots

    # ------------------------------------------------------------------ planning
    def _plan_window(self, items: list[Any]) -> list[Any]:
        """Plan one window (all items share their settings); a failure becomes each item's error."""
        settings: RunSettings = items[0].settings
        if settings.rounds is not None:
            return self._plan_rounds(items)
        try:
            texts = [self._probe_text(i) for i in items]
            planned = self._core.plan(items, texts, settings, lambda v: self._adjust_values(items, v))
        except Exception as exc:
            planned = [exc] * len(items)
        return [
            p if isinstance(p, Plan) else self._on_plan_error(item, p)
            for item, p in zip(items, planned, strict=True)
        ]

    def _plan_rounds(self, items: list[Any]) -> list[Any]:
        """Reserve one window's budget for rounds: a `RoundSlot` per item (or its error)."""
        settings: RunSettings = items[0].settings
        try:
            texts = [self._probe_text(i) for i in items]
            grant, errors, fallback, probe_ms = self._core.reserve(texts, settings)
        except Exception as exc:
            return [self._on_plan_error(item, exc) for item in items]
        good = [item for item, error in zip(items, errors, strict=True) if error is None]
        if grant is None:
            return list(errors)
        window = LiveWindow(
            good, settings, grant, self._core.planner, fallback_active=fallback, probe_ms=probe_ms
        )
        rows = iter(range(len(good)))
        return [RoundSlot(window, next(rows)) if error is None else error for error in errors]

    def _plan(self, slots: list[Any]) -> list[Any]:
        """Plan every non-error slot, per settings group and window (errors pass through)."""
        out = list(slots)
        keys = [None if isinstance(s, BaseException) else s.settings.group for s in slots]
        for window in _windows(keys, self.window_size):
            for i, plan in zip(window, self._plan_window([slots[i] for i in window]), strict=True):
                out[i] = plan
        return out

    async def _off_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)``, in a worker thread when it runs the probe and ``probe_in_thread`` is set."""
        if self.probe is not None and self.probe_in_thread:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    def _batcher(self, settings: RunSettings) -> MicroBatcher[Any, Any]:
        """The micro-batcher of this event loop and settings group (the most recent groups kept)."""
        per_loop: OrderedDict[Any, MicroBatcher[Any, Any]] = self._batchers.setdefault(
            asyncio.get_running_loop(), OrderedDict()
        )
        key = settings.group
        batcher = per_loop.get(key)
        if batcher is None:

            async def plan(items: list[Any]) -> list[Any]:
                return await self._off_loop(self._plan_window, items)

            async def plan_and_sample(pairs: list[tuple[Any, RunnableConfig]]) -> list[Any]:
                items, configs = [p[0] for p in pairs], [p[1] for p in pairs]
                return await self._aexecute(await self._off_loop(self._plan_window, items), configs)

            process: Any = plan if settings.rounds is None else plan_and_sample
            batcher = MicroBatcher(
                process=process, max_batch_size=self.window_size, max_wait_ms=self.max_wait_ms
            )
            per_loop[key] = batcher
            while len(per_loop) > DEFAULT_MAX_GROUPS:  # a dropped batcher still flushes what it holds
                per_loop.popitem(last=False)
        else:
            per_loop.move_to_end(key)
        return batcher

    # ------------------------------------------------------------------ sending
    @staticmethod
    def _send(requests: Mapping[int, list[Request]], config: list[RunnableConfig]) -> dict[int, SampleBatch]:
        """Send the requests of every slot, at most ``max_concurrency`` at a time over the whole batch."""
        flat = [(r, config[i]) for i, reqs in requests.items() for r in reqs]
        return _regroup(requests, send_all(flat, config[0].get("max_concurrency"))) if flat else {}

    @staticmethod
    async def _asend(
        requests: Mapping[int, list[Request]], config: list[RunnableConfig]
    ) -> dict[int, SampleBatch]:
        """Async :meth:`_send`."""
        flat = [(r, config[i]) for i, reqs in requests.items() for r in reqs]
        if not flat:
            return {}
        return _regroup(requests, await asend_all(flat, config[0].get("max_concurrency")))

    # ------------------------------------------------------------------ the stages
    def _pre_plan(self, slots: list[Any], config: list[RunnableConfig]) -> list[Any]:
        return self._pre_results(slots, self._send(self._pre_requests(slots), config))

    async def _apre_plan(self, slots: list[Any], config: list[RunnableConfig]) -> list[Any]:
        return self._pre_results(slots, await self._asend(self._pre_requests(slots), config))

    def _execute(self, slots: list[Any], config: list[RunnableConfig]) -> list[Any]:
        slots, requests = self._requests(slots)
        windows = windows_of(slots)
        try:
            for window in windows:
                window.start()
            sent = self._send({**requests, **round_requests(slots)}, config)
            out = self._results(slots, {i: sent[i] for i in requests}, config)
            while windows:
                reads = [i for i, b in sent.items() if i not in requests and self._record(slots[i], b)]
                readings = self._map(lambda i: slots[i].window.read(slots[i].row, config[i]), reads, config)
                windows = advance(slots, windows, dict(zip(reads, readings, strict=True)))
                requests = {}
                sent = self._send(round_requests(slots), config) if windows else {}
        finally:
            for window in windows_of(slots):
                window.settle()
        return outputs(slots, out)

    async def _aexecute(self, slots: list[Any], config: list[RunnableConfig]) -> list[Any]:
        slots, requests = self._requests(slots)
        windows = windows_of(slots)
        try:
            for window in windows:
                window.start()
            sent = await self._asend({**requests, **round_requests(slots)}, config)
            out = await self._aresults(slots, {i: sent[i] for i in requests}, config)
            while windows:
                reads = [i for i, b in sent.items() if i not in requests and self._record(slots[i], b)]
                reading = (slots[i].window.aread(slots[i].row, config[i]) for i in reads)
                cap = config[0].get("max_concurrency") or None
                readings = await gather_with_concurrency(cap, *reading) if reads else []
                windows = advance(slots, windows, dict(zip(reads, readings, strict=True)))
                requests = {}
                sent = await self._asend(round_requests(slots), config) if windows else {}
        finally:
            for window in windows_of(slots):
                window.settle()
        return outputs(slots, out)

    # ------------------------------------------------------------------ rounds
    @staticmethod
    def _record(slot: RoundSlot, batch: SampleBatch) -> bool:
        """Give a round slot what its round returned; whether there are new candidates to read."""
        return slot.window.record(slot.row, batch)

    @staticmethod
    def _map(fn: Callable[[int], _T], indices: list[int], config: list[RunnableConfig]) -> list[_T]:
        """``fn`` over `indices`, in a thread pool sized by ``max_concurrency`` when there are several."""
        if len(indices) < 2:
            return [fn(i) for i in indices]
        with get_executor_for_config(config[0]) as executor:
            return list(executor.map(fn, indices))

    # ------------------------------------------------------------------ one call, traced
    def _run(
        self,
        inputs: Sequence[Any],
        config: Sequence[RunnableConfig],
        kwargs: Mapping[str, Any],
        queries: list[Any] | None = None,
    ) -> list[Any]:
        """Outputs (or per-item errors) in input order; `config` is one config per input; `queries`: the
        inputs already prepared (`_prepare`), if they were."""
        queries = self._prepare(inputs, config, kwargs) if queries is None else queries
        runs = Runs(self, config, kwargs)
        try:
            if self._starts_early:
                runs.start(queries, queries)
            slots = self._plan(self._pre_plan(queries, runs.children))
            runs.start(slots, queries)
            out = self._execute(slots, runs.children)
        except BaseException as exc:
            runs.end([exc] * len(queries))
            raise
        return runs.end(out)

    async def _arun(
        self,
        inputs: Sequence[Any],
        config: Sequence[RunnableConfig],
        kwargs: Mapping[str, Any],
        queries: list[Any] | None = None,
    ) -> list[Any]:
        """Async :meth:`_run`."""
        queries = self._prepare(inputs, config, kwargs) if queries is None else queries
        runs = AsyncRuns(self, config, kwargs)
        try:
            if self._starts_early:
                await runs.start(queries, queries)
            slots = await self._off_loop(self._plan, await self._apre_plan(queries, runs.children))
            await runs.start(slots, queries)
            out = await self._aexecute(slots, runs.children)
        except BaseException as exc:
            await runs.end([exc] * len(queries))
            raise
        return await runs.end(out)

    async def _ainvoke_one(self, input: Any, config: RunnableConfig, kwargs: Mapping[str, Any]) -> Any:
        """One ``ainvoke``: planned with the concurrent calls of its micro-batch."""
        settings = self._run_settings(config)
        query = prepare_input(input, settings, kwargs)
        runs = AsyncRuns(self, [config], kwargs)
        try:
            if self._starts_early or settings.rounds is not None:
                await runs.start([query], [query])
            (item,) = await self._apre_plan([query], runs.children)
            if settings.rounds is not None:  # planned and sampled with its micro-batch
                out = await self._batcher(settings).submit((_raise_or_return(item), runs.children[0]))
            else:
                plan = await self._batcher(settings).submit(_raise_or_return(item))
                await runs.start([plan], [query])
                (out,) = await self._aexecute([plan], runs.children)
        except BaseException as exc:
            await runs.end([exc])
            raise
        (out,) = await runs.end([out])
        return _raise_or_return(out)

    # ------------------------------------------------------------------ accounting
    def spend_summary(self) -> list[dict[str, Any]]:
        """Allocated spend so far per run-settings group: queries, units allocated, units budgeted.

        The most recently used groups are kept (see `adaptive_router.allocation.Planner`).
        """
        return self._core.spend_summary()
