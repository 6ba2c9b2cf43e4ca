"""coursekit: the tested package behind the *trainingtips* course.

Every layer, loss and optimizer is written once against the array API with a hand-derived
backward, and runs on NumPy and torch (CPU and CUDA). See ``coursekit.backend`` for choosing a
backend.
"""
from .backend import Generator, get_default_backend, manual_seed, set_default_backend, to_numpy

__all__ = ["Generator", "get_default_backend", "manual_seed", "set_default_backend", "to_numpy"]
__version__ = "0.1.0"
