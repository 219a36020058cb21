"""The keys of the server's TOML config, as frozen pydantic models (`adaptive_router.server.config` loads it).

Every section forbids unknown keys (a typo is an error naming the key), and every value has a range:

- `ServerSection` ``[server]``, `AuthSection` ``[auth]``, `BudgetsSection` ``[budgets]``;
- `OpenAIBackend` / `LlamaBackend` ``[backends.NAME]`` (``type = "openai"`` or ``"llama"``);
- `RouterConfig` ``[routers.NAME]`` with its `RerankerConfig` ``[routers.NAME.reranker]``;
- `ServerConfig`, the whole file.

Examples
--------
>>> RouterConfig(backend="up", budget_per_query=2).budget_range()
(1.0, 4.0)
>>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
(True, False)
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine (``127.0.0.0/8``, ``::1``, localhost).

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerSection(BaseModel):
    """``[server]``: where to listen and what a request may ask for."""

    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    max_request_bytes: int = Field(default=1_000_000, ge=1024)
    """Largest request body accepted (413 above it)."""
    max_tokens: int = Field(default=1024, ge=1)
    """Largest ``max_tokens`` a request may ask for (400 above it); also the default."""
    request_timeout_s: float = Field(default=120.0, gt=0)
    """Wall-clock limit of one request, retries and fallback included (504 after it)."""
    shutdown_timeout_s: float = Field(default=30.0, ge=0)
    """How long a shutdown waits for in-flight requests."""
    max_concurrent_requests: int = Field(default=10_000, ge=1)
    """Requests handled at once; more are refused with 503 and ``Retry-After``."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = True
    opentelemetry: bool = False
    """FastAPI's native OpenTelemetry spans and metrics per request (where FastAPI has them; they cost CPU
    even without an exporter, so they are off unless asked for)."""


class AuthSection(BaseModel):
    """``[auth]``: where the API keys are read (required unless the server only listens on loopback)."""

    model_config = _FROZEN

    keys_env: str | None = None
    """An environment variable holding the keys: ``name:secret`` entries, comma- or newline-separated."""
    keys_file: Path | None = None
    """A file with one ``name:secret`` (or bare secret) per line; ``#`` starts a comment."""
    public_metrics: bool = False
    """Serve ``/metrics`` without a key (it shows key names and spend)."""


class BudgetsSection(BaseModel):
    """``[budgets]``: the units each key may spend (reserved before a request, settled after)."""

    model_config = _FROZEN

    per_key: float | None = Field(default=None, ge=0)
    """Units every key may spend; omitted: unlimited."""
    keys: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    """Per key name, overriding ``per_key``."""
    state_file: Path | None = None
    """SQLite file holding spend and reservations, shared by worker processes and kept across restarts."""

    @property
    def limited(self) -> bool:
        """Whether any key has a limit."""
        return self.per_key is not None or bool(self.keys)


class _BackendBase(BaseModel):
    model_config = _FROZEN

    endpoint: Literal["chat", "completions"] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    """Seconds one connect or read may wait."""
    max_attempts: int = Field(default=3, ge=1, le=10)
    deadline_s: float = Field(default=60.0, gt=0)
    """Wall-clock limit of one upstream request, all its attempts included."""
    max_connections: int = Field(default=64, ge=1, le=4096)
    """Connections to this backend per worker; more requests wait for one."""
    client: Literal["auto", "builtin", "openai"] = "auto"
    """``builtin``: the server's own HTTP/1.1 client (`adaptive_router.server.upstream`; no proxies, no TLS
    options); ``openai``: `OpenAIChatModel` on the openai SDK (proxies from the environment; more CPU per
    request); ``auto``: builtin for a plain ``http://`` upstream that no environment proxy applies to (a local
    llama.cpp or vLLM, where the server's own CPU is most of the latency), openai otherwise."""


class OpenAIBackend(_BackendBase):
    """``type = "openai"``: an OpenAI-compatible server (OpenAI, vLLM, llama.cpp, ...)."""

    type: Literal["openai"]
    base_url: str
    model: str
    api_key_env: str | None = None
    """Environment variable with the upstream key (never written in the config, never echoed)."""
    supports_n: bool = False
    """The server honours ``n`` (one request draws k samples): OpenAI and vLLM do, llama.cpp does not."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")


class LlamaBackend(_BackendBase):
    """``type = "llama"``: an embedded GGUF served by llama.cpp on 127.0.0.1 (started with the server)."""

    type: Literal["llama"]
    model: Literal["gemma", "smollm"] = "gemma"
    n_ctx: int = Field(default=2048, ge=128)
    n_threads: int = Field(default=2, ge=1)
    startup_timeout_s: float = Field(default=180.0, gt=0)


BackendConfig = Annotated[OpenAIBackend | LlamaBackend, Field(discriminator="type")]


class RerankerConfig(BaseModel):
    """``[routers.NAME.reranker]``: how the best of k samples is chosen."""

    model_config = _FROZEN

    type: Literal["majority", "llm_judge", "reward_model", "verifier"] = "majority"
    extract: Literal["text", "last_number", "first_line"] = "text"
    """Majority vote: what of each sample is compared."""
    judge: str | None = None
    """LLM judge: the backend that rates each candidate."""
    cost_per_candidate: float = Field(default=1.0, gt=0)
    path: Path | None = None
    """Reward model: a local transformers sequence-classification checkpoint."""
    function: str | None = None
    """Verifier: ``module:function`` taking ``(prompt, candidate)`` and returning a score."""

    @model_validator(mode="after")
    def _needs(self) -> RerankerConfig:
        need = {"llm_judge": "judge", "reward_model": "path", "verifier": "function"}.get(self.type)
        if need is not None and getattr(self, need) is None:
            raise ValueError(f"type = {self.type!r} needs {need} = ...")
        return self


class RouterConfig(BaseModel):
    """``[routers.NAME]``: a strategy over backends, a probe and a budget; clients ask for it by name."""

    model_config = _FROZEN

    strategy: Literal["best_of_k", "route"] = "best_of_k"
    backend: str | None = None
    """best_of_k: the backend sampled k times."""
    routes: dict[str, str] | None = None
    """route: procedure name -> backend."""
    costs: dict[str, Annotated[float, Field(gt=0)]] | None = None
    """route: units per call of each procedure."""
    cost: float = Field(default=1.0, gt=0)
    """best_of_k: units per sample."""
    procedure: str | None = None
    """best_of_k: the probe's procedure name for the backend (default: the probe's only one, or "default")."""
    max_k: int | None = Field(default=None, ge=1, le=64)
    """Largest number of samples per query (default 4 for best_of_k, 1 for route)."""
    reranker: RerankerConfig = Field(default_factory=lambda: RerankerConfig())
    probe: Path | None = None
    """A saved probe folder (``adaptive-router train``); omitted: uniform allocation."""
    probe_factory: str | None = None
    """Instead of a folder: ``module:callable`` returning any `CurvePredictor` (a custom probe)."""
    probe_in_thread: bool = True
    """Run the probe in a worker thread (keeps the event loop free during a slow probe's forward pass; a
    probe that takes microseconds is faster inline)."""
    calibration_file: Path | None = None
    """Queries, one per line, that calibrate the threshold of lone requests (else: the traffic seen)."""
    budget_per_query: float = Field(gt=0)
    min_budget: float | None = Field(default=None, gt=0)
    max_budget: float | None = Field(default=None, gt=0)
    """The range a request may set with ``model = "NAME:budget=B"`` (default: the cheapest option to the
    most expensive)."""
    rounds: Literal["auto", "off"] = "auto"
    """``auto``: sample in rounds where the reranker gives evidence (majority vote, a verifier), reading the
    first samples before buying more; ``off``: the planned k at once (a request may ask
    ``model = "NAME:rounds=off"``)."""
    window_size: int = Field(default=32, ge=1, le=4096)
    max_wait_ms: float = Field(default=1.0, ge=0, le=1000)
    fallback: str | None = None
    """A backend asked once (k = 1) when the router's upstream fails."""
    fallback_cost: float = Field(default=1.0, gt=0)
    breaker_failures: int = Field(default=5, ge=1)
    """Consecutive upstream failures that open the circuit (requests skip the upstream)."""
    breaker_cooldown_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _strategy_fields(self) -> RouterConfig:
        if self.strategy == "best_of_k":
            if self.backend is None:
                raise ValueError('strategy = "best_of_k" needs backend = "<a [backends] name>"')
            if self.routes is not None or self.costs is not None:
                raise ValueError('routes/costs belong to strategy = "route"; best_of_k uses backend and cost')
        else:
            if not self.routes or not self.costs:
                raise ValueError(
                    'strategy = "route" needs routes = {name = "backend"} and costs = {name = 1}'
                )
            if set(self.routes) != set(self.costs):
                raise ValueError(f"costs must name exactly the routes {sorted(self.routes)}")
            if self.backend is not None:
                raise ValueError('backend belongs to strategy = "best_of_k"; a route names routes = {...}')
        if self.probe is not None and self.probe_factory is not None:
            raise ValueError("set probe (a folder) or probe_factory (module:callable), not both")
        if self.min_budget is not None and self.max_budget is not None and self.min_budget > self.max_budget:
            raise ValueError(f"min_budget {self.min_budget:g} is above max_budget {self.max_budget:g}")
        return self

    @property
    def k_max(self) -> int:
        """``max_k`` with its default."""
        return self.max_k or (4 if self.strategy == "best_of_k" else 1)

    def option_costs(self) -> list[tuple[int, float]]:
        """``(k, cost)`` of every option the router can choose (reranker cost included)."""
        extra = (
            self.reranker.cost_per_candidate if (self.k_max > 1 and self.reranker.type == "llm_judge") else 0
        )
        unit = {"default": self.cost} if self.costs is None else dict(self.costs)
        return [(k, k * (c + extra)) for c in unit.values() for k in range(1, self.k_max + 1)]

    def budget_range(self) -> tuple[float, float]:
        """The budgets a request may ask for."""
        costs = [c for _, c in self.option_costs()]
        return (self.min_budget or min(costs), self.max_budget or max(max(costs), self.budget_per_query))

    def backends(self) -> list[str]:
        """Every backend this router uses (fallback and judge included)."""
        names = [self.backend] if self.backend else list((self.routes or {}).values())
        names += [n for n in (self.fallback, self.reranker.judge) if n]
        return names


class ServerConfig(BaseModel):
    """The whole file: ``[server]``, ``[auth]``, ``[budgets]``, ``[backends.*]``, ``[routers.*]``."""

    model_config = _FROZEN

    server: ServerSection = Field(default_factory=lambda: ServerSection())
    auth: AuthSection = Field(default_factory=lambda: AuthSection())
    budgets: BudgetsSection = Field(default_factory=lambda: BudgetsSection())
    backends: dict[str, BackendConfig] = Field(min_length=1)
    routers: dict[str, RouterConfig] = Field(min_length=1)
    default_router: str | None = None
    """The router a request without options and unknown to the others gets; default: the first."""
    source: str = Field(default="config", exclude=True)
    """Where the config came from (error messages)."""

    @model_validator(mode="after")
    def _defaults(self) -> ServerConfig:
        if self.default_router is None:
            object.__setattr__(self, "default_router", next(iter(self.routers)))
        return self
