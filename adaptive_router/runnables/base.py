"""`BaseRouter`: everything a budgeted router does before and around its model calls, written once.

A router is a LangChain chat model (`langchain_core.language_models.BaseChatModel`): messages in, an
`AIMessage` out, ``stop``/``bind_tools``/``with_structured_output`` forwarded to every wrapped model, one
chat-model run per query (see `adaptive_router.runnables.tracing`). Settings, input validation, windowing,
the micro-batcher of concurrent ``ainvoke`` calls, typed decision metadata and the LangChain entry points
(``invoke``/``ainvoke``/``batch``/``abatch``/``generate``/``agenerate``/``stream``/``astream``) live here;
nothing here calls a model. A router subclass says what its settings are (`BaseRouter._settings`) and
executes plans, the requests its plans send (`BaseRouter._requests`; for a router that calls a model before
planning also `BaseRouter._pre_requests`) and builds the answers from what came back
(`BaseRouter._results`, sync and async), the way httpx's ``BaseClient`` builds requests and
``Client``/``AsyncClient`` only send them: sending, sync and async, is written here once.

One call of ``batch``/``abatch`` (or ``generate``/``agenerate`` over many prompts) runs in stages over all
its inputs:

1. every input is validated with its run settings; without ``return_exceptions`` the first bad input
   raises before any model is called;
2. (``_pre_requests``: a cascade starts its runs and drafts every query here);
3. the valid items are grouped by settings (input order kept), cut into windows of ``window_size`` and each
   window is planned by the `ProbePlanner` (the probe runs once per window, in a worker thread on the async
   path when ``probe_in_thread``); each query's run starts, tagged with its decision;
4. the plans' model requests (``_requests``) are sent, all of the batch's at most ``max_concurrency`` at a
   time (`send_all`/`asend_all`), and ``_results`` builds the answers; each run ends with its answer.

Settings with ``rounds`` plan a window as one `LiveWindow` instead (its budget reserved, see
`adaptive_router.runnables.rounds`), and stage 4 runs in rounds: round 1 of every window of the batch goes
out with the one-shot plans' requests in one send, the rerankers read the new candidates, each window's
round planner issues the next round, and the next send carries every window's next round, until all
have stopped. Latency grows with the number of rounds, not with k.

A lone ``invoke`` is a batch of one (the threshold path); concurrent ``ainvoke`` calls meet in a
`MicroBatcher` per settings group and event loop (``window_size`` calls or ``max_wait_ms``) and are planned
together (with rounds: planned and sampled together). ``invoke`` under a streaming handler (LangGraph's
``stream_mode="messages"``, ``astream_events``) or with ``streaming=True`` goes through ``stream``, so a
k = 1 answer's tokens reach the stream as they come.

Run-time settings come from ``config["configurable"]`` (`BaseRouter.config_specs` lists them). A key there
that looks meant for the router but is not one of its keys (a near-miss of a valid key, case-insensitive:
``max_K``, ``budget_per_querry``, ``round``; or a key starting with ``adaptive_router``) is a `ConfigError`
naming the valid keys; other keys belong to someone else (LangGraph's ``thread_id``, checkpoint and
``__pregel_*`` keys, a tool's own settings, a ``ConfigurableField`` id) and are left alone.
"""

from __future__ import annotations

import functools
import json
import operator
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult, RunInfo
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.runnables.config import get_config_list
from langchain_core.runnables.utils import ConfigurableFieldSpec
from typing_extensions import override

from adaptive_router.errors import ConfigError
from adaptive_router.runnables.stages import RouterStages, _raise_or_return
from adaptive_router.runnables.tracing import AsyncRuns, Runs, child_manager, has_streaming_handler
from adaptive_router.strategies.base import (
    chat_model_of,
)

__all__ = ["BaseRouter", "answer_chunks", "last_chunk"]

_Inputs = Sequence[LanguageModelInput]
_Configs = RunnableConfig | Sequence[RunnableConfig] | None


def answer_chunks(message: AIMessage) -> Iterator[AIMessageChunk]:
    """A finished answer as a stream: its content and tool calls, then a last chunk with the usage of every
    request, the finish reason and the decision metadata.

    Examples
    --------
    >>> first, last = answer_chunks(AIMessage("7", response_metadata={"adaptive_router": {"k": 2}}))
    >>> first.content, last.response_metadata["finish_reason"], last.chunk_position
    ('7', 'stop', 'last')
    """
    calls = [
        tool_call_chunk(name=c["name"], args=_json(c["args"]), id=c.get("id"), index=i)
        for i, c in enumerate(message.tool_calls)
    ]
    yield AIMessageChunk(content=message.content, tool_call_chunks=calls, id=message.id)
    yield last_chunk(message.response_metadata, message.usage_metadata, bool(calls), message.id)


def _json(value: Any) -> str:
    return json.dumps(value)


def last_chunk(
    response_metadata: Mapping[str, Any], usage: Any, tool_calls: bool, id: str | None
) -> AIMessageChunk:
    meta = dict(response_metadata)
    meta.setdefault("finish_reason", "tool_calls" if tool_calls else "stop")
    return AIMessageChunk(
        content="", response_metadata=meta, usage_metadata=usage, chunk_position="last", id=id
    )


def _merged(chunks: Sequence[AIMessageChunk]) -> AIMessage:
    """The message a stream of chunks makes."""
    out = message_chunk_to_message(functools.reduce(operator.add, chunks))
    if not isinstance(out, AIMessage):  # pragma: no cover - chunks are AIMessageChunks
        raise ConfigError(f"a router stream made a {type(out).__name__}")
    return out


def _bind_tools(model: Any, tools: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """`model` with `tools` bound (a chat model, or a binding of one)."""
    found = chat_model_of(model)
    if found is None:
        raise ConfigError(
            f"cannot bind tools to {type(model).__name__}: every model a router wraps must be a chat model "
            "(or a chat model with .bind(...)) to use bind_tools or with_structured_output"
        )
    chat, bound = found
    out = chat.bind_tools(tools, **kwargs)
    return out.bind(**bound) if bound else out


class BaseRouter(RouterStages):
    """The chat model every router is: LangChain's entry points over `RouterStages`.

    Parameters
    ----------
    probe : CurvePredictor, optional
        Predicts reward curves per procedure; without one allocation is uniform.
    budget_per_query : float
        Average units per query (``config["configurable"]["budget_per_query"]`` per call).
    window_size : int
        Queries allocated together (batch windows and micro-batches).
    max_wait_ms : float
        How long a concurrent ``ainvoke`` waits for others to fill its window.
    calibration_texts : list of str, optional
        Reference probe texts that calibrate the threshold used for lone calls.
    probe_in_thread : bool
        Run the probe in a worker thread on the async paths (keeps the event loop free).
    prices : PriceTable, optional
        Dollars per million tokens by procedure name (`adaptive_router.prices.PriceTable`); then every
        answer's metadata has ``cost_usd``, the money its requests cost (else ``None``: cost in units only).
    stop, temperature, max_tokens : optional
        Sent with every request to the wrapped models when set (as ``.bind(stop=[...])`` or
        ``invoke(..., stop=[...])`` do per call).
    streaming : bool
        ``invoke`` goes through ``stream`` (tokens reach the callbacks) even without a streaming handler.
    """

    def _stream_slot(self, slot: Any, config: RunnableConfig) -> Iterator[AIMessageChunk]:
        """The chunks of one planned query's answer (by default: the whole answer, once it is known)."""
        (out,) = self._execute([slot], [config])
        yield from answer_chunks(_raise_or_return(out))

    async def _astream_slot(self, slot: Any, config: RunnableConfig) -> AsyncIterator[AIMessageChunk]:
        """Async :meth:`_stream_slot`."""
        (out,) = await self._aexecute([slot], [config])
        for chunk in answer_chunks(_raise_or_return(out)):
            yield chunk

    # ------------------------------------------------------------------ chat model
    @property
    @override
    def _llm_type(self) -> str:
        return "adaptive-router"

    @override
    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="adaptive_router",
            ls_model_name=str(kwargs.get("model") or type(self).__name__),
            ls_model_type="chat",
        )
        stop = stop if stop is not None else kwargs.get("stop", self.stop)
        if stop:
            params["ls_stop"] = list(stop)
        if (t := kwargs.get("temperature", self.temperature)) is not None:
            params["ls_temperature"] = float(t)
        if (m := kwargs.get("max_tokens", self.max_tokens)) is not None:
            params["ls_max_tokens"] = int(m)
        return params

    @property
    @override
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The run-time settings ``config["configurable"]`` may carry."""
        return [
            ConfigurableFieldSpec(
                id=key, annotation=annotation, name=key, description=doc, default=getattr(self, key, None)
            )
            for key, (annotation, doc) in self._CONFIGURABLE.items()
        ]

    @override
    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """A router whose every wrapped model has `tools` bound (``bind_tools(tools, tool_choice=..., **kw)``
        on each); it shares this router's ledgers, so the budget stays one budget.

        Raises
        ------
        ConfigError
            A wrapped model is not a chat model (it cannot call tools).
        """
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        # with_structured_output's tracing hint goes on the router's own run (its requests get it from there)
        structured = kwargs.pop("ls_structured_output_format", None)
        bound = self._with_models(lambda m: _bind_tools(m, tools, kwargs))
        return bound.bind(ls_structured_output_format=structured) if structured else bound.bind()

    def _copy_with(self, **update: Any) -> BaseRouter:
        """A copy with `update`: the same ledgers and planner, its own micro-batchers."""
        copy = self.model_copy(update=update)
        copy._batchers = weakref.WeakKeyDictionary()
        copy.__dict__.pop("_serialized", None)
        return copy

    def _configs(self, inputs: _Inputs, config: _Configs) -> list[RunnableConfig]:
        if isinstance(config, Sequence) and not isinstance(config, Mapping):
            return [ensure_config(c) for c in get_config_list(list(config), len(inputs))]  # type: ignore[arg-type]
        return [ensure_config(c) for c in get_config_list(config, len(inputs))]

    def _wants_stream(self, config: RunnableConfig) -> bool:
        return self.streaming or has_streaming_handler(config)

    # ------------------------------------------------------------------ LangChain entry points
    @override
    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        config = ensure_config(config)
        if self._wants_stream(config):
            return _merged(list(self.stream(input, config, stop=stop, **kwargs)))
        (out,) = self._run([input], [config], self._call_kwargs(stop, kwargs))
        return _raise_or_return(out)  # type: ignore[no-any-return]

    @override
    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        config = ensure_config(config)
        if self._wants_stream(config):
            return _merged([c async for c in self.astream(input, config, stop=stop, **kwargs)])
        return await self._ainvoke_one(input, config, self._call_kwargs(stop, kwargs))  # type: ignore[no-any-return]

    def _checked(self, inputs: _Inputs, configs: list[RunnableConfig], kwargs: Mapping[str, Any],
                 return_exceptions: bool) -> list[Any] | None:  # fmt: skip
        """Without `return_exceptions` a bad input (or its settings) raises here, before anything is sent;
        the prepared queries are returned then, so the run does not prepare them again."""
        if return_exceptions:
            return None
        queries = self._prepare(inputs, configs, kwargs)
        for slot in queries:
            _raise_or_return(slot)
        return queries

    @override
    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        if not inputs:
            return []
        configs = self._configs(inputs, config)
        call = self._call_kwargs(kwargs.pop("stop", None), kwargs)
        queries = self._checked(inputs, configs, call, return_exceptions)
        out = self._run(list(inputs), configs, call, queries)
        return out if return_exceptions else [_raise_or_return(o) for o in out]

    @override
    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        if not inputs:
            return []
        configs = self._configs(inputs, config)
        call = self._call_kwargs(kwargs.pop("stop", None), kwargs)
        queries = self._checked(inputs, configs, call, return_exceptions)
        out = await self._arun(list(inputs), configs, call, queries)
        return out if return_exceptions else [_raise_or_return(o) for o in out]

    @staticmethod
    def _generate_configs(n: int, callbacks: Any, tags: Any, metadata: Any, run_name: Any, run_id: Any
                          ) -> list[RunnableConfig]:  # fmt: skip
        base = RunnableConfig(callbacks=callbacks, tags=tags or [], metadata=metadata or {})
        if run_name is not None:
            base["run_name"] = run_name
        configs = [ensure_config(base) for _ in range(n)]
        if run_id is not None and n == 1:
            configs[0]["run_id"] = run_id
        return configs

    @staticmethod
    def _llm_result(outs: Sequence[Any]) -> LLMResult:
        messages = [_raise_or_return(o) for o in outs]
        return LLMResult(
            generations=[[ChatGeneration(message=m)] for m in messages],
            run=[
                RunInfo(run_id=m.id.split("-", 2)[-1])
                for m in messages
                if m.id and m.id.startswith("lc_run-")
            ],
        )

    @override
    def generate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Any = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: Any = None,
        **kwargs: Any,
    ) -> LLMResult:
        """Answer every prompt, the prompts allocated together in windows (as `batch`)."""
        configs = self._generate_configs(len(messages), callbacks, tags, metadata, run_name, run_id)
        call = self._call_kwargs(stop, kwargs)
        queries = self._checked(messages, configs, call, False)
        return self._llm_result(self._run(messages, configs, call, queries))

    @override
    async def agenerate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Any = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: Any = None,
        **kwargs: Any,
    ) -> LLMResult:
        """Async :meth:`generate`."""
        configs = self._generate_configs(len(messages), callbacks, tags, metadata, run_name, run_id)
        call = self._call_kwargs(stop, kwargs)
        queries = self._checked(messages, configs, call, False)
        return self._llm_result(await self._arun(messages, configs, call, queries))

    @override
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        config = RunnableConfig(callbacks=child_manager(run_manager, quiet=False) if run_manager else None)
        (out,) = self._run([messages], [ensure_config(config)], self._call_kwargs(stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=_raise_or_return(out))])

    @override
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        config = RunnableConfig(callbacks=child_manager(run_manager, quiet=False) if run_manager else None)
        (out,) = await self._arun([messages], [ensure_config(config)], self._call_kwargs(stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=_raise_or_return(out))])

    @override
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """What ``stream_events(version="v3")`` drives (under a run of its own): the query streamed as
        :meth:`stream` streams it, its run a child of that run."""
        config = RunnableConfig(callbacks=child_manager(run_manager, quiet=False) if run_manager else None)
        for chunk in self.stream(messages, ensure_config(config), stop=stop, **kwargs):
            yield ChatGenerationChunk(message=chunk)

    @override
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Async :meth:`_stream`."""
        config = RunnableConfig(callbacks=child_manager(run_manager, quiet=False) if run_manager else None)
        async for chunk in self.astream(messages, ensure_config(config), stop=stop, **kwargs):
            yield ChatGenerationChunk(message=chunk)

    @staticmethod
    def _token(chunk: AIMessageChunk, run: Any) -> AIMessageChunk:
        chunk = chunk.model_copy(update={"id": f"lc_run--{run.run_id}"})
        return chunk

    @override
    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream one query's answer: the chosen model's tokens as they come (k = 1), else the chosen
        answer once it is known; the last chunk carries the usage of every request and the metadata."""
        config = ensure_config(config)
        call = self._call_kwargs(stop, kwargs)
        queries = [_raise_or_return(q) for q in self._prepare([input], [config], call)]
        runs = Runs(self, [config], call)
        chunks: list[AIMessageChunk] = []
        try:
            if self._starts_early:
                runs.start(queries, queries)
            slots = self._plan(self._pre_plan(queries, runs.children))
            runs.start(slots, queries)
            run = runs.managers[0]
            for piece in self._stream_slot(slots[0], runs.children[0]):
                chunk = self._token(piece, run)
                run.on_llm_new_token(str(chunk.text), chunk=ChatGenerationChunk(message=chunk))
                chunks.append(chunk)
                yield chunk
        except BaseException as exc:
            runs.end([exc])
            raise
        runs.end([_merged(chunks)])

    @override
    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Async :meth:`stream`."""
        config = ensure_config(config)
        call = self._call_kwargs(stop, kwargs)
        queries = [_raise_or_return(q) for q in self._prepare([input], [config], call)]
        runs = AsyncRuns(self, [config], call)
        chunks: list[AIMessageChunk] = []
        try:
            if self._starts_early:
                await runs.start(queries, queries)
            slots = await self._off_loop(self._plan, await self._apre_plan(queries, runs.children))
            await runs.start(slots, queries)
            run = runs.managers[0]
            async for piece in self._astream_slot(slots[0], runs.children[0]):
                chunk = self._token(piece, run)
                await run.on_llm_new_token(str(chunk.text), chunk=ChatGenerationChunk(message=chunk))
                chunks.append(chunk)
                yield chunk
        except BaseException as exc:
            await runs.end([exc])
            raise
        await runs.end([_merged(chunks)])
