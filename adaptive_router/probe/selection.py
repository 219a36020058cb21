"""Choosing the probe's featurizer and head on held-out allocation quality, inside training.

`train_probe` fits one `CurveProbe` per candidate (a featurizer's features with one head setting) and keeps
the one whose **validation** scores best: the mean, over the target budgets, of the held-out allocation
quality the candidate would deliver: adaptive at its validated shrinkage and neighbour weight, or uniform
when its own validation falls back. Every figure comes from the candidate's cross-fitted (out-of-fold)
predictions of the training queries, replayed by `adaptive_router.allocation.Replay` (the replay
``evaluate`` reports); nothing held out from training is read. Ties keep the earlier (cheaper) candidate,
so the candidate lists run cheap first.

The winner keeps its own fallback: if its validation says adaptive does not beat uniform, it predicts the
population curve, which the replay scores as the fixed policies' hull mix (uniform). A candidate that falls
back scores exactly uniform here, so the chosen probe's validation figure is never below uniform's.

The choice reads the same out-of-fold predictions that the winner's shrinkage and fallback test read; with
a handful of candidates the optimism this adds is small, and the report lists every candidate's score so
it can be judged.

On a cascade's training set, where every prompt is ``join_draft(query, draft)``, `draft_candidates` adds
the draft's `AnswerSignals` (alone, and appended to each featurizer's query features) to ``"auto"``'s
featurizers: a cheap model's answer says far more about whether it failed than the question does.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> signal, noise = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
>>> p = 1 / (1 + np.exp(-3 * signal[:, 0]))
>>> y = {"gen": (rng.binomial(4, p), np.full(200, 4))}
>>> sel = select_candidate(
...     {"noise": noise, "signal": signal}, y,
...     [Candidate("noise", {"hidden": 0}), Candidate("signal", {"hidden": 0})],
...     max_k=4, budgets=(2,), lr=0.03, max_epochs=40, n_folds=3, n_bootstrap=200, num_threads=1)
>>> sel.candidate.featurizer, sel.estimator.fallback_
('signal', False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adaptive_router.errors import ConfigError
from adaptive_router.probe.estimator import CurveProbe
from adaptive_router.probe.signals import AUTO_FINAL_ANSWER, AnswerSignals, WithAnswerSignals
from adaptive_router.prompts.text import has_draft

__all__ = [
    "AUTO_FEATURIZERS",
    "AUTO_HEADS",
    "AUTO_NEIGHBORS",
    "AUTO_SIGNALS",
    "Candidate",
    "Selection",
    "candidate_score",
    "draft_candidates",
    "select_candidate",
]

AUTO_FEATURIZERS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("minilm-l6", {}),
    ("gemma-3-270m", {"layers": (9,), "pooling": "mean"}),
)
"""Featurizers ``train_probe(featurizer="auto")`` chooses among, cheapest first: ``(name, settings)``.

MiniLM-L6 (22M, sentence embeddings) and Gemma-3-270M's layer 9, mean-pooled (an LM's own hidden states;
the featurizer runs only the first 10 of its 18 layers). On RouteLLM's training halves Gemma's states
carry more of what makes a prompt hard for Mixtral on GSM8K and MMLU; on other data MiniLM can win.
"""

AUTO_HEADS: tuple[Mapping[str, Any], ...] = (
    {"hidden": 0, "l2": 1.0},
    {"hidden": 64, "l2": 0.0},
)
"""Head settings chosen among when neither ``hidden`` nor ``l2`` is given: a strongly L2-penalised
linear head (one linear map of the shared features per procedure, like a ridge logistic regression) and a
one-hidden-layer MLP whose trunk all procedures share."""

AUTO_NEIGHBORS = 150
"""Neighbours per query when ``neighbors`` is not given; their blend weight (0 to 1) is validated."""

AUTO_SIGNALS: Mapping[str, Any] = {"final_answer": AUTO_FINAL_ANSWER, "question": True}
"""`AnswerSignals` settings of the draft candidates ``featurizer="auto"`` adds when every prompt carries a
draft (`draft_candidates`): the built-in final-answer reader (``#### 42``, ``\\boxed{42}``, "the answer is
42", else the last number), so no pattern has to be given, and the checks of the draft against its
question."""

SIGNALS_NAME = "answer-signals"
"""How the report names the draft checks among the candidate featurizers."""


@dataclass(frozen=True)
class Candidate:
    """One featurizer's features (by name) with one set of `CurveProbe` parameters."""

    featurizer: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        """``"<featurizer> hidden=64 l2=0"``: the name the report lists."""
        settings = " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.featurizer} {settings}".strip()


@dataclass
class Selection:
    """What `select_candidate` chose: the candidate, its fitted estimator and every candidate's score."""

    candidate: Candidate
    estimator: CurveProbe
    scores: list[dict[str, Any]]


def draft_candidates(
    featurizers: Sequence[tuple[str, Any]], texts: Sequence[str]
) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """The candidate featurizers, with the draft checks added when every text carries a draft.

    When every text is ``join_draft(query, draft)`` (a cascade's training set, `has_draft`), the candidates
    become: the `AnswerSignals` of the draft alone (`AUTO_SIGNALS`; no model, so first: ties keep it), then
    each featurizer as given (reading the whole text) followed by the same featurizer on the query with the
    draft's signals appended (`WithAnswerSignals`). Otherwise they are returned unchanged: the signals need a
    draft in every text.

    Parameters
    ----------
    featurizers : sequence of (name, featurizer)
        The prompt featurizers to choose among (``featurizer="auto"``'s `AUTO_FEATURIZERS`).
    texts : sequence of str
        The training texts.

    Returns
    -------
    (list of (name, featurizer), dict)
        The candidates, and what the report records: ``{"texts": n, "with_draft": m, "answer_signals":
        bool}``.

    Examples
    --------
    >>> from adaptive_router.prompts import join_draft
    >>> names, note = draft_candidates([("minilm-l6", None)], [join_draft("2 + 2?", "#### 4")])
    >>> [name for name, _ in names], note["answer_signals"]
    (['answer-signals', 'minilm-l6', 'minilm-l6 + answer-signals'], True)
    >>> [name for name, _ in draft_candidates([("minilm-l6", None)], ["2 + 2?"])[0]]
    ['minilm-l6']
    """
    with_draft = sum(has_draft(t) for t in texts)
    drafted = 0 < with_draft == len(texts)
    note = {"texts": len(texts), "with_draft": int(with_draft), "answer_signals": drafted}
    if not drafted:
        return list(featurizers), note
    signals = AnswerSignals(**AUTO_SIGNALS)
    out: list[tuple[str, Any]] = [(SIGNALS_NAME, WithAnswerSignals(None, signals))]
    for name, feat in featurizers:
        out += [(name, feat), (f"{name} + {SIGNALS_NAME}", WithAnswerSignals(feat, signals))]
    return out, note


def candidate_score(estimator: CurveProbe) -> float:
    """The held-out allocation quality a fitted estimator delivers, averaged over its target budgets.

    Adaptive at the validated shrinkage, or uniform where the estimator falls back (it then predicts the
    population curve, which the replay scores as uniform).
    """
    rows = estimator.report_["allocation"]
    key = "uniform" if estimator.fallback_ else "adaptive"
    return float(np.mean([r[key] for r in rows]))


def select_candidate(
    features: Mapping[str, Any],
    y: Mapping[str, Any],
    candidates: Sequence[Candidate],
    **params: Any,
) -> Selection:
    """Fit a `CurveProbe` per candidate and keep the one with the best held-out allocation quality.

    Parameters
    ----------
    features : mapping
        Featurizer name -> ``(n, d)`` features of the same training queries.
    y : mapping
        Labels, as `CurveProbe.fit` takes them.
    candidates : sequence of Candidate
        Tried in order; ties keep the earlier one. A candidate's ``params`` override ``params``.
    **params
        `CurveProbe` parameters shared by every candidate (budgets, costs, folds, seed...).

    Returns
    -------
    Selection
        The winning candidate, its fitted estimator (the winner's own shrinkage and fallback apply) and a
        row per candidate: ``candidate``, ``featurizer``, ``params``, ``score``, ``uniform``, ``fallback``,
        ``shrinkage``, ``neighbor_weight``.

    Raises
    ------
    ConfigError
        No candidates, or a candidate names features that were not given.
    """
    if not candidates:
        raise ConfigError("select_candidate needs at least one Candidate")
    unknown = sorted({c.featurizer for c in candidates} - set(features))
    if unknown:
        raise ConfigError(f"candidates name features {unknown} that were not given; have {sorted(features)}")
    fitted: list[CurveProbe] = []
    scores: list[dict[str, Any]] = []
    for cand in candidates:
        est = CurveProbe(**{**params, **cand.params}).fit(features[cand.featurizer], y)
        fitted.append(est)
        scores.append({
            "candidate": cand.label(),
            "featurizer": cand.featurizer,
            "params": dict(cand.params),
            "score": candidate_score(est),
            "uniform": float(np.mean([r["uniform"] for r in est.report_["allocation"]])),
            "fallback": bool(est.fallback_),
            "shrinkage": float(est.shrinkage_),
            "neighbor_weight": float(est.neighbor_weight_),
        })
    top = max(row["score"] for row in scores)
    i = next(j for j, row in enumerate(scores) if row["score"] >= top - 1e-12)  # ties: the earlier one
    return Selection(candidate=candidates[i], estimator=fitted[i], scores=scores)
