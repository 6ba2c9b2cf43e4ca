"""Weight initialization: pure creators and torch-style in-place setters.

Each scheme comes twice, with ``torch.nn.init``'s names and arguments:

* a *creator* ``xavier_uniform(shape, *, gain=1.0, generator=None, backend=None, device=None,
  dtype=None) -> array`` returning a new array;
* a *setter* ``xavier_uniform_(param, *, gain=1.0, generator=None) -> param`` that replaces
  ``param.data`` (a :class:`coursekit.nn.Parameter`, or any object with ``.data``) by a new array
  of the same shape, backend, device and dtype.

Fans are computed exactly as torch's ``_calculate_fan_in_and_fan_out``: for a weight of shape
(out, in, *k) the receptive field is ``prod(k)``, ``fan_in = in · prod(k)``,
``fan_out = out · prod(k)`` (so a Linear weight (out, in) has ``fan_in = in``).

Scales (``fan`` is ``fan_in`` or ``fan_out`` according to ``mode``):

=====================  ==========================================  =====================================
scheme                 uniform U(−a, a)                            normal N(0, std²)
=====================  ==========================================  =====================================
Xavier / Glorot        ``a = gain·sqrt(6/(fan_in + fan_out))``     ``std = gain·sqrt(2/(fan_in + fan_out))``
He / Kaiming           ``a = gain·sqrt(3/fan)``                    ``std = gain/sqrt(fan)``
=====================  ==========================================  =====================================

Both keep the variance of activations (Xavier: for tanh-like units, averaging forward and
backward; He: for ReLU, whose gain √2 compensates for the half of the inputs it zeroes).
"""
from __future__ import annotations

import math

from . import _checks as check
from .backend import backend_of, device_of, dtype_name, resolve_generator, zeros as _zeros

__all__ = [
    "calculate_gain", "calculate_fan_in_and_fan_out",
    "zeros", "ones", "constant", "uniform", "normal",
    "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
    "zeros_", "ones_", "constant_", "uniform_", "normal_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
]

_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for ``nonlinearity`` (torch's table).

    linear / conv / sigmoid: 1; tanh: 5/3; relu: √2; leaky_relu: √(2/(1 + slope²)) with
    ``param`` the negative slope (default 0.01); selu: 3/4.
    """
    fn = "calculate_gain"
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else check.real(fn, "param", param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    check.choice(fn, "nonlinearity", nonlinearity, _LINEAR_LIKE + ("tanh", "relu", "leaky_relu", "selu"))


def calculate_fan_in_and_fan_out(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` (out, in, *kernel), as torch computes them."""
    fn = "calculate_fan_in_and_fan_out"
    shape = check.shape(fn, shape)
    if len(shape) < 2:
        raise ValueError(f"{fn}: fan in and fan out need a shape with at least 2 dims, got {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(fn, shape, mode):
    check.choice(fn, "mode", mode, ("fan_in", "fan_out"))
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"{fn}: cannot initialize a weight with a zero fan, shape {shape}")
    return fan


def _gen(fn, generator, backend, device, dtype):
    """(generator, dtype) for a creator: see :func:`coursekit.backend.resolve_generator`."""
    gen, _, _, dtype = resolve_generator(fn, generator, backend, device, dtype)
    return gen, dtype


# --------------------------------------------------------------------------------------------
# creators
# --------------------------------------------------------------------------------------------
def zeros(shape, *, backend=None, device=None, dtype=None):
    """All zeros (biases; never for weights of hidden layers: every unit would stay identical)."""
    return _zeros(check.shape("zeros", shape), backend=backend, device=device, dtype=dtype)


def constant(shape, val, *, backend=None, device=None, dtype=None):
    """Every entry equal to ``val``."""
    val = check.real("constant", "val", val)
    return _zeros(check.shape("constant", shape), backend=backend, device=device, dtype=dtype) + val


def ones(shape, *, backend=None, device=None, dtype=None):
    """All ones (e.g. BatchNorm's γ)."""
    return constant(shape, 1.0, backend=backend, device=device, dtype=dtype)


def uniform(shape, *, a=0.0, b=1.0, generator=None, backend=None, device=None, dtype=None):
    """U(a, b) entries."""
    fn = "uniform"
    a, b = check.real(fn, "a", a), check.real(fn, "b", b)
    if not a <= b:
        raise ValueError(f"{fn}: a must be <= b, got a={a}, b={b}")
    gen, dtype = _gen(fn, generator, backend, device, dtype)
    return gen.uniform(check.shape(fn, shape), a, b, dtype=dtype)


def normal(shape, *, mean=0.0, std=0.01, generator=None, backend=None, device=None, dtype=None):
    """N(mean, std²) entries. Default ``std=0.01``: the "small random numbers" initialization
    (torch's ``normal_`` defaults to ``std=1``; pass it explicitly to compare)."""
    fn = "normal"
    mean = check.real(fn, "mean", mean)
    std = check.real(fn, "std", std, low=0.0)
    gen, dtype = _gen(fn, generator, backend, device, dtype)
    return gen.normal(check.shape(fn, shape), mean, std, dtype=dtype)


def xavier_uniform(shape, *, gain=1.0, generator=None, backend=None, device=None, dtype=None):
    """Glorot & Bengio (2010): U(−a, a), ``a = gain · sqrt(6 / (fan_in + fan_out))``."""
    fn = "xavier_uniform"
    gain = check.real(fn, "gain", gain, low=0.0)
    fan_in, fan_out = calculate_fan_in_and_fan_out(check.shape(fn, shape))
    a = gain * math.sqrt(6.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    gen, dtype = _gen(fn, generator, backend, device, dtype)
    return gen.uniform(check.shape(fn, shape), -a, a, dtype=dtype)


def xavier_normal(shape, *, gain=1.0, generator=None, backend=None, device=None, dtype=None):
    """Glorot & Bengio (2010): N(0, std²), ``std = gain · sqrt(2 / (fan_in + fan_out))``."""
    fn = "xavier_normal"
    gain = check.real(fn, "gain", gain, low=0.0)
    fan_in, fan_out = calculate_fan_in_and_fan_out(check.shape(fn, shape))
    std = gain * math.sqrt(2.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    gen, dtype = _gen(fn, generator, backend, device, dtype)
    return gen.normal(check.shape(fn, shape), 0.0, std, dtype=dtype)


def kaiming_uniform(shape, *, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None,
                    backend=None, device=None, dtype=None):
    """He et al. (2015): U(−b, b), ``b = gain · sqrt(3 / fan)``, ``gain = calculate_gain(nonlinearity, a)``.

    ``a``: the negative slope of the rectifier (0 = ReLU, gain √2); ``mode='fan_in'`` keeps
    the variance of the forward activations, ``'fan_out'`` that of the backward gradients.
    """
    fn = "kaiming_uniform"
    shape = check.shape(fn, shape)
    fan = _fan(fn, shape, mode)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    gen, dtype = _gen(fn, generator, backend, device, dtype)
    return gen.uniform(shape, -bound, bound, dtype=dtype)


def kaiming_normal(shape, *, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None,
                   backend=None, device=None, dtype=None):
    """He et al. (2015): N(0, std²), ``std = gain / sqrt(fan)`` (see :func:`kaiming_uniform`)."""
    fn = "kaiming_normal"
    shape = check.shape(fn, shape)
    fan = _fan(fn, shape, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    gen, dtype = _gen(fn, generator, backend, device, dtype)
    return gen.normal(shape, 0.0, std, dtype=dtype)


# --------------------------------------------------------------------------------------------
# torch-style setters: param.data <- creator(param.shape, same backend/device/dtype)
# --------------------------------------------------------------------------------------------
def _set(fn, creator, param, generator, **kw):
    data = getattr(param, "data", None)
    try:
        b, d = backend_of(data), device_of(data)
    except TypeError:
        raise TypeError(f"{fn}: param must have a .data array (a coursekit.nn.Parameter), got "
                        f"{type(param).__name__}; for a new array use {creator.__name__}(shape, ...)") from None
    param.data = creator(tuple(data.shape), generator=generator, backend=b, device=d,
                         dtype=dtype_name(data), **kw)
    return param


def zeros_(param):
    """``param.data`` ← zeros of the same shape, backend, device and dtype."""
    return _set("zeros_", lambda s, generator, **kw: zeros(s, **kw), param, None)


def ones_(param):
    """``param.data`` ← ones."""
    return _set("ones_", lambda s, generator, **kw: ones(s, **kw), param, None)


def constant_(param, val):
    """``param.data`` ← ``val`` everywhere."""
    return _set("constant_", lambda s, generator, **kw: constant(s, val, **kw), param, None)


def uniform_(param, a=0.0, b=1.0, *, generator=None):
    """``param.data`` ← U(a, b)."""
    return _set("uniform_", uniform, param, generator, a=a, b=b)


def normal_(param, mean=0.0, std=0.01, *, generator=None):
    """``param.data`` ← N(mean, std²) (default std 0.01, see :func:`normal`)."""
    return _set("normal_", normal, param, generator, mean=mean, std=std)


def xavier_uniform_(param, gain=1.0, *, generator=None):
    """``param.data`` ← :func:`xavier_uniform` of its shape."""
    return _set("xavier_uniform_", xavier_uniform, param, generator, gain=gain)


def xavier_normal_(param, gain=1.0, *, generator=None):
    """``param.data`` ← :func:`xavier_normal` of its shape."""
    return _set("xavier_normal_", xavier_normal, param, generator, gain=gain)


def kaiming_uniform_(param, a=0.0, mode="fan_in", nonlinearity="leaky_relu", *, generator=None):
    """``param.data`` ← :func:`kaiming_uniform` of its shape."""
    return _set("kaiming_uniform_", kaiming_uniform, param, generator, a=a, mode=mode,
                nonlinearity=nonlinearity)


def kaiming_normal_(param, a=0.0, mode="fan_in", nonlinearity="leaky_relu", *, generator=None):
    """``param.data`` ← :func:`kaiming_normal` of its shape."""
    return _set("kaiming_normal_", kaiming_normal, param, generator, a=a, mode=mode,
                nonlinearity=nonlinearity)
