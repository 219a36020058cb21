"""Tests for adaptive_router.app.live_run: shared sample streams and running tasks through the router."""

from __future__ import annotations

import contextlib
import json

import pytest
from typer.testing import CliRunner

from adaptive_router.app.labeling import Sample
from adaptive_router.app.live_run import (
    SharedSamples,
    completion_model,
    live_reranker,
    run_live,
    verifier_reranker,
    vote_reranker,
)
from adaptive_router.app.tasks import Task, arithmetic_tasks
from adaptive_router.errors import ConfigError
from adaptive_router.runnables import AdaptiveRouter
from adaptive_router.strategies import BestOfK


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


def _route_backends(tasks, easy):
    """cheap answers only the ``easy`` prompts right, expensive answers all right; calls are counted."""
    answers = {t.prompt: t.answer for t in tasks}
    calls = {"cheap": 0, "expensive": 0}

    def cheap(prompt):
        calls["cheap"] += 1
        return f" {answers[prompt]}" if prompt in easy else " -1"

    def expensive(prompt):
        calls["expensive"] += 1
        return f" {answers[prompt]}"

    return cheap, expensive, calls


def test_run_live_routes_hard_queries_to_the_expensive_model(table_probe):
    from adaptive_router.strategies import Route

    tasks = arithmetic_tasks(4, seed=3)
    easy = {tasks[0].prompt, tasks[1].prompt}
    cheap, expensive, calls = _route_backends(tasks, easy)
    route = Route(
        models={"cheap": completion_model(cheap), "expensive": completion_model(expensive)},
        costs={"cheap": 1.0, "expensive": 4.0},
    )
    probe = table_probe(
        table={t.prompt: 0.9 if t.prompt in easy else 0.2 for t in tasks},
        procedures=("cheap", "expensive"),
        max_k=1,
        procedure_scale={"expensive": 5.0},
    )
    routed = run_live(tasks, AdaptiveRouter(strategy=route, probe=probe, budget_per_query=2.5, window_size=4))
    assert routed.procedures == ["cheap", "cheap", "expensive", "expensive"]
    assert routed.quality == 1.0 and routed.spend == 2.5 and routed.share("expensive") == 0.5
    assert calls == {"cheap": 2, "expensive": 2}
    uniform = run_live(tasks, AdaptiveRouter(strategy=route, budget_per_query=2.5, window_size=4))
    assert uniform.procedures == ["cheap"] * 4 and uniform.quality == 0.5
    assert uniform.share("expensive") == 0.0
    assert uniform.as_dict()["procedure_counts"] == {"cheap": 4}


def test_chat_format_task_through_best_of_k_returns_the_verified_answer():
    """A task whose prompt is chat messages: the verifier must find it from the rendered messages.

    Before prompts had one home, the reranker looked tasks up by ``str(prompt)`` while `BestOfK` passed
    rendered messages, so every candidate scored 0 and the first (wrong) one was returned.
    """
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.messages import HumanMessage, SystemMessage

    from adaptive_router.app.tasks import Task

    task = Task(
        id="chat",
        prompt=[
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": "2 + 2 ="},
        ],
        answer="4",
    )
    model = FakeListChatModel(responses=["5", "4", "3"])
    strategy = BestOfK(model, reranker=verifier_reranker([task]), max_k=3, procedure="m")
    router = AdaptiveRouter(strategy=strategy, budget_per_query=3.0)
    out = router.invoke([SystemMessage("Answer with a number."), HumanMessage("2 + 2 =")])
    assert out.content == "4"


def test_vote_reranker_reads_the_verifiers_answers_never_the_reference():
    tasks = [Task(id="a", prompt="3 + 4 =", answer="7")]
    vote = vote_reranker(tasks)
    assert vote.evidence == "answers"
    assert vote.answers([" 8\n1 + 1 = 2", " 8.0", " 7", ""]) == ["8", "8", "7", None]
    assert vote.score("3 + 4 =", [" 8", " 8.0", " 7"]).scores == [2 / 3, 2 / 3, 1 / 3]
    with pytest.raises(ConfigError, match=r"the tasks use \['contains', 'first_line'\]"):
        vote_reranker([*tasks, Task(id="b", prompt="q", answer="x", verifier="contains")])
    with pytest.raises(ConfigError, match="the 'contains' verifier reads none; use --reranker verifier"):
        vote_reranker([Task(id="b", prompt="q", answer="x", verifier="contains")])


def test_live_reranker_by_name():
    tasks = arithmetic_tasks(2, seed=0)
    assert live_reranker("verifier", tasks).evidence == "rewards"
    assert live_reranker("vote", tasks).evidence == "answers"
    with pytest.raises(ConfigError, match="--reranker score needs --reward-model FOLDER"):
        live_reranker("score", tasks)
    with pytest.raises(ConfigError, match="choose one of verifier, vote, score"):
        live_reranker("judge", tasks)


def _run_setup(tmp_path, monkeypatch):
    """The `run` command on 4 tasks whose backend answers each prompt ' 9', ' 9', then the right answer."""
    import adaptive_router.app.cli.run as cli_run

    tasks = [("a", "1 + 1 =", "2"), ("b", "2 + 2 =", "4"), ("c", "3 + 3 =", "6"), ("d", "4 + 4 =", "8")]
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"id": i, "prompt": p, "answer": a}) + "\n" for i, p, a in tasks))
    answers = {p: a for _, p, a in tasks}
    seen: dict[str, int] = {}

    def reply(prompt):
        seen[prompt] = seen.get(prompt, 0) + 1
        return f" {answers[prompt]}" if seen[prompt] % 3 == 0 else " 9"

    @contextlib.contextmanager
    def fake(backend, **kwargs):
        yield reply, "m"

    monkeypatch.setattr(cli_run, "sampling_model", fake)
    return src, seen


def test_run_reranker_vote_returns_the_plurality(tmp_path, monkeypatch):
    from adaptive_router.app.cli import app

    runner = CliRunner()
    src, seen = _run_setup(tmp_path, monkeypatch)
    base = ["run", str(src), "--budget", "12", "--backend", "openai:m", "--max-k", "3", "--rounds", "off"]
    out = tmp_path / "run.json"
    res = runner.invoke(app, [*base, "--json", str(out)])
    assert res.exit_code == 0, res.output  # the verifier finds the third sample
    assert "quality 100.0% on 4 queries" in res.output
    assert json.loads(out.read_text())["reranker"] == "verifier"
    seen.clear()
    res = runner.invoke(app, [*base, "--reranker", "vote", "--json", str(out)])
    assert res.exit_code == 0, res.output  # two ' 9' outvote the right answer
    assert "quality 0.0% on 4 queries" in res.output and json.loads(out.read_text())["reranker"] == "vote"
    seen.clear()
    res = runner.invoke(app, [*base[:-2], "--reranker", "vote"])  # in rounds: votes are the evidence
    assert res.exit_code == 0, res.output
    assert "quality 0.0% on 4 queries" in res.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--reranker", "judge"], "--reranker must be one of verifier, vote, score"),
        (["--reranker", "score"], "--reranker score needs --reward-model FOLDER"),
        (["--reward-model", "."], "--reward-model goes with --reranker score"),
        (["--reranker", "score", "--reward-model", "missing-dir"], "is not a folder"),
        (["--reranker", "vote", "--route", "a=llama:smollm,b=llama:gemma"], "--reranker is for best-of-k"),
    ],
)
def test_run_reranker_bad_input(tmp_path, monkeypatch, extra, message):
    from adaptive_router.app.cli import app

    src, seen = _run_setup(tmp_path, monkeypatch)
    res = CliRunner().invoke(app, ["run", str(src), "--budget", "8", *extra])
    assert res.exit_code == 2 and message in res.output and not seen, res.output
