"""Regression tests (issue 10): a model's reply that a verifier executes cannot reach the machine.

Before the sandbox, reasoning-gym scorers ran in the labelling process: ``spiral_matrix`` and ``n_queens``
``eval`` the reply, ``bitwise_arithmetic`` ``eval``\\ s the task's metadata, and a reply of
``__import__('pathlib').Path(...).write_text(...)`` wrote a file. Each attack below did what it says before.
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from adaptive_router.app.tasks import Task, load_dataset, read_tasks
from adaptive_router.app.verifiers import Sandbox, SandboxLimits, score

pytest.importorskip("reasoning_gym")

TIGHT = SandboxLimits(cpu_seconds=1, wall_seconds=3, memory_bytes=256 << 20)


@pytest.fixture(scope="module")
def box():
    with Sandbox(limits=TIGHT) as sandbox:
        yield sandbox


@pytest.fixture
def open_dir(tmp_path):
    """A world-writable folder: file permissions alone would not stop a write there."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    return folder


def _write_reply(path):
    return f"__import__('pathlib').Path({str(path)!r}).write_text('pwned')"


@pytest.mark.parametrize("dataset", ["spiral_matrix", "n_queens", "binary_matrix", "string_insertion"])
def test_a_reply_that_writes_a_file_through_an_eval_scorer_writes_nothing(dataset, open_dir):
    (task,) = load_dataset(f"rg:{dataset}:1:0")
    target = open_dir / f"{dataset}.txt"
    assert task.score(_write_reply(target)) == 0.0
    assert not target.exists()
    assert task.score(task.answer) == 1.0  # the legitimate answer still scores


def test_task_metadata_that_a_scorer_evaluates_cannot_write_files(tmp_path, open_dir):
    target = open_dir / "from-metadata.txt"
    line = {
        "id": "evil",
        "prompt": "What is 0x1 + 0x1?",
        "answer": "0x2",
        "verifier": "reasoning_gym:bitwise_arithmetic",
        "metadata": {"rg_metadata": {"problem": _write_reply(target)}},
    }
    src = tmp_path / "tasks.jsonl"
    src.write_text(json.dumps(line) + "\n")
    (task,) = read_tasks(src)
    assert task.score("0x2") == 0.0
    assert not target.exists()
    (real,) = load_dataset("rg:bitwise_arithmetic:1:0")
    assert real.score(real.answer) == 1.0


def test_codeio_is_built_and_scored_out_of_process():
    (task,) = load_dataset("rg:codeio:1:0")  # building it execs the code it bundles: in the sandbox now
    assert task.score(task.answer) == 1.0
    assert task.score("no") == 0.0


@pytest.fixture
def listener():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(1.5)
    yield server, server.getsockname()[1]
    server.close()


def test_a_reply_cannot_connect_to_a_listening_socket(listener):
    server, port = listener
    (task,) = load_dataset("rg:spiral_matrix:1:0")
    reply = f"__import__('socket').create_connection(('127.0.0.1', {port}), timeout=1)"
    assert task.score(reply) == 0.0
    with pytest.raises(TimeoutError):
        server.accept()


@pytest.mark.parametrize(
    "attack",
    [
        "open({path!r}, 'w').write('x')",
        "import os; os.system('touch {path}')",
        "import subprocess; subprocess.run(['touch', {path!r}])",
        "import os; os.kill(os.getppid(), 9)",
        "import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1)",
        "import ctypes; ctypes.CDLL(None).system(b'touch {path}')",
    ],
)
def test_code_replies_cannot_write_spawn_signal_or_connect(attack, open_dir, listener):
    server, port = listener
    target = open_dir / "code.txt"
    code = attack.format(path=str(target), port=port) + "\ndef add(a, b):\n    return a + b\n"
    assert score("python_tests", code, "assert add(2, 3) == 5") == 0.0
    assert not target.exists()
    with pytest.raises(TimeoutError):
        server.accept()
    assert score("python_tests", "def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5") == 1.0


def test_the_audit_hook_refuses_connects_even_where_the_network_is_there(box, listener):
    _, port = listener
    code = f"import socket\nsocket.socket().connect(('127.0.0.1', {port}))\n"
    got = box.run("adaptive_router.app.verifiers.jobs:python_tests", code)
    assert got.error == "PermissionError: sandbox: socket.connect is not allowed"


def test_the_kernel_layers_the_server_reports_are_in_force_inside_a_job(box):
    info = box.isolation
    checks = ["import os, socket"]
    if info["network_isolated"]:
        checks.append("assert [name for _, name in socket.if_nameindex()] == ['lo']")
    if info["filesystem_read_only"]:  # mountinfo's 5th/6th fields: mount point, options
        checks.append("mounts = [line.split()[4:6] for line in open('/proc/self/mountinfo')]")
        checks.append("writable = [point for point, opts in mounts if opts.split(',')[0] == 'rw']")
        checks.append("assert writable == [os.path.dirname(os.getcwd())], writable")
    if os.geteuid() == 0 and not info["drops_to_nobody"]:
        checks.append("caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')]")
        checks.append("assert caps == ['0000000000000000'], caps")
    got = box.run("adaptive_router.app.verifiers.jobs:python_tests", "\n".join(checks))
    assert got.value == 1.0, got


def test_a_reply_that_loops_forever_scores_zero_within_the_cpu_limit(box):
    start = time.monotonic()
    assert score("python_tests", "while True:\n    pass\n", "", sandbox=box) == 0.0
    assert time.monotonic() - start < 20  # the limit is 1 s of CPU; a generous bound for a loaded machine
    got = box.run("adaptive_router.app.verifiers.jobs:python_tests", "while True:\n    pass\n")
    assert got.killed == "CPU limit (1 s)"


def test_a_reply_that_sleeps_forever_is_killed_at_the_wall_clock_limit(box):
    start = time.monotonic()
    got = box.run("adaptive_router.app.verifiers.jobs:python_tests", "import time\ntime.sleep(1000)\n")
    assert got.killed == "wall-clock limit (3 s)"
    assert time.monotonic() - start < 20


def test_a_reply_that_allocates_10_gb_scores_zero(box):
    code = "block = bytearray(10 * 2**30)\n"
    assert score("python_tests", code, "", sandbox=box) == 0.0
    got = box.run("adaptive_router.app.verifiers.jobs:python_tests", code)
    assert got.error is not None and got.error.startswith("MemoryError")


def test_a_reply_cannot_change_how_the_next_reply_is_scored(box):
    poison = "import adaptive_router.app.verifiers.jobs as j\nj.python_tests = lambda program: 1.0\n"
    assert score("python_tests", poison, "", sandbox=box) == 1.0  # its own score it may forge...
    assert score("python_tests", "x = 1\n", "assert x == 2", sandbox=box) == 0.0  # ...but no other one


def test_jobs_see_no_secrets_and_a_throwaway_folder(box, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    box.close()  # the next job starts a fresh server from this environment
    assert box.run("os:getenv", "OPENAI_API_KEY").value is None
    first, second = (box.run("os:getcwd").value for _ in range(2))
    assert first != second and not os.path.exists(first)


def test_legitimate_answers_still_score_one():
    assert score("math", "$\\frac{1}{2}$", "0.5") == 1.0
    humaneval = Task(
        id="he",
        prompt='def add(a, b):\n    """Return a + b."""\n',
        answer="def check(candidate):\n    assert candidate(2, 3) == 5\n",
        verifier="python_tests",
        metadata={"entry_point": "add"},
    )
    assert humaneval.score("    return a + b\n") == 1.0  # a completion of the prompt
    assert humaneval.score("Here:\n```python\ndef add(a, b):\n    return b + a\n```") == 1.0
    assert humaneval.score("    return a - b\n") == 0.0
