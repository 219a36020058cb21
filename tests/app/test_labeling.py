"""Tests for adaptive_router.app.labeling: resumable sampling + scoring into outcome records."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest
from adaptive_router.integrations.openai_backend import OpenAIChatModel

from adaptive_router.app.labeling import Sample, as_sampler, completed_ids, label_tasks
from adaptive_router.app.tasks import arithmetic_tasks
from adaptive_router.errors import ConfigError, OutcomeFormatError, RetryExhaustedError
from adaptive_router.outcomes import OutcomeSet


def _oracle_backend(tasks, right_every=2):
    answers = {t.prompt: t.answer for t in tasks}
    count = {"n": 0}
    lock = threading.Lock()

    def backend(prompt):
        with lock:
            count["n"] += 1
            i = count["n"]
        return Sample(text=f" {answers[prompt] if i % right_every == 0 else 'wrong'}\n", tokens=2)

    return backend, count


def test_label_writes_valid_outcomes_and_resumes(tmp_path):
    tasks = arithmetic_tasks(6, seed=0)
    out = tmp_path / "o.jsonl"
    backend, count = _oracle_backend(tasks)
    ticks = []
    summary = label_tasks(
        tasks[:4],
        backend,
        out,
        samples=4,
        procedure="gemma",
        cost=1.0,
        concurrency=3,
        progress=lambda d, t: ticks.append((d, t)),
    )
    assert summary.written == 4 and summary.calls == 16 and not summary.failed
    assert ticks[-1] == (4, 4)
    s = OutcomeSet.read_jsonl(out)
    assert s.procedures == ("gemma",) and len(s) == 4
    c, n = s.success_counts("gemma")
    assert n.tolist() == [4] * 4 and c.sum() == 8
    by_id = {t.id: t for t in tasks}
    assert all(r.meta["answer"] == by_id[r.id].answer for r in s)
    # simulate a crash mid-write, then resume with all six tasks
    with out.open("a") as fh:
        fh.write('{"id": "arith-0-9", "prom')
    summary = label_tasks(tasks, backend, out, samples=4, procedure="gemma")
    assert summary.skipped == 4 and summary.written == 2 and count["n"] == 24
    assert sorted(OutcomeSet.read_jsonl(out).ids) == sorted(t.id for t in tasks)


def test_failed_tasks_are_reported_not_written(tmp_path):
    tasks = arithmetic_tasks(3, seed=0)

    def backend(prompt):
        if prompt == tasks[1].prompt:
            raise RetryExhaustedError("boom", attempts=2)
        return " 0"

    out = tmp_path / "o.jsonl"
    summary = label_tasks(tasks, backend, out, samples=2)
    assert summary.written == 2 and len(summary.failed) == 1 and tasks[1].id in summary.failed[0]
    assert tasks[1].id not in completed_ids(out)


def test_completed_ids_rejects_corrupt_middle_line(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_text(
        '{"id": "a", "prompt": "p", "outcomes": {"m": [{"reward": 1}]}}\n{bad\n'
        '{"id": "b", "prompt": "p", "outcomes": {"m": [{"reward": 1}]}}\n'
    )
    with pytest.raises(OutcomeFormatError, match="line 2"):
        completed_ids(out)


def _model(handler, **kw):
    """An OpenAIChatModel whose openai client talks to ``handler`` (an httpx MockTransport) with no sleeps."""
    client = openai.OpenAI(
        api_key="x",
        base_url="http://test/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    kw.setdefault("endpoint", "completions")
    return OpenAIChatModel(base_url="http://test/v1", model="m", client=client, sleep=lambda s: None, **kw)


def _completion(text, tokens):
    return {
        "id": "x",
        "object": "text_completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 4, "completion_tokens": tokens, "total_tokens": 4 + tokens},
    }


def test_openai_model_completions_retries_and_tokens():
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        if len(seen) < 3:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json=_completion(" 7", 2))

    model = _model(handler, temperature=1.0, max_tokens=64, stop=["\n"], max_attempts=3)
    sample = as_sampler(model.bind(extra_body={"top_k": 0}))
    assert sample("3 + 4 =") == Sample(text=" 7", tokens=2)
    assert len(seen) == 3
    assert seen[-1] == {
        "model": "m",
        "temperature": 1.0,
        "max_tokens": 64,
        "top_k": 0,
        "stop": ["\n"],
        "prompt": "3 + 4 =",
    }


def test_label_tasks_through_openai_model_counts_tokens(tmp_path):
    tasks = arithmetic_tasks(3, seed=0)
    answers = {t.prompt: t.answer for t in tasks}

    def handler(request):
        prompt = json.loads(request.content)["prompt"]
        return httpx.Response(200, json=_completion(f" {answers[prompt]}", 3))

    out = tmp_path / "o.jsonl"
    summary = label_tasks(tasks, _model(handler), out, samples=2, procedure="m", concurrency=2)
    assert summary.written == 3 and summary.calls == 6 and not summary.failed
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(
        o == {"reward": 1.0, "answer": r["answer"], "tokens": 3, "text": f" {r['answer']}"}
        for r in recs
        for o in r["outcomes"]["m"]
    )


def test_openai_model_chat_and_errors():
    def chat(request):
        assert request.url.path.endswith("/chat/completions")
        body = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
            ],
        }
        return httpx.Response(200, json=body)

    assert as_sampler(_model(chat, endpoint="chat"))("hello").text == "hi"
    with pytest.raises(RetryExhaustedError, match="after 2 attempts"):
        as_sampler(_model(lambda r: httpx.Response(500, text="x"), max_attempts=2))("p")

    def down(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(RetryExhaustedError, match="is the server running"):
        as_sampler(_model(down, max_attempts=2))("p")


def test_as_sampler_rejects_non_callables():
    assert as_sampler(lambda p: " 3")("q") == Sample(text=" 3")
    with pytest.raises(ConfigError, match="backend must be a LangChain chat model or a callable"):
        as_sampler(42)


def _reward_model(path):
    from adaptive_router.strategies.rerankers import RewardModelReranker

    return RewardModelReranker(model=str(path), max_length=128)


def test_reward_model_scores_become_sample_scores_beside_verifier_rewards(tmp_path, tiny_reward_model):
    tasks = arithmetic_tasks(3, seed=0)
    backend, _ = _oracle_backend(tasks)
    rm = _reward_model(tiny_reward_model)
    out = tmp_path / "o.jsonl"
    summary = label_tasks(tasks, backend, out, samples=3, procedure="g", reward_model=rm)
    assert summary.written == 3 and not summary.failed
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    for t in tasks:
        outs = recs[t.id]["outcomes"]["g"]
        assert [o["reward"] for o in outs] == [t.score(o["text"]) for o in outs]
        expected = rm.score(t.prompt, [o["text"] for o in outs]).scores
        assert [o["score"] for o in outs] == pytest.approx(expected)
    data = OutcomeSet.read_jsonl(out)
    scores = data.scores("g")
    assert scores is not None and scores.shape == (3, 3)
    assert len({round(float(v), 6) for v in scores.ravel()}) > 1  # the model really scores, not a constant


def test_reward_model_is_the_reward_when_tasks_have_no_verifier(tmp_path, tiny_reward_model):
    from adaptive_router.app.tasks import read_tasks

    src = tmp_path / "d.jsonl"
    lines = [
        {"id": "a", "prompt": "Write a haiku about rain.", "verifier": "none"},
        {"id": "b", "prompt": [{"role": "user", "content": "Say hi"}], "verifier": "none"},
    ]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    tasks = read_tasks(src)
    replies = iter(["soft rain", "grey sky, wet stone", "hi", "hello there"])
    lock = threading.Lock()

    def backend(prompt):
        with lock:
            return Sample(text=next(replies))

    rm = _reward_model(tiny_reward_model)
    out = tmp_path / "o.jsonl"
    label_tasks(tasks, backend, out, samples=2, procedure="m", concurrency=1, reward_model=rm)
    data = OutcomeSet.read_jsonl(out)
    assert data.scores("m") is None
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    outs = recs["b"]["outcomes"]["m"]
    assert [o["reward"] for o in outs] == pytest.approx(rm.score("Say hi", [o["text"] for o in outs]).scores)
    assert all("score" not in o for r in recs.values() for o in r["outcomes"]["m"])
    assert data.rewards("m").shape == (2, 2)


def test_reward_model_errors_name_the_fix(tmp_path, tiny_reward_model):
    from adaptive_router.app.tasks import Task

    unverified = Task(id="u", prompt="p", answer="", verifier="none")
    verified = arithmetic_tasks(1)[0]
    backend = lambda p: " 1"  # noqa: E731
    with pytest.raises(ConfigError, match=r"have no verifier \(verifier 'none'\); pass a reward model"):
        label_tasks([unverified], backend, tmp_path / "o.jsonl", samples=1)
    with pytest.raises(ConfigError, match="1 of 2 tasks have no verifier"):
        label_tasks(
            [unverified, verified],
            backend,
            tmp_path / "o.jsonl",
            samples=1,
            reward_model=_reward_model(tiny_reward_model),
        )
    with pytest.raises(ConfigError, match="the reward model cannot score"):
        broken = _reward_model(tmp_path)  # a folder with no checkpoint
        label_tasks([verified], backend, tmp_path / "o.jsonl", samples=1, reward_model=broken)
    assert not (tmp_path / "o.jsonl").exists() or (tmp_path / "o.jsonl").read_text() == ""
