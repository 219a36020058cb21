"""One routed request from start to end: check it, reserve the key's units, route it, settle.

`RoutingService.open` checks what the request asks for (its router and budget, ``max_tokens`` against the
server's limit) and reserves the most its options can cost on the key's budget (a lower ``max_k`` when the
key cannot pay for the highest; 429 when it cannot pay for one sample). `RoutingService.complete` then runs
it through the router's ``ainvoke``, so concurrent requests meet in the router's micro-batcher and are
allocated jointly, a lone one by the calibrated threshold (planned at once when nothing else is in flight,
instead of waiting ``max_wait_ms`` for company that cannot come); `RoutingService.stream` plans it alone and
passes the chosen model's stream through. Either way the reservation is settled with the units spent.

When the upstream fails (after the backend's own retries) the circuit breaker counts it and, if the router
has a ``fallback`` backend, that backend is asked once; otherwise the error goes back as 502/504. While the
breaker is open requests skip the upstream: straight to the fallback, or 503 with ``Retry-After`` at once.

The fallback's units are charged to the key (its reservation covers them) and reported in the metrics, but
they are outside the router's ledger, which counts what the router allocated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig

from adaptive_router.errors import AdaptiveRouterError, ConfigError, ProbeError
from adaptive_router.server.budgets import BudgetExhaustedError, KeyBudgets, KeyState, Reservation
from adaptive_router.server.errors import APIError, Redactor
from adaptive_router.server.metrics import Metrics, record_answer
from adaptive_router.server.protocol import ChatRequest
from adaptive_router.server.routers import RouterEntry, Target, parse_target

__all__ = ["Answer", "Call", "RoutingService"]

log = logging.getLogger("adaptive_router.server")

_KEEP = (
    "procedure",
    "k",
    "cost",
    "allocated_cost",
    "budget_per_query",
    "calls",
    "failed_calls",
    "candidates",
    "judge_calls",
    "tokens",
    "fallback_active",
    "reranker_scores",
    "selected",
    "probe_ms",
    "strategy",
    "rounds",
)


@dataclass
class Call:
    """A request that passed its checks and holds a reservation on its key."""

    entry: RouterEntry
    target: Target
    messages: list[BaseMessage]
    config: RunnableConfig
    key: str
    reservation: Reservation
    max_k: int | None
    sampling: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    settled: bool = False


@dataclass
class Answer:
    """A routed answer: its text, finish reason and the ``adaptive_router`` decision record."""

    text: str
    finish_reason: str
    meta: dict[str, Any]


def _upstream_failure(exc: BaseException) -> bool:
    """Whether `exc` is the upstream's fault (counted by the breaker, triggers the fallback)."""
    return isinstance(exc, Exception) and not isinstance(exc, (ConfigError, ProbeError, APIError))


class RoutingService:
    """The routers of a server, the key budgets and the metrics they report to.

    Parameters
    ----------
    routers : mapping of str to RouterEntry
    budgets : KeyBudgets
    metrics : Metrics
    redactor : Redactor
        Hides secrets in error texts.
    max_tokens : int
        The largest ``max_tokens`` a request may ask for.
    """

    def __init__(
        self,
        *,
        routers: Mapping[str, RouterEntry],
        budgets: KeyBudgets,
        metrics: Metrics,
        redactor: Redactor,
        max_tokens: int,
    ) -> None:
        self.routers = dict(routers)
        self.budgets = budgets
        self.metrics = metrics
        self.redactor = redactor
        self.max_tokens = max_tokens
        self._configs = {name: entry.config for name, entry in self.routers.items()}

    # ------------------------------------------------------------------ opening a call
    def open(self, request: ChatRequest, key: str) -> Call:
        """Check `request` and reserve its worst case on `key`'s budget.

        Raises
        ------
        APIError
            400/404 for a bad model string or ``max_tokens``, 429 when the key's budget cannot pay.
        """
        target = parse_target(request.model, self._configs)
        entry = self.routers[target.router]
        asked = request.requested_max_tokens
        if asked is not None and asked > self.max_tokens:
            raise APIError(
                400,
                f"max_tokens={asked} exceeds this server's limit of {self.max_tokens} "
                "(server.max_tokens); ask for fewer",
                param="max_tokens",
                code="max_tokens_too_large",
            )
        sampling = request.sampling()
        if asked is not None:
            sampling["max_tokens"] = asked
        messages = request.to_messages()
        configurable: dict[str, Any] = {"budget_per_query": target.budget}
        if target.rounds is not None:
            configurable["rounds"] = target.rounds
        strategy = entry.strategy_for(sampling)
        if strategy is not None:
            configurable["strategy"] = strategy
        options = entry.reservations(target.max_k)  # last: nothing may fail once units are reserved
        try:
            reservation = self.budgets.reserve(key, [amount for amount, _ in options])
        except BudgetExhaustedError as exc:
            self.metrics.inc("rejected_total", {"reason": "key_budget"})
            raise APIError(429, str(exc), code="insufficient_quota") from None
        max_k = next(cap for amount, cap in options if amount <= reservation.amount + 1e-12)
        if max_k < entry.config.k_max or target.max_k is not None:
            configurable["max_k"] = max_k
        return Call(
            entry=entry,
            target=target,
            messages=messages,
            config={"configurable": configurable, "run_name": f"adaptive-router:{entry.name}"},
            key=key,
            reservation=reservation,
            max_k=max_k,
            sampling=sampling,
        )

    def settle(self, call: Call, spent: float) -> KeyState | None:
        """Charge `spent` units (at most the reservation) to the call's key, once."""
        if call.settled:
            return None
        call.settled = True
        return self.budgets.settle(call.reservation, spent)

    # ------------------------------------------------------------------ the decision record
    def _meta(self, call: Call, meta: Mapping[str, Any], *, fallback: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"router": call.entry.name, **{k: meta[k] for k in _KEEP if k in meta}}
        predicted = meta.get("predicted") or {}
        out["allocator"] = predicted.get("allocator", meta.get("allocator"))
        out["window"] = predicted.get("window")
        out["chosen_value"] = predicted.get("chosen_value")
        out["shadow_price"] = predicted.get("shadow_price")
        out["max_k"] = call.max_k
        out["fallback"] = fallback
        out["errors"] = [self.redactor.scrub(str(e))[:300] for e in meta.get("errors") or []]
        out["key"] = call.key
        return out

    def _finish(self, call: Call, meta: dict[str, Any]) -> dict[str, Any]:
        state = self.settle(call, float(meta.get("cost", 0.0)))
        remaining = None if state is None else state.remaining
        meta["key_remaining"] = None if remaining is None else round(remaining, 9)
        record_answer(self.metrics, call.entry.name, meta)
        return meta

    def _circuit_open(self, call: Call) -> APIError:
        wait = max(call.entry.breaker.retry_after(), 1.0)
        return APIError(
            503,
            f"router {call.entry.name!r}: its upstream failed repeatedly and is skipped for now; "
            f"retry in {wait:.0f} s",
            code="upstream_unavailable",
            headers={"Retry-After": f"{wait:.0f}"},
        )

    async def _fallback(self, call: Call, reason: str, error: BaseException | None) -> Answer:
        """Ask the fallback backend once (k = 1), or raise `error` / 503 when there is none."""
        entry = call.entry
        if entry.fallback_model is None:
            if error is None:
                raise self._circuit_open(call)
            raise error
        model = entry.fallback_model.bind(**call.sampling) if call.sampling else entry.fallback_model
        try:
            message = await model.ainvoke(call.messages)
        except Exception as exc:
            first = f"; the upstream failed first: {self.redactor.scrub(str(error))[:200]}" if error else ""
            raise APIError(
                502,
                f"the fallback backend {entry.config.fallback!r} failed too: "
                f"{self.redactor.scrub(str(exc))[:300]}{first}",
                code="upstream_error",
            ) from exc
        usage = getattr(message, "usage_metadata", None) or {}
        cost = entry.config.fallback_cost
        meta = {
            "procedure": f"fallback:{entry.config.fallback}",
            "k": 1,
            "cost": cost,
            "allocated_cost": cost,
            "budget_per_query": call.target.budget,
            "calls": 1,
            "failed_calls": 0,
            "candidates": 1,
            "allocator": "fallback",
            "fallback_active": False,
            "tokens": {k: int(usage.get(k, 0)) for k in ("input_tokens", "output_tokens", "total_tokens")},
        }
        self.metrics.inc("fallbacks_total", {"router": entry.name, "reason": reason})
        text = message.text if hasattr(message, "text") else str(message)
        return Answer(
            text, "stop", self._finish(call, self._meta(call, meta, fallback=entry.config.fallback))
        )

    # ------------------------------------------------------------------ answering
    async def complete(self, call: Call, *, alone: bool = False) -> Answer:
        """Route `call` through the router's ``ainvoke`` (micro-batched with concurrent requests).

        `alone` (no other request in flight: none can join its window) plans it at once, as a batch of
        one (``abatch``: the same allocation as a micro-batch of one) instead of waiting ``max_wait_ms``.
        """
        entry = call.entry
        try:
            if not entry.breaker.allow():
                return await self._fallback(call, "circuit_open", None)
            try:
                if alone:
                    (message,) = await entry.router.abatch([call.messages], [call.config])
                else:
                    message = await entry.router.ainvoke(call.messages, call.config)
            except Exception as exc:
                if not _upstream_failure(exc):
                    raise
                entry.breaker.failure()
                log.warning("router %s: upstream failed: %s", entry.name, self.redactor.scrub(str(exc))[:300])
                return await self._fallback(call, "upstream_error", exc)
            entry.breaker.success()
            meta = self._finish(call, self._meta(call, message.response_metadata.get("adaptive_router", {})))
            finish = str(message.response_metadata.get("finish_reason") or "stop")
            return Answer(message.text, finish, meta)
        finally:
            self.settle(call, 0.0)  # no-op once settled; a failure is not charged

    async def stream(self, call: Call) -> AsyncGenerator[str | Answer, None]:
        """The answer's text pieces, then the `Answer` (whose text is the whole answer).

        The first piece is awaited before anything is sent, so an upstream that fails at once still
        gets a proper error status. A stream cut short after its first piece (a broken upstream, a client
        that went away) is charged its reservation: the tokens were produced.
        """
        entry = call.entry
        started = False
        try:
            if not entry.breaker.allow():
                answer = await self._fallback(call, "circuit_open", None)
                yield answer.text
                yield answer
                return
            pieces: list[str] = []
            agen: Any = entry.router.astream(call.messages, call.config)
            try:
                async for chunk in agen:
                    meta = chunk.response_metadata.get("adaptive_router")
                    if meta is not None:
                        entry.breaker.success()
                        yield Answer("".join(pieces), "stop", self._finish(call, self._meta(call, meta)))
                        return
                    if chunk.text:
                        pieces.append(chunk.text)
                        started = True
                        yield chunk.text
            except Exception as exc:
                if started or not _upstream_failure(exc):
                    raise
                entry.breaker.failure()
                answer = await self._fallback(call, "upstream_error", exc)
                yield answer.text
                yield answer
                return
            finally:
                await agen.aclose()
            raise AdaptiveRouterError("the router's stream ended without its decision metadata")
        finally:
            self.settle(call, call.reservation.amount if started else 0.0)
