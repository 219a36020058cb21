"""Tests for adaptive_router.probe.answer_probability on a tiny random causal LM (no downloads)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptive_router.app.tasks import Task
from adaptive_router.errors import ConfigError
from adaptive_router.probe import answer_probabilities, gemma_model_dir

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_HEADER = "1 + 1 = 2\n2 + 2 = 4\n"


def _tasks():
    # prompts of 16, 17 and 18 tokens with 1- to 3-token answers (MiniLM's tokenizer): batches mix lengths
    pairs = [(3, 4), (12, 5), (4821, 7), (48213, 7), (9, 9)]
    return [
        Task(id=f"t{i}", prompt=f"{_HEADER}{a} + {b} =", answer=str(a + b)) for i, (a, b) in enumerate(pairs)
    ]


def _brute_force(model_dir, tasks, temperature):
    """P(" answer\\n" | prompt) from a plain forward pass per task: no shared cache, padding or batching."""
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for t in tasks:
        prompt = tok(t.prompt)["input_ids"]
        cont = tok(f" {t.answer}\n", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([prompt + cont])).logits[0]
        logp = torch.log_softmax(logits / temperature, dim=-1)
        out.append(math.exp(sum(float(logp[len(prompt) - 1 + j, c]) for j, c in enumerate(cont))))
    return np.array(out)


def test_matches_one_plain_forward_pass_per_task(tiny_causal_dir):
    tasks = _tasks()
    done = []
    got = answer_probabilities(
        tasks, model_dir=tiny_causal_dir, temperature=0.7, batch_size=2, progress=done.append
    )
    expected = _brute_force(tiny_causal_dir, tasks, 0.7)
    assert got.shape == (5,) and ((got > 0) & (got < 1)).all()
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert sum(done) == 5 and len(done) == 3
    # a higher temperature flattens the distribution: the same answers get different probabilities
    hot = answer_probabilities(tasks, model_dir=tiny_causal_dir, temperature=2.0)
    assert not np.allclose(hot, got)


def test_bad_inputs_name_the_fix(tiny_causal_dir):
    with pytest.raises(ConfigError, match="temperature must be > 0, got 0"):
        answer_probabilities(_tasks(), model_dir=tiny_causal_dir, temperature=0)
    chat = Task(id="c", prompt=[{"role": "user", "content": "1 + 1 ="}], answer="2")
    with pytest.raises(ConfigError, match="task 'c': answer probabilities need a plain-text prompt"):
        answer_probabilities([chat], model_dir=tiny_causal_dir)
    assert answer_probabilities([], model_dir=tiny_causal_dir).shape == (0,)


def test_gemma_model_dir_is_public():
    from adaptive_router.probe import _models

    assert gemma_model_dir is _models.gemma_model_dir is _models.gemma_dir
