"""Exact probability that one sample from a causal LM answers a task right (one forward pass per task).

For few-shot tasks whose verifier reads the first line (``"3 + 4 = 7\\n...\\n{a} + {b} ="``), the chance that
one sample at temperature ``T`` is right is ``P(" {answer}\\n" | prompt)`` under the model's next-token
distribution at ``T`` (what llama.cpp samples from with top-k, top-p and min-p disabled). Teacher forcing the
canonical tokenisation of that continuation gives it exactly, without sampling; the demo labels its training
queries this way.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.errors import ConfigError

__all__ = ["answer_probabilities"]


def answer_probabilities(
    tasks: Sequence[Any],
    *,
    model_dir: str | Path | None = None,
    temperature: float = 1.0,
    batch_size: int = 16,
    num_threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Probability that one sample from the causal LM answers each task right: ``P(" {answer}\\n" | prompt)``.

    Parameters
    ----------
    tasks : sequence of Task
        Each needs a plain-text ``prompt`` and an ``answer`` (``adaptive_router.app.tasks.Task``).
    model_dir : path, optional
        A transformers causal LM folder; default the embedded Gemma-3-270M (:func:`gemma_model_dir`).
    temperature : float
        Sampling temperature the probability is taken at (> 0).
    batch_size : int
        Tasks per forward pass.
    num_threads : int, optional
        Set torch's CPU thread count first (``torch.set_num_threads``, process-wide); ``None`` leaves it.
    progress : callable, optional
        Called with the number of tasks finished after each batch.

    Returns
    -------
    ndarray of shape (len(tasks),)
        One teacher-forced forward pass per task over ``prompt + " " + answer + "\\n"``; the few-shot header
        the prompts share is run once and its key/value cache reused.

    Examples
    --------
    >>> from adaptive_router.app.tasks import arithmetic_tasks
    >>> p = answer_probabilities(arithmetic_tasks(4), temperature=0.8)  # doctest: +SKIP
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        msg = "exact answer probabilities need torch: pip install 'adaptive-router[probe]'"
        raise ConfigError(msg) from None
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature!r}")
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
    for t in tasks:
        if not isinstance(t.prompt, str):
            raise ConfigError(f"task {t.id!r}: answer probabilities need a plain-text prompt")
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    if not tasks:
        return np.zeros(0)
    if model_dir is None:
        from adaptive_router.probe._models import gemma_model_dir

        model_dir = gemma_model_dir()
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32).eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    seqs: list[tuple[list[int], int]] = []
    for t in tasks:
        prompt_ids = tok(t.prompt)["input_ids"]
        cont = tok(f" {t.answer}\n", add_special_tokens=False)["input_ids"]
        seqs.append((prompt_ids + cont, len(cont)))
    # the few-shot header is shared: run it once and reuse its key/value cache for every query
    n_prefix = _common_prefix([s[: len(s) - c] for s, c in seqs])
    out = np.zeros(len(tasks))
    order = np.argsort([len(s) for s, _ in seqs])
    with torch.inference_mode():
        prefix = torch.tensor([seqs[0][0][:n_prefix]])
        base_cache = model(input_ids=prefix, use_cache=True).past_key_values
        for start in range(0, len(order), int(batch_size)):
            idx = order[start : start + int(batch_size)]
            width = max(len(seqs[i][0]) for i in idx) - n_prefix
            keep = max(seqs[i][1] for i in idx) + 1
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), n_prefix + width), dtype=torch.long)
            mask[:, :n_prefix] = 1
            for r, i in enumerate(idx):  # left-pad the suffixes: every answer ends at the last column
                suffix = seqs[i][0][n_prefix:]
                ids[r, width - len(suffix) :] = torch.tensor(suffix)
                mask[r, n_prefix + width - len(suffix) :] = 1
            positions = n_prefix + (mask[:, n_prefix:].cumsum(dim=1) - 1).clamp(min=0)
            cache = copy.deepcopy(base_cache)
            cache.batch_repeat_interleave(len(idx))
            logits = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=keep,
            ).logits
            logp = torch.log_softmax(logits.float() / float(temperature), dim=-1)  # the last `keep` columns
            for r, i in enumerate(idx):
                s, n_cont = seqs[i]
                target = torch.tensor(s[-n_cont:])
                cols = torch.arange(keep - n_cont - 1, keep - 1)  # column j predicts the token after it
                out[i] = math.exp(float(logp[r, cols, target].sum()))
            if progress:
                progress(len(idx))
    return out


def _common_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all prompts share, leaving at least one token of each."""
    n = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for p in prompts[1:]:
        while n > 0 and list(p[:n]) != list(first[:n]):
            n -= 1
    return max(n, 1)
