"""The instructor's autograder behind ``coursekit grade``.

Each submission's answer cells run in a bubblewrap sandbox (:mod:`.sandbox`) as a non-root uid,
with NumPy only; the sandbox sends back arrays over a pipe (:mod:`.protocol`); the parent compares
them with coursekit's references (:func:`coursekit.labs.spec.compare`) and writes ``grades.csv``,
per-student feedback (Markdown, HTML, Gradescope ``results.json``) and a cohort ``report.html``.

    from coursekit.grade import Grader
    Grader("labs/lab03_dropout_batchnorm.ipynb", "out", jobs=2).grade(["submissions/"])
"""
from .engine import Grader, grade
from .sandbox import Limits, Sandbox, SandboxUnavailable, setup_sandbox

__all__ = ["Grader", "grade", "Limits", "Sandbox", "SandboxUnavailable", "setup_sandbox"]
