"""Layers as small stateful modules over :mod:`coursekit.functional`, with an explicit backward.

A :class:`Module` works like ``torch.nn.Module`` without autograd: ``forward`` (also
``module(x)``) keeps what the backward pass needs; ``backward(grad_out)`` returns
``∂L/∂input`` and *accumulates* ``∂L/∂θ`` into every parameter's ``.grad`` (``None`` until the
first backward, reset by :meth:`Module.zero_grad`), exactly like torch's ``.grad``::

    from coursekit import nn
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(model(x), y)          # forward
    model.zero_grad()
    model.backward(loss_fn.backward())   # backward: fills p.grad for p in model.parameters()

Sub-modules and parameters assigned as attributes are registered automatically (as with
torch's ``__setattr__``); buffers (state that is not trained, such as BatchNorm's running
statistics) are declared with :meth:`Module.register_buffer`. One forward is remembered per
module: call ``backward`` after the forward it belongs to.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Iterator

import numpy as np

from . import _checks as check
from . import functional as F
from .backend import (Generator, array_namespace, backend_of, check_backend, device_of, dtype_name,
                      resolve_generator, to_numpy, zeros)

__all__ = [
    "Parameter", "Module", "Linear", "ReLU", "LeakyReLU", "PReLU", "ELU", "SELU", "Sigmoid", "Tanh",
    "Softplus", "Maxout", "Dropout", "BatchNorm1d", "Highway", "Residual", "Sequential",
    "CrossEntropyLoss", "MSELoss",
]


# --------------------------------------------------------------------------------------------
# Parameter and Module
# --------------------------------------------------------------------------------------------
class Parameter:
    """A trainable array: ``.data`` (the value) and ``.grad`` (``∂L/∂data`` or None).

    ``.grad`` accumulates over backward calls (``grad ← grad + g``) until it is reset to None by
    ``zero_grad``, as in torch. With ``requires_grad=False`` the parameter is frozen: backward
    passes leave its ``.grad`` alone (useful to fine-tune only part of a pre-trained network).
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad: bool = True):
        check.floating("Parameter", "data", data)
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    def accumulate_grad(self, g) -> None:
        """``grad ← g`` if ``grad`` is None, else ``grad ← grad + g`` (a new array)."""
        if not self.requires_grad or g is None:
            return
        if tuple(g.shape) != tuple(self.data.shape):
            raise ValueError(f"Parameter.accumulate_grad: g must have the parameter's shape "
                             f"{tuple(self.data.shape)}, got {tuple(g.shape)}")
        self.grad = g if self.grad is None else self.grad + g

    def __repr__(self):
        return (f"Parameter(shape={self.shape}, dtype={dtype_name(self.data)}, "
                f"backend={backend_of(self.data)}:{device_of(self.data)})")


def _copy(a):
    return array_namespace(a).asarray(a, copy=True)


def _convert(a, backend, device, dtype):
    """``a`` on ``backend``/``device`` with dtype ``dtype`` (returned unchanged if already so)."""
    if backend == backend_of(a) and device == device_of(a) and dtype == dtype_name(a):
        return a
    if backend == "torch" and backend_of(a) == "torch":
        import torch
        return a.to(device=device, dtype=getattr(torch, dtype))
    arr = to_numpy(a).astype(dtype)
    if backend == "numpy":
        return arr
    import torch
    return torch.from_numpy(np.array(arr, copy=True, order="C")).to(device)


class Module:
    """Base class: override ``forward(*inputs)`` and ``backward(grad_out) -> grad_in``.

    Attributes assigned a :class:`Parameter` or a :class:`Module` are registered (in assignment
    order) and found by :meth:`parameters`, :meth:`state_dict`, :meth:`train` and friends.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", [])
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        d = self.__dict__
        params, mods = d.get("_parameters"), d.get("_modules")
        if params is None:
            raise AttributeError(f"{type(self).__name__}: call Module.__init__() before assigning attributes")
        if name in params:
            del params[name]
        if name in mods:
            del mods[name]
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            mods[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if name in self._buffers:
            self._buffers.remove(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value) -> None:
        """Declare ``name`` a buffer: saved by :meth:`state_dict`, moved by :meth:`to`, not trained."""
        if name not in self._buffers:
            self._buffers.append(name)
        object.__setattr__(self, name, value)

    # ---- running ----------------------------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def __call__(self, *inputs, **kwargs):
        return self.forward(*inputs, **kwargs)

    def _saved(self, value, what="input"):
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward: nothing saved from forward ({what}); "
                               f"call forward first")
        return value

    # ---- traversal --------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        yield from self._modules.items()

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """This module and every descendant, depth first, with dotted names ('' for self)."""
        seen = set()

        def walk(m, pre):
            if id(m) in seen:
                return
            seen.add(id(m))
            yield pre, m
            for name, child in m._modules.items():
                yield from walk(child, f"{pre}.{name}" if pre else name)

        yield from walk(self, prefix)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """``(dotted_name, parameter)`` pairs, e.g. ``('0.weight', p)``; shared ones once."""
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for pname, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        for mname, m in self.named_modules():
            for b in m._buffers:
                yield (f"{mname}.{b}" if mname else b), getattr(m, b)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's ``.grad`` (to None, torch's default, or to zeros)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = array_namespace(p.grad).zeros_like(p.grad)

    def train(self, mode: bool = True) -> "Module":
        """Training mode (Dropout drops, BatchNorm uses batch statistics) for self and children."""
        check.boolean(f"{type(self).__name__}.train", "mode", mode)
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    # ---- state ------------------------------------------------------------------------------
    def _state_targets(self):
        """``{dotted_name: (module, attribute, is_parameter)}`` for parameters and non-None buffers."""
        out = OrderedDict()
        for mname, m in self.named_modules():
            for pname in m._parameters:
                out[f"{mname}.{pname}" if mname else pname] = (m, pname, True)
            for b in m._buffers:
                if getattr(m, b) is not None:
                    out[f"{mname}.{b}" if mname else b] = (m, b, False)
        return out

    def state_dict(self) -> "OrderedDict[str, Any]":
        """``{dotted_name: copy}`` of every parameter's data and every buffer (torch's keys)."""
        return OrderedDict(
            (k, _copy(m._parameters[a].data if is_p else getattr(m, a)))
            for k, (m, a, is_p) in self._state_targets().items())

    def load_state_dict(self, state_dict, strict: bool = True) -> None:
        """Copy values (NumPy arrays, torch tensors, nested lists) into parameters and buffers.

        Values are converted to the backend, device and dtype of the module's current arrays, so
        a state saved from a torch/CUDA model loads into a NumPy one and vice versa.
        ``strict=True`` requires exactly the keys of :meth:`state_dict` (``KeyError`` otherwise).
        """
        fn = f"{type(self).__name__}.load_state_dict"
        targets = self._state_targets()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"{fn}: state_dict does not match the module: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        for key, (m, name, is_param) in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            current = m._parameters[name].data if is_param else getattr(m, name)
            try:
                backend_of(value)
            except TypeError:
                value = np.asarray(value)
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(f"{fn}: {key} must have shape {tuple(current.shape)}, got {tuple(value.shape)}")
            new = _convert(value, backend_of(current), device_of(current), dtype_name(current))
            if new is value:
                new = _copy(new)
            if is_param:
                m._parameters[name].data = new
            else:
                object.__setattr__(m, name, new)

    def to(self, backend: str | None = None, device: str | None = None, dtype: str | None = None) -> "Module":
        """Move parameters (with their grads) and buffers to ``backend``/``device`` and cast the
        floating ones to ``dtype``. None keeps each array's backend / device (``'cpu'`` when the
        backend changes) / dtype. Returns self."""
        fn = f"{type(self).__name__}.to"
        if backend is not None:
            check_backend(fn, backend)
        if dtype is not None:
            dtype = check.dtype(fn, dtype)
        if backend == "numpy" and device not in (None, "cpu"):
            raise ValueError(f"{fn}: device must be 'cpu' for numpy, got {device!r}")

        def move(a):
            b = backend or backend_of(a)
            d = str(device) if device is not None else (device_of(a) if b == backend_of(a) else "cpu")
            dt = dtype if (dtype is not None and "float" in dtype_name(a)) else dtype_name(a)
            return _convert(a, b, d, dt)

        for m in self.modules():
            for p in m._parameters.values():
                p.data = move(p.data)
                if p.grad is not None:
                    p.grad = move(p.grad)
            for name in m._buffers:
                if getattr(m, name) is not None:
                    object.__setattr__(m, name, move(getattr(m, name)))
            m._on_to(backend, device)
        return self

    def _on_to(self, backend, device):
        """Hook for modules holding a generator (Dropout): forget it when moved."""

    # ---- display ----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _new_param_array(shape, low, high, backend, device, dtype, generator, fn):
    """U[low, high) of ``shape`` on the requested backend (or the generator's)."""
    gen, backend, device, dtype = resolve_generator(fn, generator, backend, device, dtype)
    return gen.uniform(shape, low, high, dtype=dtype), (backend, device, dtype)


# --------------------------------------------------------------------------------------------
# layers with parameters
# --------------------------------------------------------------------------------------------
class Linear(Module):
    """``y = x Wᵀ + b``.  x: (..., in_features) -> (..., out_features).

    ``weight``: (out_features, in_features), ``bias``: (out_features,), both initialised from
    U(−1/√in_features, 1/√in_features), torch's default (``kaiming_uniform_(a=√5)`` for the
    weight). ``generator`` (a :class:`coursekit.backend.Generator`) makes the init reproducible;
    ``backend``/``device``/``dtype`` default to the package defaults (or the generator's).
    """

    def __init__(self, in_features, out_features, bias=True, *, backend=None, device=None, dtype=None,
                 generator=None):
        super().__init__()
        fn = "Linear"
        self.in_features = check.integer(fn, "in_features", in_features, low=1)
        self.out_features = check.integer(fn, "out_features", out_features, low=1)
        bound = 1.0 / math.sqrt(self.in_features)
        w, where = _new_param_array((self.out_features, self.in_features), -bound, bound, backend, device,
                                    dtype, generator, fn)
        self.weight = Parameter(w)
        if bias:
            b, _ = _new_param_array((self.out_features,), -bound, bound, *where, generator, fn)
            self.bias = Parameter(b)
        else:
            self.bias = None
        self._x = None

    def forward(self, x):
        self._x = x
        return F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)

    def backward(self, grad_out):
        x = self._saved(self._x)
        gx, gw, gb = F.linear_backward(grad_out, x, self.weight.data,
                                       None if self.bias is None else self.bias.data)
        self.weight.accumulate_grad(gw)
        if self.bias is not None:
            self.bias.accumulate_grad(gb)
        return gx

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class PReLU(Module):
    """Parametric ReLU ``max(x, 0) + a · min(x, 0)`` with learned slope(s) ``weight``.

    ``num_parameters=1``: one slope shared by all inputs; ``num_parameters=C``: one per channel
    (dim 1 of the input). Initialised to ``init=0.25`` (He et al. 2015, and torch).
    """

    def __init__(self, num_parameters=1, init=0.25, *, backend=None, device=None, dtype=None):
        super().__init__()
        self.num_parameters = check.integer("PReLU", "num_parameters", num_parameters, low=1)
        self.init = check.real("PReLU", "init", init)
        w = zeros((self.num_parameters,), backend=backend, device=device, dtype=dtype)
        self.weight = Parameter(w + self.init)
        self._x = None

    def forward(self, x):
        self._x = x
        return F.prelu(x, self.weight.data)

    def backward(self, grad_out):
        gx, gw = F.prelu_backward(grad_out, self._saved(self._x), self.weight.data)
        self.weight.accumulate_grad(gw)
        return gx

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Maxout(Module):
    """Maxout layer: a :class:`Linear` to ``out_features · pieces`` units, then :func:`F.maxout`.

    Output unit ``j`` is the max of the linear units ``j·pieces … j·pieces + pieces − 1``, so the
    layer learns a convex piecewise-linear activation with ``pieces`` pieces (ReLU is the case
    ``pieces=2`` with one piece fixed at 0). Parameters: ``linear.weight`` (out·pieces, in),
    ``linear.bias`` (out·pieces,).
    """

    def __init__(self, in_features, out_features, pieces, bias=True, *, backend=None, device=None,
                 dtype=None, generator=None):
        super().__init__()
        self.in_features = check.integer("Maxout", "in_features", in_features, low=1)
        self.out_features = check.integer("Maxout", "out_features", out_features, low=1)
        self.pieces = check.integer("Maxout", "pieces", pieces, low=1)
        self.linear = Linear(self.in_features, self.out_features * self.pieces, bias, backend=backend,
                             device=device, dtype=dtype, generator=generator)
        self._z = None

    def forward(self, x):
        self._z = self.linear(x)
        return F.maxout(self._z, self.pieces)

    def backward(self, grad_out):
        gz = F.maxout_backward(grad_out, self._saved(self._z), self.pieces)
        return self.linear.backward(gz)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}"


class BatchNorm1d(Module):
    """Batch normalization over (N, C) or (N, C, L) inputs (Ioffe & Szegedy 2015), as torch's.

    Training mode normalizes with the batch statistics and updates ``running_mean`` /
    ``running_var`` (unbiased variance) with ``momentum`` (``momentum=None``: cumulative average
    ``1/num_batches_tracked``); eval mode normalizes with the running statistics. ``affine``
    adds the learned ``weight`` γ (ones) and ``bias`` β (zeros); ``track_running_stats=False``
    always uses batch statistics and keeps no buffers. Buffers: ``running_mean`` (zeros),
    ``running_var`` (ones), ``num_batches_tracked`` (0-d int64).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *,
                 backend=None, device=None, dtype=None):
        super().__init__()
        fn = "BatchNorm1d"
        self.num_features = check.integer(fn, "num_features", num_features, low=1)
        self.eps = check.real(fn, "eps", eps, low=0.0, low_open=True)
        self.momentum = None if momentum is None else check.real(fn, "momentum", momentum, low=0.0, high=1.0)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        z = zeros((self.num_features,), backend=backend, device=device, dtype=dtype)
        if self.affine:
            self.weight = Parameter(z + 1.0)
            self.bias = Parameter(z + 0.0)
        else:
            self.weight = self.bias = None
        if self.track_running_stats:
            xp = array_namespace(z)
            self.register_buffer("running_mean", z + 0.0)
            self.register_buffer("running_var", z + 1.0)
            self.register_buffer("num_batches_tracked", xp.zeros_like(z[0], dtype=xp.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self._cache = None

    def forward(self, x):
        check.floating("BatchNorm1d", "x", x)
        if x.ndim not in (2, 3):
            raise ValueError(f"BatchNorm1d: x must be 2-d (N, C) or 3-d (N, C, L), got shape {tuple(x.shape)}")
        update = self.training and self.track_running_stats
        cumulative = update and self.momentum is None
        res = F.batch_norm(x, self.running_mean if (update or not self.training) else None,
                           self.running_var if (update or not self.training) else None,
                           None if self.weight is None else self.weight.data,
                           None if self.bias is None else self.bias.data,
                           training=self.training or self.running_mean is None,
                           momentum=1.0 if cumulative else (self.momentum or 0.0), eps=self.eps)
        if update:
            self.num_batches_tracked = self.num_batches_tracked + 1
            if cumulative:  # r ← r + (stat − r)/t, t = num_batches_tracked, kept on the device (no host read)
                t = array_namespace(x).astype(self.num_batches_tracked, x.dtype)
                self.running_mean = self.running_mean + (res.running_mean - self.running_mean) / t
                self.running_var = self.running_var + (res.running_var - self.running_var) / t
            else:
                self.running_mean, self.running_var = res.running_mean, res.running_var
        self._cache = res.cache
        return res.out

    def backward(self, grad_out):
        gx, gw, gb = F.batch_norm_backward(grad_out, self._saved(self._cache, "cache"))
        if self.affine:
            self.weight.accumulate_grad(gw)
            self.bias.accumulate_grad(gb)
        return gx

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


# --------------------------------------------------------------------------------------------
# activations and dropout
# --------------------------------------------------------------------------------------------
class _Elementwise(Module):
    """An activation ``y = f(x)`` whose backward needs the input (or, if ``_uses_output``, the output)."""
    _uses_output = False

    def __init__(self):
        super().__init__()
        self._saved_arr = None

    def _f(self, x):
        raise NotImplementedError

    def _df(self, grad_out, saved):
        raise NotImplementedError

    def forward(self, x):
        y = self._f(x)
        self._saved_arr = y if self._uses_output else x
        return y

    def backward(self, grad_out):
        return self._df(grad_out, self._saved(self._saved_arr))


class ReLU(_Elementwise):
    """``max(x, 0)`` (gradient 0 at x = 0)."""
    def _f(self, x): return F.relu(x)
    def _df(self, g, x): return F.relu_backward(g, x)


class LeakyReLU(_Elementwise):
    """``x`` for x > 0, ``negative_slope · x`` otherwise."""
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = check.real("LeakyReLU", "negative_slope", negative_slope)
    def _f(self, x): return F.leaky_relu(x, self.negative_slope)
    def _df(self, g, x): return F.leaky_relu_backward(g, x, self.negative_slope)
    def extra_repr(self): return f"negative_slope={self.negative_slope}"


class ELU(_Elementwise):
    """``x`` for x > 0, ``alpha · (eˣ − 1)`` otherwise."""
    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = check.real("ELU", "alpha", alpha)
    def _f(self, x): return F.elu(x, self.alpha)
    def _df(self, g, x): return F.elu_backward(g, x, self.alpha)
    def extra_repr(self): return f"alpha={self.alpha}"


class SELU(Module):
    """``λ x`` for x > 0, ``λ α (eˣ − 1)`` otherwise (:data:`F.ALPHA`, :data:`F.LAMBDA`).

    Keeps input and output: the backward pass reuses the output instead of a second ``exp``.
    """

    def __init__(self):
        super().__init__()
        self._saved_arrs = None

    def forward(self, x):
        y = F.selu(x)
        self._saved_arrs = (x, y)
        return y

    def backward(self, grad_out):
        x, y = self._saved(self._saved_arrs)
        return F.selu_backward(grad_out, x, out=y)


class Sigmoid(_Elementwise):
    """``1 / (1 + e⁻ˣ)``."""
    _uses_output = True
    def _f(self, x): return F.sigmoid(x)
    def _df(self, g, y): return F.sigmoid_backward(g, y)


class Tanh(_Elementwise):
    """``tanh x``."""
    _uses_output = True
    def _f(self, x): return F.tanh(x)
    def _df(self, g, y): return F.tanh_backward(g, y)


class Softplus(_Elementwise):
    """``log(1 + e^{βx}) / β`` (identity where ``βx > threshold``)."""
    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = check.real("Softplus", "beta", beta, low=0.0, low_open=True)
        self.threshold = check.real("Softplus", "threshold", threshold)
    def _f(self, x): return F.softplus(x, self.beta, self.threshold)
    def _df(self, g, x): return F.softplus_backward(g, x, self.beta, self.threshold)
    def extra_repr(self): return f"beta={self.beta}, threshold={self.threshold}"


class Dropout(Module):
    """Inverted dropout with drop probability ``p``: identity in eval mode (see :func:`F.dropout`).

    ``generator``: a :class:`coursekit.backend.Generator` on the inputs' backend/device for
    reproducible masks (the backend's default generator when None).
    """

    def __init__(self, p=0.5, *, generator=None):
        super().__init__()
        self.p = check.real("Dropout", "p", p, low=0.0, high=1.0, high_open=True)
        if generator is not None:
            check.instance("Dropout", "generator", generator, Generator, "a coursekit.backend.Generator")
        self.generator = generator
        self._mask = None
        self._called = False

    def forward(self, x):
        y, self._mask = F.dropout(x, self.p, self.training, self.generator, return_mask=True)
        self._called = True
        return y

    def backward(self, grad_out):
        if not self._called:
            raise RuntimeError("Dropout.backward: nothing saved from forward (mask); call forward first")
        return F.dropout_backward(grad_out, self._mask, self.p)

    def _on_to(self, backend, device):
        if self.generator is not None and (backend not in (None, self.generator.backend) or
                                           device not in (None, self.generator.device)):
            self.generator = None

    def extra_repr(self):
        return f"p={self.p}"


# --------------------------------------------------------------------------------------------
# containers and skip connections
# --------------------------------------------------------------------------------------------
class Sequential(Module):
    """Modules applied in order; ``backward`` runs them in reverse. Indexable, sliceable, ``len``."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            check.instance("Sequential", f"argument {i}", m, Module, "a Module")
            setattr(self, str(i), m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*mods[idx])
        return mods[idx]

    def append(self, module) -> "Sequential":
        check.instance("Sequential.append", "module", module, Module, "a Module")
        setattr(self, str(len(self)), module)
        return self

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, grad_out):
        for m in reversed(self._modules.values()):
            grad_out = m.backward(grad_out)
        return grad_out


class Residual(Module):
    """``y = x + block(x)`` (He et al. 2016): the identity path carries the gradient unchanged,
    ``∂L/∂x = g + block.backward(g)``. ``block`` must keep the shape of its input."""

    def __init__(self, block):
        super().__init__()
        self.block = check.instance("Residual", "block", block, Module, "a Module")

    def forward(self, x):
        y = self.block(x)
        if tuple(y.shape) != tuple(x.shape):
            raise ValueError(f"Residual: block must keep the input shape {tuple(x.shape)}, got {tuple(y.shape)}")
        return x + y

    def backward(self, grad_out):
        return grad_out + self.block.backward(grad_out)


class Highway(Module):
    """Highway layer (Srivastava, Greff & Schmidhuber 2015).  x: (..., features) -> (..., features).

    ``H = activation(W_H x + b_H)``, transform gate ``T = σ(W_T x + b_T)``, and
    ``y = T ⊙ H + (1 − T) ⊙ x``: the gate decides per unit how much of the transformed signal
    passes and how much of the input is carried through unchanged. The gate bias starts at
    ``gate_bias`` (negative, −1 by default; the paper suggests −1 to −3), so the layer is close
    to the identity at first and gradients flow through deep stacks.

    The lecture writes the same layer in the GRU form ``a = z ⊙ a' + (1 − z) ⊙ h``: the update
    gate ``z`` is ``T``, the candidate ``a'`` is ``H(x)`` and the carried state ``h`` is the
    input ``x`` (a highway network is a GRU unrolled over depth instead of time, with no reset
    gate and no new input at each step).

    ``activation``: a Module class (instantiated with no arguments) or a Module instance.
    Sub-modules: ``transform`` (Linear for H), ``act``, ``gate`` (Linear for T).
    """

    def __init__(self, features, activation=ReLU, *, gate_bias=-1.0, backend=None, device=None, dtype=None,
                 generator=None):
        super().__init__()
        self.features = check.integer("Highway", "features", features, low=1)
        if isinstance(activation, Module):
            act = activation
        elif isinstance(activation, type) and issubclass(activation, Module):
            act = activation()
        else:
            raise TypeError(f"Highway: activation must be a Module class or instance, got {activation!r}")
        kw = dict(backend=backend, device=device, dtype=dtype, generator=generator)
        self.transform = Linear(self.features, self.features, **kw)
        self.act = act
        self.gate = Linear(self.features, self.features, **kw)
        self.gate.bias.data = self.gate.bias.data * 0.0 + check.real("Highway", "gate_bias", gate_bias)
        self._saved_arrs = None

    def forward(self, x):
        h = self.act(self.transform(x))
        t = F.sigmoid(self.gate(x))
        self._saved_arrs = (x, h, t)
        return x + t * (h - x)

    def backward(self, grad_out):
        x, h, t = self._saved(self._saved_arrs)
        g_h = grad_out * t                                  # ∂y/∂H = T
        g_zt = F.sigmoid_backward(grad_out * (h - x), t)    # ∂y/∂T = H − x, then through σ
        g_x = grad_out * (1.0 - t)                          # carry path
        g_x = g_x + self.transform.backward(self.act.backward(g_h))
        g_x = g_x + self.gate.backward(g_zt)
        return g_x

    def extra_repr(self):
        return f"features={self.features}"


# --------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------
class CrossEntropyLoss(Module):
    """Mean softmax cross-entropy: ``forward(logits (N, C), target (N,) int) -> scalar``;
    ``backward()`` returns ``∂loss/∂logits = (softmax − onehot)/N`` (see :func:`F.cross_entropy`)."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = check.reduction("CrossEntropyLoss", reduction)
        self._saved_arrs = None

    def forward(self, logits, target):
        self._saved_arrs = (logits, target)
        return F.cross_entropy(logits, target, self.reduction)

    def backward(self, grad_out=1.0):
        logits, target = self._saved(self._saved_arrs)
        return F.cross_entropy_backward(grad_out, logits, target, self.reduction)


class MSELoss(Module):
    """Mean squared error: ``forward(input, target) -> scalar``; ``backward()`` returns
    ``∂loss/∂input = 2 (input − target)/n`` (see :func:`F.mse_loss`)."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = check.reduction("MSELoss", reduction)
        self._saved_arrs = None

    def forward(self, input, target):
        self._saved_arrs = (input, target)
        return F.mse_loss(input, target, self.reduction)

    def backward(self, grad_out=1.0):
        input, target = self._saved(self._saved_arrs)
        return F.mse_loss_backward(grad_out, input, target, self.reduction)


# --------------------------------------------------------------------------------------------
# layer normalization
# --------------------------------------------------------------------------------------------
__all__ += ["LayerNorm"]


class LayerNorm(Module):
    """Layer normalization over the last dims (Ba, Kiros & Hinton 2016), as ``torch.nn.LayerNorm``.

    ``normalized_shape``: an int (the last dim, the usual case for (N, C) inputs) or a tuple of
    trailing dims. Every example is normalized with its own mean and variance over those dims
    (:func:`F.layer_norm`), so training and evaluation compute the same thing and there are no
    running statistics. ``elementwise_affine`` adds ``weight`` γ (ones) and, if ``bias``,
    ``bias`` β (zeros), both of shape ``normalized_shape``.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, *, backend=None,
                 device=None, dtype=None):
        super().__init__()
        fn = "LayerNorm"
        shape = check.shape(fn, normalized_shape, name="normalized_shape")
        if not shape:
            raise ValueError(f"{fn}: normalized_shape must not be empty")
        self.normalized_shape = tuple(check.integer(fn, "normalized_shape", d, low=1) for d in shape)
        self.eps = check.real(fn, "eps", eps, low=0.0, low_open=True)
        self.elementwise_affine = check.boolean(fn, "elementwise_affine", elementwise_affine)
        z = zeros(self.normalized_shape, backend=backend, device=device, dtype=dtype)
        self.weight = Parameter(z + 1.0) if self.elementwise_affine else None
        self.bias = Parameter(z + 0.0) if self.elementwise_affine and bias else None
        self._x = None

    def _params(self):
        return (None if self.weight is None else self.weight.data, None if self.bias is None else self.bias.data)

    def forward(self, x):
        self._x = x
        return F.layer_norm(x, self.normalized_shape, *self._params(), eps=self.eps)

    def backward(self, grad_out):
        gx, gw, gb = F.layer_norm_backward(grad_out, self._saved(self._x), self.normalized_shape,
                                           *self._params(), eps=self.eps)
        if self.weight is not None:
            self.weight.accumulate_grad(gw)
        if self.bias is not None:
            self.bias.accumulate_grad(gb)
        return gx

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")
