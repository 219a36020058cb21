"""The OpenAI-compatible routing server (FastAPI + uvicorn; the ``server`` extra).

``adaptive-router serve --config router.toml`` (or `serve`) answers ``POST /v1/chat/completions`` in
OpenAI's shape: concurrent requests are allocated jointly by the router's micro-batcher, lone ones by its
calibrated threshold, and each answer says what was spent on it. See ``docs/server.md``.

Importing this package is cheap; FastAPI loads with `create_app`, `serve` or `ServerThread`.
"""

from __future__ import annotations

from adaptive_router._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "APIError": "adaptive_router.server.errors",
    "FakeUpstream": "adaptive_router.server.fake_upstream",
    "KeyRing": "adaptive_router.server.auth",
    "ServerConfig": "adaptive_router.server.config",
    "ServerThread": "adaptive_router.server.serve",
    "create_app": "adaptive_router.server.app",
    "load_config": "adaptive_router.server.config",
    "parse_config": "adaptive_router.server.config",
    "serve": "adaptive_router.server.serve",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
