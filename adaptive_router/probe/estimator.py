"""`CurveProbe`: features -> predicted reward curves per procedure, with validated shrinkage and fallback.

Fitting (all seeded, deterministic on CPU):

1. The population curve: a Beta fitted by beta-binomial likelihood to every query (binary labels) or the
   mean label curve (continuous labels).
2. ``n_folds`` cross-fitted heads; each trains on the other folds with early stopping on an inner validation
   split and predicts its own fold, giving out-of-fold (held-out) curves for every training query. With
   ``neighbors=k`` the k-nearest-neighbour curves of the same folds are blended in, by the weight (0 to 1 in
   quarters) with the best held-out allocation quality.
3. `select_shrinkage` picks the weight w of ``w · predicted + (1 − w) · population`` that maximises held-out
   *allocation quality* at the target budgets, and decides whether adaptive allocation beats uniform
   (paired bootstrap). If not, the fallback is set: predictions become the population curve, so allocation
   is uniform (one procedure) or the best fixed mix (several procedures); a warning is logged.
4. Prediction averages the fold heads' curves (a cross-fitted ensemble), blends in the neighbour curves
   (fitted on all training queries), then applies the shrinkage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adaptive_router.errors import ConfigError, NotFittedError
from adaptive_router.probe.neighbors import NeighborCurves

__all__ = ["CurveProbe"]

_log = logging.getLogger("adaptive_router.probe")

_LABEL_KINDS = ("auto", "binary", "curve")
_FALLBACK = ("auto", "never", "always")
_NEIGHBOR_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


class CurveProbe:
    """Predict expected reward curves q(x, k), k = 1..K, for each procedure from feature vectors.

    Parameters
    ----------
    label_kind : {"auto", "binary", "curve"}
        ``"binary"``: labels are ``{proc: (successes, samples)}`` (Beta head, expected pass@k curves).
        ``"curve"``: labels are ``{proc: (n, K) curves}`` (concave-curve head). ``"auto"`` infers it.
    max_k : int
        Curve length K.
    budgets : sequence of float
        Target budgets per query (cost units) at which shrinkage and the fallback are validated.
    costs : mapping or None
        Cost of one call of each procedure (default 1.0 each); option (proc, k) costs ``k · cost``.
    hidden, dropout, lr, weight_decay, batch_size, max_epochs, patience
        Head and training settings (``hidden=0`` is a linear head).
    l2 : float
        Ridge penalty on the head's weights (see `train_head`); with many features and few, noisy labels a
        linear head with a strong ``l2`` generalises best.
    neighbors : int
        ``k > 0`` adds `NeighborCurves` (the outcomes of the k most similar training queries) and blends them
        with the heads by a weight chosen on the held-out folds for allocation quality; 0 uses the heads only.
    n_folds : int
        Cross-fitting folds for the held-out predictions used to choose shrinkage.
    val_fraction : float
        Inner validation share for early stopping.
    fallback : {"auto", "never", "always"}
        ``"auto"`` falls back when validation says adaptive does not beat uniform; ``"never"`` only reports.
    alpha, margin, n_bootstrap
        Paired-bootstrap test of the gain over uniform (see `adaptive_router.probe.shrinkage`).
    seed : int
        Seeds folds, initialisation, minibatches and the bootstrap.
    num_threads : int or None
        ``torch.set_num_threads`` during fit/predict; None leaves torch's setting alone.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4))
    >>> p = 1 / (1 + np.exp(-3 * X[:, 0]))
    >>> y = {"gen": (rng.binomial(8, p), np.full(200, 8))}
    >>> probe = CurveProbe(max_k=4, budgets=(2,), max_epochs=20, n_folds=2, hidden=16,
    ...                    n_bootstrap=200, num_threads=1).fit(X, y)
    >>> probe.predict_curves(X[:2])["gen"].shape
    (2, 4)
    """

    def __init__(
        self,
        *,
        label_kind: str = "auto",
        max_k: int = 8,
        budgets: Sequence[float] = (1, 2, 4, 8),
        costs: Mapping[str, float] | None = None,
        hidden: int = 64,
        dropout: float = 0.1,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        l2: float = 0.0,
        batch_size: int = 128,
        max_epochs: int = 200,
        patience: int = 15,
        neighbors: int = 0,
        n_folds: int = 5,
        val_fraction: float = 0.15,
        fallback: str = "auto",
        alpha: float = 0.05,
        margin: float = 0.0,
        n_bootstrap: int = 2000,
        seed: int = 0,
        num_threads: int | None = None,
    ) -> None:
        self.label_kind = label_kind
        self.max_k = max_k
        self.budgets = budgets
        self.costs = costs
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.l2 = l2
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.neighbors = neighbors
        self.n_folds = n_folds
        self.val_fraction = val_fraction
        self.fallback = fallback
        self.alpha = alpha
        self.margin = margin
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.num_threads = num_threads

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        if self.label_kind not in _LABEL_KINDS:
            raise ConfigError(f"label_kind={self.label_kind!r} is not one of {_LABEL_KINDS}")
        if self.fallback not in _FALLBACK:
            raise ConfigError(f"fallback={self.fallback!r} is not one of {_FALLBACK}")
        if isinstance(self.max_k, bool) or not isinstance(self.max_k, (int, np.integer)) or self.max_k < 1:
            raise ConfigError(f"max_k must be a positive integer, got {self.max_k!r}")
        k = self.neighbors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ConfigError(f"neighbors must be an integer >= 0, got {self.neighbors!r}")
        if not float(self.l2) >= 0.0:
            raise ConfigError(f"l2 must be a number >= 0, got {self.l2!r}")
        if not isinstance(self.n_folds, (int, np.integer)) or self.n_folds < 2:
            raise ConfigError(f"n_folds must be an integer >= 2, got {self.n_folds!r}")
        if not 0.0 < float(self.val_fraction) < 0.5:
            raise ConfigError(f"val_fraction must be in (0, 0.5), got {self.val_fraction!r}")
        if not self.budgets or any(float(b) <= 0 for b in self.budgets):
            raise ConfigError(
                f"budgets must be a non-empty sequence of positive numbers, got {self.budgets!r}"
            )
        if not 0.0 < float(self.alpha) < 0.5:
            raise ConfigError(f"alpha must be in (0, 0.5), got {self.alpha!r}")

    def _labels(self, y: Mapping[str, Any], n: int) -> tuple[str, tuple[str, ...], dict[str, np.ndarray]]:
        if not isinstance(y, Mapping) or not y:
            raise ConfigError(
                "y must be a non-empty mapping {procedure: (successes, samples)} for binary labels or "
                "{procedure: (n, K) curves} for continuous labels"
            )
        procs = tuple(str(p) for p in y)
        kinds = {p: ("binary" if isinstance(v, tuple) else "curve") for p, v in y.items()}
        kind = self.label_kind if self.label_kind != "auto" else next(iter(kinds.values()))
        if any(k != kind for k in kinds.values()):
            raise ConfigError(
                f"mixed label kinds {kinds}: give every procedure (successes, samples) or curves"
            )
        K = int(self.max_k)
        if kind == "binary":
            succ = np.zeros((n, len(procs)))
            samp = np.zeros((n, len(procs)))
            for j, p in enumerate(procs):
                if not isinstance(y[p], tuple) or len(y[p]) != 2:
                    raise ConfigError(f"binary labels for {p!r} must be a (successes, samples) tuple")
                c = np.asarray(y[p][0], dtype=float)
                s = np.asarray(y[p][1], dtype=float)
                if c.shape != (n,) or s.shape != (n,):
                    raise ConfigError(f"labels for {p!r} have shapes {c.shape}/{s.shape}, expected ({n},)")
                if (c < 0).any() or (c > s).any() or (s < 1).any():
                    raise ConfigError(f"labels for {p!r} need 0 <= successes <= samples and samples >= 1")
                succ[:, j], samp[:, j] = c, s
            return kind, procs, {"successes": succ, "samples": samp}
        curves = np.full((n, len(procs), K), np.nan)
        for j, p in enumerate(procs):
            arr = np.asarray(y[p], dtype=float)
            if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
                raise ConfigError(f"curve labels for {p!r} must be (n={n}, K) arrays, got {arr.shape}")
            width = min(K, arr.shape[1])
            curves[:, j, :width] = arr[:, :width]
        if not np.isfinite(curves[:, :, 0]).all():
            raise ConfigError("curve labels need a finite k=1 value for every query and procedure")
        return kind, procs, {"curves": curves}

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Mapping[str, Any]) -> CurveProbe:
        """Fit heads, choose shrinkage and the fallback on held-out folds; returns ``self``."""
        self._check_params()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or not np.isfinite(X).all():
            raise ConfigError(f"X must be a finite 2-D (n, d) feature array, got shape {X.shape}")
        n = X.shape[0]
        if n < 4 * int(self.n_folds):
            raise ConfigError(
                f"need at least {4 * int(self.n_folds)} queries to fit with n_folds={self.n_folds}, got {n}"
            )
        kind, procs, labels = self._labels(y, n)
        import torch

        from adaptive_router.probe import heads as H

        prev_threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(int(self.num_threads))
        try:
            torch.manual_seed(int(self.seed))
            K = int(self.max_k)
            self.label_kind_ = kind
            self.procedures_ = procs
            self.max_k_ = K
            self.n_features_in_ = X.shape[1]
            self.costs_ = {p: float((self.costs or {}).get(p, 1.0)) for p in procs}
            self._fit_population(labels, kind, procs, K)
            config = H.HeadConfig(
                kind="beta" if kind == "binary" else "curve",
                in_dim=X.shape[1],
                n_procedures=len(procs),
                max_k=K,
                hidden=int(self.hidden),
                dropout=float(self.dropout),
            )
            self.head_config_ = config
            rng = np.random.default_rng(int(self.seed))
            folds = rng.permutation(n) % int(self.n_folds)
            oof = np.zeros((n, len(procs), K))
            oof_neighbors = np.zeros_like(oof) if self.neighbors else None
            self.heads_ = []
            epochs = []
            for f in range(int(self.n_folds)):
                tr = np.flatnonzero(folds != f)
                te = np.flatnonzero(folds == f)
                if oof_neighbors is not None:
                    fold_labels = {k: v[tr] for k, v in labels.items()}
                    oof_neighbors[te] = self._fit_neighbors(X[tr], fold_labels).predict(X[te], K)
                inner = rng.permutation(tr)
                n_val = max(1, round(len(tr) * float(self.val_fraction)))
                va, tr = inner[:n_val], inner[n_val:]
                torch.manual_seed(int(self.seed) * 1000 + f)
                head = H.build_head(config)
                head.set_standardization(X[tr])
                self._init_head(head)
                res = H.train_head(
                    head,
                    X[tr],
                    {k: v[tr] for k, v in labels.items()},
                    X[va],
                    {k: v[va] for k, v in labels.items()},
                    lr=float(self.lr),
                    weight_decay=float(self.weight_decay),
                    l2=float(self.l2),
                    batch_size=int(self.batch_size),
                    max_epochs=int(self.max_epochs),
                    patience=int(self.patience),
                    seed=int(self.seed) * 1000 + f,
                )
                epochs.append(res.best_epoch)
                with torch.no_grad():
                    oof[te] = head.curves(torch.as_tensor(X[te])).double().numpy()
                self.heads_.append(head)
            self.neighbors_ = None
            self.neighbor_weight_ = 0.0
            if oof_neighbors is not None:
                self.neighbors_ = self._fit_neighbors(X, labels)
                self.neighbor_weight_ = self._choose_neighbor_weight(oof, oof_neighbors, labels, kind)
                oof = self.neighbor_weight_ * oof_neighbors + (1.0 - self.neighbor_weight_) * oof
            self._validate(oof, labels, kind, epochs)
        finally:
            if self.num_threads is not None:
                torch.set_num_threads(prev_threads)
        return self

    def _fit_population(
        self, labels: dict[str, np.ndarray], kind: str, procs: tuple[str, ...], K: int
    ) -> None:
        import torch

        from adaptive_router.probe.heads import beta_binomial_nll, beta_expected_curve

        if kind == "binary":
            c = torch.as_tensor(labels["successes"], dtype=torch.float64)
            s = torch.as_tensor(labels["samples"], dtype=torch.float64)
            rate = (c.sum(0) / s.sum(0)).clamp(0.01, 0.99)
            log_ab = torch.stack([rate.log(), (1 - rate).log()]).clone().requires_grad_(True)
            opt = torch.optim.LBFGS([log_ab], max_iter=200, line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                opt.zero_grad()
                ab = log_ab.clamp(-6.9, 6.9).exp()
                loss = beta_binomial_nll(ab[0][None], ab[1][None], c, s).sum()
                loss.backward()
                return loss

            opt.step(closure)
            ab = log_ab.detach().clamp(-6.9, 6.9).exp()
            self.population_alpha_ = ab[0].numpy().copy()
            self.population_beta_ = ab[1].numpy().copy()
            self.population_curve_ = beta_expected_curve(ab[0], ab[1], K).numpy().copy()
        else:
            curve = np.nanmean(labels["curves"], axis=0)  # (P, K)
            for j in range(curve.shape[0]):  # extend past recorded k, then force monotone + concave
                row = curve[j]
                last = np.flatnonzero(np.isfinite(row)).max()
                row[last + 1 :] = row[last]
                inc = np.maximum(np.diff(row), 0.0)
                inc = np.minimum.accumulate(inc) if len(inc) else inc
                curve[j] = np.concatenate([[row[0]], row[0] + np.cumsum(inc)])
            self.population_curve_ = curve

    def _prior(self) -> Any:
        if self.label_kind_ == "binary":
            return (self.population_alpha_, self.population_beta_)
        return self.population_curve_

    def _fit_neighbors(self, X: np.ndarray, labels: dict[str, np.ndarray]) -> NeighborCurves:
        return NeighborCurves(int(self.neighbors)).fit(X, labels, prior=self._prior())

    def _choose_neighbor_weight(
        self, heads: np.ndarray, neighbors: np.ndarray, labels: dict[str, np.ndarray], kind: str
    ) -> float:
        """The blend weight of the neighbour curves with the best mean held-out allocation quality."""
        from adaptive_router.probe.metrics import replay

        true = self._true_curves(labels, kind)
        k_eval = max(1, self._validated_k(true))
        tv, costs = self._option_arrays(true, k_eval)
        scores: dict[float, float | None] = {}
        for w in _NEIGHBOR_WEIGHTS:
            pv, _ = self._option_arrays(w * neighbors + (1.0 - w) * heads, k_eval)
            runs = [r for b in self.budgets if (r := replay(pv, tv, costs, float(b))) is not None]
            scores[w] = float(np.mean([r.adaptive for r in runs])) if runs else None
        self.neighbor_scores_ = scores
        return max(_NEIGHBOR_WEIGHTS, key=lambda w: (scores[w] or -np.inf, -w))

    def _validated_k(self, true: np.ndarray) -> int:
        """Largest k recorded for every query (curves past it are not scored)."""
        finite = np.isfinite(true).all(axis=(0, 1))
        return int(np.argmin(finite)) if not finite.all() else self.max_k_

    def _init_head(self, head: Any) -> None:
        if self.label_kind_ == "binary":
            head.init_population(self.population_alpha_, self.population_beta_)
        else:
            head.init_population(self.population_curve_)

    # ------------------------------------------------------------------ validation of allocation
    def _true_curves(self, labels: dict[str, np.ndarray], kind: str) -> np.ndarray:
        if kind == "curve":
            return labels["curves"]
        from adaptive_router.curves import pass_at_k

        c, s = labels["successes"].astype(np.int64), labels["samples"].astype(np.int64)
        out = np.stack([pass_at_k(c[:, j], s[:, j], self.max_k_) for j in range(c.shape[1])], axis=1)
        return out

    def _option_arrays(self, curves: np.ndarray, k_eval: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, P, K) curves -> (n, m) option values and (m,) costs of ``Ladder.grid(costs_, k_eval)``."""
        from adaptive_router.allocation import Ladder

        ladder = Ladder.grid(self.costs_, k_eval)
        values = ladder.values({p: curves[:, j, :] for j, p in enumerate(self.procedures_)})
        return values, ladder.costs

    def _validate(self, oof: np.ndarray, labels: dict[str, np.ndarray], kind: str, epochs: list[int]) -> None:
        from adaptive_router.probe import metrics as M
        from adaptive_router.probe.shrinkage import select_shrinkage

        true = self._true_curves(labels, kind)
        k_eval = self._validated_k(true)
        report: dict[str, Any] = {
            "n_train": int(oof.shape[0]),
            "label_kind": kind,
            "procedures": list(self.procedures_),
            "max_k": self.max_k_,
            "validated_max_k": k_eval,
            "costs": dict(self.costs_),
            "budgets": [float(b) for b in self.budgets],
            "best_epochs": epochs,
            "neighbor_weight": self.neighbor_weight_,
            "neighbor_scores": {str(w): v for w, v in getattr(self, "neighbor_scores_", {}).items()},
            "validation": "out-of-fold predictions of the cross-fitted heads",
        }
        if k_eval < 1:
            raise ConfigError("labels have no finite k=1 value for some query; cannot validate")
        pv, costs = self._option_arrays(oof, k_eval)
        tv, _ = self._option_arrays(true, k_eval)
        popv, _ = self._option_arrays(np.broadcast_to(self.population_curve_, oof.shape), k_eval)
        result = select_shrinkage(
            pv,
            popv[0],
            tv,
            costs,
            self.budgets,
            alpha=float(self.alpha),
            margin=float(self.margin),
            n_bootstrap=int(self.n_bootstrap),
            seed=int(self.seed),
        )
        unshrunk = []
        for b in self.budgets:
            r = M.replay(pv, tv, costs, float(b))
            if r is not None:
                unshrunk.append(r.as_dict())
        report["allocation"] = result.per_budget
        report["allocation_unshrunk"] = unshrunk
        report["shrinkage"] = result.as_dict()
        report["gain_spearman"] = M.gain_spearman(pv, tv)
        if kind == "binary":
            p1 = oof[:, :, 0]
            c, s = labels["successes"], labels["samples"]
            report["brier"] = M.brier_score(p1, c, s)
            report["brier_population"] = M.brier_score(
                np.broadcast_to(self.population_curve_[:, 0], p1.shape), c, s
            )
            report["log_loss"] = M.log_loss(p1, c, s)
            report["calibration"] = {
                p: M.calibration_bins(p1[:, j], c[:, j], s[:, j]) for j, p in enumerate(self.procedures_)
            }
        self.shrinkage_ = float(result.weight)
        if self.fallback == "always":
            self.fallback_ = True
            reason = "fallback forced (fallback='always')"
        elif self.fallback == "never":
            self.fallback_ = False
            reason = f"fallback disabled (fallback='never'); validation says: {result.reason}"
        else:
            self.fallback_ = bool(result.fallback)
            reason = result.reason
        report["fallback"] = self.fallback_
        report["fallback_reason"] = reason
        self.report_ = report
        if self.fallback_:
            what = "uniform allocation" if len(self.procedures_) == 1 else "the best fixed mix of procedures"
            _log.warning("difficulty probe falls back to %s: %s", what, reason)

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "heads_"):
            raise NotFittedError("this CurveProbe is not fitted yet; call fit(X, y) first")

    def predict_raw_curves(self, X: Any) -> np.ndarray:
        """Unshrunk curves ``(n, P, K)``: the cross-fitted heads' mean, blended with the neighbour curves."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ConfigError(f"X must be (n, {self.n_features_in_}) features, got shape {X.shape}")
        import torch

        prev = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(int(self.num_threads))
        try:
            xt = torch.as_tensor(X)
            with torch.no_grad():
                zero = torch.zeros((), dtype=torch.float64)  # a Tensor start keeps ``sum`` typed as Tensor
                out = sum((h.curves(xt).double() for h in self.heads_), zero) / len(self.heads_)
        finally:
            if self.num_threads is not None:
                torch.set_num_threads(prev)
        curves = out.numpy()
        neighbors = getattr(self, "neighbors_", None)
        if neighbors is not None and self.neighbor_weight_ > 0:
            w = self.neighbor_weight_
            curves = w * neighbors.predict(X, self.max_k_) + (1.0 - w) * curves
        return curves

    def predict_curves(self, X: Any) -> dict[str, np.ndarray]:
        """``{procedure: (n, K)}`` expected curves after shrinkage (population rows when falling back)."""
        self._check_fitted()
        n = np.asarray(X).shape[0]
        if self.fallback_:
            curves = np.broadcast_to(self.population_curve_, (n, *self.population_curve_.shape)).copy()
        else:
            w = self.shrinkage_
            curves = w * self.predict_raw_curves(X) + (1.0 - w) * self.population_curve_[None]
        return {p: curves[:, j, :] for j, p in enumerate(self.procedures_)}
