"""A tiny lab for the grader's own tests (independent of the course's labs).

Three questions: ``relu`` (one array), ``softmax`` (rows; a misconception normalises over the whole
array), ``affine_backward`` (a tuple ``(dx, dw)``; a misconception doubles dw). Visible
and hidden cases, short timeout. :func:`notebook` builds a solution/student/attack notebook from
cell sources so the tests write real ``.ipynb`` files.
"""
from __future__ import annotations

import json
import textwrap

import numpy as np

from coursekit.labs.spec import Case, Lab, Misconception, Question

LAB_ID = "labfx"


def _relu(x):
    return np.maximum(x, 0.0)


def _softmax(x):
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _softmax_global(x):
    z = np.exp(x - x.max())
    return z / z.sum()


def _affine_backward(dout, x, w):
    return dout @ w.T, x.T @ dout


def _affine_backward_double_dw(dout, x, w):
    return dout @ w.T, 2.0 * (x.T @ dout)


def _mat(rows, cols):
    return lambda rng: {"x": rng.standard_normal((rows, cols))}


QUESTIONS = (
    Question(id=f"{LAB_ID}.relu", function="relu", reference=_relu, title="ReLU",
             cases=(Case("small", _mat(3, 4)), Case("large", _mat(40, 30), points=2.0, visibility="hidden")),
             misconceptions=(Misconception("relu-abs", "ReLU keeps positive inputs and zeroes negative ones; "
                                                       "it does not flip their sign.", lambda x: np.abs(x)),)),
    Question(id=f"{LAB_ID}.softmax", function="softmax", reference=_softmax, title="Row-wise softmax",
             cases=(Case("2 rows", _mat(2, 5)), Case("many rows", _mat(30, 10), visibility="hidden")),
             misconceptions=(Misconception("softmax-global", "Each row is its own distribution: normalise "
                                                             "along axis 1, not over the whole array.",
                                           _softmax_global),)),
    Question(id=f"{LAB_ID}.affine_backward", function="affine_backward", reference=_affine_backward,
             title="Affine backward", outputs=("dx", "dw"),
             cases=(Case("small", lambda rng: {"dout": rng.standard_normal((4, 3)), "x": rng.standard_normal((4, 5)),
                                               "w": rng.standard_normal((5, 3))}),
                    Case("hidden", lambda rng: {"dout": rng.standard_normal((8, 2)), "x": rng.standard_normal((8, 6)),
                                                "w": rng.standard_normal((6, 2))}, visibility="after_due_date")),
             misconceptions=(Misconception("affine-double-dw", "The weight gradient is x^T dout, with no factor "
                                                               "of two.", _affine_backward_double_dw),)),
)

LAB = Lab(id=LAB_ID, title="Grader fixture lab", notebook="labfx.ipynb", questions=QUESTIONS, timeout_s=6.0)

SOLUTIONS = {
    "relu": """\
        import numpy as np

        def relu(x):
            ### BEGIN SOLUTION
            return np.maximum(x, 0.0)
            ### END SOLUTION
        """,
    "softmax": """\
        import numpy as np

        def softmax(x):
            ### BEGIN SOLUTION
            z = np.exp(x - x.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)
            ### END SOLUTION
        """,
    "affine_backward": """\
        import numpy as np

        def affine_backward(dout, x, w):
            ### BEGIN SOLUTION
            return dout @ w.T, x.T @ dout
            ### END SOLUTION
        """,
}

STUDENT = {k: v.replace(v[v.index("### BEGIN"):v.index("### END SOLUTION") + len("### END SOLUTION")],
                        "# YOUR CODE HERE\n            raise NotImplementedError") for k, v in SOLUTIONS.items()}


def _cell(source: str, tags, cid: str, cell_type: str = "code") -> dict:
    cell = {"cell_type": cell_type, "id": cid, "metadata": {"tags": list(tags)},
            "source": textwrap.dedent(source).splitlines(keepends=True)}
    if cell_type == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(answers: dict[str, str] | None = None, *, extra_cells=(), tags: bool = True) -> dict:
    """A notebook of the fixture lab. ``answers`` maps a function name to its cell's source
    (default: the solutions); ``tags=False`` drops the exercise tags (ids stay)."""
    answers = {**SOLUTIONS, **(answers or {})}
    cells = [_cell("# Grader fixture lab\nFill in the functions below.", [], "intro", "markdown"),
             _cell("from coursekit.labs import check  # not run by the grader", [], "setup")]
    for q in QUESTIONS:
        t = ["exercise", f"q:{q.id}"] if tags else []
        cells.append(_cell(answers[q.function], t, f"ex-{q.function}"))
    cells += [_cell(src, [], f"extra-{i}") for i, src in enumerate(extra_cells)]
    return {"cells": cells, "metadata": {"coursekit": {"lab": LAB_ID},
                                         "kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def write_notebook(path, nb: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(nb, f, indent=1)


def count_jobs(mp, sandbox) -> list:
    """Patch ``sandbox.Sandbox.run`` through ``mp`` (a pytest MonkeyPatch) to record the job folder of
    every grading job (the self-test's probe is not counted); returns the list it fills."""
    runs = []
    real = sandbox.Sandbox.run

    def counting(self, job, **kw):
        if kw.get("script", "run.py") == "run.py":
            runs.append(job)
        return real(self, job, **kw)
    mp.setattr(sandbox.Sandbox, "run", counting)
    return runs


SPEC = f"{__file__}:LAB"
"""``--lab-spec`` for this fixture lab (it is not a course lab)."""


def autograder_layout(tmp_path, files: dict):
    """Gradescope's ``/autograder`` layout under ``tmp_path``: the fixture lab's bundle unpacked in
    ``source/`` and ``files`` (name -> notebook) in ``submission/``. Returns the root."""
    import zipfile

    from coursekit.grade import gradescope

    write_notebook(tmp_path / "lab.ipynb", notebook())
    gradescope.bundle(tmp_path / "lab.ipynb", tmp_path / "ag.zip", lab_spec=SPEC)
    root = tmp_path / "autograder"
    with zipfile.ZipFile(tmp_path / "ag.zip") as z:
        z.extractall(root / "source")
    (root / "submission").mkdir()
    for name, nb in files.items():
        write_notebook(root / "submission" / name, nb)
    return root
