"""Tiny random transformers models (seconds to build, no downloads) for featurizer and probe tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def _copy_tokenizer(dst: Path) -> None:
    from adaptive_router.local_models import minilm_path

    src = Path(minilm_path())
    for name in _TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT (hidden 16) with MiniLM's tokenizer."""
    path = tmp_path_factory.mktemp("tiny-encoder")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    config.architectures = ["BertModel"]
    transformers.BertModel(config).save_pretrained(path)
    _copy_tokenizer(path)
    return path


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama causal LM (hidden 16) with MiniLM's tokenizer."""
    path = tmp_path_factory.mktemp("tiny-causal")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=2, intermediate_size=32,
                                      max_position_embeddings=64, pad_token_id=0)
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    _copy_tokenizer(path)
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Small models on a shared 2-core box: one thread is faster than two fighting over cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def binary_data() -> tuple[np.ndarray, np.ndarray, dict, np.ndarray]:
    """(informative X, noise X, binary labels, true p): success rate driven by X[:, 0]."""
    rng = np.random.default_rng(0)
    n = 400
    X = rng.normal(size=(n, 8))
    p = 1.0 / (1.0 + np.exp(-(3.0 * X[:, 0] - 1.0)))
    y = {"gen": (rng.binomial(8, p), np.full(n, 8))}
    noise = rng.normal(size=(n, 8))
    return X, noise, y, p


@pytest.fixture
def fast() -> dict:
    """CurveProbe settings that keep a fit to about a second."""
    return {"max_epochs": 40, "patience": 8, "n_folds": 3, "hidden": 16, "n_bootstrap": 300, "num_threads": 1}
