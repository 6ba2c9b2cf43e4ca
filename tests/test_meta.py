"""CUDA-ready without a GPU: everything runs on torch's ``meta`` device.

A meta tensor has a shape, a dtype and a device but no values: ``.item()``, ``bool()``, ``float()``
and ``.numpy()`` raise. So a kernel, layer or optimizer step that passes here never reads array
values on the host — on CUDA it would queue its work without waiting for the device (no host
sync). Every output must stay on the input's device. torch has no random generator on ``meta``:
parameters are built on the CPU and moved (``Module.to``), and dropout's mask drawing is covered
separately (the draw itself is a device call of the generator, see test_backend).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from coursekit import backend as B  # noqa: E402
from coursekit import functional as F  # noqa: E402
from coursekit import nn, optim  # noqa: E402

META = torch.device("meta")


def t(*shape, dtype=torch.float32):
    return torch.empty(shape, device=META, dtype=dtype)


def labels(n):
    return torch.empty((n,), device=META, dtype=torch.long)


def _all_on_meta(out):
    items = out if isinstance(out, (tuple, list)) else [out]
    for a in items:
        if a is None or isinstance(a, (bool, F.BatchNormCache)):
            continue
        if isinstance(a, tuple):
            _all_on_meta(a)
            continue
        assert a.device == META, a


def test_meta_has_no_values():
    """The premise: reading a value on meta raises, so a host read anywhere fails these tests."""
    with pytest.raises((RuntimeError, NotImplementedError)):
        t(1).item()
    with pytest.raises((RuntimeError, NotImplementedError)):
        bool(t(1) > 0)


def _bn(training):
    return F.batch_norm(t(8, 3), t(3), t(3), t(3), t(3), training=training)


OPS = {
    "relu": lambda: F.relu(t(4, 5)),
    "relu_backward": lambda: F.relu_backward(t(4, 5), t(4, 5)),
    "leaky_relu": lambda: F.leaky_relu(t(4, 5), 0.1),
    "leaky_relu_backward": lambda: F.leaky_relu_backward(t(4, 5), t(4, 5), 0.1),
    "prelu": lambda: F.prelu(t(4, 5), t(5)),
    "prelu_backward": lambda: F.prelu_backward(t(4, 5), t(4, 5), t(5)),
    "prelu_backward_shared": lambda: F.prelu_backward(t(4, 5), t(4, 5), t(1)),
    "elu": lambda: F.elu(t(4, 5)),
    "elu_backward": lambda: F.elu_backward(t(4, 5), t(4, 5)),
    "selu": lambda: F.selu(t(4, 5)),
    "selu_backward": lambda: F.selu_backward(t(4, 5), t(4, 5)),
    "selu_backward_out": lambda: F.selu_backward(t(4, 5), t(4, 5), out=t(4, 5)),
    "sigmoid": lambda: F.sigmoid(t(4, 5)),
    "sigmoid_backward": lambda: F.sigmoid_backward(t(4, 5), t(4, 5)),
    "tanh": lambda: F.tanh(t(4, 5)),
    "tanh_backward": lambda: F.tanh_backward(t(4, 5), t(4, 5)),
    "softplus": lambda: F.softplus(t(4, 5), beta=2.0),
    "softplus_backward": lambda: F.softplus_backward(t(4, 5), t(4, 5), beta=2.0),
    "maxout": lambda: F.maxout(t(4, 6), 3),
    "maxout_backward": lambda: F.maxout_backward(t(4, 2), t(4, 6), 3),
    "linear": lambda: F.linear(t(4, 5), t(3, 5), t(3)),
    "linear_backward": lambda: F.linear_backward(t(4, 3), t(4, 5), t(3, 5), t(3)),
    "softmax": lambda: F.softmax(t(4, 5)),
    "softmax_backward": lambda: F.softmax_backward(t(4, 5), t(4, 5)),
    "log_softmax": lambda: F.log_softmax(t(4, 5), dim=0),
    "log_softmax_backward": lambda: F.log_softmax_backward(t(4, 5), t(4, 5)),
    "cross_entropy": lambda: F.cross_entropy(t(4, 5), labels(4)),
    "cross_entropy_none": lambda: F.cross_entropy(t(4, 5), labels(4), reduction="none"),
    "cross_entropy_backward": lambda: F.cross_entropy_backward(1.0, t(4, 5), labels(4)),
    "cross_entropy_backward_array": lambda: F.cross_entropy_backward(t(), t(4, 5), labels(4), reduction="sum"),
    "mse_loss": lambda: F.mse_loss(t(4, 5), t(4, 5)),
    "mse_loss_backward": lambda: F.mse_loss_backward(1.0, t(4, 5), t(4, 5)),
    "dropout_eval": lambda: F.dropout(t(4, 5), 0.5, training=False),
    "dropout_backward": lambda: F.dropout_backward(t(4, 5), t(4, 5), 0.5),
    "batch_norm_train": lambda: _bn(True),
    "batch_norm_eval": lambda: _bn(False),
    "batch_norm_3d": lambda: F.batch_norm(t(8, 3, 2), None, None, training=True),
    "batch_norm_backward": lambda: F.batch_norm_backward(t(8, 3), _bn(True).cache),
    "batch_norm_backward_eval": lambda: F.batch_norm_backward(t(8, 3), _bn(False).cache),
    "layer_norm": lambda: F.layer_norm(t(4, 5), 5, t(5), t(5)),
    "layer_norm_backward": lambda: F.layer_norm_backward(t(4, 5), t(4, 5), 5, t(5), t(5)),
}


def test_every_functional_op_is_covered():
    names = {n for n in F.__all__ if callable(getattr(F, n)) and n[0].islower()}
    covered = {k.split("_none")[0].split("_out")[0].split("_array")[0].split("_shared")[0] for k in OPS}
    covered |= {"dropout", "batch_norm"}  # dropout: test_dropout_forward_on_meta; batch_norm: _train/_eval
    assert names <= covered, names - covered


@pytest.mark.parametrize("name", list(OPS))
def test_functional_op_on_meta(name):
    _all_on_meta(OPS[name]())


def test_dropout_forward_on_meta(monkeypatch):
    """The mask is drawn by the generator (no meta generator exists); the rest runs on the device."""
    drawn = []

    class MetaMask:
        def keep_mask(self, shape, keep, *, dtype=None):
            drawn.append((tuple(shape), keep, dtype))
            return t(*shape)

    monkeypatch.setattr(F, "generator_like", lambda x, generator=None, fn="": MetaMask())
    y, mask = F.dropout(t(4, 5), 0.25, return_mask=True)
    _all_on_meta((y, mask))
    assert drawn == [((4, 5), 0.75, "float32")]
    _all_on_meta(nn.Dropout(0.25).forward(t(4, 5)))


def _modules():
    cpu = dict(backend="torch", device="cpu", dtype="float32")
    return {
        "Linear": (nn.Linear(5, 3, **cpu), (4, 5)),
        "ReLU": (nn.ReLU(), (4, 5)), "LeakyReLU": (nn.LeakyReLU(0.2), (4, 5)),
        "PReLU": (nn.PReLU(5, **cpu), (4, 5)), "ELU": (nn.ELU(), (4, 5)), "SELU": (nn.SELU(), (4, 5)),
        "Sigmoid": (nn.Sigmoid(), (4, 5)), "Tanh": (nn.Tanh(), (4, 5)), "Softplus": (nn.Softplus(), (4, 5)),
        "Maxout": (nn.Maxout(5, 3, 2, **cpu), (4, 5)),
        "Dropout_eval": (nn.Dropout(0.5).eval(), (4, 5)),
        "BatchNorm1d": (nn.BatchNorm1d(5, **cpu), (4, 5)),
        "BatchNorm1d_cumulative": (nn.BatchNorm1d(5, momentum=None, **cpu), (4, 5)),
        "BatchNorm1d_3d": (nn.BatchNorm1d(5, **cpu), (4, 5, 2)),
        "BatchNorm1d_eval": (nn.BatchNorm1d(5, **cpu).eval(), (4, 5)),
        "LayerNorm": (nn.LayerNorm(5, **cpu), (4, 5)),
        "Highway": (nn.Highway(5, **cpu), (4, 5)),
        "Residual": (nn.Residual(nn.Sequential(nn.Linear(5, 5, **cpu), nn.Tanh())), (4, 5)),
        "Sequential": (nn.Sequential(nn.Linear(5, 8, **cpu), nn.ReLU(), nn.Linear(8, 3, **cpu)), (4, 5)),
    }


@pytest.mark.parametrize("name", list(_modules()))
def test_module_forward_backward_on_meta(name):
    module, shape = _modules()[name]
    module.to(device="meta")
    y = module(t(*shape))
    gx = module.backward(torch.empty_like(y))
    _all_on_meta((y, gx))
    for p in module.parameters():
        assert p.data.device == META and p.grad.device == META
    for _, b in module.named_buffers():
        assert b is None or b.device == META


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss", [nn.CrossEntropyLoss, nn.MSELoss])
def test_losses_on_meta(loss, reduction):
    fn = loss(reduction)
    target = labels(4) if loss is nn.CrossEntropyLoss else t(4, 3)
    _all_on_meta((fn(t(4, 3), target), fn.backward()))


OPTIMIZERS = {
    "SGD": lambda ps: optim.SGD(ps, lr=0.1),
    "SGD_momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4),
    "SGD_nesterov": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "Adagrad": lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.01, weight_decay=1e-4),
    "RMSprop": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.9, centered=True, weight_decay=1e-4),
    "Adam": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=1e-4, amsgrad=True),
    "SGDL1": lambda ps: optim.SGDL1(ps, lr=0.1, momentum=0.9, l1=1e-3),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_step_on_meta(name):
    model = nn.Sequential(nn.Linear(5, 8, backend="torch", device="cpu"), nn.ReLU(),
                          nn.Linear(8, 3, backend="torch", device="cpu")).to(device="meta")
    opt = OPTIMIZERS[name](model.parameters())
    for _ in range(2):
        opt.zero_grad()
        loss_fn = nn.CrossEntropyLoss()
        loss_fn(model(t(4, 5)), labels(4))
        model.backward(loss_fn.backward())
        opt.step()
    for p in model.parameters():
        assert p.data.device == META
    for st in opt.state.values():
        _all_on_meta(tuple(v for v in st.values() if not isinstance(v, int)))


def test_pure_step_functions_on_meta():
    p, g = t(3, 2), t(3, 2)
    _all_on_meta(optim.sgd_step(p, g, None, lr=0.1, momentum=0.9))
    _all_on_meta(optim.sgd_step(p, g, t(3, 2), lr=0.1, momentum=0.9))
    _all_on_meta(optim.momentum_step(p, g, t(3, 2), lr=0.1, momentum=0.9))
    _all_on_meta(optim.adagrad_step(p, g, t(3, 2), 2, lr=0.1))
    _all_on_meta(optim.rmsprop_step(p, g, t(3, 2), lr=0.01))
    _all_on_meta(optim.adam_step(p, g, t(3, 2), t(3, 2), 3, lr=0.01))
    _all_on_meta(optim.l1_subgradient(p))


@pytest.mark.skipif(not B.cuda_available(), reason="no CUDA device")
@pytest.mark.cuda
def test_train_step_on_cuda_keeps_everything_on_the_device():
    model = nn.Sequential(nn.Linear(5, 8, backend="torch", device="cuda"), nn.ReLU(),
                          nn.Linear(8, 3, backend="torch", device="cuda"))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)).cuda()
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(model(x), torch.tensor([0, 1, 2, 0], device="cuda"))
    model.backward(loss_fn.backward())
    opt.step()
    assert loss.device.type == "cuda" and all(p.data.device.type == "cuda" for p in model.parameters())
