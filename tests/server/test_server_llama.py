"""The server in front of the embedded Gemma-3-270M (llama.cpp on 127.0.0.1), with the official openai client.

What is checked is the plumbing on a real model: the requests llama.cpp received (its access log) equal
the calls the server reports, and a stream ends with the decision.
"""

from __future__ import annotations

import openai
import pytest

from adaptive_router.server.backends import Upstream
from adaptive_router.server.config import parse_config

pytestmark = pytest.mark.realmodel

FEW_SHOT = "2 + 3 = 5\n4 + 1 = 5\n6 + 2 = 8\n3 + 4 ="

CONFIG = """
[server]
max_tokens = 4
request_timeout_s = 300

[backends.gemma]
type = "llama"
model = "gemma"
temperature = 0.8
stop = ["\\n"]
deadline_s = 240
timeout_s = 240

[routers.adaptive]
backend = "gemma"
budget_per_query = 2
max_k = 3
[routers.adaptive.reranker]
type = "majority"
extract = "last_number"
"""


def test_chat_and_stream_on_the_embedded_model(llama_gemma, run_server):
    upstreams = {"gemma": Upstream(llama_gemma.base_url, llama_gemma.model_alias)}
    server = run_server(parse_config(CONFIG), upstreams=upstreams)
    client = openai.OpenAI(base_url=server.base_url, api_key="unused-on-loopback", max_retries=0, timeout=300)
    llama_gemma.reset_count()
    reply = client.chat.completions.create(model="adaptive", messages=[{"role": "user", "content": FEW_SHOT}])
    meta = reply.model_extra["adaptive_router"]
    assert isinstance(reply.choices[0].message.content, str) and 1 <= meta["k"] <= 3
    assert llama_gemma.request_count() == meta["calls"] == meta["k"]  # rounds: k is what was drawn
    assert reply.usage.total_tokens > 0  # llama.cpp reports usage; the server totals both requests
    chunks = list(
        client.chat.completions.create(
            model="adaptive:budget=1", messages=[{"role": "user", "content": FEW_SHOT}], stream=True
        )
    )
    assert chunks[-1].model_extra["adaptive_router"]["k"] == 1
    assert llama_gemma.request_count() == meta["calls"] + 1
