"""Shared test doubles and fixtures.

- `ScriptedChatModel`: an in-process LangChain chat model whose reply is a function of the prompt; it counts
  requests, can fail on chosen calls, can sleep, and can honour ``n`` (several candidates per request).
- `TableProbe`: a deterministic `CurvePredictor` test double. The success probability of a query is looked up
  in a fixed table by its text (default: by length), and its best-of-k curve is ``1 - (1 - p) ** k``.
- ``llama_gemma``: a session-scoped real llama.cpp server with the embedded Gemma-3-270M (marked realmodel
  tests only; skipped when ``llama-cpp-python[server]`` is not installed).
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr


def _text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


class ScriptedChatModel(BaseChatModel):
    """Test double: candidate number i (counted over all requests) is ``reply(prompt_text, i)``.

    Request number j fails when ``fail(j)`` is true. With ``supports_n`` one request returns ``n`` candidates.
    """

    reply: Callable[[str, int], str] = Field(default=lambda text, i: f"answer {i}")
    fail: Callable[[int], bool] = Field(default=lambda i: False)
    latency: float = 0.0
    supports_n: bool = False
    tokens_per_call: int = 3
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _calls: int = PrivateAttr(default=0)
    _candidates: int = PrivateAttr(default=0)
    _active: int = PrivateAttr(default=0)
    _max_active: int = PrivateAttr(default=0)
    _n_seen: list[int] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-test-double"

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def max_active(self) -> int:
        return self._max_active

    @property
    def n_seen(self) -> list[int]:
        return self._n_seen

    def _begin(self) -> int:
        with self._lock:
            index = self._calls
            self._calls += 1
            self._active += 1
            self._max_active = max(self._max_active, self._active)
        return index

    def _end(self) -> None:
        with self._lock:
            self._active -= 1

    def _next_candidates(self, n: int) -> range:
        with self._lock:
            start = self._candidates
            self._candidates += n
        return range(start, start + n)

    def _usage(self) -> dict[str, int]:
        t = self.tokens_per_call
        return {"input_tokens": t, "output_tokens": t, "total_tokens": 2 * t}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        index = self._begin()
        try:
            if self.latency:
                time.sleep(self.latency)
            if self.fail(index):
                raise RuntimeError(f"scripted failure on call {index}")
            n = int(kwargs.get("n", 1) or 1) if self.supports_n else 1
            self._n_seen.append(n)
            text = _text(messages)
            usage = self._usage()
            gens = [
                ChatGeneration(message=AIMessage(content=self.reply(text, j), usage_metadata=usage))
                for j in self._next_candidates(n)
            ]
            return ChatResult(generations=gens, llm_output={"token_usage": {}})
        finally:
            self._end()

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self._begin()
        try:
            text = self.reply(_text(messages), self._next_candidates(1)[0])
            for word in text.split(" "):
                yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
        finally:
            self._end()


class TableProbe:
    """Deterministic CurvePredictor test double: p(success) from a fixed table, curves 1 - (1 - p)^k."""

    def __init__(
        self,
        *,
        table: Mapping[str, float] | None = None,
        by_length: Callable[[int], float] | None = None,
        procedures: Sequence[str] = ("default",),
        max_k: int = 8,
        procedure_scale: Mapping[str, float] | None = None,
        fallback_active: bool = False,
    ) -> None:
        self.table = dict(table or {})
        self.by_length = by_length or (lambda n: 0.9 if n < 10 else 0.3)
        self._procedures = tuple(procedures)
        self._max_k = max_k
        self.procedure_scale = dict(procedure_scale or {})
        self._fallback = fallback_active
        self.calls: list[int] = []

    @property
    def procedures(self) -> tuple[str, ...]:
        return self._procedures

    @property
    def max_k(self) -> int:
        return self._max_k

    @property
    def fallback_active(self) -> bool:
        return self._fallback

    def p(self, text: str) -> float:
        return self.table[text] if text in self.table else self.by_length(len(text))

    def predict_curves(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        self.calls.append(len(texts))
        ks = np.arange(1, self._max_k + 1)
        out = {}
        for proc in self._procedures:
            scale = self.procedure_scale.get(proc, 1.0)
            p = np.array([min(1.0, self.p(t) * scale) if np.isfinite(self.p(t)) else np.nan for t in texts])
            out[proc] = 1.0 - (1.0 - p[:, None]) ** ks[None, :]
        return out


@pytest.fixture
def scripted() -> Callable[..., ScriptedChatModel]:
    """Factory for `ScriptedChatModel`."""
    return ScriptedChatModel


@pytest.fixture
def table_probe() -> Callable[..., TableProbe]:
    """Factory for `TableProbe`."""
    return TableProbe


@pytest.fixture
def write_drafted() -> Callable[[Path, Sequence[dict[str, Any]], str], None]:
    """``write(path, objs, draft)``: outcome records as JSONL, each prompt carrying ``draft``, so that the
    cheapest probe (the draft's answer signals, no model: ``train --featurizer none --answer-signals``)
    can train on them."""
    from adaptive_router.prompts import join_draft

    def write(path: Path, objs: Sequence[dict[str, Any]], draft: str) -> None:
        lines = (json.dumps({**o, "prompt": join_draft(o["prompt"], draft)}) + "\n" for o in objs)
        path.write_text("".join(lines), encoding="utf-8")

    return write


def llama_available() -> bool:
    """Whether `llama-cpp-python[server]` is importable."""
    find = importlib.util.find_spec
    return find("llama_cpp") is not None and find("uvicorn") is not None


@pytest.fixture
def require_llama() -> None:
    """Skip the test when `llama-cpp-python[server]` is not installed."""
    if not llama_available():
        pytest.skip("llama-cpp-python[server] is not installed: pip install 'adaptive-router[local]'")


@pytest.fixture(scope="session")
def llama_gemma() -> Iterator[Any]:
    """A real llama.cpp server with Gemma-3-270M base on loopback for the session (stopped at the end)."""
    if not llama_available():
        pytest.skip("llama-cpp-python[server] is not installed: pip install 'adaptive-router[local]'")
    from adaptive_router.integrations.llama_server import LlamaServer

    with LlamaServer.gemma(n_ctx=512) as server:
        yield server


@pytest.fixture(scope="session")
def tiny_reward_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A folder with a 2-layer random BERT, a 1-logit head and MiniLM's tokenizer (no downloads)."""
    import shutil

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from adaptive_router.local_models import minilm_path

    path = tmp_path_factory.mktemp("tiny-reward")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        num_labels=1,
    )
    transformers.BertForSequenceClassification(config).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (minilm_path() / name).is_file():
            shutil.copy(minilm_path() / name, path / name)
    return path
