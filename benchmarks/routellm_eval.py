"""RouteLLM's Mixtral-vs-GPT-4 outcomes through the user-facing commands: convert -> train -> evaluate.

Runs exactly what a user runs (``adaptive-router convert-routellm``, ``train``, ``evaluate``) on GSM8K
and MMLU from ``../shared/data/routellm`` beside the repository (Apache-2.0, lm-sys/RouteLLM;
contaminated prompts excluded; 50/50 split by a stable hash of the record id, seed 0; `train`'s defaults:
the featurizer, head and neighbour weight chosen on validation) and prints the GPT-4 call
share each method needs to reach 95% of GPT-4's accuracy on the test half, beside RouteLLM's published
figures (its best routers cut GPT-4 calls by about 35% on GSM8K and 45% on MMLU at 95% of GPT-4 quality,
i.e. about 65% / 55% GPT-4 calls). The last line is one JSON object with the headline numbers.

``--trainer api`` trains with ``train_probe``'s defaults instead of ``adaptive-router train``'s options:
the featurizer (MiniLM-L6 or Gemma-3-270M layer 9), the head (linear with ``l2=1`` or the MLP) and the
neighbour weight chosen on validation inside training (docs/probe.md), with the costs and ``max_k`` the CLI
uses; ``evaluate`` is still the CLI. It is what ``train`` runs with its defaults (``--featurizer auto``, no
``--hidden``/``--l2``/``--neighbors`` given), called in process.

With the CLI's defaults GSM8K is a cascade: ``convert-routellm`` keeps Mixtral's answer as the draft in every
GSM8K prompt (its files keep the answers; every query pays for the draft, so ``gpt-4`` costs 11) and
``train --featurizer auto`` sees the drafts and also offers the draft's answer signals, alone and with each
featurizer, to validation. MMLU's files keep no answers: its prompts stay prompt-only.
``--prompt-only`` converts with ``--no-cascade`` (the question alone, GPT-4 costs 10), as before the cascade
default. ``--cascade`` runs the explicit cascade flags instead (GSM8K only): ``convert-routellm --cascade``
and ``train --featurizer none --answer-signals --final-answer '####\\s*(.+)'`` (the draft checks alone).

It also checks the one-replay contract on the same split and prints the checks beside the figures:

- at every budget the adaptive quality is at least uniform's minus 0.003, and the adaptive GPT-4 share
  needed for 95% of GPT-4's accuracy is at most uniform's;
- ``train``'s validation report and ``evaluate`` on the training half agree on uniform, to the last bit;
- ``--check-fallback``: a probe trained (in process, same featurizer and costs) with ``fallback="always"``
  reports exactly uniform's row at every budget and the same GPT-4 share.

Run: ``.venv/bin/python benchmarks/routellm_eval.py [--data DIR] [--work DIR] [--tasks gsm8k mmlu]
[--cascade | --prompt-only] [--featurizer NAME] [--budgets 2,4,6] [--check-fallback] [--trainer cli|api]
[--train-args '--layers 9 --pooling mean --neighbors 150']``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PUBLISHED_GPT4_SHARE = {"gsm8k": 0.65, "mmlu": 0.55}
"""RouteLLM's best routers at 95% of GPT-4 quality: ~35% / ~45% fewer GPT-4 calls (Mixtral vs GPT-4)."""


def _cli(*args: str) -> str:
    exe = Path(sys.executable).with_name("adaptive-router")
    cmd = [str(exe), *args]
    print("$", " ".join(cmd), flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"command failed ({res.returncode}): {res.stderr.strip()[-500:]}")
    return res.stdout


def _checks(test_rep: dict, train_rep: dict, validation: dict) -> dict[str, object]:
    """The one-replay contract on one task (see the module docstring)."""
    u, a = test_rep["methods"]["uniform"], test_rep["methods"]["adaptive"]
    share = test_rep["routing"]["expensive_share"]
    margins = [qa - qu for qa, qu in zip(a["quality"], u["quality"], strict=True)]
    validated = {float(r["budget"]): r["uniform"] for r in validation["allocation"]}
    evaluated = dict(zip(train_rep["budgets"], train_rep["methods"]["uniform"]["quality"], strict=True))
    return {
        "adaptive_minus_uniform": margins,
        "adaptive_at_least_uniform_minus_0.003": all(m >= -0.003 for m in margins),
        "adaptive_share_at_most_uniform": share["adaptive"] is not None
        and share["uniform"] is not None
        and share["adaptive"] <= share["uniform"] + 1e-12,
        "train_and_evaluate_agree_on_uniform": all(validated[b] == q for b, q in evaluated.items()),
    }


def _fallback_check(work: Path, task: str, featurizer: str, budgets: list[float]) -> dict[str, object]:
    """Train in process with ``fallback="always"`` and evaluate: the adaptive row must be uniform's."""
    from adaptive_router.app.evaluation import default_ladder, evaluate_allocation
    from adaptive_router.outcomes import OutcomeSet
    from adaptive_router.probe import train_probe

    train = OutcomeSet.read_jsonl(work / f"{task}.train.jsonl")
    test = OutcomeSet.read_jsonl(work / f"{task}.test.jsonl")
    _, notes = default_ladder(train, max_k=1)
    probe = train_probe(train, featurizer=featurizer, max_k=1, budgets=budgets, costs=notes["costs"],
                        fallback="always")
    rep = evaluate_allocation(test, budgets=budgets, predicted=probe)
    u, a = rep["methods"]["uniform"], rep["methods"]["adaptive"]
    share = rep["routing"]["expensive_share"]
    return {
        "fallback_rows_identical": all(u[k] == a[k] for k in ("quality", "spend", "option_shares", "savings"))
        and rep["sweep"]["quality"]["uniform"] == rep["sweep"]["quality"]["adaptive"]
        and share["adaptive"] == share["uniform"],
        "fallback_quality": a["quality"],
        "fallback_gpt4_share": share["adaptive"],
    }


def _train_api(work: Path, task: str, budgets: list[float], out: Path, featurizer: str) -> dict[str, Any]:
    """What ``train`` runs with every probe setting left to its default: ``train_probe`` choosing the
    featurizer, head and neighbour weight on validation (see docs/probe.md). Same costs and max_k as the CLI.
    """
    from adaptive_router.app.evaluation import default_ladder
    from adaptive_router.outcomes import OutcomeSet
    from adaptive_router.probe import train_probe

    train = OutcomeSet.read_jsonl(work / f"{task}.train.jsonl")
    _, notes = default_ladder(train, max_k=1)
    costs = notes["costs"]
    print(f"$ train_probe({task}.train.jsonl, featurizer={featurizer!r}, max_k=1, budgets={budgets}, "
          f"costs={costs})", flush=True)
    probe = train_probe(train, featurizer=featurizer, max_k=1, budgets=budgets, costs=costs)
    probe.save(out)
    report = dict(probe.report)
    print(json.dumps({"selection": report.get("selection")}, default=str))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm"
    parser.add_argument("--data", default=os.environ.get("ROUTELLM_DATA", str(default_data)))
    parser.add_argument("--work", default=None, help="folder for converted files, probes and reports")
    parser.add_argument("--tasks", nargs="+", default=["gsm8k", "mmlu"])
    parser.add_argument("--featurizer", default="auto", help="train's --featurizer (default: its own, auto)")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--cascade", action="store_true",
                      help="GSM8K cascade with the explicit flags: signals-only probe, '####' final answer")
    form.add_argument("--prompt-only", action="store_true",
                      help="convert with --no-cascade: prompts without Mixtral's draft (the old default)")
    parser.add_argument("--train-args", default="", help="extra `train` options, e.g. '--neighbors 150'")
    parser.add_argument("--budgets", default="2,4,6", help="budgets for train and evaluate")
    parser.add_argument("--check-fallback", action="store_true", help="also check a forced fallback probe")
    parser.add_argument(
        "--trainer", choices=("cli", "api"), default="cli",
        help="cli: `adaptive-router train` with --featurizer and --train-args; api: train_probe with every "
        "probe setting at its default (featurizer, head and neighbours chosen on validation)",
    )
    args = parser.parse_args()
    if args.cascade and args.tasks != ["gsm8k"]:
        parser.error("--cascade needs Mixtral's answers, which only the GSM8K file keeps: add --tasks gsm8k")
    convert_extra = ["--cascade"] if args.cascade else ["--no-cascade"] if args.prompt_only else []
    if args.cascade:
        train_extra = ["--featurizer", "none", "--answer-signals", "--final-answer", r"####\s*(.+)"]
    else:  # auto is train's default: give nothing, so the run is exactly the CLI's defaults
        train_extra = [] if args.featurizer == "auto" else ["--featurizer", args.featurizer]
    train_extra += args.train_args.split()
    work = Path(args.work or tempfile.mkdtemp(prefix="routellm-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    headline: dict[str, dict[str, Any]] = {}
    for task in args.tasks:
        converted = _cli("convert-routellm", args.data, "--task", task, "--out", str(work), *convert_extra)
        print(converted.strip())
        budgets = [float(b) for b in args.budgets.split(",")]
        if args.trainer == "api" and not args.cascade:
            validation = _train_api(work, task, budgets, work / f"probe-{task}", args.featurizer)
        else:
            trained = _cli(
                "train",
                str(work / f"{task}.train.jsonl"),
                "--out",
                str(work / f"probe-{task}"),
                *train_extra,
                "--budgets",
                args.budgets,
            )
            validation = json.loads(trained[trained.index("{") :])
        report_path = work / f"{task}.report.json"
        print(
            _cli(
                "evaluate",
                str(work / f"{task}.test.jsonl"),
                "--probe",
                str(work / f"probe-{task}"),
                "--budgets",
                args.budgets,
                "--json",
                str(report_path),
                "--plot",
                str(work / f"{task}.png"),
            )
        )
        train_report = work / f"{task}.train-report.json"
        _cli("evaluate", str(work / f"{task}.train.jsonl"), "--budgets", args.budgets, "--json",
             str(train_report))
        rep = json.loads(report_path.read_text())
        checks = _checks(rep, json.loads(train_report.read_text()), validation)
        if args.check_fallback and not args.cascade:
            base = "minilm-l6" if args.featurizer == "auto" else args.featurizer  # forced fallback: any works
            checks.update(_fallback_check(work, task, base, budgets))
        print(json.dumps({task: checks}))
        share = rep["routing"]["expensive_share"]
        headline[task] = {
            "test_queries": rep["n_queries"],
            "prompts_carry_draft": "cascade form" in converted,
            "gpt4_share_adaptive": share.get("adaptive"),
            "gpt4_share_hull": share.get("hull"),
            "gpt4_share_random": share.get("random"),
            "gpt4_share_uniform": share.get("uniform"),
            "gpt4_share_oracle": share.get("oracle"),
            "gpt4_share_routellm_published": PUBLISHED_GPT4_SHARE[task],
            "fallback_active": validation.get("fallback"),
            "chosen": (validation.get("selection") or {}).get("chosen"),
            "validation_scores": {
                row["candidate"]: row["score"]
                for row in (validation.get("selection") or {}).get("candidates", [])
            },
            "quality": {m: rep["methods"][m]["quality"] for m in ("hull", "uniform", "adaptive")},
            "aiq": {m: rep["aiq"].get(m) for m in ("hull", "uniform", "random", "adaptive", "oracle")},
            **checks,
        }
    print("| task | test queries | draft in prompt | adaptive | hull | uniform | random | perfect | "
          "AIQ adaptive / hull | RouteLLM published |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for task, h in headline.items():
        keys = ("gpt4_share_adaptive", "gpt4_share_hull", "gpt4_share_uniform", "gpt4_share_random",
                "gpt4_share_oracle")
        cells = [h[k] for k in keys]
        print(
            f"| {task} | {h['test_queries']} | {'yes' if h['prompts_carry_draft'] else 'no'} | "
            + " | ".join("n/a" if c is None else f"{c:.1%}" for c in cells)
            + f" | {h['aiq']['adaptive']:.4f} / {h['aiq']['hull']:.4f}"
            + f" | ~{h['gpt4_share_routellm_published']:.0%} |"
        )
    print(
        json.dumps(
            {
                "benchmark": "routellm_eval",
                "cascade": args.cascade,
                "prompt_only": args.prompt_only,
                "trainer": args.trainer,
                "train_args": train_extra if args.trainer == "cli"
                else f"train_probe defaults, featurizer={args.featurizer!r}",
                "work": str(work),
                **headline,
            }
        )
    )


if __name__ == "__main__":
    main()
