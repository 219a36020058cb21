"""The JSON wire format of :mod:`adaptive_router.outcomes`: parse, validate and serialise records.

Private: the functions here work on decoded JSON values and plain field dicts, so they need no import of
the record classes; :class:`~adaptive_router.outcomes.ProcedureOutcome`,
:class:`~adaptive_router.outcomes.OutcomeRecord` and :class:`~adaptive_router.outcomes.OutcomeSet` call
them from their ``from_json`` / ``to_json`` / ``read_jsonl`` / ``write_jsonl`` methods.

numpy-free; the standard library only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from adaptive_router.errors import ConfigError, OutcomeFormatError

if TYPE_CHECKING:
    from adaptive_router.outcomes import OutcomeRecord, ProcedureOutcome, Prompt

__all__ = [
    "PROC_SHAPE",
    "number",
    "parse_procedure",
    "parse_prompt",
    "parse_record",
    "procedure_to_json",
    "read_jsonl",
    "record_to_json",
    "write_jsonl",
]

T = TypeVar("T")

_SAMPLE_KEYS = ("reward", "score", "cost", "tokens", "input_tokens", "output_tokens", "answer")
_TOKEN_KEYS = ("tokens", "input_tokens", "output_tokens")
_RECORD_KEYS = ("id", "prompt", "outcomes", "cost")
_RECORD_SHAPE = '{"id": str, "prompt": str | [{"role": str, "content": str}, ...], "outcomes": {...}}'
PROC_SHAPE = (
    '[{"reward": float, "score"?: float, "cost"?: float, "tokens"?: int, "input_tokens"?: int, '
    '"output_tokens"?: int, "answer"?: str}, ...]'
    ' or {"successes": int, "samples": int}'
)
_MAX_REPORTED = 5


def number(value: Any, where: str) -> float:
    """``value`` as a float; booleans count as 0/1, anything else non-finite raises naming ``where``."""
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise OutcomeFormatError(f"{where} must be a finite number, got {value!r}")
    return float(value)


# -- parsing ------------------------------------------------------------------------------------------------
def parse_procedure(value: Any, where: str) -> dict[str, Any]:
    """Check one procedure's outcomes and return the ``ProcedureOutcome`` fields.

    ``where`` names the procedure in errors.

    The compact form gives ``{"compact": (successes, samples)}`` (its range is checked by the class).
    """
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"successes", "samples"})
        if unknown or "successes" not in value or "samples" not in value:
            raise OutcomeFormatError(
                f"{where} is an object, so it must be exactly {{'successes': int, 'samples': int}}"
                + (f"; unknown keys {unknown}" if unknown else "")
            )
        c, n = value["successes"], value["samples"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (c, n)):
            raise OutcomeFormatError(f"{where}: successes and samples must be integers, got {c!r}, {n!r}")
        return {"compact": (c, n)}
    if not isinstance(value, list) or not value:
        raise OutcomeFormatError(f"{where} must be a non-empty list {PROC_SHAPE}, got {value!r}"[:300])
    rewards, scores, costs, extras = [], [], [], []
    counts: dict[str, list[int]] = {key: [] for key in _TOKEN_KEYS}
    answers: list[str | None] = []
    for j, sample in enumerate(value):
        here = f"{where}[{j}]"
        if not isinstance(sample, Mapping):
            raise OutcomeFormatError(f"{here} must be an object like {{'reward': 1.0}}, got {sample!r}")
        if "reward" not in sample:
            raise OutcomeFormatError(f"{here} has no 'reward'; expected {{'reward': float, ...}}")
        rewards.append(number(sample["reward"], f"{here}.reward"))
        if "score" in sample:
            scores.append(number(sample["score"], f"{here}.score"))
        if "cost" in sample:
            cost = number(sample["cost"], f"{here}.cost")
            if cost < 0:
                raise OutcomeFormatError(f"{here}.cost must be >= 0 (what the sample cost), got {cost!r}")
            costs.append(cost)
        for key in _TOKEN_KEYS:
            if key in sample:
                t = sample[key]
                if not isinstance(t, int) or isinstance(t, bool) or t < 0:
                    raise OutcomeFormatError(f"{here}.{key} must be a non-negative integer, got {t!r}")
                counts[key].append(t)
        if "answer" in sample and not isinstance(sample["answer"], str):
            raise OutcomeFormatError(
                f"{here}.answer must be a string (the sample's normalised final answer), got "
                f"{sample['answer']!r}; omit the key for a sample without an answer"[:300]
            )
        answers.append(sample.get("answer"))
        extras.append({k: v for k, v in sample.items() if k not in _SAMPLE_KEYS})
    given: dict[str, list[Any]] = {"score": scores, "cost": costs, **counts}
    for name, got in given.items():
        if 0 < len(got) < len(rewards):
            raise OutcomeFormatError(
                f"{where}: '{name}' is given for {len(got)} of {len(rewards)} samples; "
                "give it for all or none"
            )
    return {
        "rewards": tuple(rewards),
        "scores": tuple(scores) if scores else None,
        "costs": tuple(costs) if costs else None,
        "tokens": tuple(counts["tokens"]) if counts["tokens"] else None,
        "input_tokens": tuple(counts["input_tokens"]) if counts["input_tokens"] else None,
        "output_tokens": tuple(counts["output_tokens"]) if counts["output_tokens"] else None,
        "extras": tuple(extras) if any(extras) else None,
        "answers": tuple(answers) if any(a is not None for a in answers) else None,
    }


def parse_record(obj: Any, parse_outcome: Callable[[Any, str], T]) -> dict[str, Any]:
    """Check one decoded record and return the ``OutcomeRecord`` fields (without ``line``).

    ``parse_outcome(value, where)`` builds each procedure's outcome; it runs before ``cost`` is checked.
    """
    if not isinstance(obj, Mapping):
        raise OutcomeFormatError(f"a record must be a JSON object {_RECORD_SHAPE}, got {type(obj).__name__}")
    missing = [k for k in ("id", "prompt", "outcomes") if k not in obj]
    if missing:
        raise OutcomeFormatError(f"missing field(s) {missing}; expected {_RECORD_SHAPE}")
    rid = obj["id"]
    if isinstance(rid, int) and not isinstance(rid, bool):
        rid = str(rid)
    if not isinstance(rid, str) or not rid:
        raise OutcomeFormatError(f"'id' must be a non-empty string, got {rid!r}")
    prompt = parse_prompt(obj["prompt"])
    outs = obj["outcomes"]
    if not isinstance(outs, Mapping) or not outs:
        raise OutcomeFormatError(
            f"'outcomes' must be a non-empty object {{procedure: {PROC_SHAPE}}}, got {outs!r}"[:300]
        )
    outcomes = {str(proc): parse_outcome(value, f"outcomes.{proc}") for proc, value in outs.items()}
    cost = obj.get("cost")
    if cost is not None:
        if not isinstance(cost, Mapping):
            raise OutcomeFormatError(f"'cost' must be an object {{procedure: float}}, got {cost!r}")
        unknown = sorted(set(cost) - set(outcomes))
        if unknown:
            raise OutcomeFormatError(f"'cost' names procedures {unknown} that have no outcomes")
        cost = {p: number(v, f"cost.{p}") for p, v in cost.items()}
        if any(v < 0 for v in cost.values()):
            raise OutcomeFormatError(f"'cost' values must be >= 0, got {cost}")
    meta = {k: v for k, v in obj.items() if k not in _RECORD_KEYS}
    return {"id": rid, "prompt": prompt, "outcomes": outcomes, "cost": cost, "meta": meta}


def parse_prompt(prompt: Any) -> Prompt:
    """A string as is; a non-empty list of ``{"role", "content"}`` messages as ``(role, content)`` pairs."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt:
        messages = []
        for j, m in enumerate(prompt):
            ok = isinstance(m, Mapping) and isinstance(m.get("role"), str)
            if not (ok and isinstance(m.get("content"), str)):
                raise OutcomeFormatError(
                    f"prompt[{j}] must be {{'role': str, 'content': str}}, got {m!r}"[:300]
                )
            messages.append((m["role"], m["content"]))
        return tuple(messages)
    raise OutcomeFormatError(
        f"'prompt' must be a string or a non-empty list of {{'role', 'content'}} messages, "
        f"got {prompt!r}"[:300]
    )


# -- serialising --------------------------------------------------------------------------------------------
def procedure_to_json(outcome: ProcedureOutcome) -> list[dict[str, Any]] | dict[str, int]:
    """The JSON value :func:`parse_procedure` reads back."""
    if outcome.compact is not None:
        return {"successes": outcome.compact[0], "samples": outcome.compact[1]}
    out = []
    for j, r in enumerate(outcome.rewards):
        sample: dict[str, Any] = {"reward": r}
        if outcome.scores is not None:
            sample["score"] = outcome.scores[j]
        if outcome.costs is not None:
            sample["cost"] = outcome.costs[j]
        for key in _TOKEN_KEYS:
            values = getattr(outcome, key)
            if values is not None:
                sample[key] = values[j]
        if outcome.answers is not None and outcome.answers[j] is not None:
            sample["answer"] = outcome.answers[j]
        if outcome.extras is not None:
            sample.update(outcome.extras[j])
        out.append(sample)
    return out


def record_to_json(record: OutcomeRecord) -> dict[str, Any]:
    """The JSON object :func:`parse_record` reads back (``meta`` keys at the top level)."""
    prompt: Any = record.prompt
    if not isinstance(prompt, str):
        prompt = [{"role": r, "content": c} for r, c in prompt]
    out: dict[str, Any] = {"id": record.id, "prompt": prompt}
    out["outcomes"] = {p: procedure_to_json(o) for p, o in record.outcomes.items()}
    if record.cost is not None:
        out["cost"] = dict(record.cost)
    out.update(record.meta)
    return out


# -- files --------------------------------------------------------------------------------------------------
def read_jsonl(path: Path, parse_line: Callable[[Any, int], T]) -> list[T]:
    """``parse_line(obj, lineno)`` for every non-blank line of ``path``.

    All bad lines are collected and the first is raised as :class:`OutcomeFormatError` (``.line`` set),
    listing the others. A missing file or one without records raises :class:`ConfigError`.
    """
    if not path.is_file():
        raise ConfigError(f"outcome file {str(path)!r} does not exist")
    records, errors = [], []
    with path.open("rb") as fh:
        for lineno, data in enumerate(fh, start=1):
            try:
                raw = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = f"byte {data[exc.start]:#04x} at column {exc.start + 1}"
                errors.append(OutcomeFormatError(f"not UTF-8 ({bad}); save the file as UTF-8", line=lineno))
                continue
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                msg = f"invalid JSON ({exc.msg} at column {exc.colno})"
                errors.append(OutcomeFormatError(msg, line=lineno))
                continue
            try:
                records.append(parse_line(obj, lineno))
            except OutcomeFormatError as exc:
                errors.append(exc)
    if errors:
        first = errors[0]
        msg = f"{path}: {first.args[0]}"
        if len(errors) > 1:
            others = ", ".join(str(e.line) for e in errors[1 : _MAX_REPORTED + 1])
            more = "..." if len(errors) > _MAX_REPORTED + 1 else ""
            msg += f" (and {len(errors) - 1} more bad line(s): {others}{more})"
        err = OutcomeFormatError(msg)
        err.line = first.line
        raise err
    if not records:
        raise ConfigError(f"outcome file {str(path)!r} holds no records")
    return records


def write_jsonl(path: Path, objs: Iterable[Any]) -> None:
    """Write ``objs`` as JSONL (one object per line, UTF-8), creating the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for obj in objs:
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
