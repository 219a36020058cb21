"""Tests for adaptive_router.app.options: command-line values checked before anything is spent."""

from __future__ import annotations

import os
import re
import signal

import pytest

from adaptive_router.app.options import (
    check_number,
    check_output_file,
    check_output_folder,
    check_plot_file,
    floats,
    sigterm_interrupts,
    unescape,
)
from adaptive_router.errors import ConfigError


def test_floats():
    assert floats("1,2.5,", "--budgets") == [1.0, 2.5]
    assert floats("-1,0", "--layers") == [-1.0, 0.0]
    for text, message in [
        ("a", "comma-separated numbers"),
        (",", "at least one number"),
        ("1,inf", "finite"),
    ]:
        with pytest.raises(ConfigError, match=f"--budgets must .*{message}"):
            floats(text, "--budgets")
    with pytest.raises(ConfigError, match="--budgets must be positive finite numbers"):
        floats("1,0", "--budgets", positive=True)


def test_check_number():
    check_number(None, "--cost")
    check_number(0.0, "--cost")
    for value in (float("nan"), float("inf"), -1e-9):
        with pytest.raises(ConfigError, match=r"--cost must be a finite number >= 0"):
            check_number(value, "--cost")
    with pytest.raises(ConfigError, match=r"--budget must be a finite number > 0, got 0"):
        check_number(0, "--budget", strict=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\n", "\n"),
        ("END\\t", "END\t"),
        ("a\\\\nb", "a\\nb"),
        ("\\x41\\u00e9", "Aé"),
        ("Ω stop é", "Ω stop é"),  # non-ASCII is kept as typed (unicode_escape mangled it)
        ("\\'\\\"", "'\""),
    ],
)
def test_unescape_keeps_text_and_replaces_known_escapes(text, expected):
    assert unescape(text, "--stop") == expected


@pytest.mark.parametrize(
    ("text", "escape"), [("\\x", "\\x"), ("\\x4g", "\\x"), ("\\q", "\\q"), ("a\\", "\\")]
)
def test_unescape_rejects_unknown_escapes(text, escape):
    with pytest.raises(ConfigError, match=re.escape(f"unknown escape {escape!r}")):
        unescape(text, "--stop")


def test_output_paths_are_checked_and_their_folder_created(tmp_path):
    check_output_file(None, "--json")
    target = tmp_path / "a" / "b" / "r.json"
    check_output_file(target, "--json")
    assert target.parent.is_dir() and not target.exists()
    with pytest.raises(ConfigError, match="is a folder; give a file name"):
        check_output_file(tmp_path, "--json")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_file(tmp_path / "f" / "r.json", "--json")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "f", "--out")


def test_plot_file_needs_a_matplotlib_format(tmp_path):
    pytest.importorskip("matplotlib")
    check_plot_file(tmp_path / "c.png")
    check_plot_file(tmp_path / "c.SVG")
    for name in ("c.xyz", "c"):
        with pytest.raises(ConfigError, match=r"--plot .*one of .*\.png"):
            check_plot_file(tmp_path / name)


def test_sigterm_interrupts_only_inside():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before
