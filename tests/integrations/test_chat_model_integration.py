"""LangChain's standard chat-model integration tests (langchain-tests' ``ChatModelIntegrationTests``) for
both routers against the real loopback llama.cpp server with the embedded SmolLM2-135M-Instruct (chat
endpoint, the GGUF's chat template).

- `AdaptiveRouter`: best-of-k with a majority vote, ``max_k=2`` and a budget of 1.5 per query, so some
  queries take k = 2 (two requests, the vote, usage summed over both) and others k = 1.
- `CascadeRouter`: the same local model as the cheap and as the expensive model.

The server starts once for this module (`_smollm_server`, autouse); the suite builds its routers from
``chat_model_class(**chat_model_params)``, so ``chat_model_params`` makes fresh wrapped models bound to
that running server for every test. ``max_tokens`` is small (8): the run stays short on two CPU cores.

What the suite asks and SmolLM2-135M cannot do is skipped with the reason: tool calls and structured output
(llama.cpp serves the model with its GGUF chat template, which has no tool-calling format, and a 135M
model does not follow tool-calling prompts). The router's side of tools (``bind_tools``/``tool_choice``
forwarded to every wrapped model, candidates compared by their tool calls) is covered with a tool-calling
fake in ``tests/runnables/test_chat_model_standard.py``.

One behaviour differs from what the suite assumes, by design, and is marked ``xfail(strict=True)``: a
handler passed to ``invoke`` sees the router's run and each request's child run (1 + k
``on_chat_model_start`` per query; the suite's structured-output tests, skipped here for the model, count
one). Tracers see every request that was paid for; streaming handlers see only the router's run
(docs/router.md, "Tracing and streaming").
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from adaptive_router.runnables import AdaptiveRouter, CascadeRouter
from adaptive_router.strategies import BestOfK, MajorityVoteReranker

pytestmark = pytest.mark.realmodel

MAX_TOKENS = 8
_SERVER: Any = None

_NO_TOOLS = (
    "SmolLM2-135M cannot follow tool-calling prompts: llama.cpp serves it with the GGUF's chat template, "
    "which has no tool-calling format, so no tool call comes back (the router forwards bind_tools; "
    "tests/runnables/test_chat_model_standard.py checks that with a tool-calling fake)"
)
_NO_STRUCTURED = (
    "structured output is with_structured_output's tool-calling method here, and SmolLM2-135M cannot follow "
    "tool-calling prompts: no tool call, no parsed object"
)
_MODEL_CANNOT = {
    **dict.fromkeys(
        [
            "test_tool_calling",
            "test_tool_calling_async",
            "test_bind_runnables_as_tools",
            "test_tool_choice",
            "test_tool_calling_with_no_arguments",
            "test_agent_loop",
            "test_unicode_tool_call_integration",
        ],
        _NO_TOOLS,
    ),
    **dict.fromkeys(
        [
            "test_structured_output",
            "test_structured_output_async",
            "test_structured_output_pydantic_2_v1",
            "test_structured_output_optional_param",
        ],
        _NO_STRUCTURED,
    ),
}
_CHILD_RUNS = (
    "router design vs the suite: every request to a wrapped model is a child chat-model run that callback "
    "handlers passed to invoke see, so a handler sees 1 + k on_chat_model_start per query, where the "
    "suite's structured-output tests expect one"
)


@pytest.fixture(scope="module", autouse=True)
def _smollm_server() -> Iterator[Any]:
    """SmolLM2-135M-Instruct on llama.cpp for this module (skipped without llama-cpp-python[server])."""
    global _SERVER
    if not all(importlib.util.find_spec(name) for name in ("llama_cpp", "uvicorn")):
        pytest.skip("llama-cpp-python[server] is not installed: pip install 'adaptive-router[local]'")
    from adaptive_router.integrations.llama_server import LlamaServer

    with LlamaServer.smollm(n_ctx=1024) as server:
        _SERVER = server
        yield server
    _SERVER = None


def _model() -> Any:
    """A chat model on the module's server (its own ``max_tokens``; the router's overrides it per call)."""
    from adaptive_router.integrations.openai_backend import OpenAIChatModel

    return OpenAIChatModel.for_llama_server(
        _SERVER, endpoint="chat", max_tokens=MAX_TOKENS, temperature=0.7, timeout=120, max_attempts=2
    )


def _adaptive_params() -> dict[str, Any]:
    return {"strategy": BestOfK(_model(), MajorityVoteReranker(), max_k=2), "budget_per_query": 1.5}


def _cascade_params() -> dict[str, Any]:
    return {"cheap": _model(), "expensive": _model(), "costs": (1.0, 2.0), "budget_per_query": 2.0}


class _LocalRouterSuite(ChatModelIntegrationTests):
    """What both routers declare and skip on the local model."""

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        """LangChain's standard parameters a router takes (sent to its wrapped models); ``timeout``,
        ``max_retries`` and ``api_key`` configure a provider client, which the wrapped models own."""
        params = dict(super().standard_chat_model_params)
        for client_only in ("timeout", "max_retries", "api_key"):
            params.pop(client_only, None)
        params["max_tokens"] = MAX_TOKENS  # the suite's 100 tokens make the run minutes long on CPU
        return params

    @property
    def returns_usage_metadata(self) -> bool:
        return True  # every request's usage, summed (invoke and the stream's last chunk)

    @property
    def has_tool_choice(self) -> bool:
        return True  # bind_tools(tools, tool_choice=...) goes to every wrapped model

    @property
    def supports_model_override(self) -> bool:
        """A ``model=`` call keyword goes to the wrapped models, but the one local server serves one model:
        there is no other model to override with."""
        return False

    # ------------------------------------------------------------------ tools: beyond a 135M model
    @pytest.fixture(autouse=True)
    def _skip_what_the_model_cannot_do(self, request: pytest.FixtureRequest) -> None:
        """Skip, with the reason, the standard tests SmolLM2-135M cannot pass (the suite forbids overriding a
        standard test without an xfail mark, so they are skipped here rather than overridden)."""
        reason = _MODEL_CANNOT.get(getattr(request.node, "originalname", ""))
        if reason:
            pytest.skip(reason)


class TestAdaptiveRouterIntegration(_LocalRouterSuite):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return AdaptiveRouter

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return _adaptive_params()


class TestCascadeRouterIntegration(_LocalRouterSuite):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return CascadeRouter

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return _cascade_params()


# ---------------------------------------------------------------------- what the suite implies, model-free
class _Starts(BaseCallbackHandler):
    def __init__(self) -> None:
        self.options: list[dict[str, Any] | None] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, *, options: Any = None, **kw: Any) -> None:
        self.options.append(options)


_ROUTERS = {"adaptive": (AdaptiveRouter, _adaptive_params), "cascade": (CascadeRouter, _cascade_params)}


@pytest.mark.parametrize(
    "router",
    [
        pytest.param(
            lambda: AdaptiveRouter(**{**_adaptive_params(), "budget_per_query": 2.0}, rounds=None),
            id="adaptive-k2",
        ),
        pytest.param(
            lambda: CascadeRouter(**{**_cascade_params(), "budget_per_query": 3.0}), id="cascade-escalated"
        ),
    ],
)
def test_two_requests_answer_with_both_requests_usage(router: Any) -> None:
    """A query that takes two requests (k = 2; a draft and its escalation) sends both to the server, and its
    answer's usage is theirs summed, under the local model's name (what the suite's usage tests read)."""
    router = router()
    _SERVER.reset_count()
    message = router.invoke("Hello", max_tokens=MAX_TOKENS)
    assert message.response_metadata["adaptive_router"]["calls"] == 2 == _SERVER.request_count()
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] > 0
    assert message.response_metadata["model_name"] == _SERVER.model_alias


@pytest.mark.parametrize("kind", list(_ROUTERS))
def test_the_usage_callback_counts_each_token_once(kind: str) -> None:
    """LangChain's usage callback adds up every chat-model run's usage: a router's query should count the
    tokens its requests used, once (what the answer's ``usage_metadata`` says)."""
    cls, params = _ROUTERS[kind]
    with get_usage_metadata_callback() as usage:
        message = cls(**params(), max_tokens=MAX_TOKENS).invoke("Hello")
    assert message.usage_metadata is not None
    assert usage.usage_metadata[_SERVER.model_alias]["total_tokens"] == message.usage_metadata["total_tokens"]


@pytest.mark.xfail(strict=True, reason=_CHILD_RUNS)
@pytest.mark.parametrize("kind", list(_ROUTERS))
def test_a_callback_handler_sees_one_chat_model_start_per_query(kind: str) -> None:
    """The suite's structured-output tests (skipped above for the model) count ``on_chat_model_start`` on a
    handler passed to ``invoke``: one per query."""
    cls, params = _ROUTERS[kind]
    starts = _Starts()
    cls(**params(), max_tokens=MAX_TOKENS).invoke("Hello", config={"callbacks": [starts]})
    assert len(starts.options) == 1


@pytest.mark.parametrize("kind", list(_ROUTERS))
def test_the_routers_run_carries_the_structured_output_format(kind: str) -> None:
    """``with_structured_output`` tells tracers the schema on the chat-model run (the suite checks
    ``options["ls_structured_output_format"]``); the router's run is the first to start."""
    cls, params = _ROUTERS[kind]
    schema = {"title": "Joke", "type": "object", "properties": {"setup": {"type": "string"}}}
    starts = _Starts()
    cls(**params(), max_tokens=MAX_TOKENS).with_structured_output(schema).invoke(
        "Tell me a joke about cats.", config={"callbacks": [starts]}
    )
    assert starts.options and (starts.options[0] or {}).get("ls_structured_output_format", {}).get("schema")
