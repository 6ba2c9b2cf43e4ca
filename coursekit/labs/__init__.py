"""Labs: question specs (:mod:`coursekit.labs.spec`), the student's self-check :func:`check`,
and :func:`coursekit.labs.release.release` that turns a solution notebook into the student's.

In a lab notebook::

    from coursekit.labs import check
    check("lab03.dropout_forward", dropout_forward)   # runs the visible cases, prints a diagnosis
"""
from .check import CaseResult, CheckResult, check

__all__ = ["check", "CheckResult", "CaseResult"]
