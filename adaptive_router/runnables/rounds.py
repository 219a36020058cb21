"""Live rounds: a window's queries sampled in rounds, their evidence read in between (no I/O here).

A window planned in rounds is one `LiveWindow`: the budget `adaptive_router.allocation.Planner.reserve`
granted it, the `RoundPlanner` built from the call's `Rounds` settings, and every query's candidates,
readings and round records. Each of its queries is a `RoundSlot` in the router's stages. The router
(`adaptive_router.runnables.base.BaseRouter`) drives every window of a batch together, one send per round:

1. ``start`` issues round 1 (the probe's curves, when there are any, are the planner's prior);
2. ``requests(row)`` are the round's requests of one query (one ``n=k`` request, or k requests);
3. ``record(row, batch)`` takes what came back; ``read`` / ``aread`` ask the strategy's reranker for the new
   candidates' evidence (a verifier's reward, an extracted answer, a score), ``observe`` records it;
4. ``advance`` hands the round's evidence to the planner and asks for the next round (all zeros: done);
5. ``settle`` records what the rounds spent (units issued times the unit cost, failed requests included) in
   the ledger and returns the rest; ``output(row)`` is the query's answer with its metadata, whose
   ``rounds`` key lists every round (`RoundsMetadata`).

A query whose every request in a round failed gets no further round (its units stay spent); a query with
no successful candidate at all is that item's error, as in one-shot.

The router sees a window only through ``active``, ``start``, ``requests``, ``record``, ``read``/``aread``,
``observe``, ``advance``, ``settle`` and ``output``, so a subclass can run another round policy the same way:
`adaptive_router.runnables.cascade_rounds.CascadeWindow` (a `CascadeRouter` with ``cascade_model``) sends
the `CascadePlanner`'s escalations to the expensive model in the same rounds as its cheap samples.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import patch_config

from adaptive_router.allocation import Option
from adaptive_router.allocation.cascade import CascadePlanner
from adaptive_router.allocation.planning import Grant, Planner
from adaptive_router.allocation.rounds import RoundPlanner
from adaptive_router.errors import ConfigError
from adaptive_router.runnables.metadata import RoundRecord, RoundsMetadata, annotate, plan_metadata
from adaptive_router.runnables.plans import Plan, Query, RunSettings
from adaptive_router.strategies.base import Reading, Request, SampleBatch, merge

__all__ = ["LiveWindow", "RoundSlot", "advance", "outputs", "round_requests", "windows_of"]


@dataclass(frozen=True)
class RoundSlot:
    """One query of a `LiveWindow`: what the router's planning stage returns for it."""

    window: LiveWindow
    row: int

    @property
    def settings(self) -> RunSettings:
        return self.window.settings


def _jsonable(value: Any) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | np.floating | np.integer):
        return float(value)
    return repr(value)


@dataclass
class _Live:
    """One query's state across rounds."""

    query: Query
    batch: SampleBatch
    reading: Reading
    codes: dict[Hashable, int]
    rounds: list[RoundRecord]
    new: list[AIMessage]
    error: BaseException | None = None


class LiveWindow:
    """The rounds of one window of queries that share their run settings (see the module docstring).

    Parameters
    ----------
    queries : list of Query
        The window's queries (the probe gave each a usable curve).
    settings : RunSettings
        Their settings: ``rounds`` and the evidence ``kind`` are set.
    grant : Grant
        The budget reserved for them by `planner`; settled into its ledger exactly once by `settle`.
    planner : Planner
        The allocation planner the grant came from.
    fallback_active, probe_ms
        For the metadata.
    """

    def __init__(
        self,
        queries: list[Query],
        settings: RunSettings,
        grant: Grant,
        planner: Planner,
        *,
        fallback_active: bool = False,
        probe_ms: float = 0.0,
    ) -> None:
        self.settings = settings
        self.grant = grant
        self.planner = planner
        self.fallback_active = fallback_active
        self.probe_ms = probe_ms
        spec = settings.spec
        ladder = spec.ladder
        self.procedure = ladder.procedures[0]
        self.unit_cost = float(ladder.costs[0]) / int(ladder.ks[0])
        self.max_k = int(ladder.max_k) if spec.max_k is None else min(int(ladder.max_k), int(spec.max_k))
        self.kind = str(settings.evidence)
        self.live = [_Live(q, SampleBatch(), Reading(), {}, [], []) for q in queries]
        self.units = np.zeros(len(queries), dtype=np.int64)
        self.round_planner: RoundPlanner | CascadePlanner | None = None
        self.error: BaseException | None = None
        self._rows: list[int] = []
        self._evidence: list[Any] = []

    # ------------------------------------------------------------------ rounds
    @property
    def active(self) -> bool:
        """Whether a round is issued and not yet advanced past."""
        return bool(self.units.any())

    def start(self) -> None:
        """Build the planner and issue round 1 (a planning error becomes every query's error)."""
        n = len(self.live)
        prior = None if self.grant.values is None else self.grant.values[:, : self.max_k]
        try:
            rounds = self.settings.rounds
            if rounds is None:
                raise ConfigError("a LiveWindow needs run settings with rounds")
            self.round_planner = rounds.planner(
                self.kind,
                budget_per_query=self.grant.units / n,
                max_k=self.max_k,
                unit_cost=self.unit_cost,
                price=self.grant.price,
                prior=prior is not None,
            )
            self.units = self.round_planner.start(prior, n=n)
        except Exception as exc:
            self.error, self.units = exc, np.zeros(n, dtype=np.int64)

    def requests(self, row: int) -> list[Request]:
        """The requests of `row` in the current round (none when it gets no unit)."""
        k = int(self.units[row])
        if k == 0:
            return []
        live = self.live[row]
        option = Option(self.procedure, k, k * self.unit_cost)
        requests = live.query.settings.strategy.requests(live.query.messages, option)
        return [r.with_kwargs(live.query.kwargs) for r in requests]

    def record(self, row: int, batch: SampleBatch) -> bool:
        """Take what `row`'s round returned; whether it has new candidates to read."""
        live = self.live[row]
        live.batch = merge([live.batch, batch])
        live.new = list(batch.candidates)
        live.rounds.append(
            RoundRecord(
                round=0 if self.round_planner is None else int(self.round_planner.rounds_),
                units=int(self.units[row]),
                calls=batch.calls,
                failed_calls=batch.failed_calls,
                cost=float(self.units[row]) * self.unit_cost,
                evidence=[],
                best=None,
            )
        )
        return bool(live.new)

    @staticmethod
    def _reader_config(config: RunnableConfig) -> RunnableConfig:
        """A reranker's own requests (an LLM judge) run one at a time per query under a concurrency cap,
        so that the queries read together stay within ``max_concurrency``."""
        return patch_config(config, max_concurrency=1) if config.get("max_concurrency") else config

    def read(self, row: int, config: RunnableConfig) -> Reading | BaseException:
        """The evidence of `row`'s new candidates (see `_read_new`), or the error reading them."""
        try:
            return self._read_new(self.live[row], self._reader_config(config))
        except Exception as exc:
            return exc

    async def aread(self, row: int, config: RunnableConfig) -> Reading | BaseException:
        """Async :meth:`read`."""
        try:
            return await self._aread_new(self.live[row], self._reader_config(config))
        except Exception as exc:
            return exc

    def _read_new(self, live: _Live, config: RunnableConfig) -> Reading:
        """What reads a query's new candidates: its strategy's reranker (a subclass may read otherwise)."""
        strategy = live.query.settings.strategy
        return strategy.read(live.query.messages, live.new, config)  # type: ignore[no-any-return]

    async def _aread_new(self, live: _Live, config: RunnableConfig) -> Reading:
        """Async :meth:`_read_new`."""
        strategy = live.query.settings.strategy
        return await strategy.aread(live.query.messages, live.new, config)  # type: ignore[no-any-return]

    def observe(self, row: int, reading: Reading | BaseException) -> None:
        """Record `row`'s reading of its new candidates (an error ends the query: no further rounds)."""
        live = self.live[row]
        if isinstance(reading, BaseException) or len(reading.evidence) != len(live.new):
            live.error = (
                reading
                if isinstance(reading, BaseException)
                else ValueError(f"the reranker read {len(reading.evidence)} candidates of {len(live.new)}")
            )
            return
        live.reading.extend(reading)
        record = live.rounds[-1]
        for value in reading.evidence:
            record["evidence"].append(_jsonable(value))
            code = self._code(live, value)
            if code is not None:
                self._rows.append(row)
                self._evidence.append(code)
        record["best"] = self._best(live)
        live.new = []

    def _code(self, live: _Live, value: Any) -> Any:
        """What the planner observes for one candidate (None: nothing it can use, e.g. a NaN score)."""
        if self.kind == "answers":
            return -1 if value is None else live.codes.setdefault(value, len(live.codes))
        score = float(value)
        if self.kind == "scores" and not math.isfinite(score):
            return None
        return score

    def _best(self, live: _Live) -> float | str | None:
        """The best evidence so far: the top reward or score, or the plurality answer."""
        ev = live.reading.evidence
        if self.kind == "answers":
            counts: dict[Hashable, int] = {}
            for a in ev:
                if a is not None:
                    counts[a] = counts.get(a, 0) + 1
            return _jsonable(max(counts, key=lambda a: counts[a])) if counts else None
        finite = [float(v) for v in ev if math.isfinite(float(v))]
        return max(finite) if finite else None

    def advance(self) -> None:
        """Give the planner the round's evidence and issue the next round (all zeros: the rounds are over).

        Queries that failed (a reading error, every request of the round failed) get no further unit.
        """
        planner = self.round_planner
        if planner is None or not self.units.any():
            self.units = np.zeros(len(self.live), dtype=np.int64)
            return
        self._hand_over(planner)
        self.units = planner.next_round()

    def _hand_over(self, planner: RoundPlanner | CascadePlanner) -> None:
        """Give `planner` the round's evidence and close the queries that failed in it."""
        closed = [
            i
            for i, live in enumerate(self.live)
            if self.units[i] and (live.error is not None or not live.rounds[-1]["evidence"])
        ]
        planner.observe(np.asarray(self._rows, dtype=np.int64), np.asarray(self._evidence))
        self._rows, self._evidence = [], []
        if closed:
            planner.close(closed)

    # ------------------------------------------------------------------ results
    def settle(self) -> None:
        """Record the spend of every unit issued (failed ones included) and return the rest of the grant."""
        if self.grant.settled:
            return
        rp = self.round_planner
        self.planner.settle(self.grant, rp.spent_ if rp is not None and hasattr(rp, "units_") else 0.0)

    def output(self, row: int) -> AIMessage | BaseException:
        """`row`'s answer (the best candidate of all its rounds) with its metadata, or its error."""
        live = self.live[row]
        if self.error is not None:
            return self.error
        read = live.reading
        if live.error is not None:
            if not read.evidence:
                return live.error
            live.batch.candidates = live.batch.candidates[: len(read.evidence)]  # the unread ones: the tail
        k = max(int(sum(r["units"] for r in live.rounds)), 1)
        option = Option(self.procedure, k, k * self.unit_cost)
        try:
            result = live.query.settings.strategy.finish_read(option, live.batch, read)
        except Exception as exc:
            return exc
        index = [o.k for o in self.settings.spec.ladder].index(k)
        plan = Plan(live.query, live.query.settings, self.grant.decision(index, row), self.fallback_active,
                    self.probe_ms)  # fmt: skip
        meta = plan_metadata(plan, result)
        rounds = self.settings.rounds
        meta["rounds"] = RoundsMetadata(
            evidence=self.kind,
            stop_reason=None if self.round_planner is None else self.round_planner.stop_reason_,
            rule="learned" if rounds is not None and rounds.model is not None else "posterior",
            prior_weight=None if rounds is None or rounds.model is not None else rounds.prior_weight,
            per_round=live.rounds,
        )
        return annotate(result.message, meta)


# ------------------------------------------------------------------ driving the windows of a batch
def windows_of(slots: Sequence[Any]) -> list[LiveWindow]:
    """The distinct live windows among a batch's slots, in order."""
    seen: dict[int, LiveWindow] = {}
    for slot in slots:
        if isinstance(slot, RoundSlot):
            seen.setdefault(id(slot.window), slot.window)
    return list(seen.values())


def round_requests(slots: Sequence[Any]) -> dict[int, list[Request]]:
    """The current round's requests of every round slot that gets a unit, by slot index."""
    out: dict[int, list[Request]] = {}
    for i, slot in enumerate(slots):
        if isinstance(slot, RoundSlot) and slot.window.active:
            requests = slot.window.requests(slot.row)
            if requests:
                out[i] = requests
    return out


def advance(slots: Sequence[Any], windows: list[LiveWindow], readings: dict[int, Any]) -> list[LiveWindow]:
    """Observe a round's readings (by slot index), issue every window's next round; those still running."""
    for i, reading in readings.items():
        slots[i].window.observe(slots[i].row, reading)
    for window in windows:
        window.advance()
    return [w for w in windows if w.active]


def outputs(slots: Sequence[Any], out: Sequence[Any]) -> list[Any]:
    """`out` with every round slot replaced by its answer (or error)."""
    return [
        s.window.output(s.row) if isinstance(s, RoundSlot) else o for s, o in zip(slots, out, strict=True)
    ]
