"""A megabyte prompt costs the featurizer what a short one does: only a head of it is ever tokenized."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from adaptive_router.local_models import minilm_path  # noqa: E402
from adaptive_router.probe.featurizer import TransformersFeaturizer  # noqa: E402

MAX_LENGTH = 24


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT (hidden 16) with MiniLM's real tokenizer: features follow the token ids."""
    import shutil

    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    config.architectures = ["BertModel"]
    transformers.BertModel(config).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (Path(minilm_path()) / name).is_file():
            shutil.copy(Path(minilm_path()) / name, path / name)
    return path


class _Spy:
    """Wraps a tokenizer and records the length of every text it is asked to tokenize."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer, self.lengths = tokenizer, []

    def __call__(self, texts: list[str], **kwargs: Any) -> Any:
        self.lengths.extend(len(t) for t in texts)
        return self.tokenizer(texts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tokenizer, name)


def _spied(model_dir: Path) -> tuple[TransformersFeaturizer, _Spy]:
    f = TransformersFeaturizer(model_path=model_dir, max_length=MAX_LENGTH, num_threads=1)
    f._load()
    spy = _Spy(f._tokenizer)
    f._tokenizer = spy
    return f, spy


def test_a_megabyte_prompt_is_never_tokenized_whole(tiny_bert) -> None:
    """Regression: the whole prompt went through the tokenizer (seconds and hundreds of MB for 1 MB)."""
    f, spy = _spied(tiny_bert)
    big = "the quick brown fox jumps over the lazy dog " * 24_000  # about 1 MB
    X = f.transform([big, "a short question"])
    assert max(spy.lengths) <= MAX_LENGTH * 32
    reference = f.transform([big[:5_000]])  # the same first 24 tokens
    np.testing.assert_allclose(X[0], reference[0], atol=1e-6)


@pytest.mark.parametrize(
    ("text", "bounded"),
    [
        ("word " * 6_000, True),
        ("1+1=2; " * 4_000, True),
        ("数学问题" * 5_000, True),  # every CJK character is a token, no spaces
        ("line\n" * 6_000, True),
        # fewer than 24 tokens in any head: it grows (x4) until the whole text is read, as it must
        ("x" * 30_000, False),  # one 30,000-character word is a single [UNK]
        (" " * 30_000 + "late words " * 100, False),
    ],
    ids=["words", "punctuation", "cjk", "lines", "one-run", "leading-space"],
)
def test_the_head_keeps_the_first_max_length_tokens(tiny_bert, text, bounded) -> None:
    f, spy = _spied(tiny_bert)
    ids = f._encode([text])
    full = spy.tokenizer([text], truncation=True, max_length=MAX_LENGTH, add_special_tokens=True)["input_ids"]
    assert ids == full
    assert max(spy.lengths) <= (MAX_LENGTH * 32 if bounded else len(text))
