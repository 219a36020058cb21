"""Regression tests (issue 10): every CLI value is checked before anything is spent or written.

Each case failed late before the fix: after the model calls (``run --json`` into a missing folder, list
metadata in ``label``), after training (``train --out`` on a file), after the JSON report (``evaluate --plot
x.xyz``), 10-20 s into the demo with a half-written run folder, or with a traceback (non-UTF-8 input,
``--stop '\\x'``); or silently (``--cost nan`` in every record, ``--hidden -1`` as a linear head,
``--stop`` mangling non-ASCII text).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_openai_server import FakeOpenAIServer
from typer.testing import CliRunner

from adaptive_router.app.cli import app

runner = CliRunner()


@pytest.fixture
def server():
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def outcomes(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "o.jsonl"
    with path.open("w") as fh:
        for i in range(40):
            c = int(rng.binomial(4, [0.1, 0.5, 0.9][i % 3]))
            rec = {"id": f"q{i}", "prompt": f"q {i}", "outcomes": {"m": {"successes": c, "samples": 4}}}
            fh.write(json.dumps(rec) + "\n")
    return path


def _label(server, out, *extra):
    return [
        "label",
        "arith:3",
        "--backend",
        "openai:fake",
        "--base-url",
        server.base_url,
        "--out",
        str(out),
        *extra,
    ]


def _invoke(args):
    return runner.invoke(app, [str(a) for a in args], env={"OPENAI_API_KEY": "x"})


def _error(res, code=2):
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    return res.output


@pytest.mark.parametrize("cost", ["nan", "-5", "inf"])
def test_label_rejects_a_bad_cost_before_any_request(server, tmp_path, cost):
    out = tmp_path / "o.jsonl"
    assert "--cost must be a finite number >= 0" in _error(_invoke(_label(server, out, "--cost", cost)))
    assert server.count == 0 and not out.exists()


def test_label_stop_escapes_are_parsed_safely_and_keep_non_ascii(server, tmp_path):
    res = _invoke(_label(server, tmp_path / "a.jsonl", "--stop", "\\x"))
    assert "unknown escape '\\\\x' at position 1" in _error(res)
    assert server.count == 0
    res = _invoke(_label(server, tmp_path / "b.jsonl", "--stop", "é\\n", "--samples", "1"))
    assert res.exit_code == 0, res.output
    assert {tuple(b["stop"]) for b in server.bodies} == {("é\n",)}


def test_label_resume_with_another_backend_is_refused(server, tmp_path):
    out = tmp_path / "o.jsonl"
    assert _invoke(_label(server, out, "--samples", "1")).exit_code == 0
    calls = server.count
    res = _invoke(
        ["label", "arith:5", "--backend", "openai:other", "--base-url", server.base_url, "--out", out]
    )
    assert "holds outcomes of procedure 'fake', and this run records 'other'" in _error(res)
    assert server.count == calls


def test_label_rejects_list_metadata_and_non_utf8_tasks_before_any_request(server, tmp_path):
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(json.dumps({"id": "a", "prompt": "1 + 1 =", "answer": "2", "metadata": [1, 2]}) + "\n")
    res = _invoke(
        ["label", tasks, "--backend", "openai:fake", "--base-url", server.base_url, "--out", tmp_path / "o"]
    )
    assert "line 1: 'metadata' must be a JSON object, got list" in _error(res)
    tasks.write_bytes(b'{"id": "a", "prompt": "caf\xe9 =", "answer": "2"}\n')
    res = _invoke(
        ["label", tasks, "--backend", "openai:fake", "--base-url", server.base_url, "--out", tmp_path / "o"]
    )
    assert "line 1: not UTF-8 (byte 0xe9 at column 27)" in _error(res)
    assert server.count == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("arith:0", "bad dataset spec 'arith:0': N (the number of tasks) must be >= 1, got 0"),
        ("arith:x", "bad dataset spec 'arith:x': N (the number of tasks) must be an integer, got 'x'"),
        ("arith:2:y", "bad dataset spec 'arith:2:y': SEED must be an integer, got 'y'"),
    ],
)
def test_dataset_specs_get_the_right_message(server, tmp_path, spec, message):
    res = _invoke(
        ["label", spec, "--backend", "openai:fake", "--base-url", server.base_url, "--out", tmp_path / "o"]
    )
    assert message in _error(res)


def test_run_json_into_a_missing_folder_is_created_up_front(server, tmp_path):
    target = tmp_path / "new" / "dir" / "run.json"
    args = ["run", "arith:3", "--budget", "3", "--backend", "openai:fake", "--base-url", server.base_url]
    res = _invoke([*args, "--json", target])
    assert res.exit_code == 0, res.output
    assert json.loads(target.read_text())["queries"] == 3
    calls = server.count
    assert "is a folder; give a file name" in _error(_invoke([*args, "--json", tmp_path]))
    assert "--budget must be a finite number > 0" in _error(_invoke([*args[:3], "nan", *args[4:]]))
    assert server.count == calls  # neither started a request


def test_train_refuses_a_file_as_out_and_a_negative_hidden_before_training(outcomes, tmp_path):
    existing = tmp_path / "probe"
    existing.write_text("keep me")
    base = ["train", outcomes, "--featurizer", "none", "--answer-signals"]
    res = _invoke([*base, "--out", existing])
    assert "is a file; the probe is saved as a folder" in _error(res)
    assert existing.read_text() == "keep me"
    res = _invoke([*base, "--out", tmp_path / "p2", "--hidden", "-1"])
    assert "--hidden must be >= 0 (0 is a linear head), got -1" in _error(res)
    assert not (tmp_path / "p2").exists()


def test_evaluate_checks_the_plot_format_before_writing_anything(outcomes, tmp_path):
    report = tmp_path / "r.json"
    res = _invoke(["evaluate", outcomes, "--json", report, "--plot", tmp_path / "x.xyz", "--max-k", "4"])
    out = _error(res)
    assert "--plot" in out and "one of" in out and ".png" in out
    assert not report.exists()


def test_non_utf8_outcomes_are_an_error_line_for_evaluate_and_train(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "a", "prompt": "caf\xe9", "outcomes": {"m": [{"reward": 1}]}}\n')
    for args in (["evaluate", bad], ["train", bad, "--out", tmp_path / "p"]):
        assert f"{bad}: line 1: not UTF-8 (byte 0xe9" in _error(_invoke(args))


def test_demo_arguments_are_checked_before_a_run_folder_exists(tmp_path):
    runs = tmp_path / "runs"
    for args, message in (
        (["--n-test", "0"], "n_test must be an integer >= 10"),
        (["--samples", "2", "--max-k", "4"], "samples (2) must be >= max_k (4)"),
        (["--budgets", "-1"], "--budgets must be positive finite numbers"),
        (["--budgets", "0.5,2", "--no-routing"], "budgets must be finite numbers >= 1 (calls per query)"),
    ):
        assert message in _error(_invoke(["demo", "--out-dir", runs, *args]))
    assert not list(runs.glob("demo-*"))
