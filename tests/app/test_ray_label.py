"""label --ray on a local two-CPU Ray instance: the single-node outcome file, resumable, nothing lost.

Every test compares against ``label_tasks`` itself (``concurrency=1`` writes dataset order). The backends
answer deterministically per prompt and append one line per answered request to a log that every worker
process shares, so calls are counted across processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="label --ray needs Ray: pip install 'adaptive-router[ray]'")

from adaptive_router.app.labeling import LabelInterrupted, Sample, label_tasks  # noqa: E402
from adaptive_router.app.ray_cluster import ray_session  # noqa: E402
from adaptive_router.app.ray_label import label_tasks_ray  # noqa: E402
from adaptive_router.app.ray_store import parts_dir  # noqa: E402
from adaptive_router.app.resume import journal_path  # noqa: E402
from adaptive_router.app.tasks import arithmetic_tasks  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own, at start-up
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this test module


class Backend:
    """Right for two tasks in three; logs every answered request; can fail a prompt or kill its worker."""

    def __init__(self, tasks, log, *, latency=0.0, fail=None, kill_after=None, marker=None):
        self.answers = {t.prompt: t.answer for t in tasks}
        self.log, self.latency, self.fail = str(log), latency, fail
        self.kill_after, self.marker, self.calls = kill_after, marker and str(marker), 0

    def __call__(self, prompt):
        self.calls += 1
        if self.kill_after is not None and self.calls > self.kill_after and os.path.exists(self.marker):
            os.unlink(self.marker)
            os.kill(os.getpid(), signal.SIGKILL)  # this worker dies mid-shard, requests in flight
        time.sleep(self.latency)
        if prompt == self.fail:
            raise RuntimeError("boom")
        answer = self.answers[prompt]
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return Sample(text=f" {answer if int(answer) % 3 else 'no'}\n", tokens=2)


def _calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture(scope="module")
def cluster():
    with ray_session(num_cpus=2) as info:
        yield info


@pytest.fixture(scope="module")
def tasks():
    return arithmetic_tasks(40, seed=3)


@pytest.fixture(scope="module")
def single(tasks, tmp_path_factory):
    """The file a single-node run writes, in dataset order (concurrency=1)."""
    d = tmp_path_factory.mktemp("single")
    out = d / "o.jsonl"
    label_tasks(tasks, Backend(tasks, d / "log"), out, samples=3, procedure="m", cost=1.0, concurrency=1)
    return out.read_bytes()


def _ray(tasks, backend, out, **kw):
    kw = {"samples": 3, "procedure": "m", "cost": 1.0, "concurrency": 4, "workers": 2, "batch_size": 6, **kw}
    return label_tasks_ray(tasks, lambda: backend, out, **kw)


def test_same_outcome_file_as_single_node(cluster, tasks, single, tmp_path):
    out, log = tmp_path / "o.jsonl", tmp_path / "log"
    ticks = []
    summary = _ray(tasks, Backend(tasks, log), out, progress=lambda d, t: ticks.append((d, t)))
    assert out.read_bytes() == single  # same records, line for line, in dataset order
    assert summary.written == 40 and summary.calls == 120 == _calls(log) and not summary.failed
    assert ticks[0] == (0, 40) and ticks[-1] == (40, 40)
    assert not journal_path(out).exists() and not parts_dir(out).exists()


def test_resume_skips_finished_ids_and_reuses_journalled_responses(cluster, tasks, single, tmp_path):
    out, log = tmp_path / "o.jsonl", tmp_path / "log"
    label_tasks(tasks[:10], Backend(tasks, tmp_path / "first"), out, samples=3, procedure="m", cost=1.0)
    answer = Backend(tasks, tmp_path / "x")(tasks[10].prompt)
    line = {"id": tasks[10].id, "procedure": "m", "text": answer.text, "tokens": answer.tokens}
    journal_path(out).write_text(json.dumps(line) + "\n")
    summary = _ray(tasks, Backend(tasks, log), out)
    assert summary.skipped == 10 and summary.written == 30
    assert _calls(log) == 30 * 3 - 1  # only the samples still missing
    assert out.read_bytes() == single


def test_killed_worker_loses_no_record_and_duplicates_none(cluster, tasks, single, tmp_path):
    out, log, marker = tmp_path / "o.jsonl", tmp_path / "log", tmp_path / "kill-once"
    marker.touch()
    backend = Backend(tasks, log, latency=0.02, kill_after=12, marker=marker)
    with contextlib.suppress(Exception):  # however Ray reports the death, a rerun must complete
        _ray(tasks, backend, out)
    assert not marker.exists()  # a worker did die
    if not out.exists() or len(out.read_text().splitlines()) < 40:
        _ray(tasks, Backend(tasks, log), out)
    assert out.read_bytes() == single  # every id once, the same records
    assert _calls(log) <= 120 + 4  # at most the dead worker's requests in flight were paid twice
    assert not journal_path(out).exists() and not parts_dir(out).exists()


def test_failed_queries_are_reported_and_retried_by_a_rerun(cluster, tasks, single, tmp_path):
    out = tmp_path / "o.jsonl"
    summary = _ray(tasks, Backend(tasks, tmp_path / "log", fail=tasks[7].prompt), out)
    assert len(summary.failed) == 1 and tasks[7].id in summary.failed[0] and summary.written == 39
    assert journal_path(out).exists()  # kept until every query is recorded
    summary = _ray(tasks, Backend(tasks, tmp_path / "log2"), out)
    assert summary.skipped == 39 and summary.written == 1
    assert out.read_bytes() == single and not journal_path(out).exists()


def test_ctrl_c_stops_sending_keeps_every_response_and_rerun_pays_nothing_twice(
    cluster, tasks, single, tmp_path
):
    out, log = tmp_path / "o.jsonl", tmp_path / "log"

    pressed = []

    def interrupt(done, total):
        if done >= 8 and not pressed:
            pressed.append(done)
            raise KeyboardInterrupt

    with pytest.raises(LabelInterrupted) as info:
        _ray(tasks, Backend(tasks, log, latency=0.05), out, progress=interrupt, batch_size=20)
    stopped = info.value.summary
    assert stopped.interrupted and 8 <= stopped.written < 40
    answered = _calls(log)
    time.sleep(0.5)
    assert _calls(log) == answered  # nothing more was sent
    assert stopped.calls == answered  # every answered request was journalled
    _ray(tasks, Backend(tasks, log), out)
    assert _calls(log) == 120  # the rerun requested only what was never answered
    assert out.read_bytes() == single


def test_cli_label_ray_writes_the_single_node_file(cluster, tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))
    from fake_openai_server import FakeOpenAIServer
    from typer.testing import CliRunner

    from adaptive_router.app.cli import app

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeOpenAIServer(latency=0.01) as server:
        base = ["label", "arith:24:5", "--backend", "openai:m", "--base-url", server.base_url]
        base += ["--samples", "2"]
        here = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "one.jsonl"), "--concurrency", "1"])
        assert here.exit_code == 0, here.output
        got = CliRunner().invoke(
            app, [*base, "--out", str(tmp_path / "ray.jsonl"), "--ray", "--ray-workers", "2"]
        )
        assert got.exit_code == 0, got.output
        assert server.count == 2 * 48
    assert "wrote 24 records" in got.output
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
