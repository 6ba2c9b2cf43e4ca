"""Everything backend-specific lives here: namespaces, defaults, array creation, random draws.

Kernels elsewhere in coursekit are written once against the array API::

    xp = array_namespace(x)          # numpy or torch (CPU, CUDA, meta)
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

from . import _checks as check

__all__ = [
    "BACKENDS", "array_namespace", "set_default_backend", "get_default_backend", "namespace",
    "asarray", "asarray_int64", "zeros", "foreach_add", "foreach_mul",
    "foreach_sqrt", "foreach_addcmul", "foreach_addcdiv", "to_numpy", "backend_of", "device_of", "dtype_name",
    "Generator", "manual_seed", "default_generator", "generator_like", "resolve_generator",
    "torch_available", "cuda_available",
]

BACKENDS = ("numpy", "torch")


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


def check_backend(fn: str, backend) -> str:
    """``backend`` if it names a backend that is installed (``ValueError`` otherwise)."""
    check.choice(fn, "backend", backend, BACKENDS)
    if backend == "torch" and not torch_available():
        raise ValueError(f"{fn}: backend 'torch' requested but torch is not installed")
    return backend


def set_default_backend(backend: str, *, device: str | None = None, dtype: str | None = None) -> None:
    """Set the backend, device and dtype used for *new* arrays (parameters, masks, data)."""
    check_backend("set_default_backend", backend)
    if backend == "numpy" and device not in (None, "cpu"):
        raise ValueError(f"set_default_backend: device must be 'cpu' for numpy, got {device!r}")
    if backend == "torch" and device is not None and str(device).startswith("cuda") and not cuda_available():
        raise ValueError(f"set_default_backend: device {device!r} requested but CUDA is not available")
    _DEFAULTS.backend = backend
    _DEFAULTS.device = device
    if dtype is not None:
        _DEFAULTS.dtype = check.dtype("set_default_backend", dtype)


def get_default_backend() -> tuple[str, str, str]:
    """``(backend, device, dtype)`` used when none is given."""
    return _DEFAULTS.backend, _DEFAULTS.device or "cpu", _DEFAULTS.dtype


def _resolve(backend, device, dtype, fn):
    backend = check_backend(fn, backend or _DEFAULTS.backend)
    device = device if device is not None else (_DEFAULTS.device if backend == _DEFAULTS.backend else None)
    device = str(device) if device is not None else "cpu"
    if backend == "numpy" and device != "cpu":
        raise ValueError(f"{fn}: device must be 'cpu' for numpy, got {device!r}")
    dtype = check.dtype(fn, _DEFAULTS.dtype if dtype is None else dtype)
    return backend, device, dtype


def namespace(backend: str | None = None):
    """The array-API namespace for a backend name (``array_api_compat.numpy`` / ``.torch``)."""
    backend = check_backend("namespace", backend or _DEFAULTS.backend)
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
    """``'numpy'`` or ``'torch'``: the backend an array belongs to (``TypeError`` for anything else)."""
    return check.array("backend_of", "x", x)


def device_of(x) -> str:
    t = type(x)
    if t is np.ndarray:
        return "cpu"
    if t.__name__ == "Tensor" and t.__module__ == "torch":
        return str(x.device)
    return str(_device(x))


dtype_name = check.dtype_name  # 'float32', 'int64', ... for arrays of either backend


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
        return _native_dtype(self.backend, check.dtype("Generator", _DEFAULTS.dtype if dtype is None else dtype))

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
        """A random permutation of ``range(n)`` as a NumPy int array (for shuffling batches). On torch it
        is drawn on the generator's device (a CUDA generator cannot draw on the CPU), then copied."""
        if self.backend == "numpy":
            return self._g.permutation(n)
        import torch
        return torch.randperm(n, generator=self._g, device=self.device).cpu().numpy()

    def integers(self, low: int, high: int, shape=()):
        """Integers in [low, high) as a NumPy int64 array."""
        if self.backend == "numpy":
            return self._g.integers(low, high, size=tuple(shape))
        import torch
        return torch.randint(low, high, tuple(shape), generator=self._g, device=self.device).cpu().numpy()


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
        check.instance(fn, "generator", generator, Generator, "a coursekit.backend.Generator")
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
    check.instance(fn, "generator", generator, Generator, "a coursekit.backend.Generator")
    if (generator.backend, generator.device) != (b, d):
        raise ValueError(f"{fn}: generator is on {generator.backend}:{generator.device} but x is on {b}:{d}")
    return generator
