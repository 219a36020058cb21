"""Tests for adaptive_router.app.cli through typer's CliRunner on small synthetic files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptive_router.app.cli import app
from adaptive_router.app.routellm import ROUTELLM_MODELS
from adaptive_router.probe.signals import split_draft

runner = CliRunner()


def _best_of_k_file(path, n=60, samples=4, seed=0):
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for i in range(n):
            p = [0.0, 0.2, 0.9][i % 3]
            c = int(rng.binomial(samples, p))
            prompt = ["easy sum", "medium sum", "impossible proof"][i % 3] + f" #{i}"
            fh.write(
                json.dumps(
                    {"id": f"q{i}", "prompt": prompt, "outcomes": {"m": {"successes": c, "samples": samples}}}
                )
                + "\n"
            )
    return path


def _routing_file(path, n=80):
    with path.open("w") as fh:
        for i in range(n):
            outs = {"weak": [{"reward": float(i % 4 == 0)}], "strong": [{"reward": float(i % 4 != 3)}]}
            fh.write(
                json.dumps(
                    {
                        "id": str(i),
                        "prompt": f"question {i}",
                        "outcomes": outs,
                        "cost": {"weak": 1, "strong": 10},
                    }
                )
                + "\n"
            )
    return path


def test_evaluate_without_probe_writes_json_and_plot(tmp_path):
    src = _best_of_k_file(tmp_path / "o.jsonl")
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(src),
            "--budgets",
            "1,2,4",
            "--json",
            str(tmp_path / "r.json"),
            "--plot",
            str(tmp_path / "c.png"),
            "--max-k",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "| budget (cost units per query) | hull | best_single | uniform | random | oracle |" in res.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["budgets"] == [1.0, 2.0, 4.0]
    one_shot = {"hull", "best_single", "uniform", "random", "oracle"}
    assert one_shot | {"sequential"} <= set(rep["methods"]) and "esc" not in rep["methods"]  # no answers
    assert set(rep["aiq"]) == set(rep["sweep"]["quality"]) and rep["aiq_cost_range"] == [1.0, 4.0]
    assert rep["methods"]["uniform"]["spend"] == pytest.approx([1.0, 2.0, 4.0])
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_routing_split_and_costs(tmp_path):
    src = _routing_file(tmp_path / "r.jsonl")
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(src),
            "--budgets",
            "2,5",
            "--split",
            "test",
            "--json",
            str(tmp_path / "r.json"),
            "--costs",
            "weak=1,strong=5",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["kind"] == "routing" and rep["costs"] == {"weak": 1.0, "strong": 5.0}
    assert rep["n_queries"] < 80 and rep["source"]["split"] == "test"
    assert rep["routing"]["expensive"] == "strong"
    assert "call share needed" in res.output


def test_evaluate_defaults_budgets_within_recorded_dollar_costs(tmp_path):
    """Costs recorded in dollars, no --prices, no --budgets: five budgets from the cheapest model to the
    dearest, not 1, 2 and 4 "units" above every model."""
    rng = np.random.default_rng(3)
    price = {"small": 1e-4, "mid": 6e-4, "big": 3e-3}
    acc = {"small": 0.3, "mid": 0.6, "big": 0.8}
    src = tmp_path / "d.jsonl"
    with src.open("w") as fh:
        for i in range(60):
            outs = {m: [{"reward": float(rng.random() < acc[m]), "cost": price[m]}] for m in price}
            fh.write(json.dumps({"id": str(i), "prompt": f"question {i}", "outcomes": outs}) + "\n")
    res = runner.invoke(app, ["evaluate", str(src), "--json", str(tmp_path / "d.json")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "d.json").read_text())
    assert len(rep["budgets"]) == 5
    assert rep["budgets"][0] == pytest.approx(1e-4) and rep["budgets"][-1] == pytest.approx(3e-3)
    hull = rep["methods"]["hull"]["quality"]
    assert hull[0] < hull[-1]  # the budgets tell the models apart
    assert rep["routing"]["match_cost_share"]["hull"] == pytest.approx(1.0)


def _priced_file(path, n=60):
    """Three models recording token counts, no cost: `--prices` turns them into dollars."""
    rng = np.random.default_rng(1)
    acc = {"small": 0.3, "mid": 0.6, "big": 0.8}
    with path.open("w") as fh:
        for i in range(n):
            outs = {m: [{"reward": float(rng.random() < q), "input_tokens": 400, "output_tokens": 100}]
                    for m, q in acc.items()}
            fh.write(json.dumps({"id": str(i), "prompt": f"question {i}", "outcomes": outs}) + "\n")
    return path


_PRICES = "[models.small]\ninput = 0.05\noutput = 0.1\n[models.mid]\ninput = 0.5\noutput = 1.5\n" \
    "[models.big]\ninput = 5\noutput = 15\n"


def test_evaluate_with_prices_reports_dollars_hull_and_aiq(tmp_path):
    src = _priced_file(tmp_path / "o.jsonl")
    (tmp_path / "p.toml").write_text(_PRICES)
    out = tmp_path / "r.json"
    args = ["evaluate", str(src), "--prices", str(tmp_path / "p.toml"), "--json", str(out)]
    res = runner.invoke(app, [*args, "--plot", str(tmp_path / "c.png")])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    cheap, dear = (400 * 0.05 + 100 * 0.1) / 1e6, (400 * 5 + 100 * 15) / 1e6  # $3e-5 and $3.5e-3 a query
    assert rep["cost_unit"] == "$" and rep["costs"]["big"] == pytest.approx(dear)
    assert rep["budgets"] == pytest.approx(np.geomspace(cheap, dear, 5))  # no --budgets: log-spaced
    assert rep["aiq_cost_range"] == pytest.approx([cheap, dear])
    assert {"hull", "best_single", "uniform", "random", "oracle"} <= set(rep["aiq"])
    assert len(rep["methods"]["hull"]["quality"]) == 5
    assert "$ per 1,000 queries" in res.output and "(0.00)" not in res.output and "| AIQ |" in res.output
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_train_by_default_leaves_featurizer_head_and_neighbours_to_validation(tmp_path, monkeypatch):
    seen = _fake_training(monkeypatch)
    src = _priced_file(tmp_path / "o.jsonl")
    res = runner.invoke(app, ["train", str(src), "--out", str(tmp_path / "probe")])
    assert res.exit_code == 0, res.output
    assert seen["featurizer"] == "auto" and seen["featurizers"] == []  # train_probe chooses its featurizer
    assert not {"hidden", "l2", "neighbors"} & set(seen)
    args = ["train", str(src), "--out", str(tmp_path / "p2"), "--hidden", "0", "--neighbors", "0"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (seen["hidden"], seen["neighbors"]) == (0, 0) and "l2" not in seen
    res = runner.invoke(app, ["train", str(src), "--out", str(tmp_path / "p3"), "--layers", "9"])
    assert res.exit_code == 2 and "--layers and --pooling configure one featurizer" in res.output


@pytest.mark.parametrize(
    ("prices", "extra", "message"),
    [
        ("[models.small\n", [], "error: the price file '{p}' does not parse"),
        ("[models.small]\ninput = 1\n", [], "error: {p}: the price of 'small': it needs exactly the keys"),
        (_PRICES, ["--costs", "small=1,mid=2,big=3"], "error: give --costs or --prices, not both"),
        ("[models.small]\ninput = 1\noutput = 1\n", [], "error: the price table has no price for procedure"),
    ],
)
def test_evaluate_refuses_bad_prices_before_any_work(tmp_path, prices, extra, message):
    src = _priced_file(tmp_path / "o.jsonl", n=4)
    price_file = tmp_path / "p.toml"
    price_file.write_text(prices)
    probe = tmp_path / "no-probe"  # never loaded: the prices fail first
    args = ["evaluate", str(src), "--prices", str(price_file), "--probe", str(probe), *extra]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and message.format(p=price_file) in res.output, res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "missing.jsonl"], "error: outcome file 'missing.jsonl' does not exist"),
        (["evaluate", "{src}", "--budgets", "a,b"], "error: --budgets must be comma-separated numbers"),
        (["evaluate", "{src}", "--costs", "m"], "error: cannot parse cost 'm'"),
        (["evaluate", "{src}", "--split", "middle"], "error: --split must be all, train or test"),
        (["evaluate", "{bad}"], "error: "),
        (["label", "arith:x", "--out", "o.jsonl"], "error: bad dataset spec 'arith:x'"),
        (["label", "arith:3", "--out", "o.jsonl", "--backend", "nope"], "error: unknown backend 'nope'"),
        (["label", "arith:3", "--out", "o.jsonl", "--backend", "llama:x"], "error: unknown local model 'x'"),
        (["label", "arith:3", "--out", "o.jsonl", "--mode", "raw"], "error: --mode must be 'completions'"),
        (["run", "arith:3", "--budget", "3", "--backend", "llama:smollm"], "use llama:gemma or openai:MODEL"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    src = _best_of_k_file(tmp_path / "o.jsonl", n=9)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "p", "outcomes": {"m": []}}\n')
    args = [a.format(src=src, bad=bad) for a in args]
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_label_reports_failed_queries_when_nothing_answers(tmp_path):
    out = tmp_path / "o.jsonl"
    args = ["label", "arith:2", "--out", str(out), "--backend", "openai:m", "--samples", "1"]
    res = runner.invoke(app, [*args, "--retries", "1", "--base-url", "http://127.0.0.1:9/v1"])
    assert res.exit_code == 1, res.output
    assert "is the server running" in res.output
    assert "2 queries failed; run the same command again" in res.output
    assert not out.exists() or out.read_text() == ""


def test_bad_outcome_line_names_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "x", "prompt": "p", "outcomes": {"m": [{"reward": 1}]}}\n'
        '{"id": "y", "prompt": "p", "outcomes": {"m": [{"score": 1}]}}\n'
    )
    res = runner.invoke(app, ["evaluate", str(bad)])
    assert res.exit_code == 2
    assert "line 2: outcomes.m[0] has no 'reward'" in res.output


def test_convert_routellm_small_folder(tmp_path):
    root = tmp_path / "routellm" / "gsm8k"
    root.mkdir(parents=True)
    cols = "prompt,mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview\n"
    rows = "".join(f"question {i},{i % 2 == 0},True\n" for i in range(40))
    (root / "gsm8k_responses.csv").write_text(cols + rows)
    (root / "contaminated_prompts.jsonl").write_text(json.dumps({"eval_prompt": "question 3"}) + "\n")
    res = runner.invoke(
        app,
        ["convert-routellm", str(tmp_path / "routellm"), "--task", "gsm8k", "--out", str(tmp_path / "out")],
    )
    assert res.exit_code == 0, res.output
    assert "40 rows, 1 contaminated excluded, 39 kept" in res.output
    lines = (tmp_path / "out" / "gsm8k.jsonl").read_text().splitlines()
    assert len(lines) == 39
    first = json.loads(lines[0])
    assert first["outcomes"] == {"mixtral": [{"reward": 1.0}], "gpt-4": [{"reward": 1.0}]}
    n_train = len((tmp_path / "out" / "gsm8k.train.jsonl").read_text().splitlines())
    n_test = len((tmp_path / "out" / "gsm8k.test.jsonl").read_text().splitlines())
    assert n_train + n_test == 39
    res = runner.invoke(app, ["convert-routellm", str(tmp_path), "--task", "mtbench", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "task must be 'gsm8k' or 'mmlu'" in res.output


def test_cascade_convert_train_evaluate(tmp_path):
    """Drafts whose arithmetic is off are the ones Mixtral gets wrong: a signals-only probe must find them."""
    pytest.importorskip("torch")
    root = tmp_path / "routellm" / "gsm8k"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with (root / "gsm8k_responses.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", *ROUTELLM_MODELS.values(), f"{ROUTELLM_MODELS['mixtral']}_response"])
        for i in range(400):
            a, b = int(rng.integers(2, 90)), int(rng.integers(2, 90))
            slip = bool(rng.random() < 0.35)
            draft = f"{a} + {b} = {a + b + 7 * slip}\n#### {a + b + 7 * slip}"
            writer.writerow([f"question {i}", (not slip) or bool(rng.random() < 0.1), True, draft])
    res = runner.invoke(
        app,
        [
            "convert-routellm",
            str(tmp_path / "routellm"),
            "--task",
            "gsm8k",
            "--out",
            str(tmp_path / "out"),
            "--cascade",
        ],
    )
    assert res.exit_code == 0, res.output
    first = json.loads((tmp_path / "out" / "gsm8k.jsonl").read_text().splitlines()[0])
    assert split_draft(first["prompt"])[0] == "question 0" and first["cost"] == {
        "mixtral": 1.0,
        "gpt-4": 11.0,
    }
    res = runner.invoke(
        app,
        [
            "train",
            str(tmp_path / "out" / "gsm8k.train.jsonl"),
            "--out",
            str(tmp_path / "p"),
            "--featurizer",
            "none",
            "--answer-signals",
            "--final-answer",
            r"####\s*(.+)",
            "--budgets",
            "3,5",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "out" / "gsm8k.test.jsonl"),
            "--probe",
            str(tmp_path / "p"),
            "--budgets",
            "3,5",
            "--json",
            str(tmp_path / "r.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    share = json.loads((tmp_path / "r.json").read_text())["routing"]["expensive_share"]
    assert share["adaptive"] < share["oracle"] + 0.1 < share["random"]
    res = runner.invoke(
        app,
        [
            "train",
            str(tmp_path / "out" / "gsm8k.train.jsonl"),
            "--out",
            str(tmp_path / "q"),
            "--featurizer",
            "none",
        ],
    )
    assert res.exit_code == 2 and "needs --answer-signals" in res.output
    train_file = str(tmp_path / "out" / "gsm8k.train.jsonl")
    res = runner.invoke(app, ["train", train_file, "--out", str(tmp_path / "q"), "--layers", "9.5"])
    assert res.exit_code == 2 and "--layers must be comma-separated integers" in res.output
    res = runner.invoke(
        app,
        [
            "convert-routellm",
            str(tmp_path / "routellm"),
            "--task",
            "mmlu",
            "--out",
            str(tmp_path / "out"),
            "--cascade",
        ],
    )
    assert res.exit_code == 2


@pytest.mark.realmodel
def test_train_then_evaluate_with_probe(tmp_path):
    pytest.importorskip("torch")
    src = _best_of_k_file(tmp_path / "o.jsonl", n=90, samples=8)
    res = runner.invoke(
        app,
        ["train", str(src), "--out", str(tmp_path / "probe"), "--max-k", "4", "--split", "train",
         "--featurizer", "minilm-l6", "--layers", "5", "--pooling", "mean", "--hidden", "0", "--l2", "0.1",
         "--neighbors", "10"],
    )
    assert res.exit_code == 0, res.output
    assert "fallback_active" in res.output
    manifest = json.loads((tmp_path / "probe" / "manifest.json").read_text())
    assert manifest["featurizer"]["layers"] == [5] and manifest["featurizer"]["pooling"] == "mean"
    params = manifest["estimator_params"]
    assert (params["hidden"], params["l2"], params["neighbors"]) == (0, 0.1, 10)
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(src),
            "--probe",
            str(tmp_path / "probe"),
            "--split",
            "test",
            "--budgets",
            "1,2",
            "--json",
            str(tmp_path / "r.json"),
            "--max-k",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r.json").read_text())
    one_shot = {"hull", "best_single", "uniform", "random", "adaptive", "oracle"}
    assert one_shot | {"sequential"} <= set(rep["methods"])
    assert "adaptive savings" in res.output and "adaptive" in rep["aiq"]


def _fake_sampling_model(replies):
    """Stand-in for the label and run commands' sampling_model: one callable per --backend, no server."""
    import contextlib

    @contextlib.contextmanager
    def fake(backend, **kwargs):
        yield replies(backend), backend.partition(":")[2]

    return fake


def test_label_with_reward_model_records_scores(tmp_path, monkeypatch, tiny_reward_model):
    import adaptive_router.app.cli.label as cli_label
    from adaptive_router.outcomes import OutcomeSet

    rm_dir = tiny_reward_model
    src = tmp_path / "d.jsonl"
    src.write_text(
        json.dumps({"id": "a", "prompt": "2 + 2 =", "answer": "4"})
        + "\n"
        + json.dumps({"id": "b", "prompt": "3 + 3 =", "answer": "6"})
        + "\n"
    )
    monkeypatch.setattr(cli_label, "sampling_model", _fake_sampling_model(lambda b: lambda p: " 4"))
    out = tmp_path / "o.jsonl"
    args = ["label", str(src), "--out", str(out), "--backend", "openai:m", "--samples", "2"]
    res = runner.invoke(app, [*args, "--reward-model", str(rm_dir)])
    assert res.exit_code == 0, res.output
    data = OutcomeSet.read_jsonl(out)
    by_id = dict(zip(data.ids, data.rewards("m").tolist(), strict=True))  # records land as they finish
    assert by_id == {"a": [1.0, 1.0], "b": [0.0, 0.0]}
    assert data.scores("m") is not None and np.isfinite(data.scores("m")).all()
    res = runner.invoke(app, [*args, "--reward-model", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "--reward-model" in res.output and "is not a folder" in res.output


def _route_setup(tmp_path, monkeypatch):
    """4 tasks; llama:smollm answers only the first two right, llama:gemma all; no servers start."""
    import adaptive_router.app.cli.run as cli_run

    tasks = [("e1", "1 + 1 =", "2"), ("e2", "2 + 2 =", "4")]
    tasks += [("h1", "123 + 456 =", "579"), ("h2", "99 * 9 =", "891")]
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"id": i, "prompt": p, "answer": a}) + "\n" for i, p, a in tasks))
    answers = {p: a for _, p, a in tasks}
    calls = []

    def replies(backend):
        def reply(prompt):
            calls.append(backend)
            right = backend == "llama:gemma" or prompt in ("1 + 1 =", "2 + 2 =")
            return f" {answers[prompt]}" if right else " 0"

        return reply

    monkeypatch.setattr(cli_run, "sampling_model", _fake_sampling_model(replies))
    return src, calls


def test_run_route_with_probe_reports_accuracy_spend_and_expensive_share(tmp_path, monkeypatch, table_probe):
    from adaptive_router.probe import Probe

    src, calls = _route_setup(tmp_path, monkeypatch)
    probe = table_probe(
        table={"1 + 1 =": 0.9, "2 + 2 =": 0.9, "123 + 456 =": 0.2, "99 * 9 =": 0.2},
        procedures=("cheap", "expensive"),
        max_k=1,
        procedure_scale={"expensive": 5.0},
    )
    monkeypatch.setattr(Probe, "load", classmethod(lambda cls, path: probe))
    route = ["--route", "cheap=llama:smollm,expensive=llama:gemma", "--costs", "cheap=1,expensive=4"]
    out = tmp_path / "run.json"
    args = ["run", str(src), "--budget", "10", "--probe", str(tmp_path), *route, "--json", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "quality 100.0% on 4 queries" in res.output
    assert "50.0% of queries sent to 'expensive'" in res.output
    rep = json.loads(out.read_text())
    assert rep["expensive"] == "expensive" and rep["expensive_share"] == 0.5
    assert rep["spend"] == 2.5 and rep["costs"] == {"cheap": 1.0, "expensive": 4.0}
    assert rep["procedure_counts"] == {"cheap": 2, "expensive": 2}
    assert sorted(calls) == ["llama:gemma", "llama:gemma", "llama:smollm", "llama:smollm"]
    # without a probe: uniform, the most expensive route that fits 2.5 units/query for every query
    res = runner.invoke(app, ["run", str(src), "--budget", "10", *route, "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["expensive_share"] == 0.0 and "quality 50.0%" in res.output
    # a probe that predicts other procedures: one line, before anything is sampled
    probe._procedures = ("weak", "strong")
    calls.clear()
    res = runner.invoke(app, ["run", str(src), "--budget", "10", "--probe", str(tmp_path), *route])
    assert res.exit_code == 2 and not calls
    assert "error: --route names ['cheap', 'expensive'] are not procedures of the probe" in res.output


def test_run_best_of_k_is_unchanged(tmp_path, monkeypatch):
    src, calls = _route_setup(tmp_path, monkeypatch)
    args = ["run", str(src), "--budget", "8", "--backend", "openai:m", "--max-k", "2"]
    res = runner.invoke(app, [*args, "--rounds", "off"])
    assert res.exit_code == 0, res.output
    assert "quality 50.0% on 4 queries; 8 calls" in res.output and "k histogram {'2': 4}" in res.output
    assert calls == ["openai:m"] * 8
    # in rounds (the default) a query the verifier passed after its first sample gets no second one
    calls.clear()
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "quality 50.0% on 4 queries" in res.output and len(calls) < 8
    res = runner.invoke(app, [*args, "--rounds", "sometimes"])
    assert res.exit_code == 2 and "--rounds must be auto or off" in res.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--route", "cheap=llama:smollm"], "--route needs two or more routes"),
        (["--route", "cheap=llama:smollm,llama:gemma"], "cannot parse route 'llama:gemma'"),
        (["--route", "a=llama:smollm,b=llama:gemma"], "needs --costs for exactly its routes ['a', 'b']"),
        (["--route", "a=llama:smollm,b=llama:gemma", "--costs", "a=1,b=0"], "--costs must be positive"),
        (["--route", "a=llama:smollm,b=llama:gemma", "--costs", "a=1,b=4", "--max-k", "2"], "--max-k is for"),
        (["--costs", "a=1"], "--costs is for --route"),
        (["--route", "a=llama:smollm,b=llama:gemma", "--costs", "a=3,b=4"], "below one call per query"),
    ],
)
def test_run_route_bad_input(tmp_path, monkeypatch, extra, message):
    src, calls = _route_setup(tmp_path, monkeypatch)
    res = runner.invoke(app, ["run", str(src), "--budget", "10", *extra])
    assert res.exit_code == 2 and message in res.output and not calls, res.output


@pytest.mark.realmodel
def test_run_route_on_real_local_models(tmp_path, require_llama):
    """SmolLM2-135M (cheap) vs Gemma-3-270M (expensive): two llama.cpp servers the command starts, stops."""
    out = tmp_path / "run.json"
    route = ["--route", "cheap=llama:smollm,expensive=llama:gemma", "--costs", "cheap=1,expensive=2"]
    res = runner.invoke(app, ["run", "arith:4:1", "--budget", "8", *route, "--json", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["procedure_counts"] == {"expensive": 4} and rep["expensive_share"] == 1.0
    assert rep["spend"] == 2.0 and rep["total_calls"] == 4.0 and 0.0 <= rep["quality"] <= 1.0


class _FakeProbe:
    fallback_active = False

    def __init__(self):
        self.report = {}

    def save(self, path):
        path.mkdir(parents=True, exist_ok=True)


def _fake_training(monkeypatch):
    """`train` without torch: records the featurizer built and what `train_probe` was given."""
    import adaptive_router.probe as probe_pkg

    seen: dict = {"featurizers": []}

    def get_featurizer(name, **kwargs):
        seen["featurizers"].append(name)
        return object()

    def train_probe(data, **kwargs):
        seen.update(kwargs)
        return _FakeProbe()

    monkeypatch.setattr(probe_pkg, "get_featurizer", get_featurizer)
    monkeypatch.setattr(probe_pkg, "train_probe", train_probe)
    return seen


def test_train_with_prices_validates_on_the_dollar_costs_evaluate_uses(tmp_path, monkeypatch):
    seen = _fake_training(monkeypatch)
    src = _priced_file(tmp_path / "o.jsonl")
    (tmp_path / "p.toml").write_text(_PRICES)
    res = runner.invoke(app, ["train", str(src), "--out", str(tmp_path / "probe"), "--prices",
                              str(tmp_path / "p.toml")])
    assert res.exit_code == 0, res.output
    cheap, dear = (400 * 0.05 + 100 * 0.1) / 1e6, (400 * 5 + 100 * 15) / 1e6
    assert seen["costs"] == pytest.approx({"small": cheap, "mid": (400 * 0.5 + 100 * 1.5) / 1e6, "big": dear})
    assert seen["budgets"] == pytest.approx(np.geomspace(cheap, dear, 5))  # evaluate's default dollar budgets
    res = runner.invoke(app, ["train", str(src), "--out", str(tmp_path / "probe2"), "--costs",
                              "small=1,mid=2,big=3"])
    assert res.exit_code == 0, res.output
    assert seen["costs"] == {"small": 1.0, "mid": 2.0, "big": 3.0} and seen["budgets"] == [1.0, 2.0, 4.0]


@pytest.mark.parametrize(
    ("prices", "extra", "message"),
    [
        ("[models.small\n", [], "error: the price file '{p}' does not parse"),
        (_PRICES, ["--costs", "small=1,mid=2,big=3"], "error: give --costs or --prices, not both"),
        ("[models.small]\ninput = 1\noutput = 1\n", [], "error: the price table has no price for procedure"),
    ],
)
def test_train_refuses_bad_prices_before_any_work(tmp_path, monkeypatch, prices, extra, message):
    seen = _fake_training(monkeypatch)
    src = _priced_file(tmp_path / "o.jsonl", n=4)
    price_file = tmp_path / "p.toml"
    price_file.write_text(prices)
    args = ["train", str(src), "--out", str(tmp_path / "probe"), "--prices", str(price_file), *extra]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and message.format(p=price_file) in res.output, res.output
    assert seen["featurizers"] == [] and "costs" not in seen and not (tmp_path / "probe").exists()


@pytest.mark.parametrize("command", ["label", "train", "evaluate"])
def test_help_names_the_ray_extra(command):
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "pip install 'adaptive-router[ray]'" in res.output, res.output
