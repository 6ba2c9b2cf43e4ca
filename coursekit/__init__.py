"""coursekit: the tested package behind the *trainingtips* course.

Every layer, loss and optimizer is written once against the array API with a hand-derived
backward, and runs on NumPy and torch (CPU and CUDA). See ``coursekit.backend`` for choosing a
backend. Submodules: ``functional`` (imported as ``F``), ``nn``, ``init``, ``optim``, ``snn``,
``ensemble``, ``data``, ``train``, ``labs``, ``grade``.

``coursekit.gradcheck(f, inputs, grad_fn, ...)`` is the gradient checker (like
``torch.autograd.gradcheck``, the function shadows its module's name; ``gradcheck_module`` and
``numerical_gradient`` live in ``coursekit.gradcheck`` as well and are re-exported here).
"""
from .backend import Generator, get_default_backend, manual_seed, set_default_backend, to_numpy
from .gradcheck import GradcheckResult, gradcheck, gradcheck_module, numerical_gradient

__all__ = ["Generator", "GradcheckResult", "get_default_backend", "gradcheck", "gradcheck_module",
           "manual_seed", "numerical_gradient", "set_default_backend", "to_numpy"]
__version__ = "0.1.0"
