"""From ``[backends.*]`` to LangChain chat models: OpenAI-compatible URLs and the embedded llama.cpp models.

`EmbeddedServers` starts one `LlamaServer` (127.0.0.1, a free port) per ``type = "llama"`` backend and stops
them on exit; `serve` starts them once in the parent process, so with several workers every worker talks to
the same llama.cpp servers (their addresses travel in `Upstream` records). `build_model` makes the
chat model of one backend (the server's `UpstreamChatModel`, or with ``client = "openai"`` the
`OpenAIChatModel` on the openai SDK): its retries, deadline and sampling defaults from the config, its
``max_tokens`` capped by ``server.max_tokens``, its API key read from the environment variable the config
names (never from the file, never logged), and at most ``max_connections`` connections to the upstream.
`upstream_secrets` lists those keys so error messages can be scrubbed of them.

Examples
--------
>>> from adaptive_router.server.config import parse_config
>>> config = parse_config('''
... [backends.up]
... type = "openai"
... base_url = "http://127.0.0.1:9/v1"
... model = "m"
... temperature = 0.7
... [routers.r]
... backend = "up"
... budget_per_query = 1
... ''')
>>> model = build_model("up", config.backends["up"], server_max_tokens=64)
>>> type(model).__name__, model.base_url, model.max_tokens, model.temperature, model.supports_n
('UpstreamChatModel', 'http://127.0.0.1:9/v1', 64, 0.7, False)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from adaptive_router.errors import ConfigError
from adaptive_router.server.config import BackendConfig, LlamaBackend, OpenAIBackend, ServerConfig

__all__ = ["EmbeddedServers", "ModelFactory", "Upstream", "build_model", "build_models", "upstream_secrets"]

ModelFactory = Callable[[str, BackendConfig], Any]
"""``factory(name, backend_config) -> chat model``: replaces `build_model` (tests inject fakes)."""

_LLAMA_ENDPOINT = {"gemma": "completions", "smollm": "chat"}


@dataclass(frozen=True)
class Upstream:
    """Where a started embedded backend listens: its ``base_url`` and the model name it serves."""

    base_url: str
    model: str


def _api_key(name: str, backend: OpenAIBackend, environ: Mapping[str, str]) -> str:
    if backend.api_key_env is None:
        return "sk-no-key"
    key = environ.get(backend.api_key_env, "")
    if not key:
        raise ConfigError(
            f"backends.{name}.api_key_env = {backend.api_key_env!r} but that environment variable is unset "
            f"or empty; export {backend.api_key_env}=... before starting the server"
        )
    return key


def _async_client(base_url: str, api_key: str, backend: BackendConfig) -> Any:
    """The backend's async openai client, its connection pool sized by ``max_connections``.

    Made with the app and used only on the event loop that serves it (one per process).
    """
    import openai

    limits = {
        "max_connections": backend.max_connections,
        "max_keepalive_connections": backend.max_connections,
    }
    http_client = openai.DefaultAsyncHttpxClient(limits=_limits(**limits))
    return openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key, max_retries=0, timeout=backend.timeout_s, http_client=http_client
    )


def _limits(**kwargs: int) -> Any:
    """``httpx2.Limits`` where the openai client sends with httpx2 (openai >= 3), else ``httpx.Limits``."""
    try:
        import httpx2

        return httpx2.Limits(**kwargs)
    except ModuleNotFoundError:
        import httpx

        return httpx.Limits(**kwargs)


def build_model(
    name: str,
    backend: BackendConfig,
    *,
    server_max_tokens: int,
    upstream: Upstream | None = None,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """The chat model of backend `name` (an embedded one needs its started `upstream`).

    `UpstreamChatModel` (``client = "builtin"``) or `OpenAIChatModel` (``client = "openai"``); ``"auto"``
    (the default) is builtin for a plain ``http://`` upstream no environment proxy applies to.

    Raises
    ------
    ConfigError
        A missing API key variable, or an embedded backend that was not started.
    """
    env = os.environ if environ is None else environ
    max_tokens = min(backend.max_tokens or server_max_tokens, server_max_tokens)
    common: dict[str, Any] = {
        "temperature": backend.temperature,
        "top_p": backend.top_p,
        "max_tokens": max_tokens,
        "stop": backend.stop,
        "seed": backend.seed,
        "timeout": backend.timeout_s,
        "max_attempts": backend.max_attempts,
        "deadline": backend.deadline_s,
    }
    if isinstance(backend, OpenAIBackend):
        key = _api_key(name, backend, env)
        where: dict[str, Any] = {
            "base_url": backend.base_url,
            "model": backend.model,
            "api_key": key,
            "endpoint": backend.endpoint or "chat",
            "supports_n": backend.supports_n,
        }
    elif upstream is None:
        raise ConfigError(f"backends.{name} (type = 'llama') is not started; start it with EmbeddedServers")
    else:
        key = "sk-no-key"
        where = {
            "base_url": upstream.base_url,
            "model": upstream.model,
            "endpoint": backend.endpoint or _LLAMA_ENDPOINT[backend.model],
            "supports_n": False,
        }
    if _client(backend.client, where["base_url"]) == "builtin":
        from adaptive_router.server.upstream import UpstreamChatModel

        return UpstreamChatModel(max_connections=backend.max_connections, **where, **common)
    from adaptive_router.integrations.openai_backend import OpenAIChatModel

    client = _async_client(where["base_url"], key, backend)
    return OpenAIChatModel(async_client=client, **where, **common)


def _client(choice: str, base_url: str) -> str:
    """`choice` with ``auto`` resolved: builtin for ``http://`` without an environment proxy, else openai."""
    if choice != "auto":
        return choice
    from adaptive_router.integrations.transport import env_proxy

    plain = base_url.lower().startswith("http://")
    return "builtin" if plain and env_proxy(base_url) is None else "openai"


def build_models(
    config: ServerConfig,
    *,
    upstreams: Mapping[str, Upstream] | None = None,
    factory: ModelFactory | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One chat model per backend that some router uses, by backend name."""
    used = sorted({b for router in config.routers.values() for b in router.backends()})
    if factory is not None:
        return {name: factory(name, config.backends[name]) for name in used}
    return {
        name: build_model(
            name,
            config.backends[name],
            server_max_tokens=config.server.max_tokens,
            upstream=(upstreams or {}).get(name),
            environ=environ,
        )
        for name in used
    }


def upstream_secrets(config: ServerConfig, environ: Mapping[str, str] | None = None) -> list[str]:
    """The upstream API keys the config points at (to scrub them from every message)."""
    env = os.environ if environ is None else environ
    out = []
    for backend in config.backends.values():
        if isinstance(backend, OpenAIBackend) and backend.api_key_env and env.get(backend.api_key_env):
            out.append(env[backend.api_key_env])
    return out


class EmbeddedServers:
    """Starts a llama.cpp server per ``type = "llama"`` backend on entry and stops them on exit.

    Parameters
    ----------
    config : ServerConfig
    only : collection of str, optional
        Start only these backends (default: the embedded ones some router uses).

    Attributes
    ----------
    upstreams : dict of str to Upstream
        The started servers, by backend name.
    """

    def __init__(self, config: ServerConfig, *, only: Any = None) -> None:
        used = {b for router in config.routers.values() for b in router.backends()}
        self.backends = {
            name: b
            for name, b in config.backends.items()
            if isinstance(b, LlamaBackend) and name in (used if only is None else set(only))
        }
        self.upstreams: dict[str, Upstream] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> EmbeddedServers:
        from adaptive_router.integrations.llama_server import LlamaServer

        try:
            for name, backend in self.backends.items():
                make = LlamaServer.gemma if backend.model == "gemma" else LlamaServer.smollm
                server = make(
                    n_ctx=backend.n_ctx,
                    n_threads=backend.n_threads,
                    startup_timeout=backend.startup_timeout_s,
                )
                self._stack.enter_context(server)
                self.upstreams[name] = Upstream(server.base_url, server.model_alias)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()
        self.upstreams.clear()

    def __repr__(self) -> str:
        return f"EmbeddedServers({sorted(self.backends)})"
