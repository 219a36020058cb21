"""The server end to end on 127.0.0.1: the official openai client and raw HTTP against a fake upstream."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest
from serverkit import ALICE, BOB, UPSTREAM_SECRET

from adaptive_router.server.fake_upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "what is two plus two"}]


def _client(server, key=ALICE):
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=20)


def _post(server, body, key=ALICE, **kwargs):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.base_url + "/chat/completions", json=body, headers=headers, timeout=20, **kwargs)


def test_chat_answers_in_openai_shape_with_the_decision(upstream, make_config, run_server):
    server = run_server(make_config(upstream.base_url))
    raw = _client(server).chat.completions.with_raw_response.create(model="adaptive", messages=MESSAGES)
    reply = raw.parse()
    meta = reply.model_extra["adaptive_router"]
    assert reply.object == "chat.completion" and reply.model == "adaptive"
    assert reply.choices[0].message.content == "echo: what is two plus two"
    assert meta["k"] == 2 and meta["cost"] == 2.0 and meta["allocator"] == "uniform"  # no probe: uniform
    assert meta["calls"] == upstream.requests == 2  # usage below totals both upstream requests
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (2 * 5, 2 * 6)
    assert raw.headers["x-adaptive-router-k"] == "2" and raw.headers["x-adaptive-router-cost"] == "2"
    assert raw.headers["x-adaptive-router-procedure"] == "default"
    assert raw.headers["x-request-id"].startswith("chatcmpl-") and raw.headers["x-request-id"] == reply.id
    # the upstream got the upstream key, never the client's
    assert {c["authorization"] for c in upstream.calls} == {f"Bearer {UPSTREAM_SECRET}"}


def test_stream_carries_the_decision_and_ends_with_done(upstream, make_config, run_server):
    server = run_server(make_config(upstream.base_url))
    chunks = list(
        _client(server).chat.completions.create(
            model="adaptive:budget=1", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: what is two plus two"
    assert chunks[0].choices[0].delta.role == "assistant"
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert final.model_extra["adaptive_router"]["k"] == 1 and final.choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # include_usage: the usage chunk
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        json={"model": "adaptive", "messages": MESSAGES, "stream": True},
        headers={"Authorization": f"Bearer {ALICE}"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-adaptive-router-router"] == "adaptive"
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)
    decision = json.loads(events[-2].removeprefix("data: "))["adaptive_router"]
    assert decision["k"] == 2 and decision["cost"] == 2.0  # k = 2: the selected answer in one piece


def test_a_bad_or_missing_key_is_401_in_openai_shape(upstream, make_config, run_server):
    server = run_server(make_config(upstream.base_url))
    with pytest.raises(openai.AuthenticationError) as info:
        _client(server, key="sk-wrong-key-0123456789").chat.completions.create(
            model="adaptive", messages=MESSAGES
        )
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    missing = _post(server, {"model": "adaptive", "messages": MESSAGES}, key=None)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"
    assert "Authorization: Bearer" in missing.json()["error"]["message"]
    assert httpx.get(server.base_url + "/models").status_code == 401
    assert httpx.get(server.url + "/health").status_code == 200  # health needs no key
    assert upstream.requests == 0


def test_an_oversized_request_is_413(upstream, make_config, run_server):
    server = run_server(make_config(upstream.base_url))
    big = {"model": "adaptive", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = _post(server, big)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "request_too_large" and "4096 bytes" in error["message"]
    chunked = httpx.post(  # no Content-Length: the limit holds while reading
        server.base_url + "/chat/completions",
        content=iter([json.dumps(big).encode()[i : i + 1000] for i in range(0, 6000, 1000)]),
        headers={"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"},
    )
    assert chunked.status_code == 413
    with pytest.raises(openai.BadRequestError, match="max_tokens=65 exceeds this server's limit of 64"):
        _client(server).chat.completions.create(model="adaptive", messages=MESSAGES, max_tokens=65)
    assert upstream.requests == 0


def test_a_key_budget_runs_out_and_is_never_exceeded(upstream, make_config, run_server):
    config = make_config(upstream.base_url, budgets="per_key = 5", router="max_budget = 4", budget=2.0)
    server = run_server(config)
    client = _client(server)
    ks, remaining = [], []
    for _ in range(3):  # reserves 4 (worst case k=4), spends 2; then 2 of 3 left: k capped at 2; then 1
        reply = client.chat.completions.create(model="adaptive", messages=MESSAGES)
        ks.append(reply.model_extra["adaptive_router"]["k"])
        remaining.append(reply.model_extra["adaptive_router"]["key_remaining"])
    assert ks == [2, 2, 1] and remaining == [3.0, 1.0, 0.0]
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="adaptive", messages=MESSAGES)
    assert info.value.code == "insufficient_quota" and "key 'alice' has 0 of its 5 units left" in str(
        info.value
    )
    assert _client(server, key=BOB).chat.completions.create(
        model="adaptive", messages=MESSAGES
    )  # bob has his own
    metrics = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {ALICE}"}).text
    assert 'adaptive_router_key_spent_units{key="alice"' in metrics
    assert upstream.requests == 2 + 2 + 1 + 2


async def test_concurrent_keys_never_overspend(upstream, make_config, run_server):
    upstream.latency = 0.05
    server = run_server(make_config(upstream.base_url, budgets="per_key = 7", router="max_budget = 4"))
    async with httpx.AsyncClient(timeout=20, headers={"Authorization": f"Bearer {ALICE}"}) as client:
        body = {"model": "adaptive:budget=1", "messages": MESSAGES}
        responses = await asyncio.gather(
            *(client.post(server.base_url + "/chat/completions", json=body) for _ in range(12))
        )
    ok = [r.json()["adaptive_router"]["cost"] for r in responses if r.status_code == 200]
    assert {r.status_code for r in responses} <= {200, 429} and 429 in {r.status_code for r in responses}
    assert sum(ok) <= 7.0 and upstream.requests == sum(ok)


async def test_concurrent_requests_are_allocated_jointly(upstream, make_config, run_server, table_probe):
    probe = table_probe(by_length=lambda n: 0.9 if n < 20 else 0.3, max_k=4)
    server = run_server(make_config(upstream.base_url, budget=2.0), probes={"adaptive": probe})
    prompts = [f"q{i}" if i % 2 else f"a much longer and harder question {i}" for i in range(24)]
    async with httpx.AsyncClient(timeout=20, headers={"Authorization": f"Bearer {ALICE}"}) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    server.base_url + "/chat/completions",
                    json={"model": "adaptive", "messages": [{"role": "user", "content": p}]},
                )
                for p in prompts
            )
        )
    bodies = [r.json() for r in responses]
    assert [b["choices"][0]["message"]["content"] for b in bodies] == [f"echo: {p}" for p in prompts]
    metas = [b["adaptive_router"] for b in bodies]
    # a request that finds nothing else in flight is planned at once (threshold), so the burst's first
    # arrival may go alone; the rest meet in windows
    windowed = [(m, p) for m, p in zip(metas, prompts, strict=True) if m["allocator"] == "window"]
    assert len(windowed) >= len(prompts) - 2 and max(m["window"] for m, _ in windowed) > 1
    assert {m["allocator"] for m in metas} <= {"window", "threshold"}
    assert sum(m["cost"] for m in metas) <= 2.0 * len(prompts)
    hard = [m["k"] for m, p in windowed if len(p) >= 20]
    easy = [m["k"] for m, p in windowed if len(p) < 20]
    assert min(hard) > max(easy)  # the budget went where the probe saw gains
    lone = _post(server, {"model": "adaptive", "messages": MESSAGES}).json()["adaptive_router"]
    assert lone["allocator"] == "threshold" and lone["window"] == 1
    assert upstream.requests == sum(m["calls"] for m in [*metas, lone])


def test_a_lone_request_is_planned_at_once_not_after_max_wait(upstream, make_config, run_server):
    config = make_config(upstream.base_url)
    config = config.model_copy(  # waiting max_wait_ms for company would run past the request timeout: 504
        update={
            "server": config.server.model_copy(update={"request_timeout_s": 0.8}),
            "backends": {"up": config.backends["up"].model_copy(update={"deadline_s": 0.5})},
            "routers": {"adaptive": config.routers["adaptive"].model_copy(update={"max_wait_ms": 1000})},
        }
    )
    server = run_server(config)
    for _ in range(3):
        response = _post(server, {"model": "adaptive", "messages": MESSAGES})
        assert response.status_code == 200, response.text
        assert response.json()["adaptive_router"]["window"] == 1


def test_models_budget_options_and_unsupported_fields(upstream, make_config, run_server):
    server = run_server(make_config(upstream.base_url, router="min_budget = 1\nmax_budget = 3"))
    client = _client(server)
    (model,) = client.models.list().data
    assert model.id == "adaptive" and model.model_extra["adaptive_router"]["max_budget"] == 3
    assert (
        client.chat.completions.create(model="adaptive:budget=3", messages=MESSAGES).model_extra[
            "adaptive_router"
        ]["k"]
        == 3
    )
    meta = client.chat.completions.create(model="adaptive:budget=3,max_k=2", messages=MESSAGES).model_extra
    assert meta["adaptive_router"]["k"] == 2
    with pytest.raises(openai.NotFoundError, match="does not exist: this server routes 'adaptive'"):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(
        openai.BadRequestError, match=r"budget=9 is outside router 'adaptive''s limits \[1, 3\]"
    ):
        client.chat.completions.create(model="adaptive:budget=9", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="n=2 is not supported"):
        client.chat.completions.create(model="adaptive", messages=MESSAGES, n=2)
    with pytest.raises(openai.BadRequestError, match="tool calling is not supported"):
        client.chat.completions.create(
            model="adaptive", messages=MESSAGES, tools=[{"type": "function", "function": {"name": "f"}}]
        )
    bad = _post(server, {"model": "adaptive", "messages": [{"role": "robot", "content": "x"}]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages.0.role"
    not_json = httpx.post(
        server.base_url + "/chat/completions", content=b"{", headers={"Authorization": f"Bearer {ALICE}"}
    )
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    missing = httpx.get(server.url + "/v2/nothing")
    assert missing.status_code == 404 and "POST /v1/chat/completions" in missing.json()["error"]["message"]


def test_sampling_parameters_reach_every_upstream_request(upstream, make_config, run_server):
    server = run_server(make_config(upstream.base_url))
    _client(server).chat.completions.create(
        model="adaptive", messages=MESSAGES, temperature=0.3, stop=["\n"], seed=7, max_tokens=9
    )
    assert len(upstream.calls) == 2
    assert all(
        c["params"] == {"max_tokens": 9, "temperature": 0.3, "stop": ["\n"], "seed": 7}
        for c in upstream.calls
    )
    upstream.calls.clear()
    _client(server).chat.completions.create(model="adaptive", messages=MESSAGES)
    assert all(c["params"]["max_tokens"] == 64 for c in upstream.calls)  # server.max_tokens by default


def test_upstream_failure_is_502_with_the_upstream_key_scrubbed(upstream, make_config, run_server):
    upstream.fail_status = 401
    upstream.fail_message = "bad key {authorization}"  # a leaky upstream echoes what it got
    server = run_server(make_config(upstream.base_url))
    response = _post(server, {"model": "adaptive", "messages": MESSAGES})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "upstream_error" and "the upstream failed" in error["message"]
    assert UPSTREAM_SECRET not in response.text and "***" in error["message"]
    upstream.fail_status = 500  # retried (max_attempts = 2), then a clear error
    upstream.requests = 0
    response = _post(server, {"model": "adaptive", "messages": MESSAGES})
    assert response.status_code == 502 and "kept failing" in response.json()["error"]["message"]
    assert upstream.requests == 2 * 2  # two samples, two attempts each


def test_fallback_then_circuit_breaker_then_recovery(upstream, make_config, run_server):
    with FakeUpstream(reply=lambda prompt, i: "from the backup") as backup:
        config = make_config(
            upstream.base_url,
            backends=(
                f'[backends.backup]\ntype = "openai"\nbase_url = "{backup.base_url}"\nmodel = "b"\n'
                "deadline_s = 5"
            ),
            router='fallback = "backup"\nbreaker_failures = 2\nbreaker_cooldown_s = 0.4',
        )
        server = run_server(config)
        client = _client(server)
        upstream.fail_status = 503
        for _ in range(2):
            reply = client.chat.completions.create(model="adaptive", messages=MESSAGES)
            assert reply.choices[0].message.content == "from the backup"
            assert reply.model_extra["adaptive_router"]["fallback"] == "backup"
        assert httpx.get(server.url + "/health").json()["status"] == "degraded"  # circuit open
        before = upstream.requests
        started = time.perf_counter()
        reply = client.chat.completions.create(model="adaptive", messages=MESSAGES)
        assert reply.model_extra["adaptive_router"]["fallback"] == "backup"
        assert upstream.requests == before and time.perf_counter() - started < 2  # skipped, no retries
        upstream.fail_status = None
        time.sleep(0.5)  # cooldown over: one trial request goes upstream and closes the circuit
        reply = client.chat.completions.create(model="adaptive", messages=MESSAGES)
        assert reply.model_extra["adaptive_router"]["fallback"] is None
        assert reply.choices[0].message.content.startswith("echo:")
        assert httpx.get(server.url + "/health").json()["status"] == "ok"
        metrics = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {ALICE}"}).text
        assert 'adaptive_router_fallbacks_total{pid="' in metrics and 'reason="circuit_open"' in metrics


def test_without_fallback_an_open_circuit_is_503_with_retry_after(upstream, make_config, run_server):
    upstream.fail_status = 500
    server = run_server(
        make_config(upstream.base_url, router="breaker_failures = 1\nbreaker_cooldown_s = 30")
    )
    assert _post(server, {"model": "adaptive", "messages": MESSAGES}).status_code == 502
    response = _post(server, {"model": "adaptive", "messages": MESSAGES})
    assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
    assert "retry in" in response.json()["error"]["message"]


def test_a_slow_upstream_is_504_within_the_timeout(make_config, run_server):
    with FakeUpstream(latency=3.0) as slow:
        config = make_config(slow.base_url, server="", backends="", router="")
        config = config.model_copy(
            update={
                "server": config.server.model_copy(update={"request_timeout_s": 1.0}),
                "backends": {"up": config.backends["up"].model_copy(update={"deadline_s": 0.6})},
            }
        )
        server = run_server(config)
        started = time.perf_counter()
        response = _post(server, {"model": "adaptive", "messages": MESSAGES})
        assert response.status_code == 504 and time.perf_counter() - started < 2.5
        assert "deadline of 0.6 s" in response.json()["error"]["message"]


def test_without_keys_loopback_requests_run_as_anonymous(upstream, make_config, run_server):
    server = run_server(make_config(upstream.base_url, keys=False))
    reply = _client(server, key="anything").chat.completions.create(model="adaptive", messages=MESSAGES)
    assert reply.model_extra["adaptive_router"]["key"] == "anonymous"
    assert "adaptive_router_requests_total" in httpx.get(server.url + "/metrics").text


async def test_rounds_read_the_first_samples_before_buying_more(upstream, make_config, run_server):
    upstream.reply = lambda prompt, i: "4" if "easy" in prompt else f"{i}"  # hard: every sample disagrees
    server = run_server(make_config(upstream.base_url, rounds="auto", budget=2.0))
    prompts = [f"easy {i}" if i % 2 else f"hard {i}" for i in range(16)]
    async with httpx.AsyncClient(timeout=20, headers={"Authorization": f"Bearer {ALICE}"}) as client:
        bodies = [
            r.json()
            for r in await asyncio.gather(
                *(
                    client.post(
                        server.base_url + "/chat/completions",
                        json={"model": "adaptive", "messages": [{"role": "user", "content": p}]},
                    )
                    for p in prompts
                )
            )
        ]
    metas = [b["adaptive_router"] for b in bodies]
    assert all(m["rounds"]["per_round"] for m in metas)  # sampled in rounds, each round recorded
    assert sum(m["cost"] for m in metas) <= 2.0 * len(prompts)
    assert upstream.requests == sum(m["calls"] for m in metas)
    off = _post(server, {"model": "adaptive:rounds=off", "messages": MESSAGES}).json()["adaptive_router"]
    assert "rounds" not in off or not off["rounds"]


def test_a_refused_request_holds_no_reservation(upstream, make_config, run_server):
    server = run_server(make_config(upstream.base_url, budgets="per_key = 4"))
    empty = _post(server, {"model": "adaptive", "messages": [{"role": "user", "content": "   "}]})
    assert empty.status_code == 400 and "no text" in empty.json()["error"]["message"]
    upstream.fail_status = 500
    assert _post(server, {"model": "adaptive", "messages": MESSAGES}).status_code == 502
    state = server.app.state.service.budgets.snapshot().get("alice")
    assert state is None or (state.spent, state.reserved) == (0.0, 0.0)  # failures are not charged


async def test_more_than_max_concurrent_requests_is_503(make_config, run_server):
    with FakeUpstream(latency=0.5) as slow:
        server = run_server(make_config(slow.base_url, server="max_concurrent_requests = 2"))
        async with httpx.AsyncClient(timeout=20, headers={"Authorization": f"Bearer {ALICE}"}) as client:
            body = {"model": "adaptive", "messages": MESSAGES}
            responses = await asyncio.gather(
                *(client.post(server.base_url + "/chat/completions", json=body) for _ in range(4))
            )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 503, 503]
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.json()["error"]["code"] == "server_busy" and busy.headers["retry-after"] == "1"
