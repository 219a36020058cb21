"""Convert outcomes recorded elsewhere into the JSONL outcome format.

:func:`convert_routellm` reads RouteLLM's released evaluation responses (Mixtral-8x7B vs GPT-4 correctness per
prompt, Apache-2.0, lm-sys/RouteLLM) for GSM8K or MMLU and writes routing outcome records with two procedures,
``mixtral`` and ``gpt-4``, one binary sample each. Prompts that overlap RouteLLM's router training data
(``contaminated_prompts.jsonl``) are left out.

By default (``cascade=None``) files that keep Mixtral's full answers (GSM8K's) are written in the cascade
form: each prompt becomes ``join_draft(question, mixtral_answer)``, and the records describe a cascade in
which Mixtral always answers first and the decision is whether to escalate to GPT-4, so **every query pays for
Mixtral's draft** and ``gpt-4`` costs the draft plus the GPT-4 call. A probe trained on them reads the draft
(``train``'s ``--featurizer auto`` then also tries the draft's answer signals). Files without answers (MMLU's)
give the prompts alone; ``cascade=False`` asks for the prompts alone everywhere, ``cascade=True`` for the
cascade form (an error where the answers are not kept).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adaptive_router.errors import ConfigError
from adaptive_router.outcomes import OutcomeSet
from adaptive_router.prompts import join_draft

__all__ = ["ROUTELLM_COSTS", "ROUTELLM_MODELS", "convert_routellm"]

ROUTELLM_MODELS = {"mixtral": "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4": "gpt-4-1106-preview"}
ROUTELLM_COSTS = {"mixtral": 1.0, "gpt-4": 10.0}
"""Relative cost per call written into the records (only the budget table depends on it, not the share)."""


def _bool(value: str, where: str) -> float:
    v = value.strip().lower()
    if v in ("true", "1"):
        return 1.0
    if v in ("false", "0"):
        return 0.0
    raise ConfigError(f"{where}: expected True/False, got {value!r}")


def convert_routellm(
    data_dir: str | Path,
    task: str,
    *,
    costs: Mapping[str, float] | None = None,
    cascade: bool | None = None,
) -> tuple[OutcomeSet, dict[str, Any]]:
    """Read ``data_dir/<task>`` (``gsm8k`` or ``mmlu``) into an :class:`OutcomeSet` and conversion notes.

    ``cascade=True`` writes ``join_draft(prompt, Mixtral's answer)`` prompts (see the module docstring),
    ``False`` the prompts alone; ``None`` (default) the cascade form when every file keeps Mixtral's answers.

    Returns
    -------
    (OutcomeSet, dict)
        The records and ``{"rows": ..., "excluded_contaminated": ..., "kept": ..., "cascade": ...}``
        (``cascade``: whether the prompts carry the draft).

    Raises
    ------
    ConfigError
        An unknown task, no response files, a missing column, a bad correctness value, or ``cascade=True``
        for files that keep no answers.
    """
    root = Path(data_dir) / task
    if task == "gsm8k":
        files = [root / "gsm8k_responses.csv"]
    elif task == "mmlu":
        files = sorted((root / "responses").glob("mmlu_*.csv"))
    else:
        raise ConfigError(f"task must be 'gsm8k' or 'mmlu', got {task!r}")
    if not files or not all(f.is_file() for f in files):
        raise ConfigError(
            f"no RouteLLM response files under {root}; pass the folder holding gsm8k/ and mmlu/"
        )
    contaminated: set[str] = set()
    cpath = root / "contaminated_prompts.jsonl"
    if cpath.is_file():
        for line in cpath.read_text(encoding="utf-8").splitlines():
            if line.strip():
                contaminated.add(json.loads(line)["eval_prompt"].strip())
    draft_col = f"{ROUTELLM_MODELS['mixtral']}_response"
    if cascade and task != "gsm8k":
        raise ConfigError(
            f"cascade needs the cheap model's answers, which RouteLLM's {task} files do not keep"
        )
    if cascade is None:
        cascade = task == "gsm8k" and all(draft_col in _columns(f) for f in files)
    cost = dict(costs or ROUTELLM_COSTS)
    if cascade:
        cost["gpt-4"] += cost["mixtral"]  # escalating pays for the draft too
    csv.field_size_limit(1 << 30)
    objs, rows, excluded = [], 0, 0
    for f in files:
        subject = f.stem.removeprefix("mmlu_") if task == "mmlu" else None
        with f.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            needed = ("prompt", *ROUTELLM_MODELS.values(), *((draft_col,) if cascade else ()))
            missing = [c for c in needed if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(f"{f}: missing columns {missing}")
            for i, row in enumerate(reader):
                rows += 1
                prompt = row["prompt"]
                if prompt.strip() in contaminated:
                    excluded += 1
                    continue
                where = f"{f.name} row {i + 2}"
                rid = f"{task}-{subject}-{i}" if subject else f"{task}-{i}"
                obj: dict[str, Any] = {
                    "id": rid,
                    "prompt": join_draft(prompt, row[draft_col]) if cascade else prompt,
                    "outcomes": {
                        p: [{"reward": _bool(row[col], where)}] for p, col in ROUTELLM_MODELS.items()
                    },
                    "cost": cost,
                    "source": "routellm",
                }
                if subject:
                    obj["subject"] = subject
                objs.append(obj)
    notes = {"rows": rows, "excluded_contaminated": excluded, "kept": len(objs), "cascade": cascade}
    return OutcomeSet.from_dicts(objs), notes


def _columns(path: Path) -> list[str]:
    """The header of a CSV file."""
    with path.open(newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])
