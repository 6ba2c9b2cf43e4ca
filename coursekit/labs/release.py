"""Turn a solution notebook (a lab, or a lecture with exercises) into the student notebook.

``release(notebook_path, out_dir) -> path`` writes ``out_dir/<same file name>`` where

* cells tagged ``solution-only`` or ``hidden`` are removed;
* in every code cell, each block from a ``### BEGIN SOLUTION`` line to the matching
  ``### END SOLUTION`` line (markers included) becomes ``# YOUR CODE HERE`` +
  ``raise NotImplementedError`` at the indentation of the BEGIN marker, so the ``def`` line and
  the docstring, which sit outside the markers, stay;
* every output, execution count, widget state and execution-timing metadata is dropped;
* cell ids, tags (``exercise``, ``q:<question id>``) and the notebook's ``coursekit`` metadata
  are kept, so the grader finds the answer cells by tag, or by id when a student removed tags.

The result is checked: no marker or solution line survives, and when the notebook names a known
lab (``metadata.coursekit.lab``) every question has exactly one exercise cell tagged ``q:<id>``
that defines ``Question.function``. Violations raise ``ValueError`` naming the cell.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat

from .._io import atomic_path

__all__ = ["release", "strip_solutions", "student_cells", "has_exercises", "student_path",
           "BEGIN", "END", "HIDDEN_TAGS", "EXERCISE_TAG", "STUDENT_DIR"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HIDDEN_TAGS = ("solution-only", "hidden")
EXERCISE_TAG = "exercise"
_MARKER = re.compile(r"^(?P<indent>[ \t]*)### (?P<kind>BEGIN|END) SOLUTION\s*$")
_DROP_CELL_METADATA = ("execution", "collapsed", "scrolled", "jupyter", "ExecuteTime")
_CHECK_CALL = re.compile(r"^\s*(?:\w+\s*=\s*)?check\(", re.M)  # a self-check cell
STUDENT_DIR = "student"  # committed student versions: student/labs/..., student/lectures/...


def strip_solutions(source: str, *, where: str = "cell") -> tuple[str, int]:
    """Replace each solution block in ``source``; return (new source, number of blocks).

    ``ValueError`` on nested, unclosed or unopened markers, naming ``where``.
    """
    out, depth_indent, blocks = [], None, 0
    for lineno, line in enumerate(source.splitlines(), 1):
        m = _MARKER.match(line)
        if m and m["kind"] == "BEGIN":
            if depth_indent is not None:
                raise ValueError(f"release: nested {BEGIN!r} at line {lineno} of {where}")
            depth_indent = m["indent"]
            out.append(f"{depth_indent}# YOUR CODE HERE")
            out.append(f"{depth_indent}raise NotImplementedError")
            blocks += 1
        elif m and m["kind"] == "END":
            if depth_indent is None:
                raise ValueError(f"release: {END!r} without {BEGIN!r} at line {lineno} of {where}")
            depth_indent = None
        elif depth_indent is None:
            out.append(line)
    if depth_indent is not None:
        raise ValueError(f"release: {BEGIN!r} is never closed by {END!r} in {where}")
    return "\n".join(out), blocks


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _validate(nb, path: Path) -> None:
    for k, cell in enumerate(nb.cells):
        if BEGIN in cell.source or END in cell.source:
            raise ValueError(f"release: solution marker left in cell {k} ({cell.get('id')}) of {path.name}")
    lab_id = nb.metadata.get("coursekit", {}).get("lab")
    if lab_id is None:
        return
    from . import spec
    if lab_id not in spec.LAB_MODULES:
        raise ValueError(f"release: metadata.coursekit.lab must be one of {spec.LAB_MODULES}, got {lab_id!r}")
    lab = spec.get_lab(lab_id)
    for q in lab.questions:
        cells = [c for c in nb.cells if f"q:{q.id}" in _tags(c)]
        if len(cells) != 1:
            raise ValueError(f"release: {path.name} must have exactly one cell tagged 'q:{q.id}', found {len(cells)}")
        cell = cells[0]
        if cell.cell_type != "code" or EXERCISE_TAG not in _tags(cell):
            raise ValueError(f"release: cell tagged 'q:{q.id}' in {path.name} must be a code cell tagged 'exercise'")
        if not re.search(rf"^def {re.escape(q.function)}\(", cell.source, flags=re.M):
            raise ValueError(f"release: cell 'q:{q.id}' in {path.name} does not define {q.function}()")


def has_exercises(nb) -> bool:
    """True when solution notebook ``nb`` has a student version: it names a lab
    (``metadata.coursekit.lab``) or a code cell holds a solution block."""
    return ("lab" in nb.metadata.get("coursekit", {})
            or any(cell.cell_type == "code" and BEGIN in cell.source for cell in nb.cells))


def student_path(notebook_path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Where the committed student version of ``root/<folder>/<name>.ipynb`` lives:
    ``root/student/<folder>/<name>.ipynb`` (the book's launch and download buttons point there)."""
    src, root = Path(notebook_path).resolve(), Path(root).resolve()
    return root / STUDENT_DIR / src.relative_to(root)


def student_cells(nb, *, name: str, keep_outputs: bool = False) -> list:
    """The cells of the student version of the solution notebook ``nb`` (named ``name`` in errors).

    Cells tagged ``solution-only``/``hidden`` are dropped and every solution block is replaced
    (:func:`strip_solutions`). With ``keep_outputs=False`` (the student notebook) every output and
    execution count goes; with ``keep_outputs=True`` (a book page made from the executed solution)
    figures and widgets stay, but the outputs of exercise cells and of ``check(...)`` cells are
    dropped: a "passed" under ``raise NotImplementedError`` would mislead. The cells are modified in place.
    """
    cells = []
    for k, cell in enumerate(nb.cells):
        tags = _tags(cell)
        if any(t in HIDDEN_TAGS for t in tags):
            continue
        where = f"cell {k} ({cell.get('id')}) of {name}"
        if cell.cell_type == "code":
            cell.source, blocks = strip_solutions(cell.source, where=where)
            if EXERCISE_TAG in tags and blocks == 0:
                raise ValueError(f"release: exercise {where} has no {BEGIN!r} block")
            if not keep_outputs or EXERCISE_TAG in tags or _CHECK_CALL.search(cell.source):
                cell.outputs = []
            cell.execution_count = None
        for key in _DROP_CELL_METADATA:
            cell.metadata.pop(key, None)
        cells.append(cell)
    return cells


def release(notebook_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write the student version of the solution notebook ``notebook_path`` into ``out_dir``.

    Returns the written path (``out_dir / notebook_path.name``). The write is atomic.
    """
    src = Path(notebook_path)
    if not src.is_file():
        raise ValueError(f"release: notebook_path must be an existing .ipynb file, got {str(notebook_path)!r}")
    nb = nbformat.read(src, as_version=4)
    nb.cells = student_cells(nb, name=src.name)
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("execution", None)
    _validate(nb, src)
    nbformat.validate(nb)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dest = out / src.name
    if dest.resolve() == src.resolve():
        raise ValueError(f"release: out_dir must differ from the notebook's folder, got {str(out_dir)!r}")
    with atomic_path(dest) as tmp, open(tmp, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    return dest
