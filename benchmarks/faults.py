"""Fault injection: run each hardening case of issue 10 and check that the fault is contained.

    .venv/bin/python benchmarks/faults.py            # all cases (< 1 min on a 2-core CPU)
    .venv/bin/python benchmarks/faults.py sandbox    # only the cases whose name contains "sandbox"

Prints a table ``case | expected | outcome | ok`` and, as its last line, one JSON object
(``{"cases", "passed", "failed", "seconds", "results": [...]}``); exits 1 when a case fails.

Add a case with the ``@case(name, expected)`` decorator: a function that takes a fresh temporary folder and
returns ``(outcome, ok)``. Everything runs offline: backends are local callables or a fake OpenAI-compatible
server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

Result = tuple[str, bool]
CASES: list[tuple[str, str, Callable[[Path], Result]]] = []


def case(name: str, expected: str) -> Callable[[Callable[[Path], Result]], Callable[[Path], Result]]:
    """Register a fault case: ``fn(tmp_folder) -> (outcome, ok)``."""

    def register(fn: Callable[[Path], Result]) -> Callable[[Path], Result]:
        CASES.append((name, expected, fn))
        return fn

    return register


# ------------------------------------------------------------------------------------------------ helpers
def _cli(*args: Any) -> tuple[int, str]:
    from typer.testing import CliRunner

    from adaptive_router.app.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args], env={"OPENAI_API_KEY": "x"})
    return res.exit_code, res.output.strip().splitlines()[-1] if res.output.strip() else ""


@contextlib.contextmanager
def _fake_server(on_request: Callable[[dict[str, Any]], None] | None = None) -> Iterator[dict[str, Any]]:
    """An OpenAI-compatible completions endpoint answering " 0"; ``state["calls"]`` counts requests."""
    state: dict[str, Any] = {"calls": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            state["calls"] += 1
            if on_request is not None:
                on_request(body)
            choice = {"index": 0, "text": " 0", "finish_reason": "stop", "logprobs": None}
            data = json.dumps(
                {"id": "x", "object": "text_completion", "created": 0, "model": "m", "choices": [choice]}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _outcome_file(path: Path) -> Path:
    rng = np.random.default_rng(0)
    with path.open("w") as fh:
        for i in range(40):
            c = int(rng.binomial(4, [0.1, 0.5, 0.9][i % 3]))
            fh.write(
                json.dumps(
                    {"id": f"q{i}", "prompt": f"q {i}", "outcomes": {"m": {"successes": c, "samples": 4}}}
                )
            )
            fh.write("\n")
    return path


def _write_reply(path: Path) -> str:
    return f"__import__('pathlib').Path({str(path)!r}).write_text('pwned')"


# ------------------------------------------------------------------------------------------------ sandbox
@case("sandbox: file write via spiral_matrix eval", "reward 0, no file")
def _sandbox_write(tmp: Path) -> Result:
    from adaptive_router.app.tasks import load_dataset

    (task,) = load_dataset("rg:spiral_matrix:1:0")
    tmp.chmod(0o777)
    target = tmp / "pwned.txt"
    reward = task.score(_write_reply(target))
    return (
        f"reward {reward:g}, file {'exists' if target.exists() else 'absent'}",
        reward == 0 and not target.exists(),
    )


@case("sandbox: file write via bitwise_arithmetic metadata", "reward 0, no file")
def _sandbox_metadata(tmp: Path) -> Result:
    from adaptive_router.app.tasks import Task

    tmp.chmod(0o777)
    target = tmp / "pwned.txt"
    task = Task(
        id="x",
        prompt="p",
        answer="0x2",
        verifier="reasoning_gym:bitwise_arithmetic",
        metadata={"rg_metadata": {"problem": _write_reply(target)}},
    )
    reward = task.score("0x2")
    return (
        f"reward {reward:g}, file {'exists' if target.exists() else 'absent'}",
        reward == 0 and not target.exists(),
    )


@case("sandbox: socket connect from a reply", "reward 0, listener gets nothing")
def _sandbox_socket(tmp: Path) -> Result:
    from adaptive_router.app.verifiers import score

    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(1.0)
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        reward = score("python_tests", code, "")
        try:
            server.accept()
            got = "a connection"
        except TimeoutError:
            got = "nothing"
    return f"reward {reward:g}, listener got {got}", reward == 0 and got == "nothing"


@case("sandbox: infinite loop (1 s CPU limit)", "reward 0 within the limit")
def _sandbox_loop(tmp: Path) -> Result:
    from adaptive_router.app.verifiers import Sandbox, SandboxLimits, score

    with Sandbox(limits=SandboxLimits(cpu_seconds=1, wall_seconds=3)) as box:
        start = time.monotonic()
        reward = score("python_tests", "while True:\n    pass\n", "", sandbox=box)
        took = time.monotonic() - start
    return f"reward {reward:g} after {took:.1f} s", reward == 0 and took < 15


@case("sandbox: 10 GB allocation", "reward 0")
def _sandbox_memory(tmp: Path) -> Result:
    from adaptive_router.app.verifiers import score

    reward = score("python_tests", "block = bytearray(10 * 2**30)\n", "")
    return f"reward {reward:g}", reward == 0


@case("sandbox: legitimate answers", "reward 1 each")
def _sandbox_legit(tmp: Path) -> Result:
    from adaptive_router.app.tasks import load_dataset
    from adaptive_router.app.verifiers import score

    got = [
        t.score(t.answer)
        for name in ("spiral_matrix", "n_queens", "codeio")
        for t in load_dataset(f"rg:{name}:1:0")
    ]
    got.append(score("python_tests", "def f():\n    return 1\n", "assert f() == 1"))
    got.append(score("math", "$\\frac{1}{2}$", "0.5"))
    return f"rewards {got}", all(r == 1.0 for r in got)


@case("sandbox: score 500 sandboxed replies (spiral_matrix)", "seconds, not minutes")
def _sandbox_throughput(tmp: Path) -> Result:
    from adaptive_router.app.tasks import load_dataset

    tasks = load_dataset("rg:spiral_matrix:50:0")
    tasks[0].score(tasks[0].answer)  # warm: the server is up and the scorer built
    start = time.monotonic()
    for t in tasks:
        t.score_many([t.answer, "nope", "[1, 2]", _write_reply(tmp / "x"), *["1 2 3"] * 6])
    took = time.monotonic() - start
    return f"{took:.1f} s ({took * 2:.1f} ms/reply)", took < 30


# ------------------------------------------------------------------------------------------------ labelling
@case("label: KeyboardInterrupt mid-run, then resume", "no request after, nothing lost, no duplicate")
def _label_interrupt(tmp: Path) -> Result:
    from adaptive_router.app.labeling import LabelInterrupted, label_tasks
    from adaptive_router.app.tasks import arithmetic_tasks
    from adaptive_router.outcomes import OutcomeSet

    tasks = arithmetic_tasks(20, seed=0)
    calls: list[float] = []
    lock = threading.Lock()

    def backend(prompt: str) -> str:
        with lock:
            calls.append(time.monotonic())
            n = len(calls)
        if n == 15:
            raise KeyboardInterrupt
        time.sleep(0.01)
        return " 1"

    out = tmp / "o.jsonl"
    try:
        label_tasks(tasks, backend, out, samples=4, concurrency=2)
        return "not interrupted", False
    except LabelInterrupted as stop:
        written = stop.summary.written
    first = len(calls)
    time.sleep(1.0)
    late = len(calls) - first
    resumed = {"n": 0}

    def counting(prompt: str) -> str:
        resumed["n"] += 1
        return " 1"

    label_tasks(tasks, counting, out, samples=4, concurrency=2)
    data = OutcomeSet.read_jsonl(out)
    total = (first - 1) + resumed["n"]
    ok = late == 0 and total == 80 and len(data) == 20
    return (
        f"{first} sent, {late} after, {written} written; resume: {total} paid in all, {len(data)} records",
        ok,
    )


@case("label: SIGINT to the label command", "exit 130, no request after")
def _label_sigint(tmp: Path) -> Result:
    import subprocess

    with _fake_server() as state:
        cmd = [
            sys.executable,
            "-c",
            "from adaptive_router.app.cli import main; main()",
            "label",
            "arith:40",
            "--backend",
            "openai:m",
            "--base-url",
            state["url"],
            "--samples",
            "4",
            "--out",
            str(tmp / "o.jsonl"),
        ]
        env = dict(os.environ, OPENAI_API_KEY="x")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
        deadline = time.monotonic() + 60
        while state["calls"] < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        first = state["calls"]
        time.sleep(1.0)
        late = state["calls"] - first
    said = "interrupted: nothing more was sent" in err
    return f"exit {proc.returncode}, {late} requests after", proc.returncode == 130 and late == 0 and said


@case("label: resume with another --backend", "exit 2 before any request")
def _label_other_backend(tmp: Path) -> Result:
    with _fake_server() as state:
        out = tmp / "o.jsonl"
        base = ["label", "arith:3", "--base-url", state["url"], "--samples", "1", "--out", out]
        _cli(*base, "--backend", "openai:a")
        before = state["calls"]
        code, line = _cli(*base, "--backend", "openai:b")
        calls = state["calls"] - before
    return (
        f"exit {code}, {calls} requests: {line[:70]}",
        code == 2 and calls == 0 and "mix procedures" in line,
    )


@case("label: --cost nan", "exit 2 before any request")
def _label_cost(tmp: Path) -> Result:
    with _fake_server() as state:
        code, _ = _cli(
            "label",
            "arith:3",
            "--backend",
            "openai:m",
            "--base-url",
            state["url"],
            "--cost",
            "nan",
            "--out",
            tmp / "o.jsonl",
        )
    return f"exit {code}, {state['calls']} requests", code == 2 and state["calls"] == 0


@case("label: --stop '\\x' and --stop 'é'", "exit 2; non-ASCII kept")
def _label_stop(tmp: Path) -> Result:
    stops: list[Any] = []
    with _fake_server(lambda body: stops.append(body.get("stop"))) as state:
        base = ["label", "arith:1", "--backend", "openai:m", "--base-url", state["url"], "--samples", "1"]
        bad, _ = _cli(*base, "--stop", "\\x", "--out", tmp / "a.jsonl")
        good, _ = _cli(*base, "--stop", "é", "--out", tmp / "b.jsonl")
    return f"exit {bad} / exit {good}, stop sent {stops[:1]}", bad == 2 and good == 0 and stops == [["é"]]


@case("label: task metadata that is a list", "exit 2 naming the line")
def _label_metadata(tmp: Path) -> Result:
    src = tmp / "t.jsonl"
    src.write_text(json.dumps({"id": "a", "prompt": "1 + 1 =", "answer": "2", "metadata": [1]}) + "\n")
    code, line = _cli(
        "label", src, "--backend", "openai:m", "--base-url", "http://127.0.0.1:9/v1", "--out", tmp / "o"
    )
    return f"exit {code}: {line[-60:]}", code == 2 and "line 1" in line


@case("label/run: arith:0", "exit 2, 'N ... must be >= 1'")
def _arith_zero(tmp: Path) -> Result:
    code, line = _cli(
        "run", "arith:0", "--budget", "1", "--backend", "openai:m", "--base-url", "http://127.0.0.1:9/v1"
    )
    return f"exit {code}: {line[-50:]}", code == 2 and "must be >= 1, got 0" in line


# ------------------------------------------------------------------------------------------------ commands
@case("run: --json into a missing folder", "folder exists before the first request")
def _run_json(tmp: Path) -> Result:
    target = tmp / "new" / "run.json"
    seen: list[bool] = []
    with _fake_server(lambda body: seen.append(target.parent.is_dir())) as state:
        code, _ = _cli(
            "run",
            "arith:2",
            "--budget",
            "2",
            "--backend",
            "openai:m",
            "--base-url",
            state["url"],
            "--json",
            target,
        )
    return f"exit {code}, folder there at first request: {seen[:1]}", code == 0 and seen[:1] == [
        True
    ] and target.exists()


@case("train: --out is an existing file", "exit 2, file untouched")
def _train_out(tmp: Path) -> Result:
    out = tmp / "probe"
    out.write_text("keep")
    code, _ = _cli(
        "train", _outcome_file(tmp / "o.jsonl"), "--out", out, "--featurizer", "none", "--answer-signals"
    )
    return f"exit {code}", code == 2 and out.read_text() == "keep"


@case("train: --hidden -1", "exit 2")
def _train_hidden(tmp: Path) -> Result:
    code, line = _cli("train", _outcome_file(tmp / "o.jsonl"), "--out", tmp / "p", "--hidden", "-1")
    return f"exit {code}: {line[-40:]}", code == 2 and not (tmp / "p").exists()


@case("evaluate: --plot x.xyz", "exit 2 before the JSON is written")
def _evaluate_plot(tmp: Path) -> Result:
    report = tmp / "r.json"
    code, _ = _cli("evaluate", _outcome_file(tmp / "o.jsonl"), "--json", report, "--plot", tmp / "x.xyz")
    return (
        f"exit {code}, json {'written' if report.exists() else 'not written'}",
        code == 2 and not report.exists(),
    )


@case("evaluate/train/label: non-UTF-8 input", "exit 2 naming the file and line")
def _non_utf8(tmp: Path) -> Result:
    bad = tmp / "bad.jsonl"
    bad.write_bytes(b'{"id": "a", "prompt": "caf\xe9", "answer": "1", "outcomes": {"m": [{"reward": 1}]}}\n')
    codes = [
        _cli("evaluate", bad),
        _cli("train", bad, "--out", tmp / "p"),
        _cli(
            "label", bad, "--backend", "openai:m", "--base-url", "http://127.0.0.1:9/v1", "--out", tmp / "o"
        ),
    ]
    ok = all(code == 2 and "not UTF-8" in line and "line 1" in line for code, line in codes)
    return f"exits {[c for c, _ in codes]}", ok


@case("demo: --n-test 0", "exit 2, no run folder")
def _demo_args(tmp: Path) -> Result:
    code, _ = _cli("demo", "--out-dir", tmp / "runs", "--n-test", "0")
    folders = list((tmp / "runs").glob("demo-*"))
    return f"exit {code}, {len(folders)} run folders", code == 2 and not folders


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str]) -> int:
    wanted = [c for c in CASES if not argv or any(a in c[0] for a in argv)]
    start = time.monotonic()
    results = []
    for name, expected, fn in wanted:
        t = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                outcome, ok = fn(Path(tmp))
            except Exception as exc:  # a case that crashes has failed: report it, run the others
                outcome, ok = f"crashed: {type(exc).__name__}: {exc}"[:120], False
        results.append(
            {
                "case": name,
                "expected": expected,
                "outcome": outcome,
                "ok": bool(ok),
                "seconds": round(time.monotonic() - t, 2),
            }
        )
    widths = [max(len(r[k]) for r in results) for k in ("case", "expected")]
    print(f"| {'case':<{widths[0]}} | {'expected':<{widths[1]}} | outcome | ok |")
    print(f"|{'-' * (widths[0] + 2)}|{'-' * (widths[1] + 2)}|---|---|")
    for r in results:
        ok = "yes" if r["ok"] else "NO"
        print(f"| {r['case']:<{widths[0]}} | {r['expected']:<{widths[1]}} | {r['outcome']} | {ok} |")
    failed = [r["case"] for r in results if not r["ok"]]
    summary = {
        "cases": len(results),
        "passed": len(results) - len(failed),
        "failed": failed,
        "seconds": round(time.monotonic() - start, 1),
        "results": results,
    }
    print(json.dumps(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
