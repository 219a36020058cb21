"""A LangChain chat model on the ``openai`` client, with bounded retries (sync and async).

`OpenAIChatModel` talks to any OpenAI-compatible server: OpenAI itself, vLLM, or llama.cpp's server started by
`LlamaServer`. Requests that fail with 429 (its ``Retry-After`` header honoured), 5xx, a timeout or a refused
connection are retried with `tenacity`, bounded both by ``max_attempts`` and by a ``deadline`` in seconds over
all attempts; when they run out the model raises `RetryExhaustedError` (``.attempts`` says how many were
made). Other errors (400, 401, 404) raise `BackendError` at once.

Two endpoints: ``"chat"`` (``/v1/chat/completions``, the server applies the chat template) and
``"completions"`` (``/v1/completions``, the messages' text is sent as the raw prompt). Use ``"completions"``
for base models such as the embedded Gemma-3-270M: few-shot prompts like ``"2 + 3 = 5\\n4 + 4 ="`` are
continued as written, while the chat template wraps them in turns the base model was not trained on.

Examples
--------
>>> from adaptive_router.integrations.openai_backend import OpenAIChatModel
>>> model = OpenAIChatModel(base_url="http://127.0.0.1:8000/v1", model="gemma-3-270m",
...                         endpoint="completions", max_tokens=4, supports_n=False)
>>> model.invoke("2 + 3 = 5\\n4 + 4 =").content  # doctest: +SKIP
' 8'
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from adaptive_router.errors import BackendError, ConfigError, RetryExhaustedError
from adaptive_router.strategies.base import reraise_config_errors

__all__ = ["OpenAIChatModel", "is_retryable", "retry_after_seconds"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def is_retryable(exc: BaseException) -> bool:
    """429, 5xx, timeouts and connection errors are worth another attempt; other errors are not."""
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def retry_after_seconds(exc: BaseException | None, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date), or ``None``."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class _WaitRetryAfter:
    """Wait what ``Retry-After`` says, else exponential backoff with jitter capped at ``cap`` seconds.

    A ``Retry-After`` longer than what is left of the deadline ends the retries (``stop_before_delay``).
    """

    def __init__(self, *, initial: float, cap: float) -> None:
        self.cap = cap
        self.backoff = wait_exponential_jitter(multiplier=initial, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = retry_after_seconds(exc)
        return asked if asked is not None else min(self.cap, self.backoff(state))


def _message_dict(message: BaseMessage) -> dict[str, Any]:
    return {"role": _ROLES.get(message.type, "user"), "content": message.content}


def _prompt_text(messages: list[BaseMessage]) -> str:
    texts = [m.content if isinstance(m.content, str) else str(m.content) for m in messages]
    return texts[0] if len(texts) == 1 else "\n\n".join(texts)


def _usage(resp_usage: Any) -> dict[str, int]:
    if resp_usage is None:
        return {}
    inp = int(getattr(resp_usage, "prompt_tokens", 0) or 0)
    out = int(getattr(resp_usage, "completion_tokens", 0) or 0)
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


class OpenAIChatModel(BaseChatModel):
    """Chat model over the ``openai`` client with tenacity retries bounded by attempts and a deadline.

    Parameters
    ----------
    model : str
        Model name sent with each request.
    base_url : str, optional
        Server URL ending in ``/v1``; ``None`` is OpenAI.
    api_key : str
        Any string for local servers.
    endpoint : {"chat", "completions"}
        Which OpenAI endpoint to call (see the module docstring).
    temperature, top_p, max_tokens, seed, stop
        Sampling settings sent with each request (``None`` leaves the server default).
    supports_n : bool
        Whether the server honours ``n`` (OpenAI, vLLM: yes; llama.cpp: no). Best-of-k asks for ``n=k`` in one
        request only when True.
    timeout : float
        Seconds per attempt (also capped by what is left of the deadline).
    max_attempts : int
        Attempts per request, the first included.
    deadline : float
        Seconds for all attempts of one request together.
    max_backoff : float
        Longest backoff between attempts when the server sent no ``Retry-After``.
    client, async_client : optional
        Pre-built ``openai.OpenAI`` / ``openai.AsyncOpenAI`` (e.g. with a custom ``http_client``).
    sleep, asleep : callable, optional
        Injected sleeps for tests.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = "default"
    base_url: str | None = None
    api_key: SecretStr = Field(default=SecretStr("sk-no-key"))
    endpoint: Literal["chat", "completions"] = "chat"
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    supports_n: bool = True
    timeout: float = 60.0
    max_attempts: int = 4
    deadline: float = 120.0
    max_backoff: float = 20.0
    initial_backoff: float = 0.5
    client: Any = Field(default=None, exclude=True)
    async_client: Any = Field(default=None, exclude=True)
    sleep: Callable[[float], None] | None = Field(default=None, exclude=True)
    asleep: Callable[[float], Any] | None = Field(default=None, exclude=True)

    _clients: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(self, **kwargs: Any) -> None:
        with reraise_config_errors():
            super().__init__(**kwargs)

    def model_post_init(self, context: Any, /) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not self.deadline > 0 or not self.timeout > 0:
            raise ConfigError(f"deadline and timeout must be > 0, got {self.deadline} and {self.timeout}")

    @classmethod
    def for_llama_server(cls, server: Any, **kwargs: Any) -> OpenAIChatModel:
        """A model for a running `LlamaServer` (``n`` not honoured; completions endpoint by default)."""
        kwargs.setdefault("endpoint", "completions")
        return cls(base_url=server.base_url, model=server.model_alias, supports_n=False, **kwargs)

    @property
    def _llm_type(self) -> str:
        return "adaptive-router-openai"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url, "endpoint": self.endpoint}

    # ------------------------------------------------------------------ clients / retries
    def _client(self, kind: str) -> Any:
        given = self.client if kind == "sync" else self.async_client
        if given is not None:
            return given
        if kind not in self._clients:
            cls = openai.OpenAI if kind == "sync" else openai.AsyncOpenAI
            self._clients[kind] = cls(
                api_key=self.api_key.get_secret_value(),
                base_url=self.base_url,
                max_retries=0,
                timeout=self.timeout,
            )
        return self._clients[kind]

    def _retry_kwargs(self) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(self.max_attempts) | stop_before_delay(self.deadline),
            "wait": _WaitRetryAfter(initial=self.initial_backoff, cap=self.max_backoff),
            "retry": retry_if_exception(is_retryable),
            "reraise": False,
        }

    def _exhausted(self, err: RetryError) -> RetryExhaustedError:
        last = err.last_attempt.exception()
        where = self.base_url or "api.openai.com"
        refused = isinstance(last, openai.APIConnectionError) and not isinstance(last, openai.APITimeoutError)
        hint = "; nothing answers there: is the server running?" if refused else ""
        return RetryExhaustedError(
            f"{self.endpoint} request to {where} kept failing: {type(last).__name__}: {last}"[:500] + hint,
            attempts=err.last_attempt.attempt_number,
        )

    def _fatal(self, exc: openai.OpenAIError) -> BackendError:
        status = getattr(exc, "status_code", None)
        return BackendError(f"{self.endpoint} request failed (status {status}): {exc}"[:500])

    def _attempt_timeout(self, started: float) -> float:
        return max(0.05, min(self.timeout, self.deadline - (time.monotonic() - started)))

    def _call(self, fn: Callable[[float], Any]) -> Any:
        started = time.monotonic()
        retrying = Retrying(sleep=self.sleep or time.sleep, **self._retry_kwargs())
        try:
            for attempt in retrying:
                with attempt:
                    return fn(self._attempt_timeout(started))
        except RetryError as err:
            raise self._exhausted(err) from err.last_attempt.exception()
        except openai.OpenAIError as exc:
            raise self._fatal(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acall(self, fn: Callable[[float], Any]) -> Any:
        started = time.monotonic()
        retrying = AsyncRetrying(sleep=self.asleep or asyncio.sleep, **self._retry_kwargs())
        try:
            async for attempt in retrying:
                with attempt:
                    return await fn(self._attempt_timeout(started))
        except RetryError as err:
            raise self._exhausted(err) from err.last_attempt.exception()
        except openai.OpenAIError as exc:
            raise self._fatal(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ requests
    def _params(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        n = int(kwargs.pop("n", 1) or 1)
        if n > 1 and not self.supports_n:
            raise ConfigError(f"n={n} asked of a server that ignores n (supports_n=False); send {n} requests")
        params: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": stop or self.stop,
            "n": n if n > 1 else None,
        }
        params.update(kwargs)
        if self.endpoint == "chat":
            params["messages"] = [_message_dict(m) for m in messages]
        else:
            params["prompt"] = _prompt_text(messages)
        return {k: v for k, v in params.items() if v is not None}

    def _endpoint(self, client: Any) -> Any:
        return client.chat.completions if self.endpoint == "chat" else client.completions

    def _result(self, resp: Any) -> ChatResult:
        usage = _usage(getattr(resp, "usage", None))
        generations = []
        for choice in resp.choices:
            text = (choice.message.content or "") if self.endpoint == "chat" else (choice.text or "")
            meta = {"finish_reason": choice.finish_reason, "model_name": getattr(resp, "model", self.model)}
            message = AIMessage(content=text, response_metadata=meta, usage_metadata=usage or None)  # type: ignore[arg-type]
            generations.append(
                ChatGeneration(message=message, generation_info={"finish_reason": choice.finish_reason})
            )
        token_usage = {
            "prompt_tokens": usage.get("input_tokens", 0),
            "completion_tokens": usage.get("output_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        }
        return ChatResult(
            generations=generations, llm_output={"token_usage": token_usage, "model_name": self.model}
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        params = self._params(messages, stop, kwargs)
        endpoint = self._endpoint(self._client("sync"))
        return self._result(self._call(lambda timeout: endpoint.create(timeout=timeout, **params)))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        params = self._params(messages, stop, kwargs)
        endpoint = self._endpoint(self._client("async"))
        return self._result(await self._acall(lambda timeout: endpoint.create(timeout=timeout, **params)))

    def _delta(self, chunk: Any) -> str:
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if self.endpoint == "chat":
            return getattr(choice.delta, "content", None) or ""
        return getattr(choice, "text", None) or ""

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        params = self._params(messages, stop, kwargs)
        endpoint = self._endpoint(self._client("sync"))
        stream = self._call(lambda timeout: endpoint.create(timeout=timeout, stream=True, **params))
        try:
            for raw in stream:
                text = self._delta(raw)
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager is not None and text:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
        except openai.OpenAIError as exc:
            raise BackendError(f"stream from {self.base_url or 'OpenAI'} broke: {exc}"[:500]) from exc

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        params = self._params(messages, stop, kwargs)
        endpoint = self._endpoint(self._client("async"))
        stream = await self._acall(lambda timeout: endpoint.create(timeout=timeout, stream=True, **params))
        try:
            async for raw in stream:
                text = self._delta(raw)
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager is not None and text:
                    await run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
        except openai.OpenAIError as exc:
            raise BackendError(f"stream from {self.base_url or 'OpenAI'} broke: {exc}"[:500]) from exc
