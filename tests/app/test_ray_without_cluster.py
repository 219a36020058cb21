"""The parts of the --ray commands that need no Ray: part merging, checks before anything starts, and the
CLI's message when Ray is not installed (the default install)."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from adaptive_router.app.cli import app
from adaptive_router.app.ray_label import BackendSpec, check_ray_label
from adaptive_router.app.ray_store import merge_parts, parts_dir
from adaptive_router.errors import ConfigError


def _line(tid: str, reward: float = 1.0) -> str:
    return json.dumps({"id": tid, "prompt": f"p{tid}", "outcomes": {"m": [{"reward": reward}]}})


def test_merge_writes_dataset_order_once_per_id_and_removes_parts(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_text(_line("c") + "\n" + _line("x") + "\n")  # "x" is not in this dataset
    parts = parts_dir(out)
    parts.mkdir()
    (parts / "part-000000002.jsonl").write_text(_line("b") + "\n" + _line("c", 0.0) + "\n")
    (parts / "part-000000000.jsonl").write_text(_line("a") + "\n" + '{"id": "d", "prom')  # cut mid-write
    assert merge_parts(out, ["a", "b", "c", "d"]) == 2
    lines = out.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["x", "a", "b", "c"]
    assert lines[3] == _line("c")  # out's own record wins over a duplicate in a part
    assert not parts.exists()
    assert merge_parts(out, ["a"]) == 0 and out.read_text().splitlines() == lines  # no parts: untouched


def test_check_ray_label_refuses_ray_client_and_bad_workers(monkeypatch):
    with pytest.raises(ConfigError, match="Ray Client"):
        check_ray_label(1, address="ray://head:10001")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    with pytest.raises(ConfigError, match="--ray-address auto"):
        check_ray_label(1)
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(ConfigError, match="workers must be an integer >= 1, got 0"):
        check_ray_label(0)
    check_ray_label(None, address="auto")


def test_backend_spec_hides_the_api_key():
    spec = BackendSpec("openai:m", api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(spec)


def test_cli_without_ray_prints_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where Ray is not installed
    got = CliRunner().invoke(
        app, ["label", "arith:3", "--backend", "openai:m", "--out", str(tmp_path / "o.jsonl"), "--ray"]
    )
    assert got.exit_code == 2
    assert "pip install 'adaptive-router[ray]'" in got.output
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_ray_options_need_ray(tmp_path):
    got = CliRunner().invoke(
        app, ["label", "arith:3", "--backend", "openai:m", "--out", str(tmp_path / "o.jsonl"),
              "--ray-workers", "2"],
    )  # fmt: skip
    assert got.exit_code == 2 and "--ray-workers need --ray" in got.output


def test_parts_of_another_procedure_are_refused_before_ray_starts(tmp_path):
    from adaptive_router.app.ray_label import label_tasks_ray
    from adaptive_router.app.tasks import arithmetic_tasks

    out = tmp_path / "o.jsonl"
    parts_dir(out).mkdir()
    (parts_dir(out) / "part-000000000.jsonl").write_text(
        json.dumps({"id": "a", "prompt": "p", "outcomes": {"other": [{"reward": 1.0}]}}) + "\n"
    )
    with pytest.raises(ConfigError, match="holds outcomes of procedure 'other'"):
        label_tasks_ray(arithmetic_tasks(2), lambda: (lambda p: " 0"), out, samples=1, procedure="m")
    assert not out.exists()
