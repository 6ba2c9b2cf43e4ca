"""The student's self-check: visible cases only, diagnosis, misconceptions, never crashes."""
import numpy as np
import pytest

from coursekit.labs import CheckResult, check, spec
from coursekit.labs.questions import lab01, lab03


def test_correct_function(capsys):
    r = check("lab01.relu_backward", lambda dout, x: np.where(x > 0, dout, 0.0))
    out = capsys.readouterr().out
    assert isinstance(r, CheckResult) and r.passed and bool(r)
    q = spec.get_question("lab01.relu_backward")
    assert r.n_passed == len(r.cases) == len(q.visible_cases())
    assert "2/2 visible cases passed" in out and "\u2713 inputs containing exact zeros: passed" in out
    for case in q.cases:                      # hidden cases are neither run nor named
        if case.visibility != "visible":
            assert case.name not in out
    assert repr(r) == "CheckResult('lab01.relu_backward': 2/2 passed)"


def test_wrong_function_names_misconception(capsys):
    r = check("lab01.relu_backward", lambda dout, x: dout * (x >= 0))
    out = capsys.readouterr().out
    assert not r.passed and r.n_passed == 1
    assert r.misconceptions == ("relu-grad-at-zero",)
    assert "\u2717 inputs containing exact zeros" in out and "[relu-grad-at-zero]" in out
    assert "elements differ" in out


def test_wrong_function_without_known_misconception(capsys):
    r = check("lab03.dropout_forward", lambda x, u, p, training: x + 1.0)
    out = capsys.readouterr().out
    assert not r.passed and r.misconceptions == ()
    assert "Likely misconception" not in out


def test_no_reference_values_printed(capsys):
    q = spec.get_question("lab01.sigmoid_forward")
    check(q.id, lambda x: np.zeros_like(x))
    out = capsys.readouterr().out
    inputs = spec.case_inputs(q, 0, spec.PUBLIC_SEED)
    expected = q.reference(**inputs)
    assert f"{expected.flat[0]:.3g}" not in out and f"{expected.flat[0]:.4f}" not in out


def test_not_implemented(capsys):
    def f(x):
        raise NotImplementedError
    r = check("lab01.sigmoid_forward", f)
    assert r.not_implemented and not r.passed and r.cases == ()
    assert "not implemented yet" in capsys.readouterr().out


def test_exceptions_reported_not_raised(capsys):
    def f(dout, x, alpha):
        raise KeyError("oops")
    r = check("lab01.elu_backward", f)
    out = capsys.readouterr().out
    assert not r.passed and "raised KeyError" in out and "line" in out


def test_wrong_shape_and_none(capsys):
    assert "has shape" in check("lab01.maxout_forward", lambda x, pieces: x, verbose=False).cases[0].message
    r = check("lab03.batchnorm_backward", lambda dout, x, gamma, eps: None, verbose=False)
    assert "expected a tuple of 3 arrays" in r.cases[0].message
    assert capsys.readouterr().out == ""


def test_in_place_modification_noted():
    def f(dout, x):
        x[x <= 0] = 0.0
        return np.where(x > 0, dout, 0.0)
    r = check("lab01.relu_backward", f, verbose=False)
    assert r.passed and "modified its input(s) x in place" in r.cases[0].message


def test_references_and_variants_through_check():
    assert check("lab03.batchnorm_forward", lab03.batchnorm_forward, verbose=False).passed
    r = check("lab03.batchnorm_forward", lab03._bn_batch_stats_in_eval, verbose=False)
    assert r.misconceptions == ("bn-batch-stats-in-eval",)
    with np.errstate(all="ignore"):
        r = check("lab01.sigmoid_forward", lab01._sigmoid_overflow, verbose=False)
    assert r.misconceptions == ("sigmoid-exp-overflow",)


def test_bad_arguments():
    with pytest.raises(TypeError, match="check: function must be callable"):
        check("lab01.relu_backward", 3)
    with pytest.raises(ValueError, match="unknown question"):
        check("lab01.nothing", print)
