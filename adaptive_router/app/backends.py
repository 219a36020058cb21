"""The sampling backends the commands talk to: the embedded llama.cpp models, or an OpenAI-compatible API."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from adaptive_router.errors import ConfigError

__all__ = ["backend_name", "sampling_model"]


def _parse(backend: str, local: tuple[str, ...]) -> tuple[str, str]:
    """``(kind, name)`` of a ``--backend`` spec, or a ConfigError listing the valid ones."""
    kind, _, name = backend.partition(":")
    if kind == "llama" and name in local:
        return kind, name
    locals_ = " or ".join(f"llama:{m}" for m in local)
    if kind == "llama" and len(local) > 1:
        raise ConfigError(f"unknown local model {name!r}; use {locals_}")
    if kind != "openai" or not name.strip():
        raise ConfigError(
            f"unknown backend {backend!r}; use {', '.join(f'llama:{m}' for m in local)} or openai:MODEL"
        )
    return kind, name


def _server(name: str) -> Any:
    from adaptive_router.integrations.llama_server import LlamaServer

    return LlamaServer.gemma() if name == "gemma" else LlamaServer.smollm()


def backend_name(backend: str, *, local: tuple[str, ...]) -> str:
    """The model name ``--backend`` records as its procedure, checked without starting anything.

    Examples
    --------
    >>> backend_name("openai:gpt-4o-mini", local=("gemma",))
    'gpt-4o-mini'
    """
    kind, name = _parse(backend, local)
    return str(_server(name).model_alias) if kind == "llama" else name


@contextlib.contextmanager
def sampling_model(
    backend: str,
    *,
    local: tuple[str, ...],
    base_url: str | None,
    api_key_env: str = "OPENAI_API_KEY",
    **settings: Any,
) -> Iterator[tuple[Any, str]]:
    """Yield ``(OpenAIChatModel, model name)`` for ``--backend``; a ``llama:NAME`` server runs only inside.

    ``llama:NAME`` (NAME in ``local``) starts the embedded model in llama.cpp's server on 127.0.0.1 and stops
    it on exit; ``openai:MODEL`` talks to ``base_url`` (or ``$OPENAI_BASE_URL``, or OpenAI) with the key from
    ``$api_key_env``. ``settings`` go to the model (endpoint, temperature, max_tokens, stop, max_attempts...).
    """
    from adaptive_router.integrations.openai_backend import OpenAIChatModel

    kind, name = _parse(backend, local)
    if kind == "llama":
        server = _server(name).start()
        try:
            yield OpenAIChatModel.for_llama_server(server, **settings), server.model_alias
        finally:
            server.stop()
        return
    url = base_url or os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
    key = os.environ.get(api_key_env) or "sk-no-key"
    yield OpenAIChatModel(base_url=url, model=name, api_key=key, **settings), name
