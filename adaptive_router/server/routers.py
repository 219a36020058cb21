"""From ``[routers.*]`` to `AdaptiveRouter`s, and from a request's ``model`` string to a router and budget.

`RouterEntry` is one configured router: its `AdaptiveRouter` (strategy, probe, budget, window), the models
behind it, its fallback model and circuit breaker. A request names it by ``model``:

- ``"adaptive"``: the router's own budget;
- ``"adaptive:budget=2"``: another budget per query, within the router's ``[min_budget, max_budget]``;
- ``"adaptive:budget=2,max_k=2"``: also a lower cap on samples;
- ``"adaptive:rounds=off"``: the planned k at once instead of in rounds (``rounds=auto``: the router's way).

Requests with the same settings share one ledger and one micro-batcher (the router's groups), so a client
that always asks for ``budget=2`` is held to 2 units per query on average.

Examples
--------
>>> from adaptive_router.server.config import parse_config
>>> config = parse_config('''
... [backends.up]
... type = "openai"
... base_url = "http://127.0.0.1:9/v1"
... model = "m"
... [routers.adaptive]
... backend = "up"
... budget_per_query = 2
... max_budget = 3
... ''')
>>> parse_target("adaptive:budget=3", config.routers)
Target(router='adaptive', budget=3.0, max_k=None, rounds=None)
>>> parse_target("adaptive:budget=8", config.routers)
Traceback (most recent call last):
...
adaptive_router.server.errors.APIError: budget=8 is outside router 'adaptive''s limits [1, 3]; ...
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptive_router.errors import ConfigError
from adaptive_router.runnables import AdaptiveRouter
from adaptive_router.server.breaker import CircuitBreaker
from adaptive_router.server.config import RerankerConfig, RouterConfig
from adaptive_router.server.errors import APIError
from adaptive_router.strategies import (
    BestOfK,
    LLMJudgeReranker,
    MajorityVoteReranker,
    Reranker,
    RewardModelReranker,
    Route,
    VerifierReranker,
)

__all__ = ["RouterEntry", "Target", "build_reranker", "load_probe", "parse_target"]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Target:
    """What a request's ``model`` asks for: a router, its budget per query and an optional cap on k."""

    router: str
    budget: float
    max_k: int | None = None
    rounds: str | None = None


def parse_target(model: str, routers: Mapping[str, RouterConfig]) -> Target:
    """Read ``NAME[:budget=B][,max_k=K]``.

    Raises
    ------
    APIError
        404 for an unknown router, 400 for an unknown option or a value outside the router's limits.
    """
    name, _, options = model.partition(":")
    config = routers.get(name.strip())
    if config is None:
        examples = ", ".join(f"{r!r}" for r in sorted(routers))
        raise APIError(
            404,
            f"the model {model[:80]!r} does not exist: this server routes {examples} "
            f"(optionally with a budget, e.g. '{next(iter(routers))}:budget=2'); GET /v1/models lists them",
            param="model",
            code="model_not_found",
        )
    name = name.strip()
    budget, max_k, rounds = config.budget_per_query, None, None
    for option in filter(None, (o.strip() for o in options.split(","))):
        key, _, value = option.partition("=")
        key = key.strip()
        try:
            if key == "budget":
                budget = float(value)
                if not math.isfinite(budget):
                    raise ValueError
            elif key == "max_k":
                max_k = int(value)
            elif key == "rounds" and value.strip() in ("auto", "off"):
                rounds = value.strip()
            elif key == "rounds":
                raise APIError(
                    400,
                    f"model option rounds={value.strip()!r}: use rounds=auto or rounds=off",
                    param="model",
                    code="invalid_model_option",
                )
            else:
                raise APIError(
                    400,
                    f"unknown model option {key!r} in {model[:80]!r}; use budget=B, max_k=K, rounds=auto|off",
                    param="model",
                    code="invalid_model_option",
                )
        except ValueError:
            raise APIError(
                400,
                f"model option {option!r} needs a number, e.g. {key}=2",
                param="model",
                code="invalid_model_option",
            ) from None
    low, high = config.budget_range()
    if not low - 1e-12 <= budget <= high + 1e-12:
        raise APIError(
            400,
            f"budget={budget:g} is outside router {name!r}'s limits [{low:g}, {high:g}]; ask for a "
            "budget within them",
            param="model",
            code="budget_out_of_range",
        )
    if max_k is not None and not 1 <= max_k <= config.k_max:
        raise APIError(
            400,
            f"max_k={max_k} is outside router {name!r}'s range [1, {config.k_max}]",
            param="model",
            code="invalid_model_option",
        )
    return Target(name, budget, max_k, rounds)


def _extract(kind: str) -> Callable[[str], Hashable | None]:
    if kind == "last_number":

        def last_number(text: str) -> Hashable | None:
            numbers = _NUMBER.findall(text)
            return numbers[-1] if numbers else None

        return last_number
    if kind == "first_line":
        return lambda text: (text.strip().splitlines() or [""])[0].strip() or None
    return lambda text: text.strip() or None


def _import_function(spec: str, where: str) -> Callable[..., Any]:
    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{where} = {spec!r} cannot be imported ({exc}); write it as 'module:function'"
        ) from None
    if not callable(fn):
        raise ConfigError(f"{where} = {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


def build_reranker(config: RerankerConfig, models: Mapping[str, Any], where: str) -> Reranker:
    """The reranker a ``[routers.NAME.reranker]`` section describes."""
    if config.type == "llm_judge":
        return LLMJudgeReranker(judge=models[str(config.judge)], cost_per_candidate=config.cost_per_candidate)
    if config.type == "reward_model":
        return RewardModelReranker(model=str(config.path))
    if config.type == "verifier":
        return VerifierReranker(verify=_import_function(str(config.function), f"{where}.function"))
    return MajorityVoteReranker(extract=_extract(config.extract))


def load_probe(path: Path | None, where: str, factory: str | None = None) -> Any:
    """A router's probe: a saved folder, what a ``module:callable`` factory returns, or ``None`` (uniform).

    Torch loads (in the probe package) only for a folder.
    """
    if factory is not None:
        return _import_function(factory, f"{where}_factory")()
    if path is None:
        return None
    from adaptive_router.probe import Probe

    try:
        return Probe.load(path)
    except Exception as exc:
        raise ConfigError(f"{where} = {str(path)!r} cannot be loaded: {exc}") from exc


def _calibration(path: Path | None, where: str) -> list[str] | None:
    if path is None:
        return None
    try:
        texts = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise ConfigError(f"{where} = {str(path)!r} cannot be read: {exc.strerror}") from None
    if not texts:
        raise ConfigError(f"{where} = {str(path)!r} has no queries; write one per line")
    return texts


class RouterEntry:
    """One configured router: the `AdaptiveRouter`, its models, fallback and circuit breaker.

    Parameters
    ----------
    name : str
    config : RouterConfig
    models : mapping of str to chat model
        Every backend's model, by backend name.
    probe : CurvePredictor, optional
        Overrides the config's probe folder (tests inject one).
    """

    def __init__(
        self, name: str, config: RouterConfig, models: Mapping[str, Any], *, probe: Any = None
    ) -> None:
        where = f"routers.{name}"
        self.name = name
        self.config = config
        self.probe = (
            probe if probe is not None else load_probe(config.probe, f"{where}.probe", config.probe_factory)
        )
        self.reranker = (
            build_reranker(config.reranker, models, f"{where}.reranker") if config.k_max > 1 else None
        )
        if config.strategy == "best_of_k":
            procedure = config.procedure or (
                self.probe.procedures[0]
                if self.probe is not None and len(self.probe.procedures) == 1
                else "default"
            )
            self.models = {procedure: models[str(config.backend)]}
        else:
            self.models = {proc: models[backend] for proc, backend in (config.routes or {}).items()}
        self.fallback_model = models[config.fallback] if config.fallback else None
        self.breaker = CircuitBreaker(failures=config.breaker_failures, cooldown_s=config.breaker_cooldown_s)
        try:
            self.router = AdaptiveRouter(
                rounds=config.rounds,
                strategy=self.strategy(self.models),
                probe=self.probe,
                budget_per_query=config.budget_per_query,
                window_size=config.window_size,
                max_wait_ms=config.max_wait_ms,
                probe_in_thread=config.probe_in_thread,
                calibration_texts=_calibration(config.calibration_file, f"{where}.calibration_file"),
                # a key's budget reserves the planned option's worst case; the server's own `fallback`
                # backend (below), charged to the key, handles a failed upstream instead
                model_fallback=False,
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        self._costs = config.option_costs()

    def strategy(self, models: Mapping[str, Any]) -> Any:
        """The router's strategy over `models` (procedure -> model)."""
        config = self.config
        if config.strategy == "best_of_k":
            ((procedure, model),) = models.items()
            return BestOfK(model, self.reranker, max_k=config.k_max, cost=config.cost, procedure=procedure)
        return Route(
            models=dict(models), costs=dict(config.costs or {}), reranker=self.reranker, max_k=config.k_max
        )

    def strategy_for(self, sampling: Mapping[str, Any]) -> Any:
        """A strategy whose models send `sampling` (``None``: the default one).

        Its ladder equals the default's, so it shares the default's ledger and micro-batcher. The models are
        bound (``model.bind(**sampling)``), so a backend that honours ``n`` gets k requests instead of one.
        """
        if not sampling:
            return None
        return self.strategy({proc: model.bind(**sampling) for proc, model in self.models.items()})

    def reservations(self, max_k: int | None) -> list[tuple[float, int]]:
        """``(worst-case units, max_k)`` from the request's cap down to 1: what a request may reserve."""
        top = max_k or self.config.k_max
        fallback = self.config.fallback_cost if self.fallback_model is not None else 0.0
        out: list[tuple[float, int]] = []
        for cap in range(top, 0, -1):
            worst = max(max(c for k, c in self._costs if k <= cap), fallback)
            if not out or worst < out[-1][0] - 1e-12:
                out.append((worst, cap))
        return out

    def __repr__(self) -> str:
        return (
            f"RouterEntry({self.name!r}, strategy={self.config.strategy!r}, probe={self.probe is not None})"
        )
