"""The sampling backends the commands talk to: the embedded llama.cpp models, or an OpenAI-compatible API."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from adaptive_router.errors import ConfigError

__all__ = ["sampling_model"]


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

    kind, _, name = backend.partition(":")
    if kind == "llama" and name in local:
        from adaptive_router.integrations.llama_server import LlamaServer

        server = (LlamaServer.gemma() if name == "gemma" else LlamaServer.smollm()).start()
        try:
            yield OpenAIChatModel.for_llama_server(server, **settings), server.model_alias
        finally:
            server.stop()
        return
    locals_ = " or ".join(f"llama:{m}" for m in local)
    if kind == "llama" and len(local) > 1:
        raise ConfigError(f"unknown local model {name!r}; use {locals_}")
    if kind != "openai" or not name:
        raise ConfigError(
            f"unknown backend {backend!r}; use {', '.join(f'llama:{m}' for m in local)} or openai:MODEL"
        )
    url = base_url or os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
    key = os.environ.get(api_key_env) or "sk-no-key"
    yield OpenAIChatModel(base_url=url, model=name, api_key=key, **settings), name
