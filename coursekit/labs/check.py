"""The student's self-check: run a question's VISIBLE cases on the student's function.

``check("lab03.dropout_forward", dropout_forward)`` draws the visible cases' inputs with the
public seed :data:`coursekit.labs.spec.PUBLIC_SEED`, calls the function, compares with the
reference via :func:`coursekit.labs.spec.compare`, prints one line per case and returns a
:class:`CheckResult`. Hidden cases are neither run nor mentioned by name, and reference
outputs are never printed. ``NotImplementedError`` reads "not implemented yet"; any other
exception is reported (type and message), never re-raised.
"""
from __future__ import annotations

import copy
import time
import traceback
from dataclasses import dataclass

import numpy as np

from . import spec

__all__ = ["check", "CheckResult", "CaseResult"]


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    message: str
    misconception: str | None = None   # the name of the detected misconception, if any
    seconds: float = 0.0


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check` found. ``passed`` is True when every visible case passed."""

    question: str
    cases: tuple[CaseResult, ...]
    not_implemented: bool = False

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    @property
    def n_passed(self) -> int:
        return sum(c.passed for c in self.cases)

    @property
    def misconceptions(self) -> tuple[str, ...]:
        return tuple(c.misconception for c in self.cases if c.misconception)

    def __bool__(self) -> bool:
        return self.passed

    def report(self) -> str:
        head = f"check {self.question}: "
        if self.not_implemented:
            return head + "not implemented yet (replace `raise NotImplementedError` with your code)"
        lines = [head + f"{self.n_passed}/{len(self.cases)} visible cases passed"]
        for c in self.cases:
            mark = "\u2713" if c.passed else "\u2717"
            lines.append(f"  {mark} {c.name}: {c.message}")
        if self.passed:
            lines.append("  (hidden cases are graded later with other inputs)")
        return "\n".join(lines)

    __str__ = report

    def __repr__(self) -> str:
        state = "not implemented" if self.not_implemented else f"{self.n_passed}/{len(self.cases)} passed"
        return f"CheckResult({self.question!r}: {state})"


def _mutated(before: dict, after: dict) -> list[str]:
    names = []
    for k, v in before.items():
        if isinstance(v, np.ndarray):
            w = after.get(k)
            if not isinstance(w, np.ndarray) or w.shape != v.shape or not np.array_equal(w, v, equal_nan=True):
                names.append(k)
    return names


def _exception_line(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (line {tb[-1].lineno} of {tb[-1].name})" if tb else ""
    try:
        text = str(e).strip().splitlines()
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails is still reported
        text = ["(its message could not be printed)"]
    return f"raised {type(e).__name__}: {text[0][:500] if text else ''}{where}"


def check(question_id: str, function, *, verbose: bool = True) -> CheckResult:
    """Run the visible cases of ``question_id`` on ``function``; print and return the result.

    question_id: ``"lab03.dropout_forward"``; function: the student's implementation (called with
    the case's keyword arguments); verbose: print the report (default True).
    """
    question = spec.get_question(question_id)
    if not callable(function):
        raise TypeError(f"check: function must be callable, got {type(function).__name__}")
    results = []
    for index, case in question.visible_cases():
        inputs = spec.case_inputs(question, index, spec.PUBLIC_SEED)
        expected = question.reference(**copy.deepcopy(inputs))
        given = copy.deepcopy(inputs)
        t0 = time.perf_counter()
        try:
            got = function(**given)
        except NotImplementedError:
            result = CheckResult(question.id, (), not_implemented=True)
            if verbose:
                print(result.report())
            return result
        except Exception as e:  # noqa: BLE001 - report, never crash the student's kernel
            results.append(CaseResult(case.name, False, _exception_line(e), None, time.perf_counter() - t0))
            continue
        seconds = time.perf_counter() - t0
        verdict = spec.compare(question, inputs, got, expected, case=case)
        message = verdict.message
        mutated = _mutated(inputs, given)
        if mutated:
            message += f" [note: your function modified its input(s) {', '.join(mutated)} in place]"
        results.append(CaseResult(case.name, verdict.passed, message,
                                  verdict.misconception.name if verdict.misconception else None, seconds))
    result = CheckResult(question.id, tuple(results))
    if verbose:
        print(result.report())
    return result
