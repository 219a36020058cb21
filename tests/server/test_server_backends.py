"""`build_model`: the builtin upstream client for local plain-HTTP upstreams, the openai SDK otherwise."""

from __future__ import annotations

import pytest
from adaptive_router.integrations.openai_backend import OpenAIChatModel
from langchain_core.messages import HumanMessage

from adaptive_router.errors import ConfigError
from adaptive_router.server.backends import build_model
from adaptive_router.server.config import parse_config
from adaptive_router.server.fake_upstream import FakeUpstream
from adaptive_router.server.upstream import UpstreamChatModel


def _backend(url: str, extra: str = ""):
    text = f'[backends.up]\ntype = "openai"\nbase_url = "{url}"\nmodel = "m"\nsupports_n = true\n{extra}\n'
    text += '[routers.r]\nbackend = "up"\nbudget_per_query = 1\n'
    return parse_config(text).backends["up"]


@pytest.mark.parametrize(("extra", "kind"), [("", UpstreamChatModel), ('client = "openai"', OpenAIChatModel)])
async def test_either_client_answers_with_n_samples_and_the_config_settings(extra, kind):
    with FakeUpstream(latency=0.0, record=True) as up:
        model = build_model("up", _backend(up.base_url, extra + "\ntemperature = 0.5"), server_max_tokens=8)
        result = await model.agenerate([[HumanMessage("hi")]], n=2)
        if isinstance(model, UpstreamChatModel):
            await model.aclose()
    assert isinstance(model, kind)
    assert [g.text for g in result.generations[0]] == ["echo: hi", "echo: hi"]
    assert up.calls[0]["n"] == 2 and up.calls[0]["params"]["max_tokens"] == 8
    assert up.calls[0]["params"]["temperature"] == 0.5


def test_an_unknown_client_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="client"):
        _backend("http://127.0.0.1:9/v1", 'client = "curl"')


@pytest.mark.parametrize(
    ("url", "extra", "proxy", "kind"),
    [
        ("http://127.0.0.1:9/v1", "", None, UpstreamChatModel),  # a local upstream: the builtin client
        ("https://api.example.com/v1", "", None, OpenAIChatModel),  # TLS: the SDK
        ("http://10.0.0.7:8000/v1", "", "http://proxy.example:3128", OpenAIChatModel),  # proxied: the SDK
        ("https://api.example.com/v1", 'client = "builtin"', None, UpstreamChatModel),  # forced
        ("http://127.0.0.1:9/v1", 'client = "openai"', None, OpenAIChatModel),  # forced
    ],
)
def test_auto_uses_the_builtin_client_only_for_plain_http_without_proxy(monkeypatch, url, extra, proxy, kind):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var.lower(), raising=False)
        monkeypatch.delenv(var, raising=False)
    if proxy is not None:
        monkeypatch.setenv("HTTP_PROXY", proxy)
    model = build_model("up", _backend(url, extra), server_max_tokens=8, environ={})
    assert isinstance(model, kind)
