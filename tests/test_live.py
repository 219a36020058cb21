"""Tests for adaptive_router.live: shared sample streams and running tasks through the router."""

from __future__ import annotations

from adaptive_router.labeling import Sample
from adaptive_router.live import SharedSamples, completion_model, run_live, verifier_reranker
from adaptive_router.runnables import AdaptiveRouter
from adaptive_router.strategies import BestOfK
from adaptive_router.tasks import arithmetic_tasks


def _counting_backend():
    calls = {}

    def backend(prompt):
        calls[prompt] = calls.get(prompt, 0) + 1
        return Sample(text=f" draw{calls[prompt]}")

    return backend, calls


def test_shared_samples_replay_the_same_stream_each_pass():
    backend, calls = _counting_backend()
    shared = SharedSamples(backend)
    first = [shared("p").text for _ in range(3)]
    shared.new_pass()
    again = [shared("p").text for _ in range(4)]
    assert first == [" draw1", " draw2", " draw3"]
    assert again == [*first, " draw4"]
    assert calls == {"p": 4} and shared.requests == 4


def test_shared_samples_and_completion_model_accept_a_chat_model():
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    shared = SharedSamples(FakeListChatModel(responses=[" 1", " 2", " 3"]))
    assert [shared("p").text for _ in range(2)] == [" 1", " 2"]
    shared.new_pass()
    assert shared("p").text == " 1" and shared.requests == 2
    model = completion_model(FakeListChatModel(responses=[" 9"]))
    assert model.invoke("3 + 6 =") == " 9"


def test_run_live_scores_router_answers_with_the_verifier():
    tasks = arithmetic_tasks(6, seed=2)
    answers = {t.prompt: t.answer for t in tasks}
    seen = {}

    def backend(prompt):  # right on the second sample of every query
        seen[prompt] = seen.get(prompt, 0) + 1
        return f" {answers[prompt]}" if seen[prompt] == 2 else " -1"

    shared = SharedSamples(backend)
    strategy = BestOfK(completion_model(shared), reranker=verifier_reranker(tasks), max_k=2, procedure="m")
    one = run_live(tasks, AdaptiveRouter(strategy=strategy, budget_per_query=1.0, window_size=6))
    assert one.quality == 0.0 and one.calls == 1.0 and one.ks == [1] * 6
    shared.new_pass()
    two = run_live(tasks, AdaptiveRouter(strategy=strategy, budget_per_query=2.0, window_size=6))
    assert two.quality == 1.0 and two.spend == 2.0
    assert shared.requests == 12
    assert two.as_dict()["k_histogram"] == {"2": 6}
