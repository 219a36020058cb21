"""Featurizers: query texts -> fixed-size vectors from a local transformers model's hidden states.

`TransformersFeaturizer` works with any Hugging Face model folder (causal LM or encoder): it picks hidden
layer(s), pools them (last token for causal LMs, masked mean for encoders), batches texts sorted by length,
truncates, runs on CUDA in bf16 when available (CPU fp32 otherwise) and caches features on disk under a
content hash of (featurizer id, revision, layers, pooling, max length, text), in a `FeatureCache` with a size
limit.

Long texts cost what short ones do: the features read only the first ``max_length`` tokens, so a text is cut
to its first ``max_length × 32`` characters (after a whitespace when there is one) before it is tokenized,
and cut longer only if that head holds fewer tokens. A 1 MB prompt is never tokenized whole. The features
are unchanged unless a single whitespace-free run of characters crosses the cut.

`get_featurizer` resolves the embedded offline defaults by name (``"minilm-l6"``, ``"gemma-3-270m"``) or
any local model folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from adaptive_router.errors import ConfigError
from adaptive_router.probe.cache import DEFAULT_CACHE_MAX_BYTES, FeatureCache

__all__ = [
    "DEFAULT_FEATURIZERS",
    "Featurizer",
    "TransformersFeaturizer",
    "get_featurizer",
]

DEFAULT_FEATURIZERS: dict[str, dict[str, Any]] = {
    "minilm-l6": {"layers": (-1,), "pooling": "mean", "max_length": 256},
    "gemma-3-270m": {"layers": (-1,), "pooling": "last", "max_length": 512},
}
"""Embedded offline featurizers: name -> default settings (model files come from PyPI packages)."""

_POOLINGS = ("auto", "last", "mean")
_CHARS_PER_TOKEN = 32
"""Characters kept per token of ``max_length`` before tokenizing (English averages about 4 per token)."""


@runtime_checkable
class Featurizer(Protocol):
    """What a probe needs from a featurizer: stable identity and texts -> (n, d) float32 features."""

    def identity(self) -> dict[str, Any]: ...

    def transform(self, texts: Sequence[str]) -> np.ndarray: ...


def _model_dir_revision(path: Path) -> str:
    """Content hash of a model folder: config + tokenizer files + size and head/tail bytes of weights."""
    digest = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if not f.is_file():
            continue
        if f.suffix in {".safetensors", ".bin", ".gguf", ".pt"}:
            size = f.stat().st_size
            digest.update(f"{f.name}:{size}".encode())
            with f.open("rb") as fh:
                digest.update(fh.read(1 << 20))
                fh.seek(max(0, size - (1 << 20)))
                digest.update(fh.read(1 << 20))
        elif f.suffix in {".json", ".txt", ".model"}:
            digest.update(f.name.encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


class TransformersFeaturizer:
    """Hidden-state features from a local transformers model.

    Parameters
    ----------
    model_path : str or Path
        Folder with ``config.json``, weights and tokenizer files (no hub download is attempted).
    layers : sequence of int, default (-1,)
        Indices into ``hidden_states`` (0 = embeddings, -1 = last layer); several are concatenated.
    pooling : {"auto", "last", "mean"}, default "auto"
        ``"auto"`` pools the last non-padding token for causal LMs and the masked mean for encoders.
    max_length : int, default 256
        Texts are truncated to this many tokens.
    batch_size : int, default 32
        Texts per forward pass (texts are sorted by length first, so padding is small).
    device : {"auto", "cpu", "cuda", ...}, default "auto"
        ``"auto"`` uses CUDA (bf16) when available, else CPU (fp32).
    cache_dir : str, Path or None, default None
        Folder for the on-disk feature cache; None disables it.
    cache_max_bytes, cache_max_entries : int or None
        Limits of the feature cache (default 512 MiB, any number of entries); the least recently used
        entries are evicted past them (see `FeatureCache`).
    name : str or None
        Featurizer id recorded in probe manifests; defaults to the model folder path.
    num_threads : int or None
        ``torch.set_num_threads`` while featurizing; None leaves torch's setting alone.

    Examples
    --------
    >>> f = TransformersFeaturizer(model_path="/models/my-encoder", pooling="mean")
    >>> f.pooling
    'mean'
    """

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str],
        layers: Sequence[int] = (-1,),
        pooling: str = "auto",
        max_length: int = 256,
        batch_size: int = 32,
        device: str = "auto",
        cache_dir: str | os.PathLike[str] | None = None,
        cache_max_bytes: int | None = DEFAULT_CACHE_MAX_BYTES,
        cache_max_entries: int | None = None,
        name: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        self.model_path = model_path
        self.layers = layers
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.cache_dir = cache_dir
        self.cache_max_bytes = cache_max_bytes
        self.cache_max_entries = cache_max_entries
        self.name = name
        self.num_threads = num_threads

    # ------------------------------------------------------------------ loading
    def _validate(self) -> None:
        if self.pooling not in _POOLINGS:
            raise ConfigError(f"pooling={self.pooling!r} is not one of {_POOLINGS}")
        if not self.layers or not all(isinstance(i, (int, np.integer)) for i in self.layers):
            raise ConfigError(f"layers={self.layers!r} must be a non-empty sequence of ints, e.g. (-1,)")
        if int(self.max_length) < 2 or int(self.batch_size) < 1:
            raise ConfigError(
                f"max_length={self.max_length!r} must be >= 2 and batch_size={self.batch_size!r} >= 1"
            )
        path = Path(self.model_path)
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"model_path={str(path)!r} has no config.json; pass a local transformers model folder "
                f"or one of the embedded names {sorted(DEFAULT_FEATURIZERS)} to get_featurizer"
            )

    def _load(self) -> None:
        if getattr(self, "_model", None) is not None:
            return
        self._validate()
        import torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        path = Path(self.model_path)
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        archs = [a.lower() for a in (getattr(config, "architectures", None) or [])]
        self._is_causal = any("causallm" in a or "lmhead" in a for a in archs) or bool(
            getattr(config, "is_decoder", False)
        )
        if self.device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        else:
            device = str(self.device)
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        tok.padding_side = "right"
        import transformers

        major = int(transformers.__version__.split(".")[0])
        dtype_kw = {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}  # renamed in transformers 5
        model = AutoModel.from_pretrained(path, local_files_only=True, **dtype_kw)
        model.to(device).eval()
        self._tokenizer = tok
        self._model = model
        self._torch_device = device
        n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
        for i in self.layers:
            if n_layers and not -(n_layers + 1) <= int(i) <= n_layers:
                raise ConfigError(f"layer {i} is out of range for a model with {n_layers} layers")
        _drop_unused_layers(model, self.layers)

    @property
    def resolved_pooling(self) -> str:
        """The pooling actually used (``"auto"`` resolved after the model config is read)."""
        if self.pooling != "auto":
            return self.pooling
        self._load()
        return "last" if self._is_causal else "mean"

    def identity(self) -> dict[str, Any]:
        """What must match for two featurizers to give the same features (recorded in probe manifests)."""
        ident = getattr(self, "_identity", None)
        if ident is None:
            self._validate()
            ident = {
                "featurizer_id": self.name or str(Path(self.model_path).resolve()),
                "revision": _model_dir_revision(Path(self.model_path)),
                "layers": [int(i) for i in self.layers],
                "pooling": self.resolved_pooling,
                "max_length": int(self.max_length),
            }
            self._identity = ident
        return dict(ident)

    # ------------------------------------------------------------------ features
    def _cache_key(self, ident_blob: bytes, text: str) -> str:
        return hashlib.sha256(ident_blob + b"\x00" + text.encode("utf-8", "surrogatepass")).hexdigest()

    def _cache(self) -> FeatureCache | None:
        if self.cache_dir is None:
            return None
        cache: FeatureCache | None = getattr(self, "_feature_cache", None)
        if cache is None or cache.folder != Path(self.cache_dir):
            cache = FeatureCache(self.cache_dir, max_bytes=self.cache_max_bytes,
                                 max_entries=self.cache_max_entries)
            self._feature_cache = cache
        return cache

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Features of ``texts``: an ``(n, d)`` float32 array, row i for ``texts[i]``."""
        if isinstance(texts, str):
            raise ConfigError("texts must be a sequence of strings, not one string; wrap it in a list")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            bad = next(type(t).__name__ for t in texts if not isinstance(t, str))
            raise ConfigError(f"texts must all be str, got a {bad}")
        ident = self.identity()
        blob = json.dumps(ident, sort_keys=True).encode()
        cache = self._cache()
        keys = [self._cache_key(blob, t) for t in texts] if cache is not None else None
        out: list[np.ndarray | None] = [None] * len(texts)
        if cache is not None and keys is not None:
            out = [cache.get(key) for key in keys]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            feats = self._forward([texts[i] for i in todo])
            for j, i in enumerate(todo):
                out[i] = feats[j]
                if cache is not None and keys is not None:
                    cache.put(keys[i], feats[j])
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack(out).astype(np.float32, copy=False)  # type: ignore[arg-type]

    @property
    def dim(self) -> int:
        """Feature dimension (hidden size times number of layers)."""
        self._load()
        return int(self._model.config.hidden_size) * len(self.layers)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text's first ``max_length`` tokens, tokenizing only a head of each text.

        See the module docstring: a head of ``max_length × 32`` characters (grown fourfold while it yields
        fewer than ``max_length`` tokens) instead of the whole text.
        """
        length = int(self.max_length)

        def tokenize(batch: list[str]) -> list[list[int]]:
            ids: list[list[int]] = self._tokenizer(
                batch, truncation=True, max_length=length, add_special_tokens=True
            )["input_ids"]
            return ids

        limit = length * _CHARS_PER_TOKEN
        heads = [_head(t, limit) for t in texts]
        enc = tokenize(heads)
        short = [i for i, t in enumerate(texts) if len(heads[i]) < len(t) and len(enc[i]) < length]
        while short:
            limit *= 4
            for i in short:
                heads[i] = _head(texts[i], limit)
            for i, ids in zip(short, tokenize([heads[i] for i in short]), strict=True):
                enc[i] = ids
            short = [i for i in short if len(heads[i]) < len(texts[i]) and len(enc[i]) < length]
        return enc

    def _forward(self, texts: list[str]) -> np.ndarray:
        """Run the model over texts (length-sorted batches) and pool; returns (n, d) float32."""
        self._load()
        import torch

        prev_threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(int(self.num_threads))
        try:
            enc = self._encode(texts)
            order = np.argsort([len(ids) for ids in enc], kind="stable")[::-1]
            pooling = self.resolved_pooling
            result = np.zeros((len(texts), self.dim), dtype=np.float32)
            bs = int(self.batch_size)
            with torch.inference_mode():
                for start in range(0, len(order), bs):
                    idx = order[start : start + bs]
                    batch = self._tokenizer.pad(
                        {"input_ids": [enc[i] for i in idx]}, padding=True, return_tensors="pt"
                    )
                    ids = batch["input_ids"].to(self._torch_device)
                    mask = batch["attention_mask"].to(self._torch_device)
                    hs = self._model(
                        input_ids=ids, attention_mask=mask, output_hidden_states=True
                    ).hidden_states
                    pooled = [self._pool(hs[int(layer)], mask, pooling) for layer in self.layers]
                    result[idx] = torch.cat(pooled, dim=-1).float().cpu().numpy()
        finally:
            if self.num_threads is not None:
                torch.set_num_threads(prev_threads)
        return result

    @staticmethod
    def _pool(hidden: Any, mask: Any, pooling: str) -> Any:
        if pooling == "mean":
            m = mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
        last = mask.sum(dim=1).long() - 1  # right padding: last real token
        return hidden[range(hidden.shape[0]), last.clamp(min=0)]

    def __repr__(self) -> str:
        return (
            f"TransformersFeaturizer(model_path={str(self.model_path)!r}, layers={tuple(self.layers)!r}, "
            f"pooling={self.pooling!r}, max_length={self.max_length!r})"
        )


def _head(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, after its last whitespace in the second half if any."""
    if len(text) <= limit:
        return text
    cut = max(text.rfind(c, limit // 2, limit) for c in " \n\t\r")
    return text[: cut if cut > 0 else limit]


def _drop_unused_layers(model: Any, layers: Sequence[int]) -> None:
    """Cut the layer stack after the deepest hidden state read (``hidden_states[i]`` is layer i's input).

    Keeps one layer beyond it, because many models apply their final norm to the last entry of
    ``hidden_states``: the states read are then exactly those of the full model, at a fraction of the compute
    (Gemma-3-270M's layer 9 runs 10 of 18 layers). Models whose layer list cannot be found run whole.
    """
    import torch

    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    if not n_layers:
        return
    keep = max(int(i) % (n_layers + 1) for i in layers) + 1  # -1 is hidden_states[n_layers]
    if keep >= n_layers:
        return
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, torch.nn.ModuleList) and len(child) == n_layers:
                setattr(module, name, torch.nn.ModuleList(list(child)[:keep]))
                model.config.num_hidden_layers = keep
                return


def get_featurizer(
    name_or_path: str | os.PathLike[str] | Featurizer,
    *,
    cache_dir: str | os.PathLike[str] | bool | None = True,
    **kwargs: Any,
) -> Featurizer:
    """A featurizer by embedded name (``"minilm-l6"``, ``"gemma-3-270m"``) or local model folder.

    Parameters
    ----------
    name_or_path : str, Path or Featurizer
        An embedded name, a transformers model folder, or a featurizer (returned unchanged).
    cache_dir : path, None or True, default True
        Feature cache folder; True means ``<ADAPTIVE_ROUTER_CACHE or ~/.cache/adaptive_router>/features``,
        None disables caching.
    **kwargs
        Overrides for `TransformersFeaturizer` (``layers``, ``pooling``, ``max_length``, ``batch_size``...).

    Examples
    --------
    >>> get_featurizer("no-such-model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    adaptive_router.errors.ConfigError: unknown featurizer 'no-such-model': ...
    """
    from adaptive_router.probe._models import cache_root, gemma_dir, minilm_dir

    if not isinstance(name_or_path, (str, os.PathLike)):
        if isinstance(name_or_path, Featurizer):
            return name_or_path
        raise ConfigError(
            f"featurizer must be a name, a model folder or an object with identity() and transform(), "
            f"got {type(name_or_path).__name__}"
        )
    if cache_dir is True:
        cache_dir = cache_root() / "features"
    elif cache_dir is False:
        cache_dir = None
    key = str(name_or_path)
    if key in DEFAULT_FEATURIZERS:
        settings = {**DEFAULT_FEATURIZERS[key], **kwargs}
        path = minilm_dir() if key == "minilm-l6" else gemma_dir()
        return TransformersFeaturizer(model_path=path, name=key, cache_dir=cache_dir, **settings)
    path = Path(key).expanduser()
    if (path / "config.json").is_file():
        return TransformersFeaturizer(model_path=path, cache_dir=cache_dir, **kwargs)
    raise ConfigError(
        f"unknown featurizer {key!r}: use one of the embedded names {sorted(DEFAULT_FEATURIZERS)} "
        "or a local transformers model folder containing config.json"
    )
