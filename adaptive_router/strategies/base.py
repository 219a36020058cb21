"""What every strategy shares: the result record, usage accounting, and the calls that draw k samples.

A *strategy* (the `Strategy` protocol) spends the units the allocator gave a query. It exposes a `Ladder`
(the options a query can get, ordered by cost), says which `Request`s an option sends, and finishes the
option from what they returned (reranking, accounting): ``finish(messages, option, batch) -> StrategyResult``.
A router sends the requests of a whole batch through `send_all`/`asend_all`, so ``max_concurrency`` bounds
model requests, not queries.

Sampling k candidates from a chat model takes either one request with ``n=k`` (when the backend honours
``n``: OpenAI, vLLM) through ``generate``/``agenerate``, or k concurrent requests. Token usage is counted once
per request: with ``n=k`` every candidate message carries the usage of the whole response, so summing over
candidates would count it k times.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import get_executor_for_config
from langchain_core.runnables.utils import gather_with_concurrency

from adaptive_router.errors import AdaptiveRouterError, ConfigError

if TYPE_CHECKING:
    from langchain_core.messages import AIMessageChunk

    from adaptive_router.allocation import Ladder, Option

__all__ = [
    "Reading",
    "Request",
    "SampleBatch",
    "Strategy",
    "StrategyResult",
    "add_usage",
    "asend_all",
    "honours_n",
    "merge",
    "requests_for",
    "reraise_config_errors",
    "send_all",
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
    """The candidates one query drew, with the accounting of the requests made.

    ``calls`` counts requests (one for ``n=k``), ``requested`` the candidates asked for (k for ``n=k``).
    """

    candidates: list[AIMessage] = field(default_factory=list)
    calls: int = 0
    failed_calls: int = 0
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_USAGE_KEYS, 0))
    errors: list[BaseException] = field(default_factory=list)
    requested: int = 0

    @classmethod
    def of(cls, outputs: Sequence[Any], requested: int | None = None) -> SampleBatch:
        """The accounting of requests that returned `outputs`: a message, a string, or the exception raised.

        ``requested`` (the candidates asked for) defaults to one per output. A `BaseException` that is not
        an `Exception` (cancellation, an interrupt) is re-raised: it is not a failed sample.
        """
        batch = cls(requested=len(outputs) if requested is None else requested)
        for out in outputs:
            if isinstance(out, BaseException) and not isinstance(out, Exception):
                raise out
            batch.calls += 1
            if isinstance(out, BaseException):
                batch.failed_calls += 1
                batch.errors.append(out)
                continue
            message = to_ai_message(out)
            batch.candidates.append(message)
            batch.usage = add_usage(batch.usage, usage_of(message))
        return batch

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


@dataclass
class Reading:
    """What a reranker read from candidates as they arrived (round by round): one piece of evidence each
    (a reward, an extracted answer or ``None``, a score) and the requests it made to read them."""

    evidence: list[Any] = field(default_factory=list)
    calls: int = 0
    usage: dict[str, int] = field(default_factory=dict)

    def extend(self, other: Reading) -> None:
        """Add `other`'s candidates (in order) and requests."""
        self.evidence.extend(other.evidence)
        self.calls += other.calls
        self.usage = add_usage(self.usage, other.usage)


@runtime_checkable
class Strategy(Protocol):
    """What a router needs from a strategy (`BestOfK`, `Route`, any `SamplingStrategy`)."""

    @property
    def ladder(self) -> Ladder:
        """The options ``(procedure, k, cost)`` a query can get."""
        ...

    def requests(self, messages: list[BaseMessage], option: Option) -> list[Request]:
        """The model requests executing `option` sends."""
        ...

    def finish(
        self, messages: list[BaseMessage], option: Option, batch: SampleBatch, config: RunnableConfig | None
    ) -> StrategyResult:
        """The option's result from its requests' candidates (reranking them)."""
        ...

    async def afinish(
        self, messages: list[BaseMessage], option: Option, batch: SampleBatch, config: RunnableConfig | None
    ) -> StrategyResult:
        """Async :meth:`finish`."""
        ...

    def stream(
        self, messages: list[BaseMessage], option: Option, config: RunnableConfig | None
    ) -> Iterator[AIMessageChunk | StrategyResult]:
        """The answer's chunks, then the `StrategyResult`."""
        ...

    def astream(
        self, messages: list[BaseMessage], option: Option, config: RunnableConfig | None
    ) -> AsyncIterator[AIMessageChunk | StrategyResult]:
        """Async :meth:`stream`."""
        ...


def _n_batch(result: Any, requested: int) -> SampleBatch:
    generations = result.generations[0]
    messages = [to_ai_message(gen.message) for gen in generations]
    batch = SampleBatch(candidates=messages, calls=1, requested=requested)
    if messages:
        batch.usage = usage_of(messages[0], result.llm_output)
    return batch


def _generate_kwargs(config: RunnableConfig) -> dict[str, Any]:
    return {
        "callbacks": config.get("callbacks"),
        "tags": config.get("tags"),
        "metadata": config.get("metadata"),
        "run_name": config.get("run_name"),
    }


@dataclass(frozen=True, eq=False)
class Request:
    """One request to a model: one candidate (``invoke``), or ``n`` candidates through ``n=k`` (``generate``).

    `send`/`asend` never raise an `Exception`: a failed request is a `SampleBatch` with one failed call.
    """

    model: Runnable[Any, Any]
    messages: list[BaseMessage]
    n: int = 1

    def send(self, config: RunnableConfig | None = None) -> SampleBatch:
        """Send the request and account for it."""
        config = config or {}  # the model ensures the rest of the config itself
        try:
            if self.n == 1:
                return SampleBatch.of([self.model.invoke(self.messages, config)], 1)
            chat = cast(BaseChatModel, self.model)  # n > 1 only for chat models (see `requests_for`)
            return _n_batch(chat.generate([self.messages], n=self.n, **_generate_kwargs(config)), self.n)
        except Exception as exc:
            return SampleBatch.of([exc], self.n)

    async def asend(self, config: RunnableConfig | None = None) -> SampleBatch:
        """Async :meth:`send`."""
        config = config or {}  # the model ensures the rest of the config itself
        try:
            if self.n == 1:
                return SampleBatch.of([await self.model.ainvoke(self.messages, config)], 1)
            chat = cast(BaseChatModel, self.model)
            result = await chat.agenerate([self.messages], n=self.n, **_generate_kwargs(config))
            return _n_batch(result, self.n)
        except Exception as exc:
            return SampleBatch.of([exc], self.n)


def requests_for(
    model: Runnable[Any, Any], messages: list[BaseMessage], k: int, *, use_n: bool
) -> list[Request]:
    """The requests that draw `k` candidates: one ``n=k`` request on a chat model when `use_n`, else k."""
    if k > 1 and use_n and isinstance(model, BaseChatModel):
        return [Request(model, messages, k)]
    return [Request(model, messages)] * k


def merge(batches: Sequence[SampleBatch]) -> SampleBatch:
    """The accounting of several requests as one `SampleBatch` (candidates in request order)."""
    out = SampleBatch()
    for batch in batches:
        out.candidates.extend(batch.candidates)
        out.calls += batch.calls
        out.failed_calls += batch.failed_calls
        out.requested += batch.requested
        out.usage = add_usage(out.usage, batch.usage)
        out.errors.extend(batch.errors)
    return out


def _own_config(config: RunnableConfig) -> RunnableConfig:
    """`config` for one of several concurrent requests: a ``run_id`` names one run, so it is dropped."""
    return cast(RunnableConfig, {k: v for k, v in config.items() if k != "run_id"})


def send_all(
    requests: Sequence[tuple[Request, RunnableConfig]], max_concurrency: int | None = None
) -> list[SampleBatch]:
    """Send every ``(request, config)`` pair, at most `max_concurrency` at a time, results in order."""
    if len(requests) == 1:
        request, config = requests[0]
        return [request.send(config)]
    with get_executor_for_config({"max_concurrency": max_concurrency or None}) as executor:
        return list(executor.map(lambda pair: pair[0].send(_own_config(pair[1])), requests))


async def asend_all(
    requests: Sequence[tuple[Request, RunnableConfig]], max_concurrency: int | None = None
) -> list[SampleBatch]:
    """Async :func:`send_all` (langchain-core's ``gather_with_concurrency``)."""
    if len(requests) == 1:
        request, config = requests[0]
        return [await request.asend(config)]
    sends = (request.asend(_own_config(config)) for request, config in requests)
    return list(await gather_with_concurrency(max_concurrency or None, *sends))
