"""convert-routellm's default form (the cascade where the files keep Mixtral's answers) and `train`'s
defaults on it, on small synthetic RouteLLM folders."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptive_router.app.cli import app
from adaptive_router.app.routellm import ROUTELLM_MODELS, convert_routellm
from adaptive_router.errors import ConfigError
from adaptive_router.prompts import has_draft, split_draft

runner = CliRunner()
DRAFT_COLUMN = f"{ROUTELLM_MODELS['mixtral']}_response"


def _gsm8k(root, n=40, drafts=True, seed=0):
    """``root/gsm8k/gsm8k_responses.csv``: a slip in the draft's arithmetic is what Mixtral gets wrong."""
    folder = root / "gsm8k"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with (folder / "gsm8k_responses.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", *ROUTELLM_MODELS.values(), *([DRAFT_COLUMN] if drafts else [])])
        for i in range(n):
            a, b = int(rng.integers(2, 90)), int(rng.integers(2, 90))
            slip = bool(rng.random() < 0.35)
            total = a + b + 7 * slip
            work = f"{a} + {b} = {total}"
            draft = f"{work}\n#### {total}" if i % 3 else f"{work}. The answer is {total}."
            ok = (not slip) or bool(rng.random() < 0.1)
            writer.writerow([f"question {i}", ok, True, *([draft] if drafts else [])])
    return root


def _mmlu(root, n=12):
    folder = root / "mmlu" / "responses"
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"q {i},{i % 2 == 0},True\n" for i in range(n))
    (folder / "mmlu_algebra.csv").write_text("prompt," + ",".join(ROUTELLM_MODELS.values()) + "\n" + rows)
    return root


def test_gsm8k_is_a_cascade_by_default(tmp_path) -> None:
    data, notes = convert_routellm(_gsm8k(tmp_path), "gsm8k")
    assert notes["cascade"] is True
    assert all(has_draft(t) for t in data.texts())
    assert split_draft(data.texts()[0])[0] == "question 0"
    assert data.procedure_costs == {"mixtral": 1.0, "gpt-4": 11.0}  # every query pays for the draft

    plain, notes = convert_routellm(tmp_path, "gsm8k", cascade=False)
    assert notes["cascade"] is False and not any(has_draft(t) for t in plain.texts())
    assert plain.procedure_costs == {"mixtral": 1.0, "gpt-4": 10.0}


def test_files_without_answers_stay_prompt_only(tmp_path) -> None:
    data, notes = convert_routellm(_gsm8k(tmp_path, drafts=False), "gsm8k")
    assert notes["cascade"] is False and not any(has_draft(t) for t in data.texts())
    with pytest.raises(ConfigError, match="missing columns"):
        convert_routellm(tmp_path, "gsm8k", cascade=True)
    data, notes = convert_routellm(_mmlu(tmp_path), "mmlu")  # MMLU keeps no answers: no error by default
    assert notes["cascade"] is False and len(data) == 12
    with pytest.raises(ConfigError, match="cheap model's answers"):
        convert_routellm(tmp_path, "mmlu", cascade=True)


def test_cli_convert_says_which_form(tmp_path) -> None:
    _mmlu(_gsm8k(tmp_path / "routellm"))
    src, out = str(tmp_path / "routellm"), tmp_path / "out"
    res = runner.invoke(app, ["convert-routellm", src, "--task", "gsm8k", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "cascade form" in res.output and "every query pays for it" in res.output
    first = json.loads((out / "gsm8k.jsonl").read_text().splitlines()[0])
    assert has_draft(first["prompt"]) and first["cost"]["gpt-4"] == 11.0

    res = runner.invoke(app, ["convert-routellm", src, "--task", "gsm8k", "--out", str(out), "--no-cascade"])
    assert res.exit_code == 0, res.output
    assert "cascade form" not in res.output
    first = json.loads((out / "gsm8k.jsonl").read_text().splitlines()[0])
    assert first["prompt"] == "question 0" and first["cost"]["gpt-4"] == 10.0

    res = runner.invoke(app, ["convert-routellm", src, "--task", "mmlu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "cascade form" not in res.output
    res = runner.invoke(app, ["convert-routellm", src, "--task", "mmlu", "--out", str(out), "--cascade"])
    assert res.exit_code == 2 and "cheap model's answers" in res.output


def test_train_defaults_choose_the_draft_signals(tmp_path, monkeypatch) -> None:
    """No featurizer flags: `train` sees the drafts and offers the answer signals to validation (here the
    only candidate: the model featurizers are left out, and the head is given, to keep the test fast)."""
    pytest.importorskip("torch")
    from adaptive_router.probe import training

    monkeypatch.setattr(training, "AUTO_FEATURIZERS", ())
    out = tmp_path / "out"
    res = runner.invoke(app, ["convert-routellm", str(_gsm8k(tmp_path / "rl", n=200)), "--task", "gsm8k",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", str(out / "gsm8k.train.jsonl"), "--out", str(tmp_path / "p"),
                              "--budgets", "3,5", "--hidden", "0", "--l2", "1", "--neighbors", "0"])
    assert res.exit_code == 0, res.output
    assert "every prompt carries a draft" in res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["selection"]["drafts"]["answer_signals"] is True
    assert report["selection"]["chosen"].startswith("answer-signals")
    assert report["featurizer"]["signals"]["final_answer"] == "auto"  # no --final-answer needed
    assert not report["fallback"]
    res = runner.invoke(app, ["evaluate", str(out / "gsm8k.test.jsonl"), "--probe", str(tmp_path / "p"),
                              "--budgets", "3,5", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    share = json.loads((tmp_path / "r.json").read_text())["routing"]["expensive_share"]
    assert share["adaptive"] < share["random"]
