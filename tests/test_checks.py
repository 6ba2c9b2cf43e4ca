"""coursekit._checks: the one vocabulary of argument checks (TypeError for a type, ValueError for a value)."""
import math

import numpy as np
import pytest

from coursekit import _checks as check
from coursekit import nn


def test_real():
    assert check.real("f", "a", 2) == 2.0 and type(check.real("f", "a", np.float32(0.5))) is float
    with pytest.raises(TypeError, match=r"f: a must be a real number, got bool"):
        check.real("f", "a", True)
    with pytest.raises(TypeError, match=r"f: a must be a real number, got str"):
        check.real("f", "a", "1")
    with pytest.raises(ValueError, match=r"f: a must be in \[0, 1\), got 1.0"):
        check.real("f", "a", 1.0, low=0.0, high=1.0, high_open=True)
    with pytest.raises(ValueError, match=r"f: a must be in \(0, inf\], got 0.0"):
        check.real("f", "a", 0, low=0.0, low_open=True)
    with pytest.raises(ValueError, match=r"f: a must be in \[-inf, inf\], got nan"):
        check.real("f", "a", math.nan)


def test_integer():
    assert check.integer("f", "n", np.int64(3), low=1) == 3
    with pytest.raises(TypeError, match=r"f: n must be an integer, got float"):
        check.integer("f", "n", 3.0)
    with pytest.raises(TypeError, match=r"f: n must be an integer, got bool"):
        check.integer("f", "n", True)
    with pytest.raises(ValueError, match=r"f: n must be an integer >= 1, got 0"):
        check.integer("f", "n", 0, low=1)
    with pytest.raises(ValueError, match=r"f: n must be an integer in \[1, 16\], got 17"):
        check.integer("f", "n", 17, low=1, high=16)
    with pytest.raises(ValueError, match=r"f: n must be an integer <= 2, got 3"):
        check.integer("f", "n", 3, high=2)


def test_boolean_choice_reduction_dim_shape_instance():
    assert check.boolean("f", "b", False) is False
    with pytest.raises(TypeError, match=r"f: b must be a bool, got int"):
        check.boolean("f", "b", 1)
    assert check.choice("f", "mode", "min", ("min", "max")) == "min"
    with pytest.raises(ValueError, match=r"f: mode must be one of \('min', 'max'\), got 'avg'"):
        check.choice("f", "mode", "avg", ("min", "max"))
    with pytest.raises(ValueError, match=r"f: reduction must be one of \('mean', 'sum', 'none'\), got None"):
        check.reduction("f", None)
    assert check.dim("f", -1, 2) == -1
    with pytest.raises(ValueError, match=r"f: dim must be in \[-2, 1\] for a 2-d input, got 2"):
        check.dim("f", 2, 2)
    with pytest.raises(TypeError, match=r"f: dim must be an integer, got float"):
        check.dim("f", 1.0, 2)
    assert check.shape("f", 3) == (3,) and check.shape("f", [2, np.int64(4)]) == (2, 4)
    with pytest.raises(TypeError, match=r"f: shape must be a tuple of ints, got \(2.5,\)"):
        check.shape("f", (2.5,))
    with pytest.raises(ValueError, match=r"f: shape must have non-negative sizes, got \(-1,\)"):
        check.shape("f", (-1,))
    with pytest.raises(TypeError, match=r"f: m must be a Module, got int"):
        check.instance("f", "m", 3, nn.Module, "a Module")


SPELLINGS_64 = ["float64", "f8", "double", float, np.float64, np.dtype("float64"), "torch.float64"]


@pytest.mark.parametrize("spelling", SPELLINGS_64, ids=str)
def test_dtype_every_numpy_spelling(spelling):
    assert check.dtype("f", spelling) == "float64"


def test_dtype_torch_spellings_and_errors():
    torch = pytest.importorskip("torch")
    assert check.dtype("f", torch.float32) == "float32" and check.dtype("f", torch.double) == "float64"
    with pytest.raises(ValueError, match=r"f: dtype must be one of \('float32', 'float64'\), got torch.int64"):
        check.dtype("f", torch.int64)
    with pytest.raises(ValueError, match=r"f: dtype must be one of \('float32', 'float64'\), got 'int8'"):
        check.dtype("f", "int8")
    with pytest.raises(TypeError, match=r"f: dtype must be a dtype such as 'float32' or torch.float64, got 'banana'"):
        check.dtype("f", "banana")
    with pytest.raises(TypeError, match=r"f: dtype must be a dtype"):
        check.dtype("f", None)


@pytest.mark.parametrize("spelling", SPELLINGS_64, ids=str)
def test_layers_accept_every_dtype_spelling(spelling):
    """``nn.Linear(6, 4, dtype=np.float64)`` and friends build float64 parameters."""
    assert str(nn.Linear(6, 4, dtype=spelling).weight.dtype) == "float64"
    assert str(nn.BatchNorm1d(3, dtype=spelling).weight.dtype) == "float64"


def test_arrays(make):
    x32 = make(np.zeros((2, 3), np.float32))
    check.arrays("f", x=x32, w=make(np.ones(3, np.float32)), b=None)   # passes
    with pytest.raises(TypeError, match=r"f: w must have the dtype of x \(float32\), got float64"):
        check.arrays("f", x=x32, w=make(np.ones(3)))
    with pytest.raises(TypeError, match=r"f: w must have a floating dtype, got int64"):
        check.arrays("f", x=x32, w=make(np.arange(3)))
    with pytest.raises(TypeError, match=r"f: x must be a numpy array or torch tensor, got list"):
        check.arrays("f", x=[1.0])


def test_same_device_names_the_arguments():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"f: arrays must share one backend and device, got a on numpy:cpu, "
                                        r"b on torch:cpu"):
        check.arrays("f", a=np.zeros(1), b=torch.zeros(1, dtype=torch.float64))
    check.same_device("f", a=np.zeros(1), b=None)
    with pytest.raises(TypeError, match=r"f: arrays must share one backend and device, got a on torch:cpu, "
                                        r"b on torch:meta"):
        check.same_device("f", a=torch.zeros(1), b=torch.zeros(1, device="meta"))


def test_checks_never_read_values():
    """Every check passes on torch's meta device, where there are no values to read."""
    torch = pytest.importorskip("torch")
    x = torch.zeros((4, 3), device="meta")
    check.arrays("f", x=x, y=torch.zeros(3, device="meta"))
    check.same_shape("f", x, "x", (4, 3), "the input")
    assert check.kind(x) == "torch" and check.kind(torch.nn.Parameter(x)) == "torch"
