"""Tests for adaptive_router.labeling: resumable sampling + scoring into outcome records."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from adaptive_router.errors import BackendUnavailableError, OutcomeFormatError, RetryExhaustedError
from adaptive_router.labeling import OpenAICompatibleBackend, Sample, completed_ids, label_tasks
from adaptive_router.outcomes import OutcomeSet
from adaptive_router.tasks import arithmetic_tasks


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


def _backend(handler, **kw):
    client = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://test/v1")
    return OpenAICompatibleBackend(
        base_url="http://test/v1", model="m", client=client, sleep=lambda s: None, **kw
    )


def test_openai_backend_completions_and_retries():
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        if len(seen) < 3:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json={"choices": [{"text": " 7"}], "usage": {"completion_tokens": 2}})

    backend = _backend(handler, stop=["\n"], extra={"top_k": 0}, retries=3)
    assert backend("3 + 4 =") == Sample(text=" 7", tokens=2)
    assert seen[-1] == {
        "model": "m",
        "temperature": 1.0,
        "max_tokens": 64,
        "top_k": 0,
        "stop": ["\n"],
        "prompt": "3 + 4 =",
    }


def test_openai_backend_chat_and_errors():
    def chat(request):
        assert request.url.path.endswith("/chat/completions")
        return httpx.Response(200, json={"choices": [{"message": {"content": "hi"}}]})

    assert _backend(chat, mode="chat")("hello").text == "hi"
    with pytest.raises(RetryExhaustedError, match="after 2 attempts"):
        _backend(lambda r: httpx.Response(500, text="x"), retries=2)("p")

    def down(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(BackendUnavailableError, match="is the server running"):
        _backend(down, retries=2)("p")
