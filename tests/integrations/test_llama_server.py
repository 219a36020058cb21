"""Tests for adaptive_router.integrations.llama_server."""

from __future__ import annotations

import stat

import pytest
from adaptive_router.integrations.llama_server import LlamaServer, free_port
from fault_proxy import write_fake_llama_server

from adaptive_router.errors import BackendUnavailableError, ConfigError

ACCESS_LOG = """INFO:     Started server process [1]
INFO:     127.0.0.1:5000 - "GET /v1/models HTTP/1.1" 200 OK
INFO:     127.0.0.1:5001 - "POST /v1/completions HTTP/1.1" 200 OK
INFO:     127.0.0.1:5002 - "POST /v1/chat/completions HTTP/1.1" 500 Internal Server Error
INFO:     127.0.0.1:5003 - "POST /v1/completions HTTP/1.1" 200 OK
"""


def test_missing_model_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="GGUF model file not found"):
        LlamaServer(model_path=tmp_path / "nope.gguf").start()


def _model_file(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    return model


def _dying_python(tmp_path):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'boom: cannot load model'\nexit 3\n")
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IEXEC)
    return fake_python


def _failed_start(tmp_path, **kwargs) -> str:
    server = LlamaServer(model_path=_model_file(tmp_path), python=str(_dying_python(tmp_path)), **kwargs)
    with pytest.raises(BackendUnavailableError) as info:
        server.start()
    return str(info.value)


def _logs(log_dir):
    return sorted(log_dir.glob("llama_server_*.log"))


def test_server_dying_at_start_reports_log_tail(tmp_path):
    server = LlamaServer(
        model_path=_model_file(tmp_path), python=str(_dying_python(tmp_path)), startup_timeout=10,
        log_dir=tmp_path / "logs",
    )  # fmt: skip
    with pytest.raises(BackendUnavailableError, match=r"(?s)exited with code 3.*boom: cannot load") as info:
        server.start()
    assert not server.running
    assert f"Log {server.log_path}," in str(info.value)  # where to read all of it


def test_old_logs_are_deleted_beyond_keep_logs(tmp_path):
    log_dir = tmp_path / "logs"
    messages = [_failed_start(tmp_path, log_dir=log_dir, keep_logs=2) for _ in range(5)]
    logs = _logs(log_dir)
    assert len(logs) == 2  # bounded: 5 starts, 2 logs
    assert any(f"Log {log}," in messages[-1] for log in logs)  # the newest is one of them
    assert all(log.read_text().startswith("boom") for log in logs)


def test_log_of_a_running_server_is_never_deleted(tmp_path):
    log_dir = tmp_path / "logs"
    running = LlamaServer(
        model_path=_model_file(tmp_path), python=str(write_fake_llama_server(tmp_path)), log_dir=log_dir,
        keep_logs=0, startup_timeout=60,
    )  # fmt: skip
    with running:
        for _ in range(2):
            _failed_start(tmp_path, log_dir=log_dir, keep_logs=0)
        assert running.log_path in _logs(log_dir)
        assert running.log_path.exists() and "fake llama.cpp server" in running.log_text()
    _failed_start(tmp_path, log_dir=log_dir, keep_logs=0)  # stopped now: its log goes
    assert running.log_path not in _logs(log_dir) and len(_logs(log_dir)) == 1  # only the newest


def test_negative_keep_logs_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="keep_logs must be >= 0"):
        LlamaServer(model_path=tmp_path / "m.gguf", keep_logs=-1)


def test_request_count_reads_access_log(tmp_path):
    server = LlamaServer(model_path=tmp_path / "m.gguf")
    server.log_path = tmp_path / "log.txt"
    server.log_path.write_text(ACCESS_LOG)
    assert server.request_count() == 3  # /v1/models (readiness) is not counted
    assert server.request_count("/v1/completions") == 2
    server.reset_count()
    with server.log_path.open("a") as fh:
        fh.write('INFO:     127.0.0.1:5004 - "POST /v1/completions HTTP/1.1" 200 OK\n')
    assert server.request_count() == 1 and server.request_count(since_reset=False) == 4


def test_command_and_urls(tmp_path):
    server = LlamaServer(model_path=tmp_path / "m.gguf", port=free_port(), chat_format="gemma")
    cmd = server.command()
    assert cmd[1:3] == ["-m", "llama_cpp.server"] and cmd[-2:] == ["--chat_format", "gemma"]
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    with pytest.raises(BackendUnavailableError, match="not started"):
        LlamaServer(model_path=tmp_path / "m.gguf").url  # noqa: B018


@pytest.mark.realmodel
def test_real_server_answers_and_counts(llama_gemma):
    from adaptive_router.integrations.openai_backend import OpenAIChatModel

    llama_gemma.reset_count()
    model = OpenAIChatModel.for_llama_server(llama_gemma, max_tokens=2, temperature=0.0, stop=["\n"])
    few_shot = "2 + 3 = 5\n4 + 1 = 5\n6 + 2 = 8\n3 + 4 ="
    assert model.invoke(few_shot).content.strip() == "7"
    assert llama_gemma.request_count() == 1
