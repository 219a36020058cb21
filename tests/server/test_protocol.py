"""Tests for adaptive_router.server.protocol: the request the server accepts, the bodies it answers."""

from __future__ import annotations

import json

import pytest

from adaptive_router.server.errors import APIError
from adaptive_router.server.protocol import completion_body, decision_headers, parse_request


def _req(**fields):
    body = {"model": "adaptive", "messages": [{"role": "user", "content": "hi"}], **fields}
    return parse_request(json.dumps(body).encode())


def test_messages_keep_the_whole_conversation():
    req = _req(
        messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "2 + "}, {"type": "text", "text": "2?"}]},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "and 3 + 3?", "name": "ann"},
        ]
    )
    assert [m.type for m in req.to_messages()] == ["system", "human", "ai", "human"]
    assert req.to_messages()[1].content == "2 + 2?"


def test_sampling_and_max_tokens():
    req = _req(temperature=0.5, stop="END", max_completion_tokens=7, seed=1, user="u1", store=True)
    assert req.sampling() == {"temperature": 0.5, "stop": ["END"], "seed": 1}
    assert req.requested_max_tokens == 7


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"n": 3}, "n", "n=3 is not supported"),
        ({"tools": [{"type": "function"}]}, "tools", "tool calling is not supported"),
        ({"response_format": {"type": "json_object"}}, "response_format", "'json_object' is not supported"),
        ({"logprobs": True}, "logprobs", "logprobs are not supported"),
        ({"temperature": 3}, "temperature", "temperature: Input should be less than or equal to 2"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4 stop sequences"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, None, "routes text"),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages", "the messages have no text"),
    ],
)
def test_what_the_router_cannot_honour_is_a_400(fields, param, message):
    with pytest.raises(APIError, match=message) as info:
        _req(**fields).to_messages()
    assert info.value.status == 400
    if param is not None:
        assert info.value.param == param


def test_bodies_and_headers():
    meta = {"router": "r", "k": 2, "cost": 2.0, "fallback_active": False, "fallback": None,
            "tokens": {"input_tokens": 3, "output_tokens": 4}}  # fmt: skip
    body = completion_body(id="c1", created=1, model="r", text="4", finish_reason="stop", meta=meta)
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "4", "refusal": None}
    headers = decision_headers(meta)
    assert headers == {
        "x-adaptive-router-router": "r",
        "x-adaptive-router-k": "2",
        "x-adaptive-router-cost": "2",
        "x-adaptive-router-fallback-active": "false",
    }
