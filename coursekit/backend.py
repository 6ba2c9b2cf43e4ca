"""Everything backend-specific lives here: namespaces, defaults, array creation, random draws.

Kernels elsewhere in coursekit are written once against the array API::

    xp = array_namespace(x)          # numpy, torch (CPU or CUDA), array_api_strict, ...
    y = xp.maximum(x, 0)

and never touch ``numpy`` or ``torch`` directly. What the array API standard does not cover
(random numbers, choosing a library for *new* arrays, moving data back to NumPy for plotting)
is collected in this module so that a backend is added in one place.

Backends are named ``"numpy"`` and ``"torch"``. New arrays (parameters, masks) are created on
``backend``/``device``/``dtype`` given as keywords, falling back to the package default set
once with :func:`set_default_backend`::

    import coursekit
    coursekit.set_default_backend("torch", device="cuda", dtype="float32")
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
from array_api_compat import array_namespace as _array_namespace
from array_api_compat import device as _device
from array_api_compat import is_numpy_array, is_torch_array

__all__ = [
    "BACKENDS", "array_namespace", "set_default_backend", "get_default_backend", "namespace",
    "asarray", "asarray_int64", "zeros", "foreach_add", "foreach_mul",
    "foreach_sqrt", "foreach_addcmul", "foreach_addcdiv", "to_numpy", "backend_of", "device_of", "Generator", "manual_seed",
    "default_generator", "generator_like", "resolve_generator", "check_floating", "check_same_backend",
    "torch_available", "cuda_available", "positive_mask", "sum_product", "batch_sum", "blockwise",
]

BACKENDS = ("numpy", "torch")
_FLOAT_DTYPES = ("float32", "float64")


@dataclass
class _Defaults:
    backend: str = "numpy"
    device: str | None = None  # None -> the backend's default ("cpu")
    dtype: str = "float32"     # torch's default; pass dtype="float64" for gradient checks


_DEFAULTS = _Defaults()


def torch_available() -> bool:
    try:
        importlib.import_module("torch")
    except ImportError:
        return False
    return True


def cuda_available() -> bool:
    if not torch_available():
        return False
    import torch
    return bool(torch.cuda.is_available())


_FAST_NS: dict = {}


def _fast_namespace(t):
    """The compat namespace for the exact types ``numpy.ndarray`` / ``torch.Tensor`` (else None)."""
    ns = _FAST_NS.get(t)
    if ns is None:
        if t is np.ndarray:
            ns = importlib.import_module("array_api_compat.numpy")
        elif t.__name__ == "Tensor" and t.__module__ == "torch":
            ns = importlib.import_module("array_api_compat.torch")
        else:
            return None
        _FAST_NS[t] = ns
    return ns


def array_namespace(*arrays):
    """The array-API namespace of ``arrays`` (mismatched backends -> ``TypeError``).

    Fast path (kernels call this on every use): when all arrays are exactly ``numpy.ndarray``
    or exactly ``torch.Tensor``, the namespace is looked up by type; anything else goes through
    ``array_api_compat.array_namespace``.
    """
    if arrays:
        t = type(arrays[0])
        for a in arrays[1:]:
            if type(a) is not t:
                return _array_namespace(*arrays)
        ns = _fast_namespace(t)
        if ns is not None:
            return ns
    return _array_namespace(*arrays)


def _check_backend(backend: str, fn: str = "set_default_backend") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"{fn}: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch" and not torch_available():
        raise ValueError(f"{fn}: backend 'torch' requested but torch is not installed")
    return backend


def _check_dtype(dtype, fn: str) -> str:
    name = dtype if isinstance(dtype, str) else str(dtype).replace("torch.", "")
    if name not in _FLOAT_DTYPES:
        raise ValueError(f"{fn}: dtype must be one of {_FLOAT_DTYPES}, got {dtype!r}")
    return name


def set_default_backend(backend: str, *, device: str | None = None, dtype: str | None = None) -> None:
    """Set the backend, device and dtype used for *new* arrays (parameters, masks, data)."""
    _check_backend(backend)
    if backend == "numpy" and device not in (None, "cpu"):
        raise ValueError(f"set_default_backend: device must be 'cpu' for numpy, got {device!r}")
    if backend == "torch" and device is not None and str(device).startswith("cuda") and not cuda_available():
        raise ValueError(f"set_default_backend: device {device!r} requested but CUDA is not available")
    _DEFAULTS.backend = backend
    _DEFAULTS.device = device
    if dtype is not None:
        _DEFAULTS.dtype = _check_dtype(dtype, "set_default_backend")


def get_default_backend() -> tuple[str, str, str]:
    """``(backend, device, dtype)`` used when none is given."""
    return _DEFAULTS.backend, _DEFAULTS.device or "cpu", _DEFAULTS.dtype


def _resolve(backend, device, dtype, fn):
    backend = _check_backend(backend or _DEFAULTS.backend, fn)
    device = device if device is not None else (_DEFAULTS.device if backend == _DEFAULTS.backend else None)
    device = str(device) if device is not None else "cpu"
    if backend == "numpy" and device != "cpu":
        raise ValueError(f"{fn}: device must be 'cpu' for numpy, got {device!r}")
    dtype = _check_dtype(dtype or _DEFAULTS.dtype, fn)
    return backend, device, dtype


def namespace(backend: str | None = None):
    """The array-API namespace for a backend name (``array_api_compat.numpy`` / ``.torch``)."""
    backend = _check_backend(backend or _DEFAULTS.backend, "namespace")
    return importlib.import_module(f"array_api_compat.{backend}")


def _native_dtype(backend: str, dtype: str):
    if backend == "numpy":
        return np.dtype(dtype)
    import torch
    return getattr(torch, dtype)


def asarray(x, *, backend: str | None = None, device: str | None = None, dtype: str | None = None):
    """Copy ``x`` (array of any backend, list, scalar) into a new floating array."""
    backend, device, dtype = _resolve(backend, device, dtype, "asarray")
    x = to_numpy(x) if (is_numpy_array(x) or is_torch_array(x)) else np.asarray(x)
    if backend == "numpy":
        return np.array(x, dtype=dtype)
    import torch
    return torch.tensor(x, dtype=_native_dtype(backend, dtype), device=device)


def asarray_int64(x, *, backend: str | None = None, device: str | None = None):
    """Copy ``x`` (integer array of any backend, list) into a new int64 array: labels, indices.

    ``backend``/``device`` default as in :func:`asarray` (dtype is always int64 = ``torch.long``).
    """
    backend, device, _ = _resolve(backend, device, None, "asarray_int64")
    x = to_numpy(x) if (is_numpy_array(x) or is_torch_array(x)) else np.asarray(x)
    if x.dtype.kind not in "iu" and not (x.dtype.kind == "f" and np.all(x == np.round(x))):
        raise TypeError(f"asarray_int64: x must hold integers, got dtype {x.dtype}")
    x = np.array(x, dtype=np.int64)
    if backend == "numpy":
        return x
    import torch
    return torch.from_numpy(x).to(device)


# "foreach" list operations, used by coursekit.optim's kernels. Each returns NEW arrays (inputs are
# untouched). For torch tensors each is ONE fused call over the whole list (``torch._foreach_*``,
# the kernels behind ``torch.optim``'s ``foreach=True``), which saves a launch per tensor and the
# temporaries; for other backends a plain loop with the same arithmetic.
def _torch_list(xs) -> bool:
    return bool(xs) and is_torch_array(xs[0])


def foreach_add(xs, ys, *, alpha=1.0) -> list:
    """``[x + alpha·y for x, y in zip(xs, ys)]``; ``ys`` may also be one Python number ``y``."""
    xs = list(xs)
    if isinstance(ys, (int, float)):
        if _torch_list(xs):
            import torch
            return list(torch._foreach_add(xs, alpha * ys))
        return [x + alpha * ys for x in xs]
    ys = list(ys)
    if _torch_list(xs):
        import torch
        return list(torch._foreach_add(xs, ys, alpha=alpha))
    if alpha == 1.0:
        return [x + y for x, y in zip(xs, ys, strict=True)]
    return [x + alpha * y for x, y in zip(xs, ys, strict=True)]


def foreach_mul(xs, scalar) -> list:
    """``[scalar·x for x in xs]``."""
    xs = list(xs)
    if _torch_list(xs):
        import torch
        return list(torch._foreach_mul(xs, scalar))
    return [scalar * x for x in xs]


def foreach_sqrt(xs) -> list:
    """``[√x for x in xs]``."""
    xs = list(xs)
    if _torch_list(xs):
        import torch
        return list(torch._foreach_sqrt(xs))
    return [array_namespace(x).sqrt(x) for x in xs]


def foreach_addcmul(xs, ys, zs, *, value=1.0) -> list:
    """``[x + value·y·z for x, y, z in zip(xs, ys, zs)]``."""
    xs, ys, zs = list(xs), list(ys), list(zs)
    if _torch_list(xs):
        import torch
        return list(torch._foreach_addcmul(xs, ys, zs, value=value))
    return [x + value * (y * z) for x, y, z in zip(xs, ys, zs, strict=True)]


def foreach_addcdiv(xs, ys, zs, *, value=1.0) -> list:
    """``[x + value·y/z for x, y, z in zip(xs, ys, zs)]``."""
    xs, ys, zs = list(xs), list(ys), list(zs)
    if _torch_list(xs):
        import torch
        return list(torch._foreach_addcdiv(xs, ys, zs, value=value))
    return [x + value * (y / z) for x, y, z in zip(xs, ys, zs, strict=True)]


def zeros(shape, *, backend: str | None = None, device: str | None = None, dtype: str | None = None):
    backend, device, dtype = _resolve(backend, device, dtype, "zeros")
    xp = namespace(backend)
    return xp.zeros(tuple(shape), dtype=_native_dtype(backend, dtype), device=device)


def to_numpy(x) -> np.ndarray:
    """A NumPy copy/view of an array from any backend (for plotting, comparison, saving)."""
    if is_torch_array(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def backend_of(x) -> str:
    t = type(x)
    if t is np.ndarray:
        return "numpy"
    if t.__name__ == "Tensor" and t.__module__ == "torch":
        return "torch"
    if is_torch_array(x):
        return "torch"
    if is_numpy_array(x):
        return "numpy"
    raise TypeError(f"backend_of: expected a numpy array or torch tensor, got {type(x).__name__}")


def device_of(x) -> str:
    t = type(x)
    if t is np.ndarray:
        return "cpu"
    if t.__name__ == "Tensor" and t.__module__ == "torch":
        return str(x.device)
    return str(_device(x))


def dtype_name(x) -> str:
    return str(x.dtype).replace("torch.", "")


def positive_mask(x):
    """A multiplicative mask, 1 where ``x > 0`` and 0 elsewhere, for ``grad * mask`` (ReLU's backward).

    The fastest form differs by backend: NumPy multiplies by a boolean array directly, while on
    torch CPU a comparison costs several times an arithmetic op, and ``sign(clamp(x, min=0))``
    (1.0 / 0.0 in ``x``'s dtype) is faster.
    """
    if backend_of(x) == "torch":
        import torch
        return torch.sign(torch.clamp(x, min=0))
    return x > 0


def sum_product(a, b, axes: tuple):
    """``Σ a·b`` over ``axes`` (a and b of one shape), without materializing ``a·b`` where possible.

    NumPy: ``einsum`` fuses the product into the reduction (several times faster than
    ``sum(a * b)`` for large arrays, and no temporary). torch: ``sum(a * b)``, which its CPU
    kernels already do well (torch's einsum turns this pattern into a slow batched matmul).
    """
    if backend_of(a) == "numpy":
        letters = "abcdefghijklmnopqrstuvwxyz"[:a.ndim]
        keep = "".join(c for i, c in enumerate(letters) if i not in axes)
        return np.einsum(f"{letters},{letters}->{keep}", a, b)
    import torch
    return torch.sum(a * b, dim=tuple(axes))


def batch_sum(a, axes: tuple):
    """``Σ a`` over ``axes`` (dim 0 and possibly trailing dims), e.g. a bias gradient.

    NumPy: a matrix-vector product with a vector of ones over dim 0 (``ones @ a``), which
    OpenBLAS runs multi-threaded and vectorized, several times faster than ``sum(a, axis=0)``
    (a single-threaded ufunc reduction); the trailing axes, if any, are then summed normally.
    torch: ``sum``.
    """
    if backend_of(a) == "numpy" and a.ndim >= 2 and axes and axes[0] == 0 and a.shape[0] > 0:
        s = np.ones(a.shape[0], dtype=a.dtype) @ a.reshape(a.shape[0], -1)
        s = s.reshape(a.shape[1:])
        rest = tuple(ax - 1 for ax in axes[1:])
        return np.sum(s, axis=rest) if rest else s
    return array_namespace(a).sum(a, axis=tuple(axes))


_BLOCK_BYTES = 1 << 18  # 256 KiB per input block: a few temporaries of this size stay in L2


def blockwise(fn, *arrays):
    """``fn(*arrays)`` for an element-wise ``fn`` (per-row: row i of the result depends only on row i
    of the inputs), evaluated block of rows by block of rows on NumPy.

    NumPy ufuncs make one full pass over memory per operation, so a chain of k operations on a
    large array streams it k times from DRAM. Blocks of ~256 KiB keep the whole chain in cache
    (on a 16 MiB array typically 2× faster). torch (whose kernels already fuse or parallelize), small
    arrays and 0-d/1-d arrays: a single call ``fn(*arrays)``. ``arrays`` share their first dim; ``fn``
    may write into temporaries it creates but not into its arguments (they are views of the inputs).
    """
    first = arrays[0]
    n = first.shape[0] if first.ndim else 0
    if backend_of(first) != "numpy" or first.ndim < 2 or first.nbytes <= 2 * _BLOCK_BYTES:
        return fn(*arrays)
    rows = max(1, _BLOCK_BYTES // max(1, first.nbytes // n))
    head = fn(*(a[:rows] for a in arrays))
    out = np.empty((n,) + head.shape[1:], dtype=head.dtype)
    out[:rows] = head
    for i in range(rows, n, rows):
        out[i:i + rows] = fn(*(a[i:i + rows] for a in arrays))
    return out


def check_floating(x, fn: str, arg: str = "x") -> None:
    """``TypeError`` unless ``x`` is a floating-point array of a supported backend."""
    t = type(x)
    if t is np.ndarray and x.dtype.kind == "f" and x.dtype.itemsize <= 8:  # fast paths, common case
        return
    if t.__name__ == "Tensor" and t.__module__ == "torch" and x.is_floating_point():
        return
    if not (is_numpy_array(x) or is_torch_array(x)):
        raise TypeError(f"{fn}: {arg} must be a numpy array or torch tensor, got {type(x).__name__}")
    if dtype_name(x) not in ("float16", "bfloat16", "float32", "float64"):
        raise TypeError(f"{fn}: {arg} must have a floating dtype, got {dtype_name(x)}")


def check_same_backend(fn: str, **arrays) -> None:
    """``TypeError`` naming the arguments when arrays come from different backends/devices."""
    present = [a for a in arrays.values() if a is not None]
    if len(present) < 2:
        return
    t = type(present[0])
    if all(type(a) is t for a in present):  # fast paths: one exact array type
        if t is np.ndarray:
            return
        if t.__name__ == "Tensor" and t.__module__ == "torch":
            d = present[0].device
            if all(a.device == d for a in present):
                return
    seen = {name: (backend_of(a), device_of(a)) for name, a in arrays.items() if a is not None}
    if len(set(seen.values())) > 1:
        desc = ", ".join(f"{n} on {b}:{d}" for n, (b, d) in seen.items())
        raise TypeError(f"{fn}: arrays must share one backend and device, got {desc}")


class Generator:
    """A seeded random stream for one backend and device.

    ``numpy`` draws from ``numpy.random.Generator(PCG64(seed))``; ``torch`` from a
    ``torch.Generator`` on ``device``. The same seed gives the same stream on the same backend
    and device (streams differ *across* backends).
    """

    def __init__(self, seed: int = 0, *, backend: str | None = None, device: str | None = None):
        backend, device, _ = _resolve(backend, device, None, "Generator")
        self.backend, self.device, self.seed = backend, device, int(seed)
        if backend == "numpy":
            self._g = np.random.default_rng(self.seed)
        else:
            import torch
            self._g = torch.Generator(device=device)
            self._g.manual_seed(self.seed)

    def _dt(self, dtype):
        return _native_dtype(self.backend, _check_dtype(dtype or _DEFAULTS.dtype, "Generator"))

    def uniform(self, shape, low=0.0, high=1.0, *, dtype=None):
        """U[low, high) of ``shape``."""
        shape = tuple(shape)
        if self.backend == "numpy":
            return self._g.uniform(low, high, size=shape).astype(self._dt(dtype), copy=False)
        import torch
        u = torch.rand(shape, generator=self._g, device=self.device, dtype=self._dt(dtype))
        return u * (high - low) + low

    def normal(self, shape, mean=0.0, std=1.0, *, dtype=None):
        """N(mean, std²) of ``shape``."""
        shape = tuple(shape)
        if self.backend == "numpy":
            return self._g.normal(mean, std, size=shape).astype(self._dt(dtype), copy=False)
        import torch
        z = torch.randn(shape, generator=self._g, device=self.device, dtype=self._dt(dtype))
        return z * std + mean

    def keep_mask(self, shape, keep: float, *, dtype=None):
        """Bernoulli(keep) mask of 0/1 in ``dtype``: the dropout mask (``keep = 1 - p``)."""
        shape = tuple(shape)
        if self.backend == "numpy":
            u = self._g.random(size=shape, dtype=np.float32)
            return (u < keep).astype(self._dt(dtype))
        import torch
        u = torch.rand(shape, generator=self._g, device=self.device, dtype=torch.float32)
        return (u < keep).to(self._dt(dtype))

    def permutation(self, n: int):
        """A random permutation of ``range(n)`` as a NumPy int array (for shuffling batches)."""
        if self.backend == "numpy":
            return self._g.permutation(n)
        import torch
        return torch.randperm(n, generator=self._g, device="cpu").numpy()

    def integers(self, low: int, high: int, shape=()):
        """Integers in [low, high) as a NumPy int64 array."""
        if self.backend == "numpy":
            return self._g.integers(low, high, size=tuple(shape))
        import torch
        return torch.randint(low, high, tuple(shape), generator=self._g, device="cpu").numpy()


_GENERATORS: dict[tuple[str, str], Generator] = {}
_SEED = [0]


def manual_seed(seed: int) -> None:
    """Reseed the default generator of every backend/device (like ``torch.manual_seed``)."""
    _SEED[0] = int(seed)
    _GENERATORS.clear()


def default_generator(backend: str | None = None, device: str | None = None) -> Generator:
    backend, device, _ = _resolve(backend, device, None, "default_generator")
    key = (backend, device)
    if key not in _GENERATORS:
        _GENERATORS[key] = Generator(_SEED[0], backend=backend, device=device)
    return _GENERATORS[key]


def resolve_generator(fn: str, generator: Generator | None, backend=None, device=None, dtype=None):
    """Where new random arrays go: ``(generator, backend, device, dtype)``.

    Without ``backend``/``device`` the generator's are used; without a generator, the default
    generator of the resolved backend/device. ``ValueError`` if they disagree (naming ``fn``).
    """
    if generator is not None:
        if not isinstance(generator, Generator):
            raise TypeError(f"{fn}: generator must be a coursekit.backend.Generator, got "
                            f"{type(generator).__name__}")
        backend = backend or generator.backend
        if device is None and backend == generator.backend:
            device = generator.device
    backend, device, dtype = _resolve(backend, device, dtype, fn)
    gen = generator if generator is not None else default_generator(backend, device)
    if (gen.backend, gen.device) != (backend, device):
        raise ValueError(f"{fn}: generator is on {gen.backend}:{gen.device} but the new arrays go to "
                         f"{backend}:{device}")
    return gen, backend, device, dtype


def generator_like(x, generator: Generator | None = None, *, fn: str = "generator_like") -> Generator:
    """The generator to use for random draws shaped like ``x`` (same backend and device)."""
    b, d = backend_of(x), device_of(x)
    if generator is None:
        return default_generator(b, d)
    if not isinstance(generator, Generator):
        raise TypeError(f"{fn}: generator must be a coursekit.backend.Generator, got {type(generator).__name__}")
    if (generator.backend, generator.device) != (b, d):
        raise ValueError(f"{fn}: generator is on {generator.backend}:{generator.device} but x is on {b}:{d}")
    return generator
