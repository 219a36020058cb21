"""Regression tests (issue 10): Ctrl-C during labelling stops spending and loses nothing paid for.

Before the fix every task x sample request was submitted up front and the executor waited for all of them
after SIGINT (68 more requests over 19 s, results thrown away). Now only ``concurrency`` requests are ever
in flight, nothing is sent after the interrupt, every response that arrived is journalled, and a rerun
resumes without re-requesting or duplicating anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from fake_openai_server import FakeOpenAIServer

from adaptive_router.app.labeling import LabelInterrupted, Sample, journal_path, label_tasks
from adaptive_router.app.tasks import arithmetic_tasks
from adaptive_router.errors import ConfigError
from adaptive_router.outcomes import OutcomeSet


class CountingBackend:
    """Answers right after ``latency`` seconds; raises KeyboardInterrupt on call number ``interrupt_at``."""

    def __init__(self, tasks, latency=0.02, interrupt_at=None):
        self.answers = {t.prompt: t.answer for t in tasks}
        self.latency, self.interrupt_at = latency, interrupt_at
        self.starts: list[float] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, prompt):
        with self._lock:
            self.starts.append(time.monotonic())
            n = len(self.starts)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if n == self.interrupt_at:
                raise KeyboardInterrupt
            time.sleep(self.latency)
            return Sample(text=f" {self.answers[prompt]}", tokens=1)
        finally:
            with self._lock:
                self.in_flight -= 1


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_interrupt_sends_nothing_more_keeps_responses_and_resume_completes_without_duplicates(tmp_path):
    tasks = arithmetic_tasks(30, seed=1)
    out = tmp_path / "o.jsonl"
    backend = CountingBackend(tasks, interrupt_at=25)
    with pytest.raises(LabelInterrupted) as info:
        label_tasks(tasks, backend, out, samples=4, procedure="m", concurrency=3)
    stopped_at = time.monotonic()
    summary = info.value.summary
    assert summary.interrupted and summary.written >= 1
    assert backend.max_in_flight <= 3  # bounded submission: never more than `concurrency` in flight
    started = len(backend.starts)
    assert started <= 25 + 3  # at most the requests already in flight when the interrupt came
    time.sleep(1.0)
    assert len(backend.starts) == started  # nothing more is sent once label_tasks has returned
    assert all(t <= stopped_at for t in backend.starts)
    written = _records(out)
    assert len(written) == summary.written and all(len(r["outcomes"]["m"]) == 4 for r in written)
    journal = journal_path(out)
    kept = [json.loads(line) for line in journal.read_text().splitlines()]
    assert len(kept) == started - 1  # every answered request (all but the interrupted one) is journalled

    resumed = CountingBackend(tasks)
    summary = label_tasks(tasks, resumed, out, samples=4, procedure="m", concurrency=3)
    assert summary.skipped == len(written)
    # the responses paid for in the first run are reused: in all, one request per sample, no more
    assert (started - 1) + len(resumed.starts) == 30 * 4
    data = OutcomeSet.read_jsonl(out)
    assert sorted(data.ids) == sorted(t.id for t in tasks)  # all done, no id twice (OutcomeSet checks)
    assert data.success_counts("m")[1].tolist() == [4] * 30
    assert not journal.exists()  # everything is recorded: the journal is gone


def test_a_failed_query_keeps_its_paid_samples_for_the_rerun(tmp_path):
    tasks = arithmetic_tasks(3, seed=0)
    calls = {"n": 0}
    lock = threading.Lock()

    def flaky(prompt):
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if prompt == tasks[1].prompt and n % 2 == 0:
            raise ConnectionError("reset")
        return " 1"

    out = tmp_path / "o.jsonl"
    first = label_tasks(tasks, flaky, out, samples=4, concurrency=1)
    assert len(first.failed) == 1 and first.kept >= 1
    second = label_tasks(tasks, lambda p: " 1", out, samples=4, concurrency=1)
    assert second.written == 1 and second.calls == 4 - first.kept
    assert len(OutcomeSet.read_jsonl(out)) == 3


def test_resume_refuses_another_procedure_or_cost_before_any_request(tmp_path):
    tasks = arithmetic_tasks(4, seed=0)
    out = tmp_path / "o.jsonl"
    label_tasks(tasks[:2], lambda p: " 1", out, samples=2, procedure="gemma-3-270m", cost=1.0)
    backend = CountingBackend(tasks)
    with pytest.raises(
        ConfigError, match=r"holds outcomes of procedure 'gemma-3-270m'.*would mix procedures"
    ):
        label_tasks(tasks, backend, out, samples=2, procedure="smollm2-135m-instruct")
    with pytest.raises(ConfigError, match=r"records cost \[1\.0\] per call.*this run gives 2"):
        label_tasks(tasks, backend, out, samples=2, procedure="gemma-3-270m", cost=2.0)
    assert backend.starts == []
    assert len(_records(out)) == 2


@pytest.mark.parametrize("cost", [float("nan"), -5.0, float("inf")])
def test_a_bad_cost_is_rejected_before_any_request(tmp_path, cost):
    backend = CountingBackend(arithmetic_tasks(2))
    with pytest.raises(ConfigError, match="cost per call must be a finite number >= 0"):
        label_tasks(arithmetic_tasks(2), backend, tmp_path / "o.jsonl", samples=1, cost=cost)
    assert backend.starts == [] and not (tmp_path / "o.jsonl").exists()


def _label_command(server, out, n):
    code = "from adaptive_router.app.cli import main; main()"
    args = ["label", f"arith:{n}", "--backend", "openai:fake", "--base-url", server.base_url]
    args += ["--samples", "4", "--concurrency", "2", "--out", str(out)]
    return [sys.executable, "-c", code, *args]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_label_command_stops_on_a_signal_and_a_rerun_finishes(tmp_path, signum):
    out = tmp_path / "o.jsonl"
    env = dict(os.environ, OPENAI_API_KEY="x", COLUMNS="80")
    with FakeOpenAIServer(latency=0.05) as server:
        proc = subprocess.Popen(
            _label_command(server, out, 40),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        deadline = time.monotonic() + 120
        while server.count < 12 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signum)
        sent_at = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "interrupted: nothing more was sent" in err and "Run the same command again" in err
        first = server.count
        time.sleep(1.0)
        assert server.count == first  # nothing more within the next second, nor after
        assert sum(t > sent_at + 0.5 for t in server.starts) == 0
        assert first < 40 * 4
        rerun = subprocess.run(
            _label_command(server, out, 40), capture_output=True, env=env, text=True, timeout=300
        )
        assert rerun.returncode == 0, rerun.stderr
        assert server.count == 40 * 4  # the first run's responses were kept: not one request twice
    data = OutcomeSet.read_jsonl(out)
    assert len(data) == 40 and data.success_counts("fake")[1].tolist() == [4] * 40
    assert not journal_path(out).exists()


def test_the_journal_is_kept_while_it_holds_responses_of_queries_not_yet_recorded(tmp_path):
    tasks = arithmetic_tasks(6, seed=2)
    out = tmp_path / "o.jsonl"
    with pytest.raises(LabelInterrupted):
        label_tasks(tasks, CountingBackend(tasks, interrupt_at=20), out, samples=4, concurrency=1)
    pending = {json.loads(line)["id"] for line in journal_path(out).read_text().splitlines()}
    unfinished = pending - {r["id"] for r in _records(out)}
    assert unfinished
    others = [t for t in tasks if t.id not in unfinished]
    label_tasks(others, CountingBackend(others), out, samples=4, concurrency=1)
    assert journal_path(out).exists()  # a run over other queries must not throw their responses away
    label_tasks(tasks, CountingBackend(tasks), out, samples=4, concurrency=1)
    assert not journal_path(out).exists()
