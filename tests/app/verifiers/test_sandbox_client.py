"""Tests for adaptive_router.app.verifiers.sandbox: the Sandbox client, its limits and its failure modes.

The attacks a sandboxed reply might try are in tests/reliability/test_sandbox.py.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from adaptive_router.app.verifiers import JobResult, Sandbox, SandboxError, SandboxLimits
from adaptive_router.errors import ConfigError

JOB = "adaptive_router.app.verifiers.jobs:python_tests"


@pytest.fixture(scope="module")
def box():
    with Sandbox(limits=SandboxLimits(cpu_seconds=2, wall_seconds=4)) as sandbox:
        yield sandbox


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cpu_seconds", 0, "must be > 0"),
        ("wall_seconds", float("nan"), "must be a finite number"),
        ("memory_bytes", -1, "must be > 0"),
        ("max_open_files", 4, "must be >= 8"),
        ("max_result_bytes", True, "must be a finite number"),
    ],
)
def test_limits_are_checked_when_built(field, value, message):
    with pytest.raises(ConfigError, match=f"SandboxLimits.{field} {message}"):
        SandboxLimits(**{field: value})


def test_the_server_starts_lazily_and_reports_its_isolation():
    sandbox = Sandbox()
    assert "stopped" in repr(sandbox)
    assert set(sandbox.isolation) == {"network_isolated", "filesystem_read_only", "drops_to_nobody"}
    assert "running" in repr(sandbox)
    sandbox.close()
    sandbox.close()  # idempotent
    assert "stopped" in repr(sandbox)


def test_map_keeps_the_order_and_runs_every_job_in_its_own_child(box):
    pids = box.map("os:getpid", [[] for _ in range(6)], parallel=3)
    assert all(r.ok for r in pids) and len({r.value for r in pids}) == 6
    got = box.map("operator:mul", [[i, 10] for i in range(7)])
    assert [r.value for r in got] == [i * 10 for i in range(7)]
    assert box.map("operator:mul", []) == []
    with pytest.raises(ConfigError, match="parallel must be >= 1"):
        box.map("operator:mul", [[1, 2]], parallel=0)


def test_job_failures_are_results_and_setup_failures_are_errors(box):
    assert box.run("operator:truediv", 1, 0) == JobResult(error="ZeroDivisionError: division by zero")
    assert box.run("builtins:object").error.startswith("TypeError: Object of type object is not JSON")
    with pytest.raises(ConfigError, match=r"the sandbox cannot load 'no_such_module:f'"):
        box.run("no_such_module:f")
    with pytest.raises(
        ConfigError, match=r"the sandbox cannot prepare importlib:import_module\('no_such_mod',\)"
    ):
        box.prepare("importlib:import_module", "no_such_mod")
    with pytest.raises(ConfigError, match="sandbox job arguments must be JSON"):
        box.run("operator:add", object(), 1)


def test_an_oversized_result_has_no_value():
    with Sandbox(limits=SandboxLimits(max_result_bytes=1000)) as sandbox:
        got = sandbox.run("operator:mul", "x", 5000)
    assert got.killed == "result over 1000 bytes"


def test_a_server_that_dies_mid_job_is_restarted_prepared_and_the_job_rerun(box):
    box.prepare("importlib:import_module", "fractions")
    pid = box.run("os:getppid").value  # a job's parent is the server
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    got = box.run(JOB, "import sys, time\ntime.sleep(1.5)\nassert 'fractions' in sys.modules\n")
    killer.join()
    assert got.value == 1.0  # rerun on a fresh server, with the preparations replayed
    assert box.run("os:getppid").value != pid
    os.kill(box.run("os:getppid").value, signal.SIGKILL)  # between jobs: restarted as well
    assert box.run("operator:add", 2, 2).value == 4


def test_a_server_that_cannot_start_is_a_sandbox_error(tmp_path):
    with pytest.raises(SandboxError, match="the sandbox server"):
        Sandbox(python="/bin/false").start()
    with pytest.raises(SandboxError, match="cannot start the sandbox server"):
        Sandbox(python=str(tmp_path / "no-python")).start()


def test_a_job_leaves_no_folder_behind(box):
    cwd = box.run("os:getcwd").value
    assert cwd and not os.path.exists(cwd)
