"""What a labelling run finds on disk: the records already written and the journal of paid-for responses.

``label_tasks`` appends outcome records to ``out`` and, first, every response it receives to the journal
``<out>.pending`` (:func:`journal_path`). A resumed run reads both: ids in ``out`` are done
(:func:`completed_ids`), the journal's responses of unfinished queries are reused (:func:`read_journal`), and
:func:`check_resume` refuses to append another procedure's (or another cost's) records to the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from adaptive_router.errors import ConfigError, OutcomeFormatError
from adaptive_router.outcomes import OutcomeRecord

__all__ = ["check_resume", "completed_ids", "journal_path", "jsonl_lines", "read_journal", "read_records"]


def journal_path(out: str | Path) -> Path:
    """Where :func:`label_tasks` journals the responses of ``out``'s unfinished queries."""
    out = Path(out)
    return out.with_name(out.name + ".pending")


def jsonl_lines(path: Path) -> list[tuple[int, str]]:
    """``(lineno, text)`` of the non-blank lines; a half-written last line is cut off the file first."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        try:
            json.loads(data[cut:])
        except ValueError:
            with path.open("r+b") as fh:
                fh.truncate(cut)
            data = data[:cut]
        else:
            with path.open("ab") as fh:
                fh.write(b"\n")
    lines = []
    for lineno, raw in enumerate(data.splitlines(), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = f"{path}: not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
            raise OutcomeFormatError(msg, line=lineno) from None
        if text.strip():
            lines.append((lineno, text))
    return lines


def read_records(path: Path) -> list[OutcomeRecord]:
    """The validated outcome records in ``path`` (none when it does not exist); see :func:`jsonl_lines`."""
    out = []
    for lineno, raw in jsonl_lines(path):
        try:
            out.append(OutcomeRecord.from_json(json.loads(raw), line=lineno))
        except json.JSONDecodeError as exc:
            msg = f"{path}: invalid JSON ({exc.msg}); fix or remove the line"
            raise OutcomeFormatError(msg, line=lineno) from None
    return out


def completed_ids(path: str | Path) -> set[str]:
    """Ids already labelled in ``path``; a half-written last line (a crash mid-write) is cut off.

    Raises OutcomeFormatError for a malformed line anywhere else: nothing is dropped silently.
    """
    return {rec.id for rec in read_records(Path(path))}


def check_resume(records: Sequence[OutcomeRecord], out: Path, procedure: str, cost: float | None) -> None:
    """Refuse to append ``procedure``'s records (at ``cost`` per call) to a file of ``records`` of another.

    Examples
    --------
    >>> rec = OutcomeRecord.from_json({"id": "a", "prompt": "p", "outcomes": {"gemma": [{"reward": 1}]}})
    >>> check_resume([rec], Path("o.jsonl"), "smollm", None)
    Traceback (most recent call last):
    ...
    adaptive_router.errors.ConfigError: o.jsonl holds outcomes of procedure 'gemma', and this run records \
'smollm': resuming would mix procedures in one file. Resume with the backend and --procedure that \
produced them ('gemma'), or write to another --out
    """
    procedures = sorted({p for rec in records for p in rec.outcomes})
    if procedures and procedures != [procedure]:
        raise ConfigError(
            f"{out} holds outcomes of procedure {', '.join(map(repr, procedures))}, and this run records "
            f"{procedure!r}: resuming would mix procedures in one file. Resume with the backend and "
            f"--procedure that produced them ({procedures[0]!r}), or write to another --out"
        )
    costs = {float(rec.cost[procedure]) for rec in records if rec.cost and procedure in rec.cost}
    if cost is not None and costs and costs != {float(cost)}:
        raise ConfigError(
            f"{out} records cost {sorted(costs)} per call for {procedure!r}, and this run gives {cost:g}: "
            "use the same --cost or write to another --out"
        )


def read_journal(path: Path, procedure: str) -> dict[str, list[tuple[str, int]]]:
    """``{id: [(text, tokens), ...]}``: the journalled responses of ``procedure``, in arrival order."""
    kept: dict[str, list[tuple[str, int]]] = {}
    for lineno, raw in jsonl_lines(path):
        try:
            obj = json.loads(raw)
            if obj["procedure"] == procedure:
                kept.setdefault(str(obj["id"]), []).append((str(obj["text"]), int(obj.get("tokens", 0))))
        except (ValueError, KeyError, TypeError):
            msg = f"{path}: not a journal line; remove the file to discard the responses it keeps"
            raise OutcomeFormatError(msg, line=lineno) from None
    return kept
