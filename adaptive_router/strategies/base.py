"""What every strategy shares: the result record, usage accounting, and the calls that draw k samples.

A *strategy* (the `Strategy` protocol) spends the units the allocator gave a query. It exposes a `Ladder`
(the options a query can get, ordered by cost), says which `Request`s an option sends, and finishes the
option from what they returned (reranking, accounting): ``finish(messages, option, batch) -> StrategyResult``.
A router sends the requests of a whole batch through `send_all`/`asend_all`, so ``max_concurrency`` bounds
model requests, not queries.

Sampling k candidates from a chat model takes either one request with ``n=k`` (when the backend honours
``n``, see `honours_n`) through ``generate``/``agenerate``, or k concurrent requests. A model that returns
fewer generations than the ``n`` it was asked for is remembered as ignoring ``n``: the missing candidates are
sent as separate requests at once, and later requests to it are sent one candidate each. Token usage is
counted once per request, with langchain-core's ``add_usage``: with ``n=k`` every candidate message carries
the usage of the whole response, so summing over candidates would count it k times.

Every request runs as its own child run with a ``run_id`` chosen here (`SampleBatch.run_ids` keeps it per
candidate), so the router can tell a tracer afterwards which candidate run it chose. A request also carries
the call's keyword arguments (``stop``, and whatever was bound to the router) to the model.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
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
    "asend_all",
    "chat_model_of",
    "honours_n",
    "merge",
    "requests_for",
    "reraise_config_errors",
    "send_all",
    "to_ai_message",
    "unbound",
    "usage_of",
]

_IGNORES_N: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
"""Chat models seen returning fewer generations than the ``n`` they were asked for, by ``id`` (models are
not hashable; an entry goes with its model)."""
_IGNORES_N_LOCK = threading.Lock()


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


def usage_of(message: BaseMessage, llm_output: Mapping[str, Any] | None = None) -> UsageMetadata:
    """Token usage of one response, a langchain-core ``UsageMetadata`` (zeros if unknown).

    The message's ``usage_metadata`` when it has one, else OpenAI-style ``token_usage``.

    Examples
    --------
    >>> usage_of(AIMessage("4", usage_metadata={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}))
    {'input_tokens': 3, 'output_tokens': 1, 'total_tokens': 4}
    >>> usage_of(AIMessage("4"), {"token_usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    {'input_tokens': 3, 'output_tokens': 2, 'total_tokens': 5}
    """
    usage = getattr(message, "usage_metadata", None)
    if usage:
        return add_usage(None, usage)
    token_usage = (llm_output or {}).get("token_usage") or message.response_metadata.get("token_usage") or {}
    inp = int(token_usage.get("prompt_tokens", 0) or 0)
    out = int(token_usage.get("completion_tokens", 0) or 0)
    return cast(UsageMetadata, {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out})


def _zero_usage() -> UsageMetadata:
    return add_usage(None, None)


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


def chat_model_of(model: Any) -> tuple[BaseChatModel, dict[str, Any]] | None:
    """The chat model under `model` and the keyword arguments bound to it (``bind_tools``, ``bind``).

    ``None`` when `model` is neither a chat model nor a binding of one (a chain, a plain Runnable).

    Examples
    --------
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> chat = GenericFakeChatModel(messages=iter([]))
    >>> chat_model_of(chat.bind(stop=["END"]))[1]
    {'stop': ['END']}
    """
    kwargs: dict[str, Any] = {}
    while isinstance(model, RunnableBinding) and not model.config:
        kwargs = {**model.kwargs, **kwargs}
        model = model.bound
    if isinstance(model, BaseChatModel):
        return model, kwargs
    return None


def unbound(
    model: Runnable[Any, Any], kwargs: Mapping[str, Any]
) -> tuple[Runnable[Any, Any], dict[str, Any]]:
    """What to call for a request to `model`: the chat model under a binding, with the bound keyword
    arguments and `kwargs` (the request's win).

    A binding merges the config of the surrounding context (e.g. a LangGraph node's callbacks) into the one
    it is given; calling the chat model itself keeps a request's callbacks exactly the router's.
    """
    found = chat_model_of(model)
    if found is None:
        return model, dict(kwargs)
    return found[0], {**found[1], **kwargs}


def honours_n(model: Any) -> bool:
    """Whether `model` is expected to return k candidates for one request with ``n=k``.

    A ``supports_n`` attribute declares it (on the model or on the chat model a binding wraps); without one,
    a chat model with an ``n`` field (as OpenAI-style models have) is expected to honour it until it is seen
    returning fewer generations than asked (then remembered as ignoring ``n``). Anything else gets one
    request per candidate.

    Examples
    --------
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> honours_n(GenericFakeChatModel(messages=iter([])))
    False
    """
    found = chat_model_of(model)
    chat = found[0] if found is not None else model
    flag = getattr(chat, "supports_n", None)
    if flag is not None:
        return bool(flag)
    if found is None or "n" not in type(chat).model_fields:
        return False
    with _IGNORES_N_LOCK:
        return _IGNORES_N.get(id(chat)) is not chat


def _ignores_n(model: BaseChatModel) -> None:
    with _IGNORES_N_LOCK:
        _IGNORES_N[id(model)] = model


@dataclass
class SampleBatch:
    """The candidates one query drew, with the accounting of the requests made.

    ``calls`` counts requests (one for ``n=k``), ``requested`` the candidates asked for (k for ``n=k``).
    """

    candidates: list[AIMessage] = field(default_factory=list)
    calls: int = 0
    failed_calls: int = 0
    usage: UsageMetadata = field(default_factory=_zero_usage)
    errors: list[BaseException] = field(default_factory=list)
    requested: int = 0
    run_ids: list[uuid.UUID | None] = field(default_factory=list)
    """The run of the request each candidate came from (``None``: not known)."""

    @classmethod
    def of(
        cls, outputs: Sequence[Any], requested: int | None = None, run_ids: Sequence[uuid.UUID | None] = ()
    ) -> SampleBatch:
        """The accounting of requests that returned `outputs`: a message, a string, or the exception raised.

        ``requested`` (the candidates asked for) defaults to one per output; ``run_ids`` are the outputs'
        runs. A `BaseException` that is not an `Exception` (cancellation, an interrupt) is re-raised: it is
        not a failed sample.
        """
        batch = cls(requested=len(outputs) if requested is None else requested)
        ids = list(run_ids) + [None] * (len(outputs) - len(run_ids))
        for out, run_id in zip(outputs, ids, strict=True):
            if isinstance(out, BaseException) and not isinstance(out, Exception):
                raise out
            batch.calls += 1
            if isinstance(out, BaseException):
                batch.failed_calls += 1
                batch.errors.append(out)
                continue
            message = to_ai_message(out)
            batch.candidates.append(message)
            batch.run_ids.append(run_id)
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
    usage: UsageMetadata
    cost: float
    scores: list[float] | None = None
    selected: int = 0
    judge_calls: int = 0
    errors: list[str] = field(default_factory=list)
    run_ids: list[uuid.UUID | None] = field(default_factory=list)
    """The run of each candidate's request (see `SampleBatch.run_ids`)."""
    model_usage: UsageMetadata | None = None
    """The answering model's tokens alone (``usage`` less the reranker's); ``None``: all of ``usage``."""


@dataclass
class Reading:
    """What a reranker read from candidates as they arrived (round by round): one piece of evidence each
    (a reward, an extracted answer or ``None``, a score) and the requests it made to read them."""

    evidence: list[Any] = field(default_factory=list)
    calls: int = 0
    usage: UsageMetadata = field(default_factory=_zero_usage)

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
        self,
        messages: list[BaseMessage],
        option: Option,
        config: RunnableConfig | None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> Iterator[AIMessageChunk | StrategyResult]:
        """The answer's chunks (k = 1; none for k > 1), then the `StrategyResult`; `kwargs` go with the
        requests."""
        ...

    def astream(
        self,
        messages: list[BaseMessage],
        option: Option,
        config: RunnableConfig | None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[AIMessageChunk | StrategyResult]:
        """Async :meth:`stream`."""
        ...


def _n_batch(result: Any, requested: int, run_id: uuid.UUID) -> SampleBatch:
    generations = result.generations[0]
    messages = [to_ai_message(gen.message) for gen in generations]
    batch = SampleBatch(
        candidates=messages,
        calls=1,
        requested=min(requested, len(messages)),
        run_ids=[run_id] * len(messages),
    )
    if messages:
        batch.usage = usage_of(messages[0], result.llm_output)
    return batch


def _generate_kwargs(config: RunnableConfig, run_id: uuid.UUID) -> dict[str, Any]:
    return {
        "callbacks": config.get("callbacks"),
        "tags": config.get("tags"),
        "metadata": config.get("metadata"),
        "run_name": config.get("run_name"),
        "run_id": run_id,
    }


@dataclass(frozen=True, eq=False)
class Request:
    """One request to a model: one candidate (``invoke``), or ``n`` candidates through ``n=k`` (``generate``).

    ``kwargs`` go to the model with the request (``stop``, tools bound to the router). `send`/`asend` never
    raise an `Exception`: a failed request is a `SampleBatch` with one failed call. When an ``n=k`` request
    returns fewer candidates, the missing ones are requested one each at once, and the model is remembered
    as ignoring ``n`` (`honours_n` is then false for it).
    """

    model: Runnable[Any, Any]
    messages: list[BaseMessage]
    n: int = 1
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def with_kwargs(self, kwargs: Mapping[str, Any]) -> Request:
        """This request with `kwargs` added (the request's own win)."""
        return replace(self, kwargs={**kwargs, **self.kwargs}) if kwargs else self

    def _chat(self) -> tuple[BaseChatModel, dict[str, Any]]:
        found = chat_model_of(self.model)
        if found is None:  # pragma: no cover - n > 1 only for chat models (see `requests_for`)
            raise ConfigError(f"an n={self.n} request needs a chat model, got {type(self.model).__name__}")
        return found[0], {**found[1], **self.kwargs}

    def _rest(self, batch: SampleBatch, chat: BaseChatModel) -> list[Request]:
        """The one-candidate requests that make up for the candidates an ``n=k`` request did not return."""
        missing = self.n - len(batch.candidates)
        if missing <= 0 or batch.failed_calls:
            return []
        _ignores_n(chat)
        return [replace(self, n=1)] * missing

    def send(self, config: RunnableConfig | None = None) -> SampleBatch:
        """Send the request and account for it."""
        config = config or {}  # the model ensures the rest of the config itself
        run_id = uuid.uuid4()
        try:
            if self.n == 1:
                model, kwargs = unbound(self.model, self.kwargs)
                out = model.invoke(self.messages, {**config, "run_id": run_id}, **kwargs)
                return SampleBatch.of([out], 1, [run_id])
            chat, kwargs = self._chat()
            result = chat.generate([self.messages], n=self.n, **kwargs, **_generate_kwargs(config, run_id))
            batch = _n_batch(result, self.n, run_id)
        except Exception as exc:
            return SampleBatch.of([exc], self.n)
        rest = self._rest(batch, chat)
        return merge([batch, *send_all([(r, config) for r in rest], config.get("max_concurrency"))])

    async def asend(self, config: RunnableConfig | None = None) -> SampleBatch:
        """Async :meth:`send`."""
        config = config or {}  # the model ensures the rest of the config itself
        run_id = uuid.uuid4()
        try:
            if self.n == 1:
                model, kwargs = unbound(self.model, self.kwargs)
                out = await model.ainvoke(self.messages, {**config, "run_id": run_id}, **kwargs)
                return SampleBatch.of([out], 1, [run_id])
            chat, kwargs = self._chat()
            result = await chat.agenerate(
                [self.messages], n=self.n, **kwargs, **_generate_kwargs(config, run_id)
            )
            batch = _n_batch(result, self.n, run_id)
        except Exception as exc:
            return SampleBatch.of([exc], self.n)
        rest = self._rest(batch, chat)
        return merge([batch, *await asend_all([(r, config) for r in rest], config.get("max_concurrency"))])


def requests_for(
    model: Runnable[Any, Any], messages: list[BaseMessage], k: int, *, use_n: bool
) -> list[Request]:
    """The requests that draw `k` candidates: one ``n=k`` request on a chat model when `use_n`, else k."""
    if k > 1 and use_n and chat_model_of(model) is not None:
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
        out.run_ids.extend(batch.run_ids)
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
