"""The router's own runs: one chat-model run per query, the wrapped models' requests its quiet children.

A router is a LangChain chat model, so every query is one chat-model run (``on_chat_model_start`` …
``on_llm_end``) that tracers, ``astream_events`` and LangGraph's ``stream_mode="messages"`` see like any
chat model's. What the router sends to its wrapped models (the k candidates, a cascade's draft and
escalation, a judge's ratings) runs as child runs that

- carry the tag ``adaptive_router:candidate`` (`CANDIDATE_TAG`), so a tracer can filter them;
- are hidden from *streaming* handlers (those of ``astream_events``/``astream_log`` and LangGraph's message
  stream: the handlers with ``tap_output_iter``): the user's stream is the router's own run, whose tokens
  are the chosen answer's, never a candidate's. Tracers that do not stream (LangSmith, a
  ``BaseCallbackHandler``) still see every child run.

The decision is visible on the router's run: its tags (``adaptive_router:k=3``,
``adaptive_router:route=expensive``, ``adaptive_router:fallback``, ``adaptive_router:rounds``) and its
metadata under ``adaptive_router`` (procedure, k, allocated cost, allocator, predicted value, λ, budget,
strategy, fallback) are set when the run starts, after planning; a cascade's run and a run in rounds start
before their first request, with what is known then. When the query is answered the router emits the
custom event ``adaptive_router.decision`` (`DECISION_EVENT`) on its run with the whole `RouterMetadata`,
whose ``candidate_runs`` says which candidate run was chosen and which were rejected (a candidate's outcome
is known only after reranking, when its run has ended), and ends the run with that metadata in
``llm_output``. A call that no callback handler follows (no callbacks, no tracer: the server's case) still
has its run and run ids, but the events' arguments, which only handlers read, are not built.

Examples
--------
>>> from langchain_core.callbacks import BaseCallbackHandler
>>> class Streams(BaseCallbackHandler):
...     def tap_output_iter(self, run_id, output): return output
...     def tap_output_aiter(self, run_id, output): return output
>>> is_streaming_handler(Streams()), is_streaming_handler(BaseCallbackHandler())
(True, False)
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import patch_config
from langchain_core.utils.function_calling import convert_to_json_schema

from adaptive_router.runnables.metadata import METADATA_KEY
from adaptive_router.runnables.plans import Plan, Query
from adaptive_router.runnables.rounds import RoundSlot

__all__ = [
    "CANDIDATE_TAG",
    "DECISION_EVENT",
    "AsyncRuns",
    "Runs",
    "decision_tags",
    "is_streaming_handler",
]

CANDIDATE_TAG = "adaptive_router:candidate"
"""The tag of every request a router sends to a wrapped model."""
DECISION_EVENT = "adaptive_router.decision"
"""The custom event a router emits on its run once a query's answer is chosen (data: its `RouterMetadata`)."""
_ID_PREFIX = "lc_run-"


def is_streaming_handler(handler: Any) -> bool:
    """Whether `handler` consumes token streams (``astream_events``, ``astream_log``, LangGraph messages)."""
    return callable(getattr(handler, "tap_output_iter", None)) and callable(
        getattr(handler, "tap_output_aiter", None)
    )


def has_streaming_handler(config: RunnableConfig) -> bool:
    """Whether the callbacks of `config` include a streaming handler."""
    callbacks = config.get("callbacks")
    if isinstance(callbacks, BaseCallbackManager):
        return any(is_streaming_handler(h) for h in callbacks.handlers)
    return any(is_streaming_handler(h) for h in callbacks or [])


def child_manager(run: Any, *, quiet: bool, tag: str | None = None) -> Any:
    """A callback manager whose runs are children of the router's `run` (as a chain run's ``get_child``;
    an LLM run has none of its own); `quiet`: without streaming handlers."""
    cls = AsyncCallbackManager if isinstance(run, AsyncCallbackManagerForLLMRun) else CallbackManager
    handlers = [h for h in run.inheritable_handlers if not (quiet and is_streaming_handler(h))]
    manager = cls(handlers=[], parent_run_id=run.run_id)
    manager.set_handlers(handlers)
    manager.add_tags(run.inheritable_tags)
    manager.add_metadata(run.inheritable_metadata)
    if tag is not None:
        manager.add_tags([tag], inherit=False)
    return manager


def decision_tags(slot: Any) -> tuple[list[str], dict[str, Any]]:
    """The tags and metadata a router run starts with, from what is decided when it starts.

    Examples
    --------
    >>> from adaptive_router.allocation import Ladder, PlanSpec
    >>> from adaptive_router.runnables.plans import ProbePlanner, RunSettings, prepare_input
    >>> settings = RunSettings(PlanSpec(Ladder.best_of_k(4), budget_per_query=2.0))
    >>> query = prepare_input("3 + 4 =", settings)
    >>> (plan,) = ProbePlanner(probe=None).plan([query], [query.text], settings)
    >>> decision_tags(plan)[0]
    ['adaptive_router', 'adaptive_router:k=2', 'adaptive_router:route=default']
    """
    tags = ["adaptive_router"]
    meta: dict[str, Any] = {}
    if isinstance(slot, Plan):
        option, decision = slot.decision.option, slot.decision
        tags += [f"adaptive_router:k={int(option.k)}", f"adaptive_router:route={option.procedure}"]
        meta = {
            "procedure": option.procedure,
            "k": int(option.k),
            "allocated_cost": float(option.cost),
            "allocator": decision.allocator,
            "chosen_value": decision.chosen_value,
            "shadow_price": decision.shadow_price,
            "rounds": False,
        }
        settings = slot.settings
    elif isinstance(slot, RoundSlot):
        tags.append("adaptive_router:rounds")
        meta = {"rounds": True, "allocator": "window" if len(slot.window.live) > 1 else "threshold"}
        settings = slot.settings
    elif isinstance(slot, Query):
        settings = slot.settings
    else:
        return tags, {}
    fallback = bool(
        getattr(slot, "fallback_active", False)
        or getattr(getattr(slot, "window", None), "fallback_active", False)
    )
    if fallback:
        tags.append("adaptive_router:fallback")
    meta.update(budget_per_query=settings.budget, strategy=settings.strategy_name, fallback_active=fallback)
    return tags, {METADATA_KEY: meta}


def _final(message: AIMessage, run_id: uuid.UUID | None) -> AIMessage:
    """The router's answer as its run's message: the run's id (as a chat model sets it)."""
    if run_id is None:
        return message
    return message.model_copy(update={"id": f"{_ID_PREFIX}-{run_id}"})


def _result(message: AIMessage) -> LLMResult:
    """What the router's run ends with: the answer without its ``usage_metadata``, which the requests' own
    runs (its children) report already, so a handler that adds up every chat-model run's usage (LangChain's
    ``get_usage_metadata_callback``, a trace's token total) counts each token once. The answer returned to
    the caller keeps the summed usage."""
    meta = message.response_metadata.get(METADATA_KEY)
    reported = message.model_copy(update={"usage_metadata": None})
    return LLMResult(generations=[[ChatGeneration(message=reported)]], llm_output={METADATA_KEY: meta})


def _event_data(message: AIMessage) -> Any:
    return message.response_metadata.get(METADATA_KEY)


class _RunsBase:
    """Per input of one call: its config, its run (once started) and the config its requests run under."""

    def __init__(self, router: Any, configs: Sequence[RunnableConfig], kwargs: Mapping[str, Any]) -> None:
        self.router = router
        self.configs = list(configs)
        self.children: list[RunnableConfig] = list(configs)
        self.managers: list[Any] = [None] * len(configs)
        self.kwargs = dict(kwargs)

    def _options(self) -> dict[str, Any]:
        options = {"stop": self.kwargs.get("stop"), **self.kwargs}
        structured = options.pop("ls_structured_output_format", None)
        if structured:  # as BaseChatModel reports it: the schema as JSON schema
            schema = convert_to_json_schema(structured["schema"])
            kwargs = structured.get("kwargs", {})
            options["ls_structured_output_format"] = {"kwargs": kwargs, "schema": schema}
        return options

    def _manager_args(self, config: RunnableConfig, slot: Any) -> dict[str, Any]:
        tags, meta = decision_tags(slot)
        router = self.router
        ls = router._get_ls_params_with_defaults(**self.kwargs)
        return {
            "inheritable_callbacks": config.get("callbacks"),
            "local_callbacks": router.callbacks,
            "verbose": router.verbose,
            "inheritable_tags": config.get("tags"),
            "local_tags": [*(router.tags or []), *tags],
            "inheritable_metadata": {**(config.get("metadata") or {}), **ls},
            "local_metadata": {**(router.metadata or {}), **meta},
        }

    def _start_args(
        self, i: int, messages: list[BaseMessage], manager: BaseCallbackManager
    ) -> dict[str, Any]:
        """What the run starts with; only handlers read more than its messages and id, so without any
        (nothing traces the call: the server's case) the rest is not built."""
        config = self.configs[i]
        if not manager.handlers:
            return {"serialized": {}, "messages": [messages], "run_id": config.get("run_id")}
        return {
            "serialized": self.router._serialized,
            "messages": [messages],
            "invocation_params": self.router._get_invocation_params(
                **{k: v for k, v in self.kwargs.items() if k != "ls_structured_output_format"}
            ),
            "options": self._options(),
            "name": config.get("run_name"),
            "run_id": config.get("run_id"),
            "batch_size": 1,
        }

    def _child(self, i: int, manager: Any) -> None:
        self.managers[i] = manager
        child = child_manager(manager, quiet=True, tag=CANDIDATE_TAG)
        config = {k: v for k, v in self.configs[i].items() if k != "run_id"}
        self.children[i] = patch_config(config, callbacks=child)  # type: ignore[arg-type]

    def pending(self, slots: Sequence[Any], queries: Sequence[Any]) -> list[int]:
        """Inputs whose run is not started yet and that are past input validation."""
        return [i for i, q in enumerate(queries) if isinstance(q, Query) and self.managers[i] is None]

    @staticmethod
    def finished(out: Any, manager: Any) -> Any:
        return _final(out, manager.run_id) if isinstance(out, AIMessage) and manager is not None else out


class Runs(_RunsBase):
    """The runs of a sync call (`CallbackManager`)."""

    def start(self, slots: Sequence[Any], queries: Sequence[Any]) -> None:
        """Start the run of every validated input not started yet; `slots` say what is decided."""
        for i in self.pending(slots, queries):
            manager = CallbackManager.configure(**self._manager_args(self.configs[i], slots[i]))
            (run,) = manager.on_chat_model_start(**self._start_args(i, queries[i].messages, manager))
            self._child(i, run)

    def end(self, outs: Sequence[Any]) -> list[Any]:
        """End every started run with its answer (or error); the answers carry their run's id."""
        done = []
        for out, manager in zip(outs, self.managers, strict=True):
            out = self.finished(out, manager)
            done.append(out)
            if manager is None:
                continue
            run: CallbackManagerForLLMRun = manager
            # events only for those who listen: the run's handlers, the decision its inheritable ones
            if isinstance(out, BaseException):
                if run.handlers:
                    run.on_llm_error(out)
                continue
            if run.inheritable_handlers:
                child_manager(run, quiet=False).on_custom_event(
                    DECISION_EVENT, _event_data(out), run_id=run.run_id
                )
            if run.handlers:
                run.on_llm_end(_result(out))
        return done


class AsyncRuns(_RunsBase):
    """The runs of an async call (`AsyncCallbackManager`)."""

    async def start(self, slots: Sequence[Any], queries: Sequence[Any]) -> None:
        """Async `Runs.start`."""
        for i in self.pending(slots, queries):
            manager = AsyncCallbackManager.configure(**self._manager_args(self.configs[i], slots[i]))
            (run,) = await manager.on_chat_model_start(**self._start_args(i, queries[i].messages, manager))
            self._child(i, run)

    async def end(self, outs: Sequence[Any]) -> list[Any]:
        """Async `Runs.end`."""
        done = []
        for out, manager in zip(outs, self.managers, strict=True):
            out = self.finished(out, manager)
            done.append(out)
            if manager is None:
                continue
            run: AsyncCallbackManagerForLLMRun = manager
            if isinstance(out, BaseException):
                if run.handlers:
                    await run.on_llm_error(out)
                continue
            if run.inheritable_handlers:
                await child_manager(run, quiet=False).on_custom_event(
                    DECISION_EVENT, _event_data(out), run_id=run.run_id
                )
            if run.handlers:
                await run.on_llm_end(_result(out))
        return done
