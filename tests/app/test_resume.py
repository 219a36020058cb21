"""Tests for adaptive_router.app.resume: what a resumed labelling run reads from disk."""

from __future__ import annotations

import json

import pytest

from adaptive_router.app.resume import check_resume, completed_ids, journal_path, read_journal, read_records
from adaptive_router.errors import ConfigError, OutcomeFormatError

REC = {"id": "a", "prompt": "p", "outcomes": {"m": [{"reward": 1}]}, "cost": {"m": 2.0}}


def test_journal_sits_beside_the_outcome_file(tmp_path):
    assert journal_path(tmp_path / "o.jsonl") == tmp_path / "o.jsonl.pending"


def test_a_half_written_last_line_is_cut_and_a_complete_one_kept(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text(json.dumps(REC) + '\n{"id": "b", "pro')
    assert completed_ids(path) == {"a"}
    assert path.read_text() == json.dumps(REC) + "\n"
    path.write_text(json.dumps(REC))  # complete JSON without its newline: kept, newline added
    assert completed_ids(path) == {"a"} and path.read_text().endswith("\n")
    assert read_records(tmp_path / "missing.jsonl") == []


def test_non_utf8_and_corrupt_lines_are_errors_with_their_line(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_bytes(json.dumps(REC).encode() + b"\n\xff\xfe\n" + json.dumps(REC).encode() + b"\n")
    with pytest.raises(OutcomeFormatError, match=r"line 2: .*not UTF-8 \(byte 0xff at column 1\)"):
        completed_ids(path)
    journal = tmp_path / "o.jsonl.pending"
    journal.write_text('{"id": "a", "procedure": "m", "text": "x"}\n{"id": "a"}\n{"id": "b"}\n')
    with pytest.raises(OutcomeFormatError, match=r"line 2: .*not a journal line; remove the file"):
        read_journal(journal, "m")


def test_read_journal_keeps_only_this_procedures_responses_in_order(tmp_path):
    journal = tmp_path / "o.jsonl.pending"
    lines = [
        {"id": "a", "procedure": "m", "text": "1", "tokens": 2},
        {"id": "a", "procedure": "other", "text": "2", "tokens": 0},
        {"id": "a", "procedure": "m", "text": "3", "tokens": 0},
    ]
    journal.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert read_journal(journal, "m") == {"a": [("1", 2), ("3", 0)]}
    assert read_journal(tmp_path / "none.pending", "m") == {}


def test_check_resume_refuses_another_procedure_or_cost(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text(json.dumps(REC) + "\n")
    records = read_records(path)
    check_resume(records, path, "m", 2.0)
    check_resume(records, path, "m", None)
    check_resume([], path, "other", 5.0)
    with pytest.raises(ConfigError, match=r"holds outcomes of procedure 'm', and this run records 'x'"):
        check_resume(records, path, "x", None)
    with pytest.raises(ConfigError, match=r"records cost \[2\.0\] per call for 'm', and this run gives 3"):
        check_resume(records, path, "m", 3.0)
