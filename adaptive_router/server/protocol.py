"""The OpenAI chat-completions wire format: the request the server accepts and the bodies it answers.

`parse_request` validates a JSON body into a `ChatRequest` (400 in OpenAI's error shape, naming the field,
for anything wrong); `ChatRequest.to_messages` gives the LangChain messages the router reads (the whole
conversation, not only the last turn). Fields the router cannot honour are refused with a message saying so
rather than silently ignored: ``n > 1`` (the router decides how many samples to draw), ``tools`` and
``functions``, non-text ``response_format``, ``logprobs``, and non-text content parts.

`completion_body`, `chunk_body`, `usage_body` and `decision_headers` build the answers: the standard
``chat.completion`` / ``chat.completion.chunk`` objects with the router's decision under ``adaptive_router``
and in ``x-adaptive-router-*`` headers.

Examples
--------
>>> req = parse_request(b'{"model": "adaptive:budget=2", "messages": [{"role": "user", "content": "2+2?"}]}')
>>> req.model, [m.type for m in req.to_messages()], req.sampling()
('adaptive:budget=2', ['human'], {})
>>> parse_request(b'{"model": "adaptive", "messages": [], "n": 1}')
Traceback (most recent call last):
...
adaptive_router.server.errors.APIError: messages: List should have at least 1 item after validation, not 0
>>> decision_headers({"procedure": "default", "k": 2, "cost": 2.0})["x-adaptive-router-k"]
'2'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adaptive_router.server.errors import APIError

__all__ = [
    "ChatRequest",
    "Message",
    "chunk_body",
    "completion_body",
    "decision_headers",
    "parse_request",
    "usage_body",
]

_SAMPLING = ("temperature", "top_p", "stop", "seed")


class ContentPart(BaseModel):
    """One part of a message's content; only ``{"type": "text", "text": ...}`` is routed."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None

    @field_validator("content")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        if isinstance(value, list):
            for part in value:
                if part.type != "text" or part.text is None:
                    raise ValueError(
                        f"content part of type {part.type!r} is not supported: this server routes text; "
                        'send {"type": "text", "text": ...} parts or a string'
                    )
        return value

    def text(self) -> str:
        """The content as one string."""
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    """``stream_options``."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """A ``POST /v1/chat/completions`` body (unknown fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(None, ge=1)
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: Any) -> Any:
        stops = [value] if isinstance(value, str) else (value or [])
        if len(stops) > 4:
            raise ValueError(f"at most 4 stop sequences, got {len(stops)}")
        return value

    def refuse_unsupported(self) -> None:
        """Raise 400 for fields whose meaning the router would break."""
        if self.n is not None and self.n > 1:
            raise APIError(
                400,
                f"n={self.n} is not supported: the router decides how many samples to draw and "
                "returns the best one; send n=1 or leave it out",
                param="n",
                code="unsupported_parameter",
            )
        if self.tools or self.functions or self.tool_choice not in (None, "none", "auto"):
            param = "tools" if self.tools else ("functions" if self.functions else "tool_choice")
            raise APIError(
                400,
                "tool calling is not supported by this routing server yet; call the model directly "
                "or leave tools out",
                param=param,
                code="unsupported_parameter",
            )
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise APIError(
                400,
                f"response_format {self.response_format.get('type')!r} is not supported; only text",
                param="response_format",
                code="unsupported_parameter",
            )
        if self.logprobs:
            raise APIError(400, "logprobs are not supported", param="logprobs", code="unsupported_parameter")

    @property
    def requested_max_tokens(self) -> int | None:
        """``max_completion_tokens`` or ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    def sampling(self) -> dict[str, Any]:
        """The sampling parameters the client set (passed to every upstream request)."""
        out: dict[str, Any] = {}
        for name in _SAMPLING:
            value = getattr(self, name)
            if value is not None:
                out[name] = [value] if name == "stop" and isinstance(value, str) else value
        return out

    def to_messages(self) -> list[BaseMessage]:
        """LangChain messages (``developer`` is a system message; a tool result without id is kept)."""
        out: list[BaseMessage] = []
        for m in self.messages:
            text = m.text()
            if m.role in ("system", "developer"):
                out.append(SystemMessage(content=text))
            elif m.role == "user":
                out.append(HumanMessage(content=text, name=m.name) if m.name else HumanMessage(content=text))
            elif m.role == "assistant":
                out.append(AIMessage(content=text))
            else:
                out.append(ToolMessage(content=text, tool_call_id=m.tool_call_id or "unknown"))
        if not any(m.text().strip() for m in self.messages):
            raise APIError(400, "the messages have no text; send a non-empty question", param="messages")
        return out


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p in {"str", "list[ContentPart]"}))


def parse_request(body: bytes) -> ChatRequest:
    """Validate a request body.

    Raises
    ------
    APIError
        400 for invalid JSON or an invalid field (the message and ``param`` name it).
    """
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "the body must be a JSON object with model and messages", code="invalid_json")
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _field(first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        others = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise APIError(400, f"{where}: {msg}{others}", param=where or None, code="invalid_value") from None
    request.refuse_unsupported()
    return request


def _usage(meta: Mapping[str, Any]) -> dict[str, int]:
    tokens = meta.get("tokens") or {}
    prompt, completion = int(tokens.get("input_tokens", 0)), int(tokens.get("output_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_body(
    *, id: str, created: int, model: str, text: str, finish_reason: str, meta: Mapping[str, Any]
) -> dict[str, Any]:
    """A ``chat.completion`` object; ``usage`` totals every upstream request of the answer."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": _usage(meta),
        "system_fingerprint": None,
        "adaptive_router": dict(meta),
    }


def chunk_body(
    *,
    id: str,
    created: int,
    model: str,
    delta: Mapping[str, Any],
    finish_reason: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; the last content chunk carries the decision under ``adaptive_router``."""
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}],
    }
    if meta is not None:
        body["adaptive_router"] = dict(meta)
    return body


def usage_body(*, id: str, created: int, model: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The final chunk of a stream asked for with ``stream_options.include_usage``: no choices, the usage."""
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [],
        "usage": _usage(meta),
    }


_HEADER_KEYS = (
    "router",
    "procedure",
    "k",
    "cost",
    "allocated_cost",
    "budget_per_query",
    "calls",
    "allocator",
    "fallback_active",
    "fallback",
    "key_remaining",
)


def decision_headers(meta: Mapping[str, Any]) -> dict[str, str]:
    """``x-adaptive-router-*`` headers of the decision (keys absent from `meta` are left out)."""
    out = {}
    for key in _HEADER_KEYS:
        value = meta.get(key)
        if value is None:
            continue
        text = (
            ("true" if value else "false")
            if isinstance(value, bool)
            else f"{value:g}"
            if isinstance(value, float)
            else str(value)
        )
        out["x-adaptive-router-" + key.replace("_", "-")] = text
    return out
