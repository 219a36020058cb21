"""Torch heads that map features to whole reward curves q(x, k), k = 1..K, per procedure.

Both heads are monotone non-decreasing and concave in k *by construction*, so the exact greedy allocator can
consume their output directly:

- `BetaHead` (binary outcomes, c successes of n samples): predicts Beta(α, β) over each query's success
  rate per procedure, trained by the beta-binomial likelihood. Its curve is the expected pass@k,
  E[1 − (1 − p)^k] = 1 − B(α, β + k) / B(α, β), which carries the uncertainty about p.
- `ConcaveCurveHead` (continuous rewards): predicts q(1) plus non-negative, non-increasing increments
  (a reversed cumulative sum of softplus outputs); trained by masked squared error on curve labels from
  `adaptive_router.curves.expected_best_of_k`.

`train_head` fits either head with Adam, minibatches, a seeded generator and early stopping on a validation
split; it is deterministic on CPU for a fixed seed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "BetaHead",
    "ConcaveCurveHead",
    "HeadConfig",
    "TrainResult",
    "beta_binomial_nll",
    "beta_expected_curve",
    "build_head",
    "fit_population",
    "train_head",
]


@dataclass(frozen=True)
class HeadConfig:
    """Architecture of a head (stored in probe manifests).

    ``kind`` is ``"beta"`` or ``"curve"``; ``hidden`` = 0 gives a linear head.
    """

    kind: str
    in_dim: int
    n_procedures: int
    max_k: int
    hidden: int = 64
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "in_dim": self.in_dim,
            "n_procedures": self.n_procedures,
            "max_k": self.max_k,
            "hidden": self.hidden,
            "dropout": self.dropout,
        }


def _trunk(in_dim: int, hidden: int, dropout: float, out_dim: int) -> nn.Sequential:
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(in_dim, hidden),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, out_dim),
    )


class _StandardizedHead(nn.Module):
    """Stores the input standardisation (mean / scale) as buffers so it is saved with the weights."""

    # buffers registered in __init__; declared here so type checkers see Tensors, not ``Tensor | Module``
    x_mean: torch.Tensor
    x_scale: torch.Tensor

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("x_mean", torch.zeros(config.in_dim))
        self.register_buffer("x_scale", torch.ones(config.in_dim))

    def set_standardization(self, x: np.ndarray) -> None:
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale = np.where(scale > 1e-6, scale, 1.0)
        self.x_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.x_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def _z(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_scale


class BetaHead(_StandardizedHead):
    """Features -> Beta(α, β) per procedure; ``forward`` returns ``(alpha, beta)``, each ``(n, P)``."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__(config)
        self.net = _trunk(config.in_dim, config.hidden, config.dropout, 2 * config.n_procedures)

    def init_population(self, alpha: np.ndarray, beta: np.ndarray) -> None:
        """Start at the population Beta: zero last-layer weights, bias = inverse softplus of (α, β)."""
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.mul_(0.01)
            params = np.concatenate([np.log(alpha), np.log(beta)]).astype(np.float32)
            last.bias.copy_(torch.as_tensor(params))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(self._z(x))
        p = self.config.n_procedures
        # exp of a clamped log keeps α, β in [1e-3, 1e3]: flexible yet numerically safe
        log_ab = out.clamp(-6.9, 6.9)
        return log_ab[:, :p].exp(), log_ab[:, p:].exp()

    def curves(self, x: torch.Tensor) -> torch.Tensor:
        """Expected pass@k curves, ``(n, P, K)``."""
        alpha, beta = self(x)
        return beta_expected_curve(alpha, beta, self.config.max_k)


class ConcaveCurveHead(_StandardizedHead):
    """Features -> q(1) + cumulative non-increasing non-negative increments; ``forward`` is ``(n, P, K)``."""

    y_shift: torch.Tensor  # buffers registered in __init__
    y_scale: torch.Tensor

    def __init__(self, config: HeadConfig) -> None:
        super().__init__(config)
        self.net = _trunk(config.in_dim, config.hidden, config.dropout, config.n_procedures * config.max_k)
        self.register_buffer("y_shift", torch.zeros(config.n_procedures))
        self.register_buffer("y_scale", torch.ones(config.n_procedures))

    def init_population(self, curve: np.ndarray) -> None:
        """Start at the population curve ``(P, K)`` and remember its scale for stable training."""
        p, k = self.config.n_procedures, self.config.max_k
        q1 = curve[:, 0]
        span = np.maximum(curve[:, -1] - q1, 0.0)
        scale = np.maximum(np.maximum(np.abs(q1), span), 1e-3)
        self.y_shift.copy_(torch.as_tensor(q1, dtype=torch.float32))
        self.y_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        inc = np.diff(curve, axis=1) / scale[:, None] if k > 1 else np.zeros((p, 0))
        inc = np.maximum.accumulate(np.maximum(inc, 1e-4)[:, ::-1], axis=1)[:, ::-1]  # non-increasing
        u = np.diff(np.concatenate([inc, np.zeros((p, 1))], axis=1)[:, ::-1], axis=1)[:, ::-1]  # softplus(u)
        u = np.maximum(u, 1e-6)
        raw = np.log(np.expm1(u))
        bias = np.concatenate([np.zeros((p, 1)), raw], axis=1).astype(np.float32).reshape(-1)
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.mul_(0.01)
            last.bias.copy_(torch.as_tensor(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, k = self.config.n_procedures, self.config.max_k
        out = self.net(self._z(x)).view(-1, p, k)
        q1 = out[..., :1]
        steps = nn.functional.softplus(out[..., 1:])
        inc = steps.flip(-1).cumsum(-1).flip(-1)  # inc[j] = sum_{i>=j} steps[i]: non-increasing, >= 0
        curve = torch.cat([q1, q1 + inc.cumsum(-1)], dim=-1)
        return self.y_shift[None, :, None] + self.y_scale[None, :, None] * curve

    def curves(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


def beta_expected_curve(alpha: torch.Tensor, beta: torch.Tensor, max_k: int) -> torch.Tensor:
    """E[1 − (1 − p)^k] for p ~ Beta(α, β), k = 1..max_k: ``(..., max_k)``.

    Uses 1 − B(α, β + k)/B(α, β) = 1 − Π_{j<k} (β + j)/(α + β + j), which is increasing and concave in k.
    """
    j = torch.arange(max_k, dtype=alpha.dtype, device=alpha.device)
    ratios = (beta[..., None] + j) / (alpha[..., None] + beta[..., None] + j)
    return 1.0 - torch.cumprod(ratios, dim=-1)


def beta_binomial_nll(
    alpha: torch.Tensor, beta: torch.Tensor, successes: torch.Tensor, samples: torch.Tensor
) -> torch.Tensor:
    """Per-entry negative beta-binomial log-likelihood (without the constant binomial coefficient)."""

    def lbeta(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)

    return lbeta(alpha, beta) - lbeta(successes + alpha, samples - successes + beta)


def fit_population(
    labels: dict[str, np.ndarray], kind: str, max_k: int
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """The population curve ``(P, max_k)`` of every query's labels, and its Beta ``(alpha, beta)``.

    Binary labels: a Beta per procedure fitted by beta-binomial likelihood (LBFGS), curve E[1 − (1 − p)^k].
    Curve labels: the mean label curve, held flat past the last recorded k and made non-decreasing (not
    concave: a vote curve is not, and the allocator plans on the upper concave hull); no Beta (None).
    """
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
        curve = beta_expected_curve(ab[0], ab[1], int(max_k)).numpy().copy()
        return curve, (ab[0].numpy().copy(), ab[1].numpy().copy())
    curve = np.nanmean(labels["curves"], axis=0)  # (P, K)
    for j in range(curve.shape[0]):  # extend past recorded k, then monotone
        row = curve[j]
        last = np.flatnonzero(np.isfinite(row)).max()
        row[last + 1 :] = row[last]
        # not forced concave: a vote curve steps at odd k (two votes tie where one is alone: q(2) = q(1)),
        # and capping each increment at the one before flattened it from k = 2 on; the allocator plans on
        # a curve's upper concave hull, so it mixes k = 1 and k = 3 where a flat curve bought nothing
        curve[j] = np.maximum.accumulate(row)
    return curve, None


def build_head(config: HeadConfig) -> BetaHead | ConcaveCurveHead:
    """A fresh head for ``config.kind`` (``"beta"`` or ``"curve"``)."""
    if config.kind == "beta":
        return BetaHead(config)
    if config.kind == "curve":
        return ConcaveCurveHead(config)
    raise ValueError(f"unknown head kind {config.kind!r}; use 'beta' or 'curve'")


@dataclass
class TrainResult:
    """What `train_head` returns: the best head (by validation loss) and its training trace."""

    head: nn.Module
    best_epoch: int
    best_val_loss: float
    train_losses: list[float]
    val_losses: list[float]


def _loss(head: nn.Module, x: torch.Tensor, y: dict[str, torch.Tensor]) -> torch.Tensor:
    if isinstance(head, BetaHead):
        alpha, beta = head(x)
        mask = y["samples"] > 0
        nll = beta_binomial_nll(alpha, beta, y["successes"], y["samples"].clamp(min=1.0))
        return (nll * mask).sum() / mask.sum().clamp(min=1)
    pred = head(x)
    target = y["curves"]
    mask = torch.isfinite(target)
    scale = head.y_scale[None, :, None]  # type: ignore[index]
    err = ((pred - torch.nan_to_num(target)) / scale) ** 2
    return (err * mask).sum() / mask.sum().clamp(min=1)


def train_head(
    head: nn.Module,
    x_train: np.ndarray,
    y_train: dict[str, np.ndarray],
    x_val: np.ndarray,
    y_val: dict[str, np.ndarray],
    *,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    l2: float = 0.0,
    batch_size: int = 128,
    max_epochs: int = 200,
    patience: int = 15,
    seed: int = 0,
) -> TrainResult:
    """Fit ``head`` with AdamW and early stopping on the validation loss; returns the best state.

    ``l2`` adds ``l2 · Σ w²`` over the weight matrices to the training loss (a ridge penalty on standardised
    features, as in L2-regularised logistic regression; AdamW's decoupled decay is a different, weaker
    regulariser). Early stopping reads the unpenalised validation loss.

    ``y_*`` hold ``successes`` and ``samples`` ``(n, P)`` for a `BetaHead`, ``curves`` ``(n, P, K)``
    (NaN = missing) for a `ConcaveCurveHead`.
    """
    gen = torch.Generator().manual_seed(int(seed))
    xt = torch.as_tensor(x_train, dtype=torch.float32)
    xv = torch.as_tensor(x_val, dtype=torch.float32)
    yt = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in y_train.items()}
    yv = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in y_val.items()}
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    weights = [p for p in head.parameters() if p.ndim > 1]
    n = xt.shape[0]
    best = (float("inf"), 0, copy.deepcopy(head.state_dict()))
    train_losses: list[float] = []
    val_losses: list[float] = []
    head.eval()
    with torch.no_grad():
        v0 = float(_loss(head, xv, yv)) if xv.shape[0] else float("nan")
    if np.isfinite(v0):
        best = (v0, 0, copy.deepcopy(head.state_dict()))
    for epoch in range(1, max_epochs + 1):
        head.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            opt.zero_grad()
            loss = _loss(head, xt[idx], {k: v[idx] for k, v in yt.items()})
            if l2:
                loss = loss + l2 * sum((w**2).sum() for w in weights)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        train_losses.append(total / max(n, 1))
        head.eval()
        with torch.no_grad():
            v = float(_loss(head, xv, yv)) if xv.shape[0] else train_losses[-1]
        val_losses.append(v)
        if v < best[0] - 1e-6:
            best = (v, epoch, copy.deepcopy(head.state_dict()))
        elif epoch - best[1] >= patience:
            break
    head.load_state_dict(best[2])
    head.eval()
    return TrainResult(head, best[1], best[0], train_losses, val_losses)
