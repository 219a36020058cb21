"""Tests for adaptive_router.strategies.rerankers."""

from __future__ import annotations

import math

import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.strategies import (
    LLMJudgeReranker,
    MajorityVoteReranker,
    RewardModelReranker,
    VerifierReranker,
)


def test_verifier_scores_and_nan_ranks_last():
    rr = VerifierReranker(verify=lambda p, c: {"a": 1.0, "b": float("nan")}.get(c, 0.5))
    assert rr.score("q", ["a", "b", "c"]).scores == [1.0, -math.inf, 0.5]


def test_verifier_non_number_is_a_clear_error():
    rr = VerifierReranker(verify=lambda p, c: "yes")
    with pytest.raises(ConfigError, match="the verifier returned 'yes'"):
        rr.score("q", ["a"])


async def test_majority_vote_with_extractor_async():
    vote = MajorityVoteReranker(extract=lambda t: t.split("=")[-1].strip() or None)
    scores = await vote.ascore("q", ["x = 4", "y = 4", "z = 5", "no answer ="])
    assert scores.scores == [0.5, 0.5, 0.25, 0.0]


def test_llm_judge_parses_first_number_and_counts_calls(scripted):
    judge = scripted(reply=lambda text, i: "Rating: 9" if "Answer:\ngood" in text else "about 2 or 3")
    rr = LLMJudgeReranker(judge=judge, cost_per_candidate=0.5)
    scores = rr.score("question", ["good", "bad"])
    assert scores.scores == [9.0, 2.0]
    assert scores.calls == 2 and judge.calls == 2
    assert scores.usage["total_tokens"] == 12


async def test_llm_judge_unparseable_or_failed_scores_minus_inf(scripted):
    judge = scripted(reply=lambda text, i: "no idea", fail=lambda i: i == 1)
    scores = await LLMJudgeReranker(judge=judge).ascore("q", ["a", "b"])
    assert scores.scores == [-math.inf, -math.inf]


def test_llm_judge_template_checked(scripted):
    with pytest.raises(ConfigError, match="must contain"):
        LLMJudgeReranker(judge=scripted(), template="rate {candidate}")


def test_judge_cost_enters_the_ladder(scripted):
    from adaptive_router.strategies import BestOfK

    strategy = BestOfK(scripted(), LLMJudgeReranker(judge=scripted(), cost_per_candidate=0.5), max_k=2)
    assert strategy.ladder.costs.tolist() == [1.5, 3.0]


@pytest.mark.realmodel
def test_reward_model_scores_pairs(tmp_path):
    """A real transformers sequence-classification model (MiniLM with a seeded, untrained 1-logit head)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from adaptive_router.local_models import minilm_path

    torch.manual_seed(0)
    net = transformers.AutoModelForSequenceClassification.from_pretrained(str(minilm_path()), num_labels=1)
    net.save_pretrained(tmp_path)
    transformers.AutoTokenizer.from_pretrained(str(minilm_path())).save_pretrained(tmp_path)
    rr = RewardModelReranker(model=str(tmp_path), batch_size=2)
    scores = rr.score("2 + 2 =", ["4", "5", "four"]).scores
    assert len(scores) == 3 and all(math.isfinite(s) for s in scores)
    assert scores == rr.score("2 + 2 =", ["4", "5", "four"]).scores  # deterministic


def test_reward_model_reranker_loads_nothing_and_no_torch_until_it_scores():
    import subprocess
    import sys

    code = (
        "import sys; from adaptive_router.strategies import RewardModelReranker;"
        "rr = RewardModelReranker(model='does-not-exist', batch_size=2);"
        "print(rr.reward_model.loaded, type(rr.reward_model).__module__,"
        " [m for m in ('torch', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "adaptive_router.probe.reward_model", "[]"]


def test_reward_model_checks_batch_size():
    with pytest.raises(ConfigError, match="batch_size must be an int >= 1"):
        RewardModelReranker(model="x", batch_size=0)


def test_candidate_text_compares_tool_calls_and_json_not_empty_strings():
    from langchain_core.messages import AIMessage

    from adaptive_router.strategies.rerankers import candidate_text

    def call(a, id):
        return AIMessage("", tool_calls=[{"name": "add", "args": {"a": a, "b": 1}, "id": id}])

    texts = [candidate_text(m) for m in (call(1, "x"), call(1, "y"), call(2, "z"))]
    assert texts[0] == texts[1] != texts[2] and texts[0] != ""  # call ids differ, the calls agree
    assert MajorityVoteReranker().score("q", texts).scores == [2 / 3, 2 / 3, 1 / 3]
    assert candidate_text(AIMessage('{"b": 1, "a": [1, 2]}')) == candidate_text(
        AIMessage('{"a":[1,2],"b":1}')
    )
