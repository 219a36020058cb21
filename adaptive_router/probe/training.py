"""`train_probe`: recorded outcomes -> a validated `Probe` in one call."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptive_router.errors import ConfigError
from adaptive_router.probe.estimator import CurveProbe
from adaptive_router.probe.featurizer import Featurizer, get_featurizer
from adaptive_router.probe.probe import Probe

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


def train_probe(
    outcomes: OutcomeSet,
    *,
    featurizer: str | os.PathLike[str] | Featurizer = "minilm-l6",
    max_k: int | None = None,
    budgets: Sequence[float] = (1, 2, 4, 8),
    costs: Mapping[str, float] | None = None,
    label_kind: str = "auto",
    **params: Any,
) -> Probe:
    """Featurize the prompts, fit a `CurveProbe`, validate shrinkage and the fallback, return a `Probe`.

    Parameters
    ----------
    outcomes : OutcomeSet
        Recorded outcomes of the training queries (one or several procedures).
    featurizer : str, path or Featurizer
        ``"minilm-l6"`` (fast), ``"gemma-3-270m"`` (an LM's own hidden states), a model folder or an object.
    max_k : int, optional
        Curve length; default ``min(8, fewest samples recorded for any query)``.
    budgets : sequence of float
        Budgets per query (cost units) at which the probe must beat uniform allocation.
    costs : mapping, optional
        Cost of one call of each procedure; default ``outcomes.procedure_costs``.
    label_kind : {"auto", "binary", "curve"}
    **params
        Passed to `CurveProbe` (``hidden``, ``n_folds``, ``seed``, ``fallback``...).

    Examples
    --------
    >>> from adaptive_router.outcomes import OutcomeSet
    >>> probe = train_probe(OutcomeSet.read_jsonl("outcomes.jsonl"), max_k=8)  # doctest: +SKIP
    >>> probe.report["fallback_reason"]  # doctest: +SKIP
    'adaptive beats uniform on validation: ...'
    """
    if len(outcomes) == 0:
        raise ConfigError("outcomes is empty; record outcomes for some training queries first")
    if max_k is None:
        fewest = min(int(np.min(outcomes.success_counts(p)[1])) for p in outcomes.procedures)
        max_k = max(1, min(8, fewest))
    kind, labels = outcome_labels(outcomes, int(max_k), label_kind)
    feat = get_featurizer(featurizer)
    X = feat.transform(outcomes.texts())
    est = CurveProbe(label_kind=kind, max_k=int(max_k), budgets=tuple(budgets),
                     costs=dict(costs) if costs is not None else dict(outcomes.procedure_costs), **params)
    est.fit(X, labels)
    est.report_["featurizer"] = feat.identity()
    return Probe(featurizer=feat, estimator=est)
