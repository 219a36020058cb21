"""The server's configuration: one TOML file, validated with pydantic, every error naming its key.

Sections (see ``docs/server.md`` for a complete file):

- ``[server]``: address, ``workers``, request limits (``max_request_bytes``, ``max_tokens``), timeouts;
- ``[auth]``: where the bearer keys come from (``keys_env`` or ``keys_file``; never the keys themselves);
- ``[budgets]``: units each key may spend (``per_key``, ``keys.NAME``) and ``state_file``, the SQLite file
  that shares them between worker processes and restarts;
- ``[backends.NAME]``: ``type = "openai"`` (any OpenAI-compatible URL) or ``type = "llama"`` (the embedded
  llama.cpp models, started by `LlamaServer`);
- ``[routers.NAME]``: ``strategy = "best_of_k"`` (one backend, a reranker, ``max_k``) or ``"route"``
  (``routes = {procedure = backend}`` with ``costs``), the probe folder (none: uniform), the budget and the
  limits a request may override it within (``min_budget``/``max_budget``), a ``fallback`` backend.

The keys are the models of `adaptive_router.server.schema` (re-exported here). Relative paths resolve
against the folder of the config file. `load_config` raises `ConfigError` with lines like
``router.toml: routers.adaptive.budget_per_query: Input should be a valid number``; what pydantic cannot
see (references between sections, a public address without keys, workers without a shared budget file)
is checked after it, with messages that name the key too.

Examples
--------
>>> config = parse_config('''
... [backends.local]
... type = "openai"
... base_url = "http://127.0.0.1:8080/v1"
... model = "gemma"
... [routers.adaptive]
... backend = "local"
... budget_per_query = 2
... ''')
>>> config.routers["adaptive"].k_max, config.default_router
(4, 'adaptive')
>>> parse_config('[routers.a]\\nbackend = "nope"\\nbudget_per_query = 1\\n[backends.b]\\ntype = "llama"')
Traceback (most recent call last):
...
adaptive_router.errors.ConfigError: config: routers.a.backend = 'nope' names no [backends] entry; ...
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adaptive_router.errors import ConfigError
from adaptive_router.server.schema import (
    AuthSection,
    BackendConfig,
    BudgetsSection,
    LlamaBackend,
    OpenAIBackend,
    RerankerConfig,
    RouterConfig,
    ServerConfig,
    ServerSection,
    is_loopback,
)

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "AuthSection",
    "BackendConfig",
    "BudgetsSection",
    "LlamaBackend",
    "OpenAIBackend",
    "RerankerConfig",
    "RouterConfig",
    "ServerConfig",
    "ServerSection",
    "is_loopback",
    "load_config",
    "parse_config",
    "with_overrides",
]


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p in {"openai", "llama"})]
    return ".".join(parts) or "(top level)"


def _check(config: ServerConfig) -> None:
    """Cross-references pydantic cannot see, each error naming its key."""
    src = config.source
    for name, router in config.routers.items():
        if ":" in name or "," in name or not name.strip():
            raise ConfigError(f"{src}: routers.{name}: a router name may not contain ':' or ','; rename it")
        keys: list[tuple[str, str | None]] = [("backend", router.backend)]
        keys += [(f"routes.{p}", b) for p, b in (router.routes or {}).items()]
        keys += [("fallback", router.fallback), ("reranker.judge", router.reranker.judge)]
        for key, backend in keys:
            if backend is not None and backend not in config.backends:
                raise ConfigError(
                    f"{src}: routers.{name}.{key} = {backend!r} names no [backends] entry; "
                    f"choose one of {sorted(config.backends)}"
                )
        low, high = router.budget_range()
        cheapest = min(c for _, c in router.option_costs())
        if not low <= router.budget_per_query <= high or low < cheapest - 1e-12:
            raise ConfigError(
                f"{src}: routers.{name}.budget_per_query = {router.budget_per_query:g} must lie within "
                f"[min_budget, max_budget] = [{low:g}, {high:g}] and min_budget must be at least the "
                f"cheapest option ({cheapest:g} units)"
            )
    if config.default_router not in config.routers:
        raise ConfigError(
            f"{src}: default_router = {config.default_router!r} is not a router; choose one of "
            f"{sorted(config.routers)}"
        )
    timeout = config.server.request_timeout_s
    for name, upstream in config.backends.items():
        if upstream.deadline_s > timeout:
            raise ConfigError(
                f"{src}: backends.{name}.deadline_s = {upstream.deadline_s:g} exceeds "
                f"server.request_timeout_s = {timeout:g}; a request would time out before its upstream "
                "call gives up"
            )
    auth, budgets = config.auth, config.budgets
    if auth.keys_env and auth.keys_file:
        raise ConfigError(f"{src}: auth: set keys_env or keys_file, not both")
    if not (auth.keys_env or auth.keys_file) and not is_loopback(config.server.host):
        raise ConfigError(
            f"{src}: server.host = {config.server.host!r} accepts connections from other machines, so the "
            "server needs API keys: set auth.keys_env or auth.keys_file (or bind to 127.0.0.1)"
        )
    if config.server.workers > 1 and budgets.limited and budgets.state_file is None:
        raise ConfigError(
            f"{src}: server.workers = {config.server.workers} with per-key budgets needs "
            "budgets.state_file: each worker process would otherwise keep its own copy and a key could "
            "spend workers x its budget"
        )


def _resolve(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths of the known path keys, made relative to `base` (the config file's folder)."""

    def fix(section: dict[str, Any], key: str) -> None:
        value = section.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            section[key] = str(base / value)
        elif isinstance(value, str):
            section[key] = str(Path(value).expanduser())

    for key, section in (("keys_file", data.get("auth")), ("state_file", data.get("budgets"))):
        if isinstance(section, dict):
            fix(section, key)
    for router in (data.get("routers") or {}).values():
        if isinstance(router, dict):
            fix(router, "probe")
            fix(router, "calibration_file")
            if isinstance(router.get("reranker"), dict):
                fix(router["reranker"], "path")
    return data


def parse_config(text: str, *, source: str = "config", base: Path | None = None) -> ServerConfig:
    """Validate TOML `text` into a `ServerConfig`.

    Raises
    ------
    ConfigError
        Invalid TOML, a bad value or unknown key (each named as ``section.key``), or a reference to a
        backend or router that does not exist.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    data = _resolve(data, base or Path.cwd())
    try:
        config = ServerConfig.model_validate({**data, "source": source})
    except ValidationError as exc:
        lines = []
        for err in exc.errors()[:8]:
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check its spelling; docs/server.md lists every key)"
            lines.append(f"{source}: {_loc(err['loc'])}: {msg}")
        raise ConfigError("\n".join(lines)) from None
    for router in config.routers.values():
        for value in (router.budget_per_query, router.cost):
            if not math.isfinite(value):
                raise ConfigError(f"{source}: budgets and costs must be finite numbers")
    _check(config)
    return config


def load_config(path: str | Path) -> ServerConfig:
    """Read and validate a TOML config file (relative paths inside resolve against its folder).

    Raises
    ------
    ConfigError
        The file is missing or invalid; the message names the file and the key.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(file)!r} does not exist; pass --config PATH") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(file)!r}: {exc}") from None
    return parse_config(text, source=file.name, base=file.resolve().parent)


def with_overrides(config: ServerConfig, **server: Any) -> ServerConfig:
    """`config` with ``[server]`` values replaced (``host``, ``port``, ``workers``, ...), checked again.

    Raises
    ------
    ConfigError
        An override is invalid, or breaks a rule (a non-loopback host without API keys).
    """
    if not server:
        return config
    try:
        section = ServerSection.model_validate({**config.server.model_dump(), **server})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"server.{_loc(first['loc'])}: {first['msg']}") from None
    updated = config.model_copy(update={"server": section})
    _check(updated)
    return updated
