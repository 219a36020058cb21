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
   (paired bootstrap), all on the one `adaptive_router.allocation.Replay` that ``evaluate`` reports
   (`adaptive_router.probe.validation`). If not, the fallback is set: the probe predicts with its
   `PopulationPredictor` (the population curve in every row), so allocation is uniform; a warning is logged.
4. Prediction averages the fold heads' curves (a cross-fitted ensemble), blends in the neighbour curves
   (fitted on all training queries), then applies the shrinkage.

The estimator owns its fitted state: `CurveProbe.fitted_state` gives it as named arrays plus JSON-ready
parameters and `CurveProbe.from_fitted_state` rebuilds an identical estimator from them (checking that they
fit together); `adaptive_router.probe.persistence` only writes and reads them.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adaptive_router.errors import ConfigError, NotFittedError, ProbeFormatError
from adaptive_router.predictors import PopulationPredictor
from adaptive_router.probe.labels import LABEL_KINDS, parse_labels, true_curves
from adaptive_router.probe.neighbors import NeighborCurves

__all__ = ["CurveProbe"]

_FALLBACK = ("auto", "never", "always")
_STATE_KEYS = ("estimator_params", "label_kind", "max_k", "procedures", "costs", "n_features", "head_config",
               "n_heads", "shrinkage", "fallback", "validation")
"""Parameters `from_fitted_state` needs (``neighbor_weight`` defaults to 0, as in probes saved before it)."""


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
        if self.label_kind not in LABEL_KINDS:
            raise ConfigError(f"label_kind={self.label_kind!r} is not one of {LABEL_KINDS}")
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

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Mapping[str, Any]) -> CurveProbe:
        """Fit heads, choose shrinkage and the fallback on held-out folds; returns ``self``.

        Besides the fitted state it keeps ``oof_curves_``, the ``(n, P, K)`` held-out (cross-fitted,
        neighbour-blended, unshrunk) curves of the training queries, for choices made on validation after
        the fit (``train``'s round settings); it is not saved with the probe.
        """
        self._check_params()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or not np.isfinite(X).all():
            raise ConfigError(f"X must be a finite 2-D (n, d) feature array, got shape {X.shape}")
        n = X.shape[0]
        if n < 4 * int(self.n_folds):
            raise ConfigError(
                f"need at least {4 * int(self.n_folds)} queries to fit with n_folds={self.n_folds}, got {n}"
            )
        kind, procs, labels = parse_labels(y, n, max_k=int(self.max_k), label_kind=self.label_kind)
        costs = {p: float((self.costs or {}).get(p, 1.0)) for p in procs}
        from adaptive_router.probe.validation import check_budgets

        check_budgets(self.budgets, costs)
        import torch

        from adaptive_router.probe import heads as H
        from adaptive_router.probe.crossfit import cross_fit, torch_threads

        with torch_threads(self.num_threads):
            torch.manual_seed(int(self.seed))
            K = int(self.max_k)
            self.label_kind_ = kind
            self.procedures_ = procs
            self.max_k_ = K
            self.n_features_in_ = X.shape[1]
            self.costs_ = costs
            self._fit_population(labels, kind, procs, K)
            self.head_config_ = H.HeadConfig(
                kind="beta" if kind == "binary" else "curve",
                in_dim=X.shape[1],
                n_procedures=len(procs),
                max_k=K,
                hidden=int(self.hidden),
                dropout=float(self.dropout),
            )
            fit = cross_fit(
                X, labels, self.head_config_, n_folds=int(self.n_folds),
                val_fraction=float(self.val_fraction), seed=int(self.seed), init_head=self._init_head,
                fit_neighbors=self._fit_neighbors if self.neighbors else None,
                lr=float(self.lr), weight_decay=float(self.weight_decay), l2=float(self.l2),
                batch_size=int(self.batch_size), max_epochs=int(self.max_epochs), patience=int(self.patience),
            )
            self.heads_ = fit.heads
            self.neighbors_ = None
            self.neighbor_weight_ = 0.0
            oof = fit.oof
            true = true_curves(labels, kind, K)
            neighbor_scores: dict[float, float] = {}
            if fit.oof_neighbors is not None:
                from adaptive_router.probe.validation import choose_neighbor_weight

                self.neighbors_ = self._fit_neighbors(X, labels)
                self.neighbor_weight_, neighbor_scores = choose_neighbor_weight(
                    oof, fit.oof_neighbors, true, procedures=procs, costs=self.costs_, budgets=self.budgets
                )
                oof = self.neighbor_weight_ * fit.oof_neighbors + (1.0 - self.neighbor_weight_) * oof
            self.oof_curves_ = oof
            self._validate(oof, true, labels, kind, fit.best_epochs, neighbor_scores)
        return self

    def _fit_population(
        self, labels: dict[str, np.ndarray], kind: str, procs: tuple[str, ...], K: int
    ) -> None:
        from adaptive_router.probe.heads import fit_population

        self.population_curve_, beta = fit_population(labels, kind, K)
        if beta is not None:
            self.population_alpha_, self.population_beta_ = beta
        self.population_ = self._population_predictor()

    def _population_predictor(self) -> PopulationPredictor:
        """The predictor a fallen-back probe predicts with: `population_curve_` in every row."""
        return PopulationPredictor.from_curve(
            {p: self.population_curve_[j] for j, p in enumerate(self.procedures_)}
        )

    def _prior(self) -> Any:
        if self.label_kind_ == "binary":
            return (self.population_alpha_, self.population_beta_)
        return self.population_curve_

    def _fit_neighbors(self, X: np.ndarray, labels: dict[str, np.ndarray]) -> NeighborCurves:
        return NeighborCurves(int(self.neighbors)).fit(X, labels, prior=self._prior())

    def _init_head(self, head: Any) -> None:
        if self.label_kind_ == "binary":
            head.init_population(self.population_alpha_, self.population_beta_)
        else:
            head.init_population(self.population_curve_)

    # ------------------------------------------------------------------ validation of allocation
    def _validate(
        self,
        oof: np.ndarray,
        true: np.ndarray,
        labels: dict[str, np.ndarray],
        kind: str,
        epochs: list[int],
        neighbor_scores: Mapping[float, float],
    ) -> None:
        from adaptive_router.probe.validation import validate

        result = validate(
            oof, true, labels, kind=kind, procedures=self.procedures_, costs=self.costs_,
            budgets=self.budgets, population_curve=self.population_curve_, fallback=self.fallback,
            alpha=float(self.alpha), margin=float(self.margin), n_bootstrap=int(self.n_bootstrap),
            seed=int(self.seed),
            header={"best_epochs": epochs, "neighbor_weight": self.neighbor_weight_,
                    "neighbor_scores": {str(w): v for w, v in neighbor_scores.items()}},
        )
        self.shrinkage_ = result.shrinkage
        self.fallback_ = result.fallback
        self.report_ = result.report

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

        from adaptive_router.probe.crossfit import torch_threads

        with torch_threads(self.num_threads), torch.no_grad():
            xt = torch.as_tensor(X)
            zero = torch.zeros((), dtype=torch.float64)  # a Tensor start keeps ``sum`` typed as Tensor
            out = sum((h.curves(xt).double() for h in self.heads_), zero) / len(self.heads_)
        curves = out.numpy()
        neighbors = getattr(self, "neighbors_", None)
        if neighbors is not None and self.neighbor_weight_ > 0:
            w = self.neighbor_weight_
            curves = w * neighbors.predict(X, self.max_k_) + (1.0 - w) * curves
        return curves

    def predict_curves(self, X: Any, *, shrinkage: float | None = None) -> dict[str, np.ndarray]:
        """``{procedure: (n, K)}`` expected curves after shrinkage.

        When the fallback is active the `PopulationPredictor` ``population_`` answers: the population curve
        in every row, which allocation turns into uniform (the policy ``evaluate`` reports as uniform).
        ``shrinkage`` (in ``[0, 1]``) overrides the validated weight and the fallback: the curves a round
        planner's prior is read from, at the weight ``train`` validated for rounds (`Rounds.prior_weight`).
        """
        self._check_fitted()
        if shrinkage is not None and not 0.0 <= float(shrinkage) <= 1.0:
            raise ConfigError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
        if shrinkage is None and self.fallback_:
            return self.population_.predict_curves(np.asarray(X))
        w = self.shrinkage_ if shrinkage is None else float(shrinkage)
        curves = w * self.predict_raw_curves(X) + (1.0 - w) * self.population_curve_[None]
        return {p: curves[:, j, :] for j, p in enumerate(self.procedures_)}

    # ------------------------------------------------------------------ fitted state
    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (scikit-learn's ``get_params``)."""
        return {k: getattr(self, k) for k in inspect.signature(type(self)).parameters}

    def fitted_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything `fit` learned: ``(arrays, params)``.

        ``arrays`` maps names to numpy arrays (every fold head's tensors as ``fold{i}.<name>``, the
        population curve and Beta, the neighbour data as ``neighbors.<name>``); ``params`` holds the rest
        as JSON-ready values (constructor arguments, label kind, K, procedures, costs, head config,
        shrinkage, neighbour weight, fallback and the validation report). `from_fitted_state` inverts it.
        """
        self._check_fitted()
        arrays: dict[str, np.ndarray] = {}
        for i, head in enumerate(self.heads_):
            for name, t in head.state_dict().items():
                arrays[f"fold{i}.{name}"] = t.detach().cpu().numpy().copy()
        arrays["population_curve"] = np.asarray(self.population_curve_, dtype=np.float64)
        if self.label_kind_ == "binary":
            arrays["population_alpha"] = np.asarray(self.population_alpha_, dtype=np.float64)
            arrays["population_beta"] = np.asarray(self.population_beta_, dtype=np.float64)
        if self.neighbors_ is not None:
            for name, arr in self.neighbors_.state().items():
                arrays[f"neighbors.{name}"] = np.ascontiguousarray(arr)
        params = {
            "estimator_params": self.get_params(),
            "label_kind": self.label_kind_,
            "max_k": int(self.max_k_),
            "procedures": list(self.procedures_),
            "costs": dict(self.costs_),
            "n_features": int(self.n_features_in_),
            "head_config": self.head_config_.to_dict(),
            "n_heads": len(self.heads_),
            "shrinkage": float(self.shrinkage_),
            "neighbor_weight": float(self.neighbor_weight_),
            "fallback": bool(self.fallback_),
            "validation": self.report_,
        }
        return arrays, params

    @classmethod
    def from_fitted_state(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> CurveProbe:
        """Rebuild a fitted estimator from `fitted_state`'s output.

        Raises
        ------
        ProbeFormatError
            A key is missing, or the arrays do not fit the parameters (shapes, head tensors, label kind).
        """
        missing = [k for k in _STATE_KEYS if k not in params]
        if missing:
            raise ProbeFormatError(f"the fitted state lacks {missing}")
        import torch

        from adaptive_router.probe.heads import HeadConfig, build_head

        try:
            init = dict(params["estimator_params"])
            if isinstance(init.get("budgets"), list):
                init["budgets"] = tuple(init["budgets"])
            est = cls(**init)
            kind = str(params["label_kind"])
            if kind not in ("binary", "curve"):
                raise ValueError(f"label_kind {kind!r} is neither 'binary' nor 'curve'")
            procs = tuple(str(p) for p in params["procedures"])
            K = int(params["max_k"])
            config = HeadConfig(**params["head_config"])
            if config.n_procedures != len(procs) or config.max_k != K:
                raise ValueError("head_config disagrees with procedures / max_k")
            heads = []
            for i in range(int(params["n_heads"])):
                head = build_head(config)
                prefix = f"fold{i}."
                state = {k[len(prefix):]: torch.tensor(np.asarray(v)) for k, v in arrays.items()
                         if k.startswith(prefix)}
                head.load_state_dict(state, strict=True)
                head.eval()
                heads.append(head)
            if not heads:
                raise ValueError("n_heads must be >= 1")
            pop = np.asarray(arrays["population_curve"], dtype=np.float64)
            if pop.shape != (len(procs), K):
                raise ValueError(f"population_curve has shape {pop.shape}, expected {(len(procs), K)}")
            est.label_kind_, est.procedures_, est.max_k_ = kind, procs, K
            est.population_curve_ = pop
            if kind == "binary":
                est.population_alpha_ = np.asarray(arrays["population_alpha"], dtype=np.float64)
                est.population_beta_ = np.asarray(arrays["population_beta"], dtype=np.float64)
            est.n_features_in_ = int(params["n_features"])
            est.costs_ = {str(k): float(v) for k, v in params["costs"].items()}
            est.head_config_ = config
            est.heads_ = heads
            est.shrinkage_ = float(params["shrinkage"])
            est.neighbor_weight_ = float(params.get("neighbor_weight", 0.0))
            est.fallback_ = bool(params["fallback"])
            est.report_ = dict(params["validation"])
            est.population_ = est._population_predictor()
            nstate = {k.removeprefix("neighbors."): np.asarray(v) for k, v in arrays.items()
                      if k.startswith("neighbors.")}
            est.neighbors_ = (
                NeighborCurves.from_state(int(est.neighbors), nstate, est._prior()) if nstate else None
            )
        except (KeyError, TypeError, ValueError, RuntimeError, ConfigError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise ProbeFormatError(f"the fitted state does not fit together ({detail})") from exc
        return est
