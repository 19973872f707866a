"""Losses and optimisers against PyTorch 2.13; 20 training steps give PyTorch's parameters.

A small CNN is built in both libraries with the same weights (torch's ``state_dict`` loaded into
poolkit's model), trained for 20 steps on the same mini-batches with the same optimiser settings,
and every parameter is compared afterwards (rtol 1e-4, with an absolute error of
``1e-4 * max|parameter|`` allowed for entries near zero).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from poolkit import nn  # noqa: E402

torch.set_num_threads(1)


def close(actual, expected, rtol, what=""):
    expected = np.asarray(expected)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=rtol * scale, err_msg=what)


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4), (5,)])
def test_cross_entropy(reduction, weight, ignore, smoothing, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32) * 3
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    y = rng.integers(0, C, size=tshape)
    if ignore and y.ndim:
        y.flat[1] = 2
    w = rng.uniform(0.5, 2, size=C).astype(np.float32) if weight else None
    kw = dict(reduction=reduction, label_smoothing=smoothing, ignore_index=2 if ignore else -100)
    tl = torch.nn.CrossEntropyLoss(weight=None if w is None else torch.tensor(w), **kw)
    pl = nn.CrossEntropyLoss(weight=w, **kw)
    xt = torch.tensor(x, requires_grad=True)
    lt = tl(xt, torch.tensor(y))
    lp = pl(x, y)
    close(lp, lt.detach().numpy(), 1e-5, "loss")
    go = rng.standard_normal(lt.shape).astype(np.float32) if reduction == "none" else np.float32(1.5)
    lt.backward(torch.tensor(go))
    close(pl.backward(go), xt.grad.numpy(), 1e-4, "gradient")
    assert np.asarray(lp).dtype == np.float32


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse(reduction):
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 3, 4)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.MSELoss(reduction=reduction)(xt, torch.tensor(t))
    pl = nn.MSELoss(reduction=reduction)
    close(pl(x, t), lt.detach().numpy(), 1e-5)
    go = rng.standard_normal(lt.shape).astype(np.float32) if reduction == "none" else np.float32(1.0)
    lt.backward(torch.tensor(go))
    close(pl.backward(go), xt.grad.numpy(), 1e-5)


# ---------------------------------------------------------------------------------------------
# optimisers: 20 steps of a small CNN
# ---------------------------------------------------------------------------------------------


def _models():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                             torch.nn.Conv2d(4, 6, 3), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                             torch.nn.Flatten(), torch.nn.Linear(6 * 1 * 1, 3))
    pm = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Conv2d(4, 6, 3), nn.ReLU(), nn.AvgPool2d(2),
                       nn.Flatten(), nn.Linear(6 * 1 * 1, 3))
    pm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    return tm, pm


OPTIMISERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
]


@pytest.mark.parametrize("name, opts", OPTIMISERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMISERS)])
def test_twenty_training_steps_match_torch(name, opts):
    tm, pm = _models()
    t_opt = getattr(torch.optim, name)(tm.parameters(), **opts)
    p_opt = getattr(nn.optim, name)(pm.parameters(), **opts)
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((20, 8, 1, 8, 8)).astype(np.float32)
    ys = rng.integers(0, 3, size=(20, 8))
    t_loss, p_loss = torch.nn.CrossEntropyLoss(), nn.CrossEntropyLoss()
    for step in range(20):
        t_opt.zero_grad()
        lt = t_loss(tm(torch.tensor(xs[step])), torch.tensor(ys[step]))
        lt.backward()
        t_opt.step()
        lp = p_loss(pm(xs[step]), ys[step])
        pm.backward(p_loss.backward())
        p_opt.step()
        p_opt.zero_grad()
        close(lp, lt.item(), 1e-4, f"loss at step {step}")
    tparams = dict(tm.named_parameters())
    for n_, p in pm.named_parameters():
        close(p.data, tparams[n_].detach().numpy(), 1e-4, f"{n_} after 20 steps")
        assert p.grad is None


def test_parameter_groups_and_skipped_parameters():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = nn.optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad = np.ones(2)
    opt.step()  # b has no gradient: untouched
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 1.0)
    b.grad = np.ones(2)
    opt.step()
    np.testing.assert_allclose(b.data, 0.0)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_gradients_accumulate_until_zero_grad():
    lin = nn.Linear(3, 2, rng=np.random.default_rng(0))
    x = np.ones((4, 3), dtype=np.float32)
    lin(x)
    lin.backward(np.ones((4, 2), dtype=np.float32))
    first = lin.weight.grad.copy()
    lin(x)
    lin.backward(np.ones((4, 2), dtype=np.float32))
    np.testing.assert_allclose(lin.weight.grad, 2 * first)
    lin.zero_grad(set_to_none=False)
    assert not lin.weight.grad.any()
    lin.zero_grad()
    assert lin.weight.grad is None


@pytest.mark.parametrize("bad, match", [
    (lambda p: nn.optim.SGD(p, lr=-1), "lr"),
    (lambda p: nn.optim.SGD(p, nesterov=True), "Nesterov"),
    (lambda p: nn.optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (lambda p: nn.optim.Adam(p, betas=(0.9, 1.0)), "betas"),
    (lambda p: nn.optim.Adam(p, eps=-1e-8), "eps"),
    (lambda p: nn.optim.Adam([], lr=1e-3), "empty"),
])
def test_optimiser_argument_errors(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad([nn.Parameter(np.zeros(2))])
