"""LangChain's standard chat-model unit tests (langchain-tests' ``ChatModelUnitTests``) for both routers.

The routers wrap `ToolCallingFake`, an in-process chat model that calls an ``add`` tool until it has a tool
result and binds tools the way provider models do, so ``bind_tools``/``with_structured_output`` are tested
through the router to its wrapped models.

Four tests skip, by the suite's own rule, because they do not apply: ``test_init_from_env`` (a router reads no
environment variable; its wrapped models do) and ``test_serdes`` (a router is not LangChain-serializable: it
holds live models and a probe), for each router.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import PrivateAttr

from adaptive_router.runnables import AdaptiveRouter, CascadeRouter
from adaptive_router.strategies import BestOfK, MajorityVoteReranker

_IDS = itertools.count()


class ToolCallingFake(BaseChatModel):
    """Calls the first bound tool with ``{"a": 2, "b": 3}`` until the last message is a tool result, then
    answers ``"the sum is <result>"``; streams word by word; 3 input and 2 output tokens per request."""

    answer: str = "the sum is"
    _kwargs_seen: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "tool-calling-fake"

    @property
    def kwargs_seen(self) -> list[dict[str, Any]]:
        return self._kwargs_seen

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        self._kwargs_seen.append(kwargs)
        usage = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
        tools = kwargs.get("tools") or []
        if tools and not isinstance(messages[-1], ToolMessage):
            name = tools[0]["function"]["name"]
            call = {"name": name, "args": {"a": 2, "b": 3}, "id": f"call_{next(_IDS)}"}
            return AIMessage("", tool_calls=[call], usage_metadata=usage)
        result = messages[-1].content if isinstance(messages[-1], ToolMessage) else "?"
        return AIMessage(f"{self.answer} {result}", usage_metadata=usage)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(
            generations=[ChatGeneration(message=self._reply(messages, {"stop": stop, **kwargs}))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages, {"stop": stop, **kwargs})
        if reply.tool_calls:
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[
                {"name": c["name"], "args": '{"a": 2, "b": 3}', "id": c["id"], "index": 0}
                for c in reply.tool_calls
            ], usage_metadata=reply.usage_metadata))  # fmt: skip
            return
        words = str(reply.content).split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            chunk = AIMessageChunk(
                content=word if last else word + " ",
                usage_metadata=reply.usage_metadata if last else None,
                response_metadata={"finish_reason": "stop"} if last else {},
            )
            yield ChatGenerationChunk(message=chunk)

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)


class _RouterParams:
    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        """LangChain's standard parameters a router takes: ``temperature``, ``max_tokens`` and ``stop`` (sent
        to its wrapped models). ``timeout``, ``max_retries`` and ``api_key`` configure a provider client; a
        router has none (its wrapped models do) and rejects them with a ConfigError."""
        params = dict(super().standard_chat_model_params)  # type: ignore[misc]
        for client_only in ("timeout", "max_retries", "api_key"):
            params.pop(client_only, None)
        return params

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True


class TestAdaptiveRouterStandard(_RouterParams, ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return AdaptiveRouter

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "strategy": BestOfK(ToolCallingFake(), MajorityVoteReranker(), max_k=2),
            "budget_per_query": 2.0,
        }


class TestCascadeRouterStandard(_RouterParams, ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return CascadeRouter

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"cheap": ToolCallingFake(), "expensive": ToolCallingFake(), "budget_per_query": 1.0}
