"""Find a submission's answer cells.

A lab's solution notebook tags each exercise cell ``exercise`` and ``q:<question id>``; the
released student notebook keeps those tags and the cell ids. For each question the grader takes,
in order of preference:

1. the code cells tagged ``q:<question id>``;
2. the code cell whose id is the id of that question's exercise cell in the solution notebook
   (the student deleted the tags);
3. the code cells that define ``def <function>(`` at top level (the student copied the code into
   a new cell).

Only these cells run in the sandbox, in notebook order (at most :data:`MAX_ANSWER_CELLS`). IPython
magics (``%...``, ``!...``) become ``pass``: the sandbox has no IPython.

Parsing happens in the grader, on a file the student controls, so it is bounded before ``json``
sees a byte: the file must be a regular file (opened with ``O_NOFOLLOW``: a symlink is never
followed, a FIFO never blocks) of at most :data:`MAX_NOTEBOOK_BYTES`, with at most
:data:`MAX_CELLS` cells and :data:`MAX_JSON_ITEMS` JSON separators (``,`` and ``:`` bytes, an
upper bound on the number of values). The parser's memory grows with the number of values, not
bytes (an empty cell costs ~1.7 KiB), so these bounds hold one parse to about 100 MB and about a
second of CPU (measured in ``tests/test_grade.py``).
"""
from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field

__all__ = ["SubmissionError", "MAX_NOTEBOOK_BYTES", "MAX_CELLS", "MAX_JSON_ITEMS", "MAX_ANSWER_CELLS",
           "read_submission", "read_notebook", "cell_source", "solution_cell_ids",
           "Extraction", "extract_answers", "notebook_lab_id"]

MAX_NOTEBOOK_BYTES = 32 << 20
MAX_CELLS = 5_000
MAX_JSON_ITEMS = 500_000
MAX_ANSWER_CELLS = 100


class SubmissionError(Exception):
    """A submission that cannot be graded at all; ``status`` goes to grades.csv."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def read_submission(path: str | os.PathLike) -> bytes:
    """The bytes of a submission file, at most ``MAX_NOTEBOOK_BYTES + 1`` of them; only a regular
    file is read (``O_NOFOLLOW | O_NONBLOCK``, then ``fstat``): :class:`SubmissionError` with status
    ``not-a-regular-file`` for a symlink, FIFO, device or folder, ``unreadable`` for an OS error."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if os.path.islink(path):
            raise SubmissionError("not-a-regular-file", "the submission is a symbolic link; only regular "
                                                        "files are graded") from None
        raise SubmissionError("unreadable", f"the file could not be read ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SubmissionError("not-a-regular-file", "the submission is not a regular file (a folder, FIFO "
                                                        "or device); only regular files are graded")
        chunks, left = [], MAX_NOTEBOOK_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError as e:
        raise SubmissionError("unreadable", f"the file could not be read ({e.strerror})") from None
    finally:
        os.close(fd)


def read_notebook(path: str | os.PathLike, *, data: bytes | None = None) -> dict:
    """Parse a notebook's JSON within the bounds of the module docstring; :class:`SubmissionError`
    otherwise (status ``too-large`` or ``not-a-notebook``)."""
    if data is None:
        data = read_submission(path)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise SubmissionError("too-large", f"the file is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB "
                                           f"(clear the outputs: Kernel > Restart & Clear Output)")
    cells = data.count(b'"cell_type"')
    if cells > MAX_CELLS:
        raise SubmissionError("too-large", f"the notebook has more than {MAX_CELLS} cells")
    items = data.count(b",") + data.count(b":")
    if items > MAX_JSON_ITEMS:
        raise SubmissionError("too-large", f"the notebook holds more than {MAX_JSON_ITEMS} JSON values "
                                           f"(clear the outputs: Kernel > Restart & Clear Output)")
    try:
        nb = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SubmissionError("not-a-notebook", f"the file is not a Jupyter notebook (invalid JSON: "
                                                f"{str(e)[:200]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise SubmissionError("not-a-notebook", "the file is JSON but not a Jupyter notebook (no `cells` list)")
    return nb


def cell_source(cell) -> str:
    src = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def _tags(cell) -> list[str]:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _is_code(cell) -> bool:
    return isinstance(cell, dict) and cell.get("cell_type") == "code"


def notebook_lab_id(nb: dict) -> str | None:
    meta = nb.get("metadata")
    ck = meta.get("coursekit") if isinstance(meta, dict) else None
    lab = ck.get("lab") if isinstance(ck, dict) else None
    return lab if isinstance(lab, str) else None


def solution_cell_ids(solution_nb: dict) -> dict[str, str]:
    """``{question id: cell id}`` of the exercise cells of the (trusted) solution notebook."""
    ids = {}
    for cell in solution_nb.get("cells", []):
        if _is_code(cell) and "exercise" in _tags(cell) and isinstance(cell.get("id"), str):
            for t in _tags(cell):
                if t.startswith("q:"):
                    ids[t[2:]] = cell["id"]
    return ids


_MAGIC = re.compile(r"^([ \t]*)[%!].*$", re.M)


def _strip_magics(src: str) -> str:
    return _MAGIC.sub(lambda m: f"{m.group(1)}pass  # IPython magic removed by the grader", src)


@dataclass
class Extraction:
    """``cells``: [{"label", "source"}] to run, in notebook order; ``found[qid]``: how the question's
    cells were found ("tag" | "cell id" | "def"), absent when none was."""

    cells: list[dict] = field(default_factory=list)
    found: dict[str, str] = field(default_factory=dict)

    def missing(self, questions) -> list[str]:
        return [q.id for q in questions if q.id not in self.found]


def extract_answers(nb: dict, questions, solution_ids: dict[str, str]) -> Extraction:
    """The answer cells of ``nb`` for ``questions`` (see the module docstring)."""
    cells = [c for c in nb["cells"]]
    chosen: dict[int, str] = {}
    ex = Extraction()
    for q in questions:
        idx = [i for i, c in enumerate(cells) if _is_code(c) and f"q:{q.id}" in _tags(c)]
        how = "tag"
        if not idx and q.id in solution_ids:
            idx = [i for i, c in enumerate(cells) if _is_code(c) and c.get("id") == solution_ids[q.id]]
            how = "cell id"
        if not idx:
            pat = re.compile(rf"^def[ \t]+{re.escape(q.function)}[ \t]*\(", re.M)
            idx = [i for i, c in enumerate(cells) if _is_code(c) and pat.search(cell_source(c))]
            how = "def"
        if idx:
            ex.found[q.id] = how
            for i in idx:
                chosen.setdefault(i, q.id)
    for i in sorted(chosen)[:MAX_ANSWER_CELLS]:
        ex.cells.append({"label": f"exercise cell {i} ({chosen[i]})", "source": _strip_magics(cell_source(cells[i]))})
    return ex
