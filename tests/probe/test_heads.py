from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats

from adaptive_router.probe.heads import (
    BetaHead,
    ConcaveCurveHead,
    HeadConfig,
    beta_binomial_nll,
    beta_expected_curve,
    build_head,
    train_head,
)


def _check_monotone_concave(curves: np.ndarray) -> None:
    tol = 1e-5 * max(1.0, float(np.abs(curves).max()))  # float32 rounding
    d = np.diff(curves, axis=-1)
    assert (d >= -tol).all(), "curve decreases"
    assert (np.diff(d, axis=-1) <= tol).all(), "increments increase (not concave)"


@pytest.mark.parametrize("kind", ["beta", "curve"])
def test_heads_are_monotone_and_concave_for_any_weights(kind: str) -> None:
    torch.manual_seed(1)
    head = build_head(HeadConfig(kind=kind, in_dim=5, n_procedures=2, max_k=8, hidden=8))
    for p in head.parameters():  # scramble the weights: the shape guarantee must not depend on training
        torch.nn.init.normal_(p, std=3.0)
    x = torch.randn(64, 5) * 4
    _check_monotone_concave(head.curves(x).detach().numpy())


def test_beta_expected_curve_matches_beta_function_identity() -> None:
    a = torch.tensor([0.3, 2.0, 5.0], dtype=torch.float64)
    b = torch.tensor([0.7, 1.5, 0.2], dtype=torch.float64)
    got = beta_expected_curve(a, b, 6).numpy()
    k = np.arange(1, 7)
    want = 1 - np.exp(special.betaln(a.numpy()[:, None], b.numpy()[:, None] + k) -
                      special.betaln(a.numpy()[:, None], b.numpy()[:, None]))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_beta_binomial_nll_matches_scipy_up_to_binomial_coefficient() -> None:
    a, b = torch.tensor([1.3, 0.4]), torch.tensor([2.2, 0.9])
    c, n = torch.tensor([3.0, 0.0]), torch.tensor([8.0, 5.0])
    got = beta_binomial_nll(a, b, c, n).numpy()
    want = -stats.betabinom.logpmf(c.numpy(), n.numpy(), a.numpy(), b.numpy())
    want += np.log(special.comb(n.numpy(), c.numpy()))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_population_init_reproduces_population_curve() -> None:
    torch.manual_seed(0)
    config = HeadConfig(kind="curve", in_dim=3, n_procedures=1, max_k=4, hidden=0, dropout=0.0)
    head = ConcaveCurveHead(config)
    pop = np.array([[0.2, 0.35, 0.45, 0.5]])
    head.init_population(pop)
    out = head.curves(torch.zeros(2, 3)).detach().numpy()
    np.testing.assert_allclose(out[0, 0], pop[0], atol=1e-3)
    beta = BetaHead(HeadConfig(kind="beta", in_dim=3, n_procedures=1, max_k=4, hidden=0, dropout=0.0))
    beta.init_population(np.array([2.0]), np.array([3.0]))
    a, b = beta(torch.zeros(1, 3))
    np.testing.assert_allclose([a.item(), b.item()], [2.0, 3.0], rtol=1e-4)


def test_train_head_learns_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    p = 1 / (1 + np.exp(-3 * x[:, :1]))
    y = {"successes": rng.binomial(10, p).astype(float), "samples": np.full((300, 1), 10.0)}

    def fit() -> tuple[np.ndarray, float]:
        torch.manual_seed(0)
        head = build_head(HeadConfig(kind="beta", in_dim=4, n_procedures=1, max_k=3, hidden=8))
        head.set_standardization(x)
        res = train_head(head, x[:240], {k: v[:240] for k, v in y.items()}, x[240:],
                         {k: v[240:] for k, v in y.items()}, lr=1e-2, max_epochs=60, seed=3)
        return head.curves(torch.as_tensor(x)).detach().numpy(), res.best_val_loss

    c1, loss1 = fit()
    c2, loss2 = fit()
    np.testing.assert_array_equal(c1, c2)
    assert loss1 == loss2
    rho = stats.spearmanr(c1[:, 0, 0], p[:, 0]).statistic
    assert rho > 0.8


def test_l2_penalty_shrinks_the_weights() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 20)).astype(np.float32)
    p = 1 / (1 + np.exp(-2 * x[:, :1]))
    y = {"successes": rng.binomial(1, p).astype(float), "samples": np.ones((400, 1))}

    def weight_norm(l2: float) -> float:
        torch.manual_seed(0)
        head = build_head(HeadConfig(kind="beta", in_dim=20, n_procedures=1, max_k=1, hidden=0))
        head.set_standardization(x)
        train_head(head, x[:320], {k: v[:320] for k, v in y.items()}, x[320:],
                   {k: v[320:] for k, v in y.items()}, lr=1e-2, max_epochs=80, patience=80, l2=l2)
        return float(sum(float((w.detach() ** 2).sum()) for w in head.parameters() if w.ndim > 1))

    assert weight_norm(1.0) < 0.5 * weight_norm(0.0)


def test_a_vote_curves_population_keeps_its_rise() -> None:
    from adaptive_router.curves import expected_majority_vote
    from adaptive_router.probe.heads import fit_population

    rng = np.random.default_rng(0)
    p = rng.uniform(0.3, 1.0, 300)
    correct = rng.random((300, 12)) < p[:, None]
    answers = np.where(correct, 0, rng.integers(1, 30, (300, 12)))
    curves = expected_majority_vote(answers, correct.astype(float), 8)
    mean = curves.mean(axis=0)
    assert abs(mean[1] - mean[0]) < 1e-9  # two votes tie where one is alone: q(2) = q(1)
    pop, beta = fit_population({"curves": curves[:, None, :]}, "curve", 8)
    row = pop[0]
    assert beta is None and row[-1] > row[0] + 0.05  # the rise past k = 2 is kept, not flattened
    np.testing.assert_allclose(row, np.maximum.accumulate(mean))  # the mean curve, monotone
    from adaptive_router.allocation import allocate

    plan = allocate(np.tile(row, (10, 1)), np.arange(1.0, 9.0), 20.0)  # 2 per query on the population
    k = plan.choice + 1
    assert 1 in k and 2 not in k and k.sum() <= 20  # it mixes k = 1 with the hull's next vertex, never 2
    assert mean[k - 1].mean() > mean[1] + 0.02  # worth more than two votes each (which are worth one)
