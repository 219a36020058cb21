from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from adaptive_router.errors import ConfigError
from adaptive_router.probe.featurizer import TransformersFeaturizer, get_featurizer

TEXTS = ["short", "a somewhat longer sentence with more tokens in it", "mid length text here"]


def _manual(path, text: str, layer: int, pooling: str) -> np.ndarray:
    """Features of one text without padding or batching."""
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    ids = tok(text, return_tensors="pt", truncation=True, max_length=32)
    with torch.no_grad():
        h = model(**ids, output_hidden_states=True).hidden_states[layer][0]
    return (h.mean(0) if pooling == "mean" else h[-1]).numpy()


def test_mean_pooling_matches_unpadded_forward(tiny_encoder_dir) -> None:
    f = TransformersFeaturizer(model_path=tiny_encoder_dir, max_length=32, batch_size=2)
    X = f.transform(TEXTS)
    assert f.resolved_pooling == "mean"
    assert X.shape == (3, 16) and X.dtype == np.float32
    for i, t in enumerate(TEXTS):
        np.testing.assert_allclose(X[i], _manual(tiny_encoder_dir, t, -1, "mean"), atol=1e-5)


def test_last_token_pooling_ignores_padding(tiny_causal_dir) -> None:
    f = TransformersFeaturizer(model_path=tiny_causal_dir, layers=(1, -1), max_length=32, batch_size=3)
    X = f.transform(TEXTS)
    assert f.resolved_pooling == "last"
    assert X.shape == (3, 32)  # two layers concatenated
    for i, t in enumerate(TEXTS):
        np.testing.assert_allclose(X[i, :16], _manual(tiny_causal_dir, t, 1, "last"), atol=1e-5)
        np.testing.assert_allclose(X[i, 16:], _manual(tiny_causal_dir, t, -1, "last"), atol=1e-5)


@pytest.fixture(scope="module")
def deep_causal_dir(tmp_path_factory, tiny_causal_dir):
    """The tiny causal LM with 4 layers instead of 2 (same tokenizer)."""
    import shutil

    import transformers

    path = tmp_path_factory.mktemp("deep-causal")
    config = transformers.AutoConfig.from_pretrained(tiny_causal_dir)
    config.num_hidden_layers = 4
    torch.manual_seed(1)
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    for f in tiny_causal_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")):
            shutil.copy(f, path / f.name)
    return path


def _n_layers(f: TransformersFeaturizer) -> int:
    return max(len(m) for m in f._model.modules() if isinstance(m, torch.nn.ModuleList))


def test_layers_past_the_deepest_wanted_are_not_run(deep_causal_dir) -> None:
    shallow = TransformersFeaturizer(model_path=deep_causal_dir, layers=(1,), max_length=32, batch_size=2)
    X = shallow.transform(TEXTS)
    assert _n_layers(shallow) == 2 and shallow.dim == 16  # layer 1's input is layer 0's output: 2 kept
    for i, t in enumerate(TEXTS):
        np.testing.assert_allclose(X[i], _manual(deep_causal_dir, t, 1, "last"), atol=1e-5)
    both = TransformersFeaturizer(model_path=deep_causal_dir, layers=(2, -1), max_length=32)
    Y = both.transform(TEXTS)
    assert _n_layers(both) == 4
    np.testing.assert_allclose(Y[0, 16:], _manual(deep_causal_dir, TEXTS[0], -1, "last"), atol=1e-5)


def test_truncation_limits_tokens(tiny_encoder_dir) -> None:
    f = TransformersFeaturizer(model_path=tiny_encoder_dir, max_length=4)
    long = "one two three four five six seven"
    np.testing.assert_allclose(f.transform([long])[0], f.transform(["one two three four five"])[0],
                               atol=1e-6)  # both cut to [CLS] one two [SEP]... identical prefix


def test_cache_hits_skip_the_model_and_keys_depend_on_settings(
    tiny_encoder_dir, tmp_path, monkeypatch
) -> None:
    f = TransformersFeaturizer(model_path=tiny_encoder_dir, cache_dir=tmp_path)
    X1 = f.transform(TEXTS)
    calls = []
    original = TransformersFeaturizer._forward
    monkeypatch.setattr(TransformersFeaturizer, "_forward",
                        lambda self, texts: calls.append(list(texts)) or original(self, texts))
    X2 = f.transform([*TEXTS, "new text"])
    np.testing.assert_array_equal(X1, X2[:3])
    assert calls == [["new text"]]
    g = TransformersFeaturizer(model_path=tiny_encoder_dir, cache_dir=tmp_path, layers=(1,))
    X3 = g.transform(TEXTS[:1])  # another layer: a cache miss with different features
    assert calls[-1] == TEXTS[:1]
    assert not np.allclose(X3, X1[:1])


def test_corrupt_cache_entry_is_recomputed(tiny_encoder_dir, tmp_path) -> None:
    f = TransformersFeaturizer(model_path=tiny_encoder_dir, cache_dir=tmp_path)
    X = f.transform(TEXTS[:1])
    (entry,) = list(tmp_path.rglob("*.npy"))
    entry.write_bytes(b"garbage")
    np.testing.assert_allclose(f.transform(TEXTS[:1]), X)


def test_identity_records_settings(tiny_causal_dir) -> None:
    ident = TransformersFeaturizer(model_path=tiny_causal_dir, name="tiny", layers=(-1,)).identity()
    assert ident["featurizer_id"] == "tiny"
    assert ident["pooling"] == "last" and ident["layers"] == [-1]
    assert len(ident["revision"]) == 16


def test_bad_settings_and_names_fail_clearly(tiny_encoder_dir, tmp_path) -> None:
    with pytest.raises(ConfigError, match="pooling='max' is not one of"):
        TransformersFeaturizer(model_path=tiny_encoder_dir, pooling="max").transform(["x"])
    with pytest.raises(ConfigError, match=r"has no config\.json"):
        TransformersFeaturizer(model_path=tmp_path).transform(["x"])
    with pytest.raises(ConfigError, match=r"unknown featurizer 'nope'.*gemma-3-270m.*minilm-l6"):
        get_featurizer("nope")
    with pytest.raises(ConfigError, match="not one string"):
        TransformersFeaturizer(model_path=tiny_encoder_dir).transform("x")
    with pytest.raises(ConfigError, match="layer 7 is out of range"):
        TransformersFeaturizer(model_path=tiny_encoder_dir, layers=(7,)).transform(["x"])


def test_get_featurizer_accepts_folder_and_object(tiny_encoder_dir) -> None:
    f = get_featurizer(str(tiny_encoder_dir), cache_dir=None)
    assert isinstance(f, TransformersFeaturizer)
    assert get_featurizer(f) is f


@pytest.mark.realmodel
def test_minilm_default_matches_sentence_embedding_geometry() -> None:
    f = get_featurizer("minilm-l6", cache_dir=None)
    X = f.transform(["How do I bake bread?", "Bread baking instructions", "Quantum field theory"])
    assert X.shape == (3, 384)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert Xn[0] @ Xn[1] > Xn[0] @ Xn[2]


@pytest.mark.realmodel
def test_gemma_default_last_token_features() -> None:
    f = get_featurizer("gemma-3-270m", cache_dir=None)
    X = f.transform(["3 + 4 =", "12 + 30 ="])
    assert X.shape == (2, 640) and np.isfinite(X).all()
    assert f.identity()["pooling"] == "last"


@pytest.mark.realmodel
def test_gemma_middle_layer_runs_half_the_model_with_the_same_states() -> None:
    from adaptive_router.probe import gemma_model_dir

    f = get_featurizer("gemma-3-270m", layers=(9,), pooling="mean", cache_dir=None)
    X = f.transform(["Which planet is largest?\nA. Mars\nB. Jupiter\nAnswer:"])
    assert _n_layers(f) == 10
    expected = _manual(gemma_model_dir(), "Which planet is largest?\nA. Mars\nB. Jupiter\nAnswer:", 9, "mean")
    np.testing.assert_allclose(X[0], expected, rtol=1e-3, atol=1e-2)
