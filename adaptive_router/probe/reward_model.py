"""A transformers sequence-classification reward model scoring (prompt, candidate) pairs (torch is here).

`RewardModel` loads the tokenizer and the network on first use (never in ``__init__``), on the device it is
given, and returns one float per candidate: the chosen logit. `adaptive_router.strategies.RewardModelReranker`
ranks best-of-k candidates with it; it imports this module only when it first scores.

Examples
--------
>>> rm = RewardModel(model="path/to/reward-checkpoint", batch_size=4)   # nothing is loaded yet
>>> rm.loaded
False
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adaptive_router.errors import ConfigError

__all__ = ["RewardModel"]


class RewardModel:
    """Score (prompt, candidate) pairs with a sequence-classification checkpoint.

    Parameters
    ----------
    model : str or path
        A local checkpoint directory (or any ``from_pretrained`` name that resolves offline).
    label : int
        Which logit is the reward (the last by default; a 1-logit reward head has only one).
    device : str
        Torch device.
    max_length, batch_size : int
        Truncation length and pairs per forward pass.
    """

    def __init__(
        self, *, model: str, label: int = -1, device: str = "cpu", max_length: int = 512, batch_size: int = 8
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.model = model
        self.label = label
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        self._loaded: tuple[Any, Any] | None = None

    @property
    def loaded(self) -> bool:
        """Whether the tokenizer and the network have been loaded."""
        return self._loaded is not None

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            try:
                from transformers import AutoModelForSequenceClassification, AutoTokenizer
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ConfigError(
                    "a reward model needs transformers: pip install 'adaptive-router[probe]'"
                ) from exc
            tokenizer = AutoTokenizer.from_pretrained(self.model)
            net = AutoModelForSequenceClassification.from_pretrained(self.model).to(self.device).eval()
            self._loaded = (tokenizer, net)
        return self._loaded

    def score(self, prompt: str, candidates: Sequence[str]) -> list[float]:
        """One reward per candidate: the ``label`` logit of the model on ``(prompt, candidate)``."""
        import torch

        tokenizer, net = self._load()
        out: list[float] = []
        for start in range(0, len(candidates), self.batch_size):
            chunk = list(candidates[start : start + self.batch_size])
            enc = tokenizer(
                [prompt] * len(chunk),
                chunk,
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                logits = net(**enc).logits
            out.extend(float(v) for v in logits[:, self.label].tolist())
        return out
