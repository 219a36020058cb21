"""`train_probe`: recorded outcomes -> a validated `Probe` in one call, its featurizer and head chosen on
validation (`adaptive_router.probe.selection`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptive_router.errors import ConfigError
from adaptive_router.probe.featurizer import Featurizer, get_featurizer
from adaptive_router.probe.probe import Probe
from adaptive_router.probe.selection import (
    AUTO_FEATURIZERS,
    AUTO_HEADS,
    AUTO_NEIGHBORS,
    Candidate,
    draft_candidates,
    select_candidate,
)

if TYPE_CHECKING:
    from adaptive_router.outcomes import OutcomeSet

__all__ = ["outcome_labels", "train_probe"]


def outcome_labels(outcomes: OutcomeSet, max_k: int, label_kind: str = "auto") -> tuple[str, dict[str, Any]]:
    """Labels for `CurveProbe.fit` from an outcome set: ``(kind, {proc: labels})``.

    Binary outcomes (every reward 0/1, or ``{"successes", "samples"}`` records) give ``(successes,
    samples)`` per procedure; anything else gives the true curves ``(n, max_k)`` (expected best-of-k, or
    reranked best-of-k when scores are recorded), NaN where a query has fewer than k samples.
    """
    if label_kind not in ("auto", "binary", "curve"):
        raise ConfigError(f"label_kind={label_kind!r} is not one of ('auto', 'binary', 'curve')")
    procs = outcomes.procedures
    if label_kind == "auto":
        binary = all(outcomes.is_binary(p) for p in procs) and all(outcomes.scores(p) is None for p in procs)
        label_kind = "binary" if binary else "curve"
    if label_kind == "binary":
        return "binary", {p: outcomes.success_counts(p) for p in procs}
    return "curve", dict(outcomes.true_curves(max_k))


def _candidate_featurizers(
    featurizer: str | os.PathLike[str] | Featurizer | Sequence[str | os.PathLike[str] | Featurizer],
) -> list[tuple[str, Featurizer]]:
    """``(name, featurizer)`` per candidate: ``"auto"`` gives `AUTO_FEATURIZERS`; a list gives each.

    The draft candidates ``"auto"`` adds for drafted texts come from `draft_candidates`, in `train_probe`.
    """
    if _is_auto(featurizer):
        specs: list[Any] = [(name, settings) for name, settings in AUTO_FEATURIZERS]
    elif isinstance(featurizer, (list, tuple)):
        if not featurizer:
            raise ConfigError("featurizer is an empty list; give at least one featurizer, or 'auto'")
        specs = list(featurizer)
    else:
        specs = [featurizer]
    out: list[tuple[str, Featurizer]] = []
    for spec in specs:
        if isinstance(spec, tuple):  # (embedded name, settings) from AUTO_FEATURIZERS
            name, settings = spec
            feat = get_featurizer(name, **settings)
            label = " ".join([name, *(f"{k}={v}" for k, v in sorted(settings.items()))])
        else:
            feat = get_featurizer(spec)
            label = str(spec) if isinstance(spec, (str, os.PathLike)) else type(spec).__name__
        while label in {n for n, _ in out}:
            label += "'"
        out.append((label, feat))
    return out


def _is_auto(featurizer: Any) -> bool:
    return isinstance(featurizer, str) and featurizer == "auto"


def train_probe(
    outcomes: OutcomeSet,
    *,
    featurizer: str | os.PathLike[str] | Featurizer | Sequence[str | os.PathLike[str] | Featurizer] = "auto",
    max_k: int | None = None,
    budgets: Sequence[float] = (1, 2, 4, 8),
    costs: Mapping[str, float] | None = None,
    label_kind: str = "auto",
    **params: Any,
) -> Probe:
    """Featurize the prompts, fit and choose a `CurveProbe`, validate shrinkage and the fallback.

    Every setting not given is chosen on validation (`adaptive_router.probe.selection`): each candidate
    featurizer × head setting is cross-fitted on the training queries, and the one whose held-out
    allocation quality at ``budgets`` is best is kept, with its own validated shrinkage, neighbour weight and
    uniform fallback. ``probe.report["selection"]`` names the winner (``chosen``), lists every candidate's
    score and, with ``featurizer="auto"``, records under ``drafts`` how many prompts carry a draft and whether
    the answer signals were candidates.

    Parameters
    ----------
    outcomes : OutcomeSet
        Recorded outcomes of the training queries (one or several procedures).
    featurizer : str, path, Featurizer or a list of them
        ``"auto"`` (default) chooses among `AUTO_FEATURIZERS` (MiniLM-L6 and Gemma-3-270M layer 9, mean)
        and, when every prompt carries a cheap model's draft (``join_draft(query, draft)``, a cascade's
        training set), also among the draft's `AnswerSignals` alone and each featurizer with them
        (`adaptive_router.probe.selection.draft_candidates`); a list chooses among its entries; one name
        (``"minilm-l6"``, ``"gemma-3-270m"``), model folder or object is used as is. Every candidate
        featurizes every training prompt.
    max_k : int, optional
        Curve length; default ``min(8, fewest samples recorded for any query)``.
    budgets : sequence of float
        Budgets per query (cost units) at which the probe must beat uniform allocation.
    costs : mapping, optional
        Cost of one call of each procedure; default ``outcomes.procedure_costs``.
    label_kind : {"auto", "binary", "curve"}
    **params
        Passed to `CurveProbe` (``hidden``, ``l2``, ``neighbors``, ``n_folds``, ``seed``, ``fallback``...).
        Without ``hidden`` and ``l2`` the head is chosen among `AUTO_HEADS`; without ``neighbors`` it is
        `AUTO_NEIGHBORS` (150), whose blend weight, 0 included, is validated.

    Examples
    --------
    >>> from adaptive_router.outcomes import OutcomeSet
    >>> probe = train_probe(OutcomeSet.read_jsonl("outcomes.jsonl"), max_k=8)  # doctest: +SKIP
    >>> probe.report["fallback_reason"]  # doctest: +SKIP
    'adaptive beats uniform on validation: ...'
    >>> probe.report["selection"]["chosen"]  # doctest: +SKIP
    'gemma-3-270m layers=(9,) pooling=mean hidden=0 l2=1.0'
    """
    if len(outcomes) == 0:
        raise ConfigError("outcomes is empty; record outcomes for some training queries first")
    if max_k is None:
        fewest = min(int(np.min(outcomes.success_counts(p)[1])) for p in outcomes.procedures)
        max_k = max(1, min(8, fewest))
    kind, labels = outcome_labels(outcomes, int(max_k), label_kind)
    featurizers = _candidate_featurizers(featurizer)
    texts = outcomes.texts()
    drafts = None
    if _is_auto(featurizer):
        featurizers, drafts = draft_candidates(featurizers, texts)
    features = {name: feat.transform(texts) for name, feat in featurizers}
    heads: Sequence[Mapping[str, Any]] = (
        AUTO_HEADS if "hidden" not in params and "l2" not in params else ({},)
    )
    params.setdefault("neighbors", AUTO_NEIGHBORS)
    candidates = [Candidate(name, head) for name, _ in featurizers for head in heads]
    shared = {"label_kind": kind, "max_k": int(max_k), "budgets": tuple(budgets),
              "costs": dict(costs) if costs is not None else dict(outcomes.procedure_costs), **params}
    chosen = select_candidate(features, labels, candidates, **shared)
    est = chosen.estimator
    feat = dict(featurizers)[chosen.candidate.featurizer]
    est.report_["featurizer"] = feat.identity()
    est.report_["selection"] = {
        "chosen": chosen.candidate.label(),
        "score": "mean held-out allocation quality over the budgets (uniform where a candidate falls back)",
        "candidates": chosen.scores,
        **({"drafts": drafts} if drafts is not None else {}),
    }
    return Probe(featurizer=feat, estimator=est)
