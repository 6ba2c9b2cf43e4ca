"""The one vocabulary of argument checks used by every module of coursekit.

Every public function checks its arguments with these helpers, so that a wrong argument gives the
same kind of error everywhere: ``TypeError`` for a wrong *type*, ``ValueError`` for a wrong
*value*, and a message that names the function, the argument, what is allowed and what was
received (``"dropout: p must be in [0, 1), got 1.5"``). Each helper takes the function name
``fn`` first and returns the normalized value (a Python ``float``/``int``/``str``)::

    from . import _checks as check
    p = check.real("dropout", "p", p, low=0.0, high=1.0, high_open=True)
    n = check.integer("Linear", "in_features", n, low=1)
    dtype = check.dtype("Linear", dtype)                    # 'float64', np.float64, torch.float64 ...
    check.arrays("linear", x=x, weight=weight, bias=bias)   # floating, one backend/device/dtype

The checks look only at Python scalars, shapes, dtypes and devices, never at the *values* held
in an array: on a GPU, reading a value means waiting for the device (a host sync), and on
torch's ``meta`` device there are no values at all. This module imports no other part of
coursekit (every module may import it).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

FLOAT_DTYPES = ("float32", "float64")        # what new arrays (parameters, data) may be created as
REDUCTIONS = ("mean", "sum", "none")         # torch's loss reductions
_ARRAY_FLOATS = ("float16", "bfloat16", "float32", "float64")


def _type_name(value) -> str:
    return type(value).__name__


# --------------------------------------------------------------------------------------------
# Python scalars
# --------------------------------------------------------------------------------------------
def real(fn: str, name: str, value, *, low=-math.inf, high=math.inf, low_open=False,
         high_open=False) -> float:
    """``float(value)`` for a real number (not a bool) in the interval; the bounds are inclusive
    unless ``low_open``/``high_open``. NaN is always rejected."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {_type_name(value)}")
    value = float(value)
    ok_low = value > low if low_open else value >= low
    ok_high = value < high if high_open else value <= high
    if not (ok_low and ok_high):  # also False for NaN
        interval = ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
        raise ValueError(f"{fn}: {name} must be in {interval}, got {value!r}")
    return value


def integer(fn: str, name: str, value, *, low=None, high=None) -> int:
    """``int(value)`` for an integer (Python or NumPy, not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be an integer, got {_type_name(value)}")
    value = int(value)
    if low is not None and high is not None and not low <= value <= high:
        raise ValueError(f"{fn}: {name} must be an integer in [{low}, {high}], got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{fn}: {name} must be an integer >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{fn}: {name} must be an integer <= {high}, got {value!r}")
    return value


def boolean(fn: str, name: str, value) -> bool:
    """``value`` if it is a ``bool`` (1/0 and arrays are rejected: no silent truthiness)."""
    if not isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be a bool, got {_type_name(value)}")
    return value


def choice(fn: str, name: str, value, options: tuple):
    """``value`` if it is one of ``options`` (strings compared by equality)."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{fn}: {name} must be one of {options}, got {value!r}")
    return value


def reduction(fn: str, value) -> str:
    """A loss reduction: ``'mean'``, ``'sum'`` or ``'none'`` (torch's)."""
    return choice(fn, "reduction", value, REDUCTIONS)


def dim(fn: str, value, ndim: int) -> int:
    """An axis of an ``ndim``-d array, negative counting from the end (``ndim = 0`` allows -1, 0)."""
    n = max(ndim, 1)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: dim must be an integer, got {_type_name(value)}")
    if not -n <= value < n:
        raise ValueError(f"{fn}: dim must be in [{-n}, {n - 1}] for a {ndim}-d input, got {value}")
    return int(value)


def shape(fn: str, value, *, name: str = "shape") -> tuple:
    """A shape: a tuple (or other iterable) of integers >= 0, or one integer ``n`` meaning ``(n,)``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        sizes = tuple(value)
    except TypeError:
        raise TypeError(f"{fn}: {name} must be a tuple of ints, got {value!r}") from None
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in sizes):
        raise TypeError(f"{fn}: {name} must be a tuple of ints, got {value!r}")
    if any(n < 0 for n in sizes):
        raise ValueError(f"{fn}: {name} must have non-negative sizes, got {sizes}")
    return tuple(int(n) for n in sizes)


def instance(fn: str, name: str, value, cls, what: str):
    """``value`` if ``isinstance(value, cls)``; ``TypeError`` naming ``what`` was expected."""
    if not isinstance(value, cls):
        raise TypeError(f"{fn}: {name} must be {what}, got {_type_name(value)}")
    return value


def dtype(fn: str, value, *, name: str = "dtype") -> str:
    """The name (``'float32'``/``'float64'``) of a floating dtype for new arrays, in any spelling
    a NumPy or torch user writes: ``'float64'``, ``'torch.float64'``, ``'f8'``, ``'double'``,
    ``float``, ``np.float64``, ``np.dtype('float64')``, ``torch.float64``.

    ``TypeError`` if ``value`` names no dtype, ``ValueError`` for a dtype that is not float32/64.
    """
    t = type(value)
    if t.__module__ == "torch" and t.__name__ == "dtype":          # torch.float64 -> 'float64'
        resolved = str(value).replace("torch.", "")
    elif isinstance(value, str) and value.startswith("torch."):
        resolved = value[len("torch."):]
    elif value is None or isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be a dtype such as 'float32' or torch.float64, got {value!r}")
    else:
        try:
            resolved = np.dtype(value).name
        except TypeError:
            raise TypeError(f"{fn}: {name} must be a dtype such as 'float32' or torch.float64, got "
                            f"{value!r}") from None
    if resolved not in FLOAT_DTYPES:
        raise ValueError(f"{fn}: {name} must be one of {FLOAT_DTYPES}, got {value!r}")
    return resolved


# --------------------------------------------------------------------------------------------
# arrays: kind, dtype, device and shape (never values)
# --------------------------------------------------------------------------------------------
def kind(x) -> str | None:
    """``'numpy'``, ``'torch'`` or None for anything else (exact types first: this runs per call)."""
    t = type(x)
    if t is np.ndarray:
        return "numpy"
    if t.__name__ == "Tensor" and t.__module__ == "torch":
        return "torch"
    if isinstance(x, (np.ndarray, np.generic)):   # NumPy scalars (``a[0]``, ``a + 1`` of 0-d a) too
        return "numpy"
    for base in t.__mro__:  # subclasses of torch.Tensor (nn.Parameter), without importing torch
        if base.__name__ == "Tensor" and base.__module__ == "torch":
            return "torch"
    return None


def dtype_name(x) -> str:
    """The dtype of an array as a plain name: ``'float32'``, ``'int64'`` (no ``torch.`` prefix)."""
    return str(x.dtype).replace("torch.", "")


def array(fn: str, name: str, x) -> str:
    """The kind (``'numpy'``/``'torch'``) of an array of any dtype; ``TypeError`` otherwise."""
    k = kind(x)
    if k is None:
        raise TypeError(f"{fn}: {name} must be a numpy array or torch tensor, got {_type_name(x)}")
    return k


def floating(fn: str, name: str, x) -> None:
    """``TypeError`` unless ``x`` is a NumPy array or torch tensor of a floating dtype."""
    t = type(x)
    if t is np.ndarray:
        if x.dtype.kind == "f" and x.dtype.itemsize <= 8:
            return
    elif t.__name__ == "Tensor" and t.__module__ == "torch":
        if x.is_floating_point():
            return
    array(fn, name, x)
    if dtype_name(x) not in _ARRAY_FLOATS:
        raise TypeError(f"{fn}: {name} must have a floating dtype, got {dtype_name(x)}")


def _where(x) -> str:
    return f"torch:{x.device}" if kind(x) == "torch" else "numpy:cpu"


def same_device(fn: str, **arrays) -> None:
    """``TypeError`` naming the arguments when arrays (None skipped) live on different backends or
    devices (any dtypes)."""
    present = {k: a for k, a in arrays.items() if a is not None}
    kinds = {type(a) for a in present.values()}
    if kinds == {np.ndarray} or (len(kinds) == 1 and kind(next(iter(present.values()))) == "torch"
                                 and len({a.device for a in present.values()}) == 1):
        return
    places = {k: _where(a) for k, a in present.items()}
    if len(set(places.values())) > 1:
        desc = ", ".join(f"{k} on {p}" for k, p in places.items())
        raise TypeError(f"{fn}: arrays must share one backend and device, got {desc}")


def _fast_floating(named) -> bool:
    """True when every non-None array is floating and shares the exact type, dtype and device of the
    first: the common case, answered with a few attribute reads (this runs on every kernel call)."""
    t = dt = dev = None
    for a in named.values():
        if a is None:
            continue
        if t is None:
            t, dt = type(a), getattr(a, "dtype", None)
            if t is np.ndarray:
                if dt.kind != "f" or dt.itemsize > 8:
                    return False
            elif t.__name__ == "Tensor" and t.__module__ == "torch" and a.is_floating_point():
                dev = a.device
            else:
                return False
        elif type(a) is not t or a.dtype != dt or (dev is not None and a.device != dev):
            return False
    return True


def arrays(fn: str, **named) -> None:
    """Floating arrays (None entries skipped) of one backend, device and dtype; ``TypeError``
    naming the argument otherwise."""
    if _fast_floating(named):
        return
    present = {k: a for k, a in named.items() if a is not None}
    for k, a in present.items():                          # slow path: find the culprit
        floating(fn, k, a)
    same_device(fn, **present)
    (first_name, first), *rest = present.items()
    for k, a in rest:
        if a.dtype != first.dtype:
            raise TypeError(f"{fn}: {k} must have the dtype of {first_name} ({dtype_name(first)}), "
                            f"got {dtype_name(a)}")


def same_shape(fn: str, a, a_name: str, shape, what: str) -> None:
    """``ValueError`` unless ``a.shape == shape`` (``what`` names where ``shape`` comes from)."""
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{fn}: {a_name} must have the shape of {what} {tuple(shape)}, got {tuple(a.shape)}")
