"""The FastAPI app: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``, ``GET /metrics``.

`create_app(config)` builds everything a server process needs once (models, routers, probes, key ring,
budget store, metrics) and returns the ASGI app; nothing is built per request. Each chat request is, in
order: counted against ``server.max_concurrent_requests`` (503 above it), authenticated (401), read up to
``server.max_request_bytes`` (413), validated (400), resolved to a router and budget (404/400), reserved
on its key's budget (429), routed under ``server.request_timeout_s`` (504) and answered in OpenAI's shape
with the decision in an ``adaptive_router`` field and ``x-adaptive-router-*`` headers. Every error is
``{"error": {"message", "type", "param", "code"}}``.

Authentication is on when keys are configured (always, loopback included); ``/health`` never needs a key,
``/metrics`` does unless ``auth.public_metrics``. Request bodies and headers are never logged; upstream
keys are scrubbed from every error message and client keys are never forwarded upstream.

Examples
--------
>>> from langchain_core.language_models import GenericFakeChatModel
>>> from langchain_core.messages import AIMessage
>>> from adaptive_router.server.config import parse_config
>>> config = parse_config('''
... [backends.fake]
... type = "openai"
... base_url = "http://127.0.0.1:9/v1"
... model = "m"
... [routers.adaptive]
... backend = "fake"
... budget_per_query = 2
... ''')
>>> fake = lambda name, backend: GenericFakeChatModel(messages=iter([AIMessage("4")] * 10))
>>> app = create_app(config, model_factory=fake)
>>> sorted(app.state.service.routers)
['adaptive']
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from adaptive_router.server.auth import KeyRing
from adaptive_router.server.backends import ModelFactory, Upstream, build_models, upstream_secrets
from adaptive_router.server.budgets import KeyBudgets, MemoryBudgets, SqliteBudgets
from adaptive_router.server.config import ServerConfig
from adaptive_router.server.errors import APIError, Redactor, from_exception
from adaptive_router.server.metrics import Metrics, Sample
from adaptive_router.server.protocol import completion_body, decision_headers, parse_request
from adaptive_router.server.routers import RouterEntry
from adaptive_router.server.service import Answer, RoutingService
from adaptive_router.server.streaming import sse_events

__all__ = ["create_app", "make_budgets"]

_orjson: Any
try:
    import orjson as _orjson
except ModuleNotFoundError:  # pragma: no cover - orjson is optional
    _orjson = None

log = logging.getLogger("adaptive_router.server")
_JSON = "application/json"


def _dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON (orjson when installed: NaN and infinities are null there too)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(body, option=_orjson.OPT_NON_STR_KEYS | _orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:  # a type orjson does not know: the standard library's rendering
            pass
    return json.dumps(_finite(body), separators=(",", ":"), ensure_ascii=False).encode()


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such numbers (a judge's -inf score) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def error_response(error: APIError, request_id: str) -> Response:
    """`error` as OpenAI's JSON error body with its status and headers."""
    headers = {"x-request-id": request_id, **error.headers}
    return Response(_dumps(error.body()), status_code=error.status, media_type=_JSON, headers=headers)


def make_budgets(config: ServerConfig) -> KeyBudgets:
    """The budget store ``[budgets]`` asks for: SQLite with ``state_file``, else in memory."""
    section = config.budgets

    def limit(key: str) -> float | None:
        return section.keys.get(key, section.per_key)

    if section.state_file is not None:
        return SqliteBudgets(section.state_file, limit=limit)
    return MemoryBudgets(limit=limit)


def _too_big(limit: int) -> APIError:
    """The 413 of a body over `limit` bytes (made only for such a body)."""
    return APIError(
        413,
        f"the request body exceeds this server's limit of {limit} bytes (server.max_request_bytes); "
        "send a shorter conversation",
        code="request_too_large",
    )


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_big(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_big(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class _Server:
    """What the route handlers share: config, key ring, service, metrics, the in-flight count."""

    def __init__(
        self, config: ServerConfig, service: RoutingService, keys: KeyRing, metrics: Metrics
    ) -> None:
        self.config = config
        self.service = service
        self.keys = keys
        self.metrics = metrics
        self.in_flight = 0
        self.started = int(time.time())

    def done(self, router: str, status: int, stream: bool, started: float) -> None:
        self.in_flight -= 1
        labels = {"router": router, "status": str(status), "stream": "true" if stream else "false"}
        self.metrics.inc("requests_total", labels)
        self.metrics.observe("request_duration_seconds", {"router": router}, time.perf_counter() - started)

    def collect(self) -> list[Sample]:
        out: list[Sample] = [("in_flight_requests", {}, float(self.in_flight))]
        for name, entry in self.service.routers.items():
            out.append(("circuit_open", {"router": name}, float(entry.breaker.is_open)))
            fallback = bool(getattr(entry.probe, "fallback_active", False))
            out.append(("probe_fallback_active", {"router": name}, float(fallback)))
            for row in entry.router.spend_summary():
                labels = {"router": name, "budget_per_query": f"{row['budget_per_query']:g}"}
                if row.get("max_k") is not None:
                    labels["max_k"] = str(row["max_k"])
                out.append(("ledger_queries", labels, float(row["queries"])))
                out.append(("ledger_allocated_units", labels, float(row["allocated"])))
                out.append(("ledger_budget_units", labels, float(row["budget"])))
                out.append(("ledger_balance_units", labels, max(row["budget"] - row["allocated"], 0.0)))
        for key, state in self.service.budgets.snapshot().items():
            out.append(("key_spent_units", {"key": key}, state.spent))
            out.append(("key_reserved_units", {"key": key}, state.reserved))
            if state.limit is not None:
                out.append(("key_limit_units", {"key": key}, state.limit))
        return out


def create_app(
    config: ServerConfig,
    *,
    model_factory: ModelFactory | None = None,
    upstreams: Mapping[str, Upstream] | None = None,
    probes: Mapping[str, Any] | None = None,
    budgets: KeyBudgets | None = None,
    environ: Mapping[str, str] | None = None,
) -> FastAPI:
    """The ASGI app serving `config`'s routers.

    Parameters
    ----------
    config : ServerConfig
    model_factory : callable, optional
        ``factory(backend_name, backend_config) -> chat model`` instead of `OpenAIChatModel` (tests).
    upstreams : mapping, optional
        The started embedded backends (`EmbeddedServers.upstreams`); required for ``type = "llama"``.
    probes : mapping of str to CurvePredictor, optional
        Probes by router name, instead of loading the configured folders.
    budgets : KeyBudgets, optional
        The budget store (default from ``[budgets]``: `make_budgets`).
    environ : mapping, optional
        Where API-key variables are read (default ``os.environ``).

    Raises
    ------
    ConfigError
        Keys, backends, probes or the budget store cannot be set up.
    """
    keys = KeyRing.from_config(config.auth, environ)
    models = build_models(config, upstreams=upstreams, factory=model_factory, environ=environ)
    entries = {
        name: RouterEntry(name, router, models, probe=(probes or {}).get(name))
        for name, router in config.routers.items()
    }
    redactor = Redactor(upstream_secrets(config, environ))
    metrics = Metrics()
    store = budgets if budgets is not None else make_budgets(config)
    service = RoutingService(
        routers=entries,
        budgets=store,
        metrics=metrics,
        redactor=redactor,
        max_tokens=config.server.max_tokens,
    )
    server = _Server(config, service, keys, metrics)
    metrics.add_collector(server.collect)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()
        for model in models.values():
            if hasattr(model, "aclose"):  # the upstream connections of this event loop
                await model.aclose()

    app = FastAPI(**_fastapi_options(config), lifespan=lifespan)
    app.state.server = server
    app.state.service = service

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = f"{request.method} {request.url.path}: {exc.detail}"
        if exc.status_code == 404:
            message += "; this server has POST /v1/chat/completions, GET /v1/models, /health and /metrics"
        return error_response(APIError(exc.status_code, message), "-")

    # Starlette routes (`add_route`): the handlers read the request themselves, so FastAPI's dependency and
    # body machinery would only cost CPU on every request
    async def chat_completions(request: Request) -> Response:
        return await _chat(server, request)

    async def list_models(request: Request) -> Response:
        rid = "req-" + secrets.token_hex(8)
        try:
            keys.authenticate(request.headers.get("authorization"))
        except APIError as exc:
            return error_response(exc, rid)
        data = []
        for name, entry in entries.items():
            low, high = entry.config.budget_range()
            info = {
                "strategy": entry.config.strategy,
                "budget_per_query": entry.config.budget_per_query,
                "min_budget": low,
                "max_budget": high,
                "max_k": entry.config.k_max,
                "procedures": sorted(entry.models),
                "probe": entry.probe is not None,
            }
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": server.started,
                    "owned_by": "adaptive-router",
                    "adaptive_router": info,
                }
            )
        return Response(_dumps({"object": "list", "data": data}), media_type=_JSON)

    async def health(request: Request) -> Response:
        circuits = {name: "open" if e.breaker.is_open else "closed" for name, e in entries.items()}
        status = "ok" if all(c == "closed" for c in circuits.values()) else "degraded"
        body = {"status": status, "routers": circuits, "in_flight": server.in_flight, "pid": os.getpid()}
        return Response(_dumps(body), media_type=_JSON)

    async def prometheus(request: Request) -> Response:
        if not config.auth.public_metrics:
            try:
                keys.authenticate(request.headers.get("authorization"))
            except APIError as exc:
                return error_response(exc, "-")
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_route("/v1/models", list_models, methods=["GET"])
    app.add_route("/health", health, methods=["GET"])
    app.add_route("/metrics", prometheus, methods=["GET"])
    return app


def _fastapi_options(config: ServerConfig) -> dict[str, Any]:
    """No docs routes; FastAPI's own OpenTelemetry off unless ``server.opentelemetry`` (newer FastAPIs)."""
    import inspect

    options: dict[str, Any] = {
        "title": "adaptive-router",
        "docs_url": None,
        "redoc_url": None,
        "openapi_url": None,
    }
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters and not config.server.opentelemetry:
        options["telemetry"] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    return options


async def _chat(server: _Server, request: Request) -> Response:
    """One ``POST /v1/chat/completions``."""
    started = time.perf_counter()
    rid = "chatcmpl-" + secrets.token_hex(12)
    config, service = server.config.server, server.service
    router, stream, status = "-", False, 500
    server.in_flight += 1
    handed_over = False
    try:
        if server.in_flight > config.max_concurrent_requests:
            server.metrics.inc("rejected_total", {"reason": "busy"})
            raise APIError(
                503,
                f"the server is handling {config.max_concurrent_requests} requests already "
                "(server.max_concurrent_requests); retry shortly",
                code="server_busy",
                headers={"Retry-After": "1"},
            )
        key = server.keys.authenticate(request.headers.get("authorization"))
        body = parse_request(await _read_body(request, config.max_request_bytes))
        call = service.open(body, key)
        router, stream = call.entry.name, body.stream
        deadline = time.monotonic() + config.request_timeout_s
        created = int(time.time())
        if stream:
            response = await _stream(server, call, body, rid, created, deadline, started)
            handed_over = True
            return response
        try:
            if server.in_flight == 1:  # let requests that have already arrived start first
                await asyncio.sleep(0)
            alone = server.in_flight == 1  # nothing else in flight: no company to wait for
            answer = await asyncio.wait_for(service.complete(call, alone=alone), config.request_timeout_s)
        except asyncio.TimeoutError:
            raise APIError(
                504,
                f"the request did not finish within server.request_timeout_s = "
                f"{config.request_timeout_s:g} s",
                code="timeout",
            ) from None
        payload = completion_body(
            id=rid,
            created=created,
            model=body.model,
            text=answer.text,
            finish_reason=answer.finish_reason,
            meta=answer.meta,
        )
        status = 200
        headers = {"x-request-id": rid, **decision_headers(answer.meta)}
        return Response(_dumps(payload), media_type=_JSON, headers=headers)
    except Exception as exc:
        error = from_exception(exc, service.redactor, request_id=rid)
        status = error.status
        if status >= 500 and not isinstance(exc, APIError):
            log.error("request %s failed: %s", rid, service.redactor.scrub(repr(exc))[:500])
        return error_response(error, rid)
    finally:
        if not handed_over:
            server.done(router, status, stream, started)


async def _stream(
    server: _Server, call: Any, body: Any, rid: str, created: int, deadline: float, started: float
) -> Response:
    """The SSE response of a streamed request; its first piece is awaited first (errors keep their status)."""
    service = server.service
    pieces: Any = service.stream(call)
    try:
        first: str | Answer = await asyncio.wait_for(
            pieces.__anext__(), max(deadline - time.monotonic(), 0.001)
        )
    except asyncio.TimeoutError:
        await pieces.aclose()
        raise APIError(
            504, "the upstream did not start answering within the request timeout", code="timeout"
        ) from None
    except BaseException:
        await pieces.aclose()
        raise
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = sse_events(
        first,
        pieces,
        id=rid,
        created=created,
        model=body.model,
        include_usage=include_usage,
        deadline=deadline,
        on_error=lambda exc: from_exception(exc, service.redactor, request_id=rid),
        on_end=lambda status: server.done(call.entry.name, status, True, started),
    )
    headers = {
        "x-request-id": rid,
        "cache-control": "no-cache",
        "x-adaptive-router-router": call.entry.name,
        "x-adaptive-router-budget-per-query": f"{call.target.budget:g}",
    }
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)
