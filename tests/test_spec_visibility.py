"""What :func:`coursekit.labs.spec.compare` says about a case that is not visible: grader words only.

The student's code can read a hidden case's inputs and can shape what it returns after them (its
shape, dtype, the number of wrong elements, the size of the error), so nothing the returned value
determines may appear in a hidden case's message — nor anything derived from the expected values
(``max abs error`` of a zero answer *is* the largest expected value). The full diagnosis stays in
``Verdict.detail`` for the instructor.
"""
import re

import numpy as np
import pytest

from coursekit.labs import check, spec

Q = spec.get_question("lab03.batchnorm_backward")
HIDDEN = next(c for c in Q.cases if c.visibility != "visible")
VISIBLE = next(c for c in Q.cases if c.visibility == "visible")


def _inputs():
    inputs = spec.case_inputs(Q, Q.cases.index(HIDDEN), 7)
    return inputs, Q.reference(**inputs)


def _answers(expected):
    dx, dgamma, dbeta = expected
    leak = np.full((3, 77), 0.123456789)                               # a shape and values chosen by the student
    return {
        "shape": ((leak, dgamma, dbeta), "`dx` has the wrong shape"),
        "dtype": ((dx.astype(np.int64), dgamma, dbeta), "`dx` is not floating point"),
        "values": ((np.zeros_like(dx), dgamma, dbeta), "`dx` differs from the reference beyond the tolerance"),
        "type": ([dx, dgamma], "the function did not return a tuple of 3 numeric arrays"),
        "strings": ((dx, dgamma, "0.123456789"), "the function did not return a tuple of 3 numeric arrays"),
    }


@pytest.mark.parametrize("kind", ["shape", "dtype", "values", "type", "strings"])
def test_hidden_case_message_is_grader_words(kind):
    inputs, expected = _inputs()
    got, words = _answers(expected)[kind]
    v = spec.compare(Q, inputs, got, expected, case=HIDDEN)
    assert not v.passed and v.message == words
    lab_words = v.message.replace(f"tuple of {len(expected)}", "tuple of")   # the question's arity is the lab's
    assert not re.search(r"\d", lab_words), v.message                # no number the answer or reference sets
    assert v.detail != v.message                                       # the instructor keeps the diagnosis
    shown = spec.compare(Q, inputs, got, expected, case=VISIBLE)      # the same answer on a visible case
    assert shown.message == shown.detail and re.search(r"\d", shown.message)


def test_hidden_zero_answer_does_not_reveal_the_expected_scale():
    inputs, expected = _inputs()
    got = (np.zeros_like(expected[0]), *expected[1:])
    v = spec.compare(Q, inputs, got, expected, case=HIDDEN)
    largest = f"{np.abs(expected[0]).max():.3g}"
    assert largest in v.detail and largest not in v.message


def test_hidden_misconception_keeps_the_labs_explanation():
    q = spec.get_question("lab01.relu_backward")
    hidden = [(i, c) for i, c in enumerate(q.cases) if c.visibility != "visible"]
    for m in q.misconceptions:
        for i, c in hidden:
            inputs = spec.case_inputs(q, i, 3)
            v = spec.compare(q, inputs, m.variant(**inputs), q.reference(**inputs), case=c)
            if not v.passed and v.misconception is not None:
                assert v.message.endswith(f"Likely misconception [{v.misconception.name}]: {v.misconception.message}")
                assert "index" not in v.message and "error" not in v.message.split(". Likely")[0]
                return
    pytest.fail("no hidden case of lab01.relu_backward separates a misconception under this seed")


def test_hidden_compare_failure_names_no_exception_type():
    class Leaky0_123(Exception):
        pass

    class Evil:
        def __array__(self, *a, **k):
            raise Leaky0_123("0.123")
    inputs, expected = _inputs()
    v = spec.compare(Q, inputs, (Evil(), expected[1], expected[2]), expected, case=HIDDEN)
    assert "Leaky" not in v.message and "0.123" not in v.message


def test_hidden_partial_credit_in_grader_words():
    q = spec.get_question("lab05.train_and_predict")
    i, case = next((i, c) for i, c in enumerate(q.cases) if c.visibility != "visible")
    inputs = spec.case_inputs(q, i, spec.PUBLIC_SEED)
    y = q.reference(**inputs)
    got = y.copy()
    got[: len(y) // 20] = (got[: len(y) // 20] + 1) % 10                 # 95 % right
    v = spec.compare(q, inputs, got, y, case=case)
    assert v.message == f"earned {v.fraction:.0%} of the points" and "accuracy" in v.detail


def test_self_check_runs_visible_cases_only(capsys):
    """check() never calls the function on a hidden case, and never names one."""
    seen = []

    def spy(**kw):
        seen.append(kw)
        return Q.reference(**kw)
    r = check(Q.id, spy)
    assert r.passed and len(seen) == len(Q.visible_cases()) < len(Q.cases)
    out = capsys.readouterr().out
    assert HIDDEN.name not in out and "hidden cases are graded later" in out


def test_self_check_reports_an_exception_whose_message_fails():
    class Weird(Exception):
        def __str__(self):
            raise RuntimeError("no")

    def broken(**kw):
        raise Weird()
    r = check(Q.id, broken, verbose=False)
    assert not r.passed and all("raised Weird: (its message could not be printed)" in c.message for c in r.cases)
