"""The demo's steps (see :mod:`adaptive_router.app.demo`): one method per step, then a run folder."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.app.demo.config import (
    CHEAP,
    EXPENSIVE,
    DemoConfig,
    draw_outcomes,
    expected_best_of_k,
    routing_outcomes,
)
from adaptive_router.app.demo.summary import command_line, short_report, write_run_folder
from adaptive_router.app.evaluation import evaluate_allocation
from adaptive_router.app.tasks import Task, arithmetic_tasks
from adaptive_router.outcomes import OutcomeSet

__all__ = ["DemoRun", "run_demo"]

_LLAMA_SAMPLING = {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}
"""llama.cpp settings (with ``top_p=1``) that make a sample a draw from the model's distribution at the
given temperature; sent in the request body beside the OpenAI fields."""


class DemoRun:
    """State of one demo run; :meth:`run` executes every step and returns the run folder."""

    def __init__(self, config: DemoConfig, *, console: Any = None, argv: list[str] | None = None) -> None:
        from rich.console import Console

        self.cfg = config
        self.console = console or Console()
        self.argv = argv or ["adaptive-router", "demo"]
        self.report: dict[str, Any] = {"config": config.__dict__ | {"budgets": list(config.budgets)}}
        self.timings: dict[str, float] = {}
        self.missing: list[str] = []

    # ------------------------------------------------------------------ helpers
    def say(self, text: str) -> None:
        self.console.print(text)

    def _progress(self, label: str, total: int) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        prog = Progress(
            TextColumn(f"  {label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        return prog, prog.add_task(label, total=total)

    def _timed(self, name: str, start: float) -> None:
        self.timings[name] = round(time.monotonic() - start, 1)

    # ------------------------------------------------------------------ steps
    def run(self) -> Path:
        cfg = self.cfg
        _check_environment(
            live=cfg.live
        )  # before the run folder exists: a missing extra leaves nothing behind
        t_all = time.monotonic()
        folder = Path(cfg.out_dir) / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        command = command_line(self.argv)
        (folder / "command.txt").write_text(command + "\n", encoding="utf-8")
        self.say(f"[bold]adaptive-router demo[/bold]: run folder {folder}")

        tasks, p = self.label()
        outcomes, draws = draw_outcomes(tasks, p, cfg.samples, seed=cfg.seed)
        outcomes.write_jsonl(folder / "outcomes.jsonl")
        train, test = outcomes.split(cfg.n_test / (cfg.n_train + cfg.n_test), seed=cfg.seed)
        self.report["data"] = {
            "tasks": len(tasks),
            "train": len(train),
            "test": len(test),
            "samples_per_query": cfg.samples,
            "split": f"stable hash of id, test_fraction={cfg.n_test / (cfg.n_train + cfg.n_test):.3f}, "
            f"seed={cfg.seed}",
            "mean_p_by_tier": self._by_tier(tasks, p),
        }
        by_id = {t.id: t for t in tasks}
        p_by_id = {t.id: float(pi) for t, pi in zip(tasks, p, strict=True)}
        test_tasks = [by_id[i] for i in test.ids]
        test_p = np.array([p_by_id[i] for i in test.ids])

        server = backend = None
        try:
            if cfg.live:
                server, backend = self.start_server()
                # queries evenly spaced in predicted P(correct), so the check covers easy to hard
                ranked = sorted(train.ids, key=lambda i: p_by_id[i])
                picks = np.unique(np.linspace(0, len(ranked) - 1, min(cfg.verify_n, len(ranked))).round())
                self.verify(server, backend, [by_id[ranked[int(j)]] for j in picks], p_by_id)
            probe = self.train(train, "bestofk", cfg.max_k)
            rep = self.replay(test, probe, "bestofk", cfg.budgets, cfg.max_k)
            live = {}
            if cfg.live and probe is not None:
                live = self.live_best_of_k(backend, test_tasks, test_p, probe)
            routing = None
            if cfg.routing:
                routing = self.routing(outcomes, draws, train, test, backend, test_tasks, test_p)
        finally:
            if server is not None:
                server.stop()
        self._timed("total", t_all)
        self.report["timings_s"] = self.timings
        self.report["missing"] = self.missing
        write_run_folder(
            folder, self.report, command=command, rep=rep, live=live, routing=routing, console=self.console
        )
        return folder

    def _by_tier(self, tasks: list[Task], p: np.ndarray) -> dict[str, float]:
        tiers: dict[str, list[float]] = {}
        for t, pi in zip(tasks, p, strict=True):
            tiers.setdefault(str(t.metadata.get("tier")), []).append(float(pi))
        return {k: round(float(np.mean(v)), 3) for k, v in tiers.items()}

    def label(self) -> tuple[list[Task], np.ndarray]:
        cfg = self.cfg
        start = time.monotonic()
        tasks = arithmetic_tasks(cfg.n_train + cfg.n_test, seed=cfg.seed)
        self.say(
            f"[bold]1. tasks[/bold]: {len(tasks)} few-shot arithmetic queries, digit tiers "
            "1x1, 1x2, 2x2, 2x3, 3x3 (operands' digit counts)"
        )
        from adaptive_router.probe import answer_probabilities, gemma_model_dir

        t = time.monotonic()
        self.say(
            "[bold]2. label[/bold]: Gemma-3-270M (embedded GGUF -> transformers, converted once and cached)"
        )
        model_dir = gemma_model_dir()
        self._timed("model_conversion_or_load", t)
        prog, bar = self._progress("exact answer probability, one forward pass per query", len(tasks))
        with prog:
            p = answer_probabilities(
                tasks,
                model_dir=model_dir,
                temperature=cfg.temperature,
                num_threads=cfg.threads,
                progress=lambda k: prog.advance(bar, k),
            )
        self._timed("label", start)
        tiers = self._by_tier(tasks, p)
        self.say("  P(correct) by tier: " + ", ".join(f"{k} {v:.2f}" for k, v in tiers.items()))
        return tasks, p

    def start_server(self) -> tuple[Any, Any]:
        from adaptive_router.integrations.llama_server import LlamaServer
        from adaptive_router.integrations.openai_backend import OpenAIChatModel

        t = time.monotonic()
        server = LlamaServer.gemma(n_threads=self.cfg.threads).start()
        self._timed("server_start", t)
        model = OpenAIChatModel.for_llama_server(
            server,
            temperature=self.cfg.temperature,
            top_p=1.0,
            max_tokens=8,
            stop=["\n"],
            max_attempts=3,
        )
        backend = model.bind(extra_body=dict(_LLAMA_SAMPLING))
        self.say(f"  llama.cpp server up at {server.base_url} ({self.timings['server_start']:.0f}s)")
        return server, backend

    def verify(self, server: Any, backend: Any, tasks: list[Task], p_by_id: dict[str, float]) -> None:
        from adaptive_router.app.labeling import label_tasks

        cfg = self.cfg
        start = time.monotonic()
        path = self.folder / "verify_samples.jsonl"
        prog, bar = self._progress("check against real llama.cpp samples", len(tasks))
        with prog:
            summary = label_tasks(
                tasks,
                backend,
                path,
                samples=cfg.verify_samples,
                procedure="gemma-llama.cpp",
                concurrency=2,
                progress=lambda d, t: prog.update(bar, completed=d),
            )
        real = OutcomeSet.read_jsonl(path)
        c, n = real.success_counts("gemma-llama.cpp")
        emp = c / n
        pred = np.array([p_by_id[i] for i in real.ids])
        corr = float(np.corrcoef(pred, emp)[0, 1]) if emp.std() > 0 and pred.std() > 0 else float("nan")
        self.report["verification"] = {
            "queries": len(real),
            "samples_per_query": cfg.verify_samples,
            "calls": summary.calls,
            "mean_predicted": float(pred.mean()),
            "mean_sampled": float(emp.mean()),
            "mean_abs_diff": float(np.abs(pred - emp).mean()),
            "pearson": corr,
        }
        self._timed("verify", start)
        self.say(
            f"  exact P(correct) vs {cfg.verify_samples} real samples on {len(real)} queries: "
            f"mean {pred.mean():.3f} vs {emp.mean():.3f}, mean |diff| {np.abs(pred - emp).mean():.3f}, "
            f"Pearson r {corr:.2f}"
        )

    def train(self, train: OutcomeSet, name: str, max_k: int) -> Any:
        cfg = self.cfg
        start = time.monotonic()
        try:
            from adaptive_router.probe import train_probe
        except ImportError as exc:
            self.missing.append(f"probe training ({exc})")
            self.say(f"[red]  probe package cannot train yet: {exc}[/red]")
            return None
        self.say(
            f"[bold]train[/bold] the {name} probe on {len(train)} queries, features = "
            f"{cfg.featurizer} hidden states"
        )
        probe = train_probe(train, featurizer=cfg.featurizer, max_k=max_k, budgets=list(cfg.budgets))
        probe.save(self.folder / f"probe-{name}")
        self._timed(f"train_{name}", start)
        report = getattr(probe, "report", {}) or {}
        self.report[f"probe_{name}"] = report
        self.say(f"  fallback_active={probe.fallback_active}; " + short_report(report))
        return probe

    def replay(self, test: OutcomeSet, probe: Any, name: str, budgets: Any, max_k: int) -> dict[str, Any]:
        start = time.monotonic()
        predicted = probe.predict_curves(test.texts()) if probe is not None else None
        rep = evaluate_allocation(test, budgets=list(budgets), predicted=predicted, max_k=max_k)
        self.report[f"replay_{name}"] = rep
        self._timed(f"replay_{name}", start)
        return rep

    def live_best_of_k(self, backend: Any, tasks: list[Task], p: np.ndarray, probe: Any) -> dict[str, Any]:
        from adaptive_router.app.live_run import (
            SharedSamples,
            completion_model,
            run_live,
            verifier_reranker,
            vote_reranker,
        )
        from adaptive_router.runnables import AdaptiveRouter
        from adaptive_router.strategies import BestOfK

        cfg = self.cfg
        start = time.monotonic()
        self.say(
            f"[bold]4. live[/bold]: {len(tasks)} held-out queries through AdaptiveRouter(BestOfK) -> "
            "llama.cpp, answers scored by the verifier (uniform = the router without a probe, one-shot; "
            "adaptive = the probe's one-shot k; rounds = the probe's prior, then the verifier's evidence; "
            "vote = self-consistency, the plurality of k answers, one-shot; rounds_vote = rounds on the "
            "votes' agreement, no verifier and no probe)"
        )
        shared = SharedSamples(backend)
        self.shared = shared
        sampler = completion_model(shared)
        by_verifier = BestOfK(sampler, reranker=verifier_reranker(tasks), max_k=cfg.max_k, procedure="gemma")
        by_vote = BestOfK(sampler, reranker=vote_reranker(tasks), max_k=cfg.max_k, procedure="gemma")
        rows: dict[str, Any] = {}
        # the probe predicts best-of-k with a verifier, not vote accuracy: the vote methods run without it
        methods = (
            ("uniform", by_verifier, None, None),
            ("adaptive", by_verifier, probe, None),
            ("rounds", by_verifier, probe, "auto"),
            ("vote", by_vote, None, None),
            ("rounds_vote", by_vote, None, "auto"),
        )
        prog, bar = self._progress("live runs (budget x method)", len(methods) * len(cfg.budgets))
        with prog:
            for b in cfg.budgets:
                for method, strategy, pr, rounds in methods:
                    # every method reads the same sample streams: a second method costs no new requests
                    # for the samples an earlier one drew
                    shared.new_pass()
                    router = AdaptiveRouter(
                        strategy=strategy,
                        probe=pr,
                        budget_per_query=float(b),
                        window_size=len(tasks),
                        rounds=rounds,
                    )
                    res = run_live(tasks, router)
                    row = res.as_dict()
                    # a one-shot best-of-k is fixed before sampling, so its expected accuracy is exact; rounds
                    # stop on the samples drawn and a vote depends on the wrong answers: theirs is live only
                    one_shot_verifier = rounds is None and strategy is by_verifier
                    row["expected_quality"] = expected_best_of_k(p, res.ks) if one_shot_verifier else None
                    rows.setdefault(str(b), {})[method] = row
                    prog.advance(bar)
        self.report["live_best_of_k"] = {
            "queries": len(tasks),
            "real_requests": shared.requests,
            "by_budget": rows,
        }
        self._timed("live_best_of_k", start)
        return rows

    def routing(
        self,
        outcomes: OutcomeSet,
        draws: np.ndarray,
        train: OutcomeSet,
        test: OutcomeSet,
        backend: Any,
        test_tasks: list[Task],
        test_p: np.ndarray,
    ) -> dict[str, Any] | None:
        start = time.monotonic()
        self.say(
            f"[bold]5. routing[/bold]: `{CHEAP}` (1 sample, cost 1) vs `{EXPENSIVE}` (verifier picks the "
            "best of 4, cost 4)"
        )
        routed = routing_outcomes(outcomes, draws)
        rtrain = routed.subset([routed.ids.index(i) for i in train.ids])
        rtest = routed.subset([routed.ids.index(i) for i in test.ids])
        probe = self.train(rtrain, "routing", 1)
        rep = self.replay(rtest, probe, "routing", [1.75, 2.5], 1)
        out: dict[str, Any] = {"replay": rep}
        share = (rep.get("routing") or {}).get("expensive_share", {}).get("adaptive")
        if self.cfg.live and probe is not None and backend is not None and share is not None:
            out["live"] = self.live_routing(test_tasks, test_p, probe, 1.0 + 3.0 * min(1.0, share + 0.02))
        self._timed("routing", start)
        self.report["routing"] = out
        return out

    def live_routing(self, tasks: list[Task], p: np.ndarray, probe: Any, budget: float) -> dict[str, Any]:
        from langchain_core.runnables import RunnableLambda

        from adaptive_router.app.live_run import completion_model, run_live, verifier_reranker
        from adaptive_router.runnables import AdaptiveRouter
        from adaptive_router.strategies import Route

        shared = self.shared
        by_prompt = {t.prompt: t for t in tasks}

        def best_of_4(value: Any) -> str:
            from adaptive_router.prompts import prompt_text

            prompt = prompt_text(value)
            texts = [shared(prompt).text for _ in range(4)]
            task = by_prompt.get(prompt)
            good = [x for x in texts if task is not None and task.score(x) > 0]
            return (good or texts)[0]

        strategy = Route(
            models={CHEAP: completion_model(shared), EXPENSIVE: RunnableLambda(best_of_4)},
            costs={CHEAP: 1.0, EXPENSIVE: 4.0},
            reranker=verifier_reranker(tasks),
        )
        shared.new_pass()
        router = AdaptiveRouter(
            strategy=strategy, probe=probe, budget_per_query=budget, window_size=len(tasks), rounds=None
        )
        res = run_live(tasks, router)
        row = res.as_dict()
        n_exp = res.procedures.count(EXPENSIVE)
        ks = [4 if proc == EXPENSIVE else 1 for proc in res.procedures]
        row.update(
            {
                "budget_per_query": budget,
                "expensive_share": n_exp / max(1, len(tasks)),
                "expected_quality": expected_best_of_k(p, ks),
                "all_expensive_expected_quality": expected_best_of_k(p, [4] * len(tasks)),
            }
        )
        return row


def _check_environment(*, live: bool) -> None:
    """Raise ModuleNotFoundError (the CLI prints the ``pip install`` line) for a missing package."""
    import importlib.util

    for module in ("torch", "transformers", "safetensors", *(("llama_cpp",) if live else ())):
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"the demo needs {module!r}", name=module)


def run_demo(
    config: DemoConfig | None = None, *, console: Any = None, argv: Sequence[str] | None = None
) -> Path:
    """Run the whole demo and return the run folder (see the module docstring for the steps)."""
    run = DemoRun(config or DemoConfig(), console=console, argv=list(argv if argv is not None else sys.argv))
    return run.run()
