"""coursekit.optim's L1 additions: SGDL1 against torch (L1 term in the loss, autograd), penalty, l1_subgradient."""
import numpy as np
import pytest
import torch

from coursekit import backend as B
from coursekit import nn, optim


def test_l1_subgradient_is_sign_with_zero_at_zero(make):
    w = make(np.array([-2.0, 0.0, 3.0, -0.0]))
    np.testing.assert_array_equal(B.to_numpy(optim.l1_subgradient(w)), [-1.0, 0.0, 1.0, 0.0])


def test_penalty_value(make, rng):
    a, b = rng.normal(size=(3, 4)), rng.normal(size=5)
    params = [nn.Parameter(make(a)), nn.Parameter(make(b))]
    expected = 0.5 * 0.3 * (np.sum(a ** 2) + np.sum(b ** 2)) + 0.02 * (np.abs(a).sum() + np.abs(b).sum())
    assert optim.penalty(params, weight_decay=0.3, l1=0.02) == pytest.approx(expected, rel=1e-6)
    assert optim.penalty(params) == 0.0


def test_sgdl1_matches_torch_with_l1_in_the_loss():
    r = np.random.default_rng(0)
    X, T, W0 = r.normal(size=(32, 5)), r.normal(size=(32, 3)), r.normal(size=(5, 3))
    l1, wd, lr, mom = 0.05, 0.01, 0.1, 0.9
    Wt = torch.tensor(W0, requires_grad=True)
    topt = torch.optim.SGD([Wt], lr=lr, momentum=mom, weight_decay=wd)
    W = nn.Parameter(W0.copy())
    opt = optim.SGDL1([W], lr=lr, l1=l1, momentum=mom, weight_decay=wd)
    for _ in range(120):
        topt.zero_grad()
        loss = 0.5 * ((torch.tensor(X) @ Wt - torch.tensor(T)) ** 2).mean() + l1 * Wt.abs().sum()
        loss.backward()
        topt.step()
        W.grad = X.T @ (X @ W.data - T) / T.size
        opt.step()
    np.testing.assert_allclose(W.data, Wt.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_sgdl1_groups_and_zero_l1_is_sgd(rng):
    w0 = rng.normal(size=(4, 3))
    a, b = nn.Parameter(w0.copy()), nn.Parameter(w0.copy())
    g = rng.normal(size=(4, 3))
    opt = optim.SGDL1([{"params": [a], "l1": 0.0}], lr=0.1, l1=0.5)
    a.grad = g
    opt.step()
    b.grad = g
    optim.SGD([b], lr=0.1).step()
    np.testing.assert_array_equal(a.data, b.data)
    assert opt.param_groups[0]["l1"] == 0.0


def test_sgdl1_and_penalty_argument_errors():
    p = nn.Parameter(np.zeros(3))
    with pytest.raises(ValueError, match="SGDL1: l1"):
        optim.SGDL1([p], lr=0.1, l1=-1.0)
    with pytest.raises(TypeError, match="SGDL1: l1"):
        optim.SGDL1([p], lr=0.1, l1="big")
    with pytest.raises(ValueError, match="SGDL1: l1"):
        optim.SGDL1([{"params": [p], "l1": -0.5}], lr=0.1)
    with pytest.raises(ValueError, match="penalty: weight_decay"):
        optim.penalty([p], weight_decay=-1.0)
    with pytest.raises(TypeError, match="penalty: params"):
        optim.penalty([np.zeros(3)])
