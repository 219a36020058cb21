"""RouteLLM's Mixtral-vs-GPT-4 outcomes through the user-facing commands: convert -> train -> evaluate.

Runs exactly what a user runs (``adaptive-router convert-routellm``, ``train``, ``evaluate``) on GSM8K
and MMLU from ``../shared/data/routellm`` beside the repository (Apache-2.0, lm-sys/RouteLLM;
contaminated prompts excluded; 50/50 split by a stable hash of the record id, seed 0; MiniLM-L6
featurizer) and prints the GPT-4 call
share each method needs to reach 95% of GPT-4's accuracy on the test half, beside RouteLLM's published
figures (its best routers cut GPT-4 calls by about 35% on GSM8K and 45% on MMLU at 95% of GPT-4 quality,
i.e. about 65% / 55% GPT-4 calls). The last line is one JSON object with the headline numbers.

``--cascade`` runs the cascade instead (GSM8K only): ``convert-routellm --cascade`` keeps Mixtral's answer as
the draft in every prompt, and ``train --featurizer none --answer-signals`` fits a probe on the draft checks.

Run: ``.venv/bin/python benchmarks/routellm_eval.py [--data DIR] [--work DIR] [--tasks gsm8k mmlu]
[--cascade] [--featurizer NAME] [--train-args '--layers 9 --pooling mean --neighbors 150']``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm"
    parser.add_argument("--data", default=os.environ.get("ROUTELLM_DATA", str(default_data)))
    parser.add_argument("--work", default=None, help="folder for converted files, probes and reports")
    parser.add_argument("--tasks", nargs="+", default=["gsm8k", "mmlu"])
    parser.add_argument("--featurizer", default="minilm-l6")
    parser.add_argument("--cascade", action="store_true", help="GSM8K cascade: probe reads the draft")
    parser.add_argument("--train-args", default="", help="extra `train` options, e.g. '--neighbors 150'")
    args = parser.parse_args()
    if args.cascade and args.tasks != ["gsm8k"]:
        parser.error("--cascade needs Mixtral's answers, which only the GSM8K file keeps: add --tasks gsm8k")
    convert_extra = ["--cascade"] if args.cascade else []
    train_extra = (
        ["--featurizer", "none", "--answer-signals", "--final-answer", r"####\s*(.+)"]
        if args.cascade
        else ["--featurizer", args.featurizer]
    ) + args.train_args.split()
    work = Path(args.work or tempfile.mkdtemp(prefix="routellm-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    headline: dict[str, dict[str, float | None]] = {}
    for task in args.tasks:
        print(_cli("convert-routellm", args.data, "--task", task, "--out", str(work), *convert_extra).strip())
        _cli(
            "train",
            str(work / f"{task}.train.jsonl"),
            "--out",
            str(work / f"probe-{task}"),
            *train_extra,
            "--budgets",
            "2,4,6",
        )
        report_path = work / f"{task}.report.json"
        print(
            _cli(
                "evaluate",
                str(work / f"{task}.test.jsonl"),
                "--probe",
                str(work / f"probe-{task}"),
                "--budgets",
                "2,4,6",
                "--json",
                str(report_path),
                "--plot",
                str(work / f"{task}.png"),
            )
        )
        rep = json.loads(report_path.read_text())
        share = rep["routing"]["expensive_share"]
        headline[task] = {
            "test_queries": rep["n_queries"],
            "gpt4_share_adaptive": share.get("adaptive"),
            "gpt4_share_random": share.get("random"),
            "gpt4_share_uniform": share.get("uniform"),
            "gpt4_share_oracle": share.get("oracle"),
            "gpt4_share_routellm_published": PUBLISHED_GPT4_SHARE[task],
        }
    print("| task | test queries | adaptive | random | perfect | RouteLLM published |")
    print("|---|---:|---:|---:|---:|---:|")
    for task, h in headline.items():
        cells = [h[k] for k in ("gpt4_share_adaptive", "gpt4_share_random", "gpt4_share_oracle")]
        print(
            f"| {task} | {h['test_queries']} | "
            + " | ".join(f"{c:.1%}" for c in cells)
            + f" | ~{h['gpt4_share_routellm_published']:.0%} |"
        )
    print(
        json.dumps(
            {
                "benchmark": "routellm_eval",
                "cascade": args.cascade,
                "train_args": train_extra,
                "work": str(work),
                **headline,
            }
        )
    )


if __name__ == "__main__":
    main()
