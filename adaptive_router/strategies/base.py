"""What every strategy shares: the result record, usage accounting, and the calls that draw k samples.

A *strategy* spends the units the allocator gave a query. It exposes a `Ladder` (the options a query can get,
ordered by cost) and executes one option: ``execute(messages, option, config) -> StrategyResult``.

Sampling k candidates from a chat model takes either one request with ``n=k`` (when the backend honours
``n``: OpenAI, vLLM) through ``generate``/``agenerate``, or k concurrent requests. Token usage is counted once
per request: with ``n=k`` every candidate message carries the usage of the whole response, so summing over
candidates would count it k times.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config

from adaptive_router.errors import AdaptiveRouterError, ConfigError

__all__ = [
    "SampleBatch",
    "StrategyResult",
    "add_usage",
    "asample",
    "honours_n",
    "reraise_config_errors",
    "sample",
    "to_ai_message",
    "usage_of",
]

_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")
_N_CLASSES = frozenset({"ChatOpenAI", "AzureChatOpenAI"})


@contextlib.contextmanager
def reraise_config_errors() -> Iterator[None]:
    """Unwrap our own errors from pydantic's ``ValidationError`` so callers can catch ``ConfigError``."""
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        for err in exc.errors():
            inner = (err.get("ctx") or {}).get("error")
            if isinstance(inner, AdaptiveRouterError):
                raise inner from None
        raise


def usage_of(message: BaseMessage, llm_output: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Token usage of one response as ``input_tokens``/``output_tokens``/``total_tokens`` (0 if unknown)."""
    usage = getattr(message, "usage_metadata", None)
    if usage:
        return {key: int(usage.get(key, 0) or 0) for key in _USAGE_KEYS}
    token_usage = (llm_output or {}).get("token_usage") or message.response_metadata.get("token_usage") or {}
    if token_usage:
        inp = int(token_usage.get("prompt_tokens", 0) or 0)
        out = int(token_usage.get("completion_tokens", 0) or 0)
        return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}
    return dict.fromkeys(_USAGE_KEYS, 0)


def add_usage(left: Mapping[str, int], right: Mapping[str, int]) -> dict[str, int]:
    """Sum two usage dicts key by key."""
    return {key: int(left.get(key, 0)) + int(right.get(key, 0)) for key in _USAGE_KEYS}


def to_ai_message(output: Any) -> AIMessage:
    """Turn what a model or Runnable returned into an `AIMessage`."""
    if isinstance(output, AIMessage):
        return output
    if isinstance(output, BaseMessage):
        return AIMessage(content=output.content, response_metadata=dict(output.response_metadata))
    if isinstance(output, str):
        return AIMessage(content=output)
    raise ConfigError(
        f"a strategy's model returned {type(output).__name__}; it must return a message or a string "
        "(use a chat model, or end the Runnable with a parser that returns str)"
    )


def honours_n(model: Any) -> bool:
    """Whether `model` returns k candidates for one request with ``n=k``.

    True for models that say so with a ``supports_n`` attribute and for LangChain's ``ChatOpenAI``.
    """
    flag = getattr(model, "supports_n", None)
    if flag is not None:
        return bool(flag)
    return type(model).__name__ in _N_CLASSES


@dataclass
class SampleBatch:
    """The candidates one query drew, with the accounting of the requests made."""

    candidates: list[AIMessage] = field(default_factory=list)
    calls: int = 0
    failed_calls: int = 0
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_USAGE_KEYS, 0))
    errors: list[BaseException] = field(default_factory=list)

    def raise_if_empty(self) -> None:
        """Re-raise the first error when no request succeeded (keeps its type, e.g. RetryExhaustedError)."""
        if not self.candidates:
            if self.errors:
                raise self.errors[0]
            raise ConfigError("the model returned no candidates")  # pragma: no cover - defensive


@dataclass
class StrategyResult:
    """What executing one option cost and returned.

    Attributes
    ----------
    message : AIMessage
        The selected answer.
    procedure, k, allocated_cost
        The option that was executed.
    calls : int
        Requests sent to the answering model (one for ``n=k``), failed ones included.
    failed_calls : int
        Requests that raised; they are not retried by the strategy and not charged twice.
    candidates : int
        Successful candidates the reranker chose among.
    judge_calls : int
        Requests made by an LLM-judge reranker.
    usage : dict
        Tokens of all requests, counted once per request.
    cost : float
        Units actually spent (never above ``allocated_cost``).
    scores : list of float or None
        Reranker scores of the candidates; ``None`` when k == 1.
    selected : int
        Index of the selected candidate.
    """

    message: AIMessage
    procedure: str
    k: int
    allocated_cost: float
    calls: int
    failed_calls: int
    candidates: int
    usage: dict[str, int]
    cost: float
    scores: list[float] | None = None
    selected: int = 0
    judge_calls: int = 0
    errors: list[str] = field(default_factory=list)


def _batch_of(batch: SampleBatch, outputs: Sequence[Any]) -> SampleBatch:
    for out in outputs:
        if isinstance(out, BaseException) and not isinstance(out, Exception):
            raise out  # cancellation and interrupts are not a failed sample
        batch.calls += 1
        if isinstance(out, BaseException):
            batch.failed_calls += 1
            batch.errors.append(out)
            continue
        message = to_ai_message(out)
        batch.candidates.append(message)
        batch.usage = add_usage(batch.usage, usage_of(message))
    return batch


def _n_batch(result: Any) -> SampleBatch:
    generations = result.generations[0]
    messages = [to_ai_message(gen.message) for gen in generations]
    batch = SampleBatch(candidates=messages, calls=1)
    if messages:
        batch.usage = usage_of(messages[0], result.llm_output)
    return batch


def _one_request(model: Runnable[Any, Any], k: int, use_n: bool) -> bool:
    """Whether k candidates come from one request: ``invoke`` for k == 1, ``n=k`` on a chat model."""
    return k == 1 or (use_n and isinstance(model, BaseChatModel))


def _generate_kwargs(config: RunnableConfig) -> dict[str, Any]:
    return {
        "callbacks": config.get("callbacks"),
        "tags": config.get("tags"),
        "metadata": config.get("metadata"),
        "run_name": config.get("run_name"),
    }


def sample(
    model: Runnable[Any, Any],
    messages: list[BaseMessage],
    k: int,
    config: RunnableConfig | None,
    *,
    use_n: bool,
) -> SampleBatch:
    """Draw `k` candidates from `model` for `messages` (one request with ``n=k`` when `use_n`)."""
    config = ensure_config(config)
    if not _one_request(model, k, use_n):
        return _batch_of(SampleBatch(), model.batch([messages] * k, config, return_exceptions=True))
    try:
        if k == 1:
            return _batch_of(SampleBatch(), [model.invoke(messages, config)])
        chat = cast(BaseChatModel, model)  # _one_request with k > 1 means a chat model
        return _n_batch(chat.generate([messages], n=k, **_generate_kwargs(config)))
    except Exception as exc:
        return _batch_of(SampleBatch(), [exc])


async def asample(
    model: Runnable[Any, Any],
    messages: list[BaseMessage],
    k: int,
    config: RunnableConfig | None,
    *,
    use_n: bool,
) -> SampleBatch:
    """Async :func:`sample`: the k requests run concurrently."""
    config = ensure_config(config)
    if not _one_request(model, k, use_n):
        calls = (model.ainvoke(messages, config) for _ in range(k))
        return _batch_of(SampleBatch(), await asyncio.gather(*calls, return_exceptions=True))
    try:
        if k == 1:
            return _batch_of(SampleBatch(), [await model.ainvoke(messages, config)])
        chat = cast(BaseChatModel, model)  # _one_request with k > 1 means a chat model
        return _n_batch(await chat.agenerate([messages], n=k, **_generate_kwargs(config)))
    except Exception as exc:
        return _batch_of(SampleBatch(), [exc])
