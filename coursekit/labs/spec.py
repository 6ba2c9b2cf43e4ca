"""What a lab is: questions, test cases, misconception detectors, and how an answer is compared.

This module is pure NumPy and does no I/O. It is shared by the student's self-check
(:func:`coursekit.labs.check`) and the instructor's autograder (``coursekit grade``):

* A :class:`Lab` is a solution notebook plus its :class:`Question` s.
* A :class:`Question` names the function the student writes, a ``reference`` built from
  coursekit (NumPy backend), its :class:`Case` s and its :class:`Misconception` s.
* A :class:`Case` draws the keyword arguments of one call from a seeded NumPy generator.
  :func:`case_inputs` seeds that generator with ``np.random.default_rng([seed, case_index,
  crc32(question.id)])`` so that every process computes the same inputs from the same seed.
  :data:`PUBLIC_SEED` is the seed of the student's self-check; the grader uses a secret
  per-run seed, so hidden cases cannot be memorised.
* :func:`compare` turns (inputs, what the student returned, what the reference returned)
  into a :class:`Verdict`: passed or not, a diagnosis that never reveals the expected
  values, a fraction of the case's points, and the misconception whose mistaken
  implementation reproduces the student's output on these inputs, if one does.

Writing a grader on top of this module
--------------------------------------
* Call ``compare(question, inputs, got, expected, case=case)``: ``case`` supplies the
  tolerances (``rtol``/``atol``) and its visibility; without it the :class:`Case` defaults are
  used and the diagnosis is the detailed one.
* Award ``verdict.fraction * case.points`` for a case. For ordinary questions ``fraction``
  is 1.0 or 0.0 (``passed``); for a question with a ``score`` (the lab05 challenge) it is
  the partial credit in [0, 1] and ``passed`` means full credit.
* ``verdict.message`` may be shown to the student. For a ``visible`` case it is the detailed
  diagnosis (shapes, how many elements differ and where, the largest errors). For any other
  case it is in grader words only (which output is wrong and how: shape, dtype, values, or
  not an array; a misconception's own explanation): no number or name that the student's
  output determines, and nothing derived from the expected values, since the student's code
  can read the case's inputs and could write them into anything it returns. The detailed
  diagnosis is always in ``verdict.detail`` for the instructor.
* ``expected = question.reference(**inputs)``, always computed in the parent process. For
  the challenge question the reference does *not* train a model: it looks up the true
  labels of the test inputs (which never enter the sandbox) from the split that the
  ``seed`` argument determines.
* ``inputs`` hold NumPy arrays and Python scalars only. :func:`compare` copies them before
  calling a misconception variant, so it never mutates them, and it never raises on bad
  student output (``None``, lists, wrong shapes, strings, objects whose ``__array__``
  raises ...).
* Misconception variants are tried only when an answer fails, in declaration order; the
  first whose output matches the student's (with the case's tolerances) is reported.
"""
from __future__ import annotations

import copy
import importlib
import pkgutil
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = [
    "VISIBILITIES", "PUBLIC_SEED", "Case", "Misconception", "Question", "Lab", "Verdict",
    "get_lab", "all_labs", "get_question", "case_inputs", "compare", "notebook_path",
    "LAB_MODULES",
]

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
"""Gradescope's test visibilities; only ``"visible"`` cases run in the student's self-check."""

PUBLIC_SEED = 20160101
"""Seed of the student's self-check (:func:`coursekit.labs.check`); the grader uses its own."""

def _question_modules() -> tuple[str, ...]:
    from . import questions
    return tuple(sorted(m.name for m in pkgutil.iter_modules(questions.__path__)
                        if re.fullmatch(r"(lab|lec)\d\d", m.name)))


LAB_MODULES = _question_modules()
"""Modules of :mod:`coursekit.labs.questions`, each defining ``LAB: Lab``: the labs (``lab01`` …) and
the lectures' exercises (``lec01`` … for ``lectures/01_*.ipynb``), found by their file names."""

# How many differing elements a diagnosis lists by index (more are summarised).
_MAX_LISTED = 5


@dataclass(frozen=True)
class Case:
    """One test call of a question.

    ``inputs(rng)`` returns the keyword arguments of the student's function (NumPy arrays
    and Python scalars only). ``points`` are awarded when the case passes (times
    :attr:`Verdict.fraction`). ``visibility`` follows Gradescope; only ``"visible"`` cases
    are run by the self-check and their diagnosis may show indices of wrong elements.
    ``rtol``/``atol`` are ``np.allclose``'s tolerances, ``|got - expected| <= atol + rtol |expected|``.
    """

    name: str
    inputs: Callable[[np.random.Generator], dict[str, Any]]
    points: float = 1.0
    visibility: str = "visible"
    rtol: float = 1e-5
    atol: float = 1e-7

    def __post_init__(self):
        if self.visibility not in VISIBILITIES:
            raise ValueError(f"Case: visibility must be one of {VISIBILITIES}, got {self.visibility!r}")
        if not (self.points >= 0):
            raise ValueError(f"Case: points must be >= 0, got {self.points!r}")
        if not (self.rtol >= 0 and self.atol >= 0):
            raise ValueError(f"Case: rtol and atol must be >= 0, got rtol={self.rtol!r}, atol={self.atol!r}")


@dataclass(frozen=True)
class Misconception:
    """A named mistake: ``variant`` is the mistaken implementation (same signature as the
    reference); ``message`` explains the mistake in plain words without giving the answer."""

    name: str
    message: str
    variant: Callable[..., Any]


@dataclass(frozen=True)
class Question:
    """One function the student writes.

    id: ``"<lab id>.<function>"``, e.g. ``"lab03.dropout_forward"``.
    function: the name the student defines in the exercise cell.
    reference: coursekit-backed NumPy implementation with the student's signature; returns
        an ndarray or a tuple of ndarrays (for the challenge: the true labels).
    cases, misconceptions: see :class:`Case`, :class:`Misconception`.
    title: a short human title.
    outputs: names of the returned arrays, used in diagnoses (``("dx", "dgamma", "dbeta")``).
    score: optional ``score(got, expected, inputs) -> (fraction, message)`` replacing the
        allclose comparison (partial credit: ``fraction`` in [0, 1]). ``got`` has already
        been converted to an ndarray of ``expected``'s shape when ``score`` is called.
    """

    id: str
    function: str
    reference: Callable[..., Any]
    cases: tuple[Case, ...]
    misconceptions: tuple[Misconception, ...] = ()
    title: str = ""
    outputs: tuple[str, ...] = ()
    score: Callable[[np.ndarray, np.ndarray, dict], tuple[float, str]] | None = None

    def __post_init__(self):
        if not self.cases:
            raise ValueError(f"Question: cases must not be empty ({self.id})")
        names = [m.name for m in self.misconceptions]
        if len(set(names)) != len(names):
            raise ValueError(f"Question: misconception names must be unique in {self.id}, got {names}")

    @property
    def lab(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def points(self) -> float:
        return float(sum(c.points for c in self.cases))

    def visible_cases(self) -> tuple[tuple[int, Case], ...]:
        return tuple((i, c) for i, c in enumerate(self.cases) if c.visibility == "visible")


@dataclass(frozen=True)
class Lab:
    """A lab: its solution notebook (``folder/notebook`` in the repository: ``labs/`` for a lab,
    ``lectures/`` for a lecture's exercises) and its questions, in notebook order.
    ``timeout_s`` is the wall-clock budget for one submission's sandboxed run (all questions)."""

    id: str
    title: str
    notebook: str
    questions: tuple[Question, ...]
    timeout_s: float = 20.0
    folder: str = "labs"

    def question(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid or q.function == qid:
                return q
        known = ", ".join(q.id for q in self.questions)
        raise ValueError(f"Lab.question: unknown question {qid!r} in {self.id}; known: {known}")

    @property
    def points(self) -> float:
        return float(sum(q.points for q in self.questions))


@dataclass(frozen=True)
class Verdict:
    """The outcome of one case. ``fraction`` of the case's points is awarded. ``message`` may be
    shown to the student (grader words only for a case that is not visible); ``detail`` is the
    full diagnosis, for the instructor (``message`` when not given)."""

    passed: bool
    message: str
    misconception: Misconception | None = None
    fraction: float = field(default=None)  # type: ignore[assignment]
    detail: str = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        if self.fraction is None:
            object.__setattr__(self, "fraction", 1.0 if self.passed else 0.0)
        if self.detail is None:
            object.__setattr__(self, "detail", self.message)

    def __bool__(self) -> bool:
        return bool(self.passed)


# ----------------------------------------------------------------------------- registry

_LABS: dict[str, Lab] = {}


def _load(lab_id: str) -> Lab:
    if lab_id not in _LABS:
        mod = importlib.import_module(f"coursekit.labs.questions.{lab_id}")
        lab = mod.LAB
        if lab.id != lab_id:
            raise RuntimeError(f"coursekit.labs.questions.{lab_id} defines LAB with id {lab.id!r}")
        _LABS[lab_id] = lab
    return _LABS[lab_id]


def get_lab(lab_id: str) -> Lab:
    """The :class:`Lab` with id ``lab_id`` (``"lab03"``)."""
    if not isinstance(lab_id, str) or lab_id not in LAB_MODULES:
        raise ValueError(f"get_lab: lab_id must be one of {LAB_MODULES}, got {lab_id!r}")
    return _load(lab_id)


def all_labs() -> tuple[Lab, ...]:
    return tuple(_load(i) for i in LAB_MODULES)


def get_question(qid: str) -> Question:
    """The :class:`Question` with id ``"labNN.function"``."""
    if not isinstance(qid, str) or "." not in qid:
        raise ValueError(f"get_question: qid must look like 'lab03.dropout_forward', got {qid!r}")
    return get_lab(qid.split(".", 1)[0]).question(qid)


def notebook_path(lab: Lab | str, root: str | Path | None = None) -> Path:
    """Path of a lab's solution notebook: ``<root>/<lab.folder>/<lab.notebook>``; ``root`` defaults to
    the repository that contains this package (a source checkout)."""
    lab = get_lab(lab) if isinstance(lab, str) else lab
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    return root / lab.folder / lab.notebook


# ----------------------------------------------------------------------------- inputs


def case_inputs(question: Question, case_index: int, seed: int) -> dict[str, Any]:
    """Keyword arguments of case ``case_index`` of ``question`` drawn with ``seed``.

    The generator is ``np.random.default_rng([seed, case_index, crc32(question.id)])``, stable
    across processes and Python versions (no ``hash()``). Returns fresh arrays on every call.
    """
    if not 0 <= int(case_index) < len(question.cases):
        raise ValueError(f"case_inputs: case_index must be in [0, {len(question.cases)}), got {case_index!r}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"case_inputs: seed must be >= 0, got {seed}")
    rng = np.random.default_rng([seed, int(case_index), zlib.crc32(question.id.encode())])
    return dict(question.cases[int(case_index)].inputs(rng))


# ----------------------------------------------------------------------------- comparison


def _as_outputs(x, n: int | None):
    """``x`` as a list of ndarrays (``n`` of them when ``n`` is not None), or an error string."""
    if n is None:
        if isinstance(x, tuple) or (isinstance(x, list) and not _looks_numeric_sequence(x)):
            return f"returned a {type(x).__name__} of {len(x)} items, expected one array"
        items = [x]
    else:
        if not isinstance(x, (tuple, list)):
            return f"returned a {type(x).__name__}, expected a tuple of {n} arrays"
        if len(x) != n:
            return f"returned {len(x)} values, expected {n}"
        items = list(x)
    out = []
    for k, item in enumerate(items):
        if item is None:
            return "returned None" + ("" if n is None else f" as output {k}") + " (missing `return`?)"
        try:
            a = np.asarray(item)
        except Exception as e:  # noqa: BLE001 - any failure is the student's
            return f"output {k} cannot be converted to an array ({type(e).__name__})"
        if a.dtype == object or a.dtype.kind not in "biuf":
            return f"output {k} has dtype {a.dtype}, expected a numeric array"
        out.append(a)
    return out


def _looks_numeric_sequence(x) -> bool:
    try:
        a = np.asarray(x)
    except Exception:  # noqa: BLE001
        return False
    return a.dtype != object and a.dtype.kind in "biuf"


def _name(question: Question, k: int, n: int | None) -> str:
    if question.outputs and k < len(question.outputs):
        return f"`{question.outputs[k]}`"
    return "the output" if n is None else f"output {k}"


def _close(got: np.ndarray, exp: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        g = got.astype(np.float64) if got.dtype.kind != "f" else got
        e = exp.astype(np.float64) if exp.dtype.kind != "f" else exp
        ok = np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    return ok


_HIDDEN_PROBLEM = {"shape": "{name} has the wrong shape", "dtype": "{name} is not floating point",
                   "values": "{name} differs from the reference beyond the tolerance"}
"""A failing output of a case that is not visible, in grader words (the kinds :func:`_diff` finds)."""


def _diff(question, got_list, exp_list, n, rtol, atol, detail: bool) -> list[tuple[str, str, str]]:
    """``(output name, kind, diagnosis)`` per output that does not match (empty when all match); a
    diagnosis never shows expected values. ``kind`` is ``"shape"``, ``"dtype"`` or ``"values"``."""
    problems = []
    for k, (g, e) in enumerate(zip(got_list, exp_list)):
        nm = _name(question, k, n)
        if e.ndim == 0 and g.shape in ((1,), (1, 1)):
            g = g.reshape(())          # a scalar that travelled as a 1-element array
        if g.shape != e.shape:
            problems.append((nm, "shape", f"{nm} has shape {g.shape}, expected {e.shape}"))
            continue
        if e.dtype.kind == "f" and g.dtype.kind != "f":
            problems.append((nm, "dtype", f"{nm} has integer/bool dtype {g.dtype}, expected floating point"))
            continue
        ok = _close(g, e, rtol, atol)
        if ok.all():
            continue
        bad = np.argwhere(~ok) if ok.ndim else np.zeros((1, 0), dtype=int)
        msg = f"{nm}: {bad.shape[0]} of {ok.size} elements differ"
        gf, ef = g.astype(np.float64), e.astype(np.float64)
        nonfinite = int(np.sum(~np.isfinite(gf) & np.isfinite(ef)))
        if nonfinite:
            msg += f" ({nonfinite} are nan/inf where a finite value is expected)"
        with np.errstate(all="ignore"):
            both = np.isfinite(gf) & np.isfinite(ef) & ~ok
            if both.any():
                abs_err = np.abs(gf - ef)[both]
                msg += f"; max abs error {abs_err.max():.3g}"
                scale = np.abs(ef[both])
                if (scale > 0).any():  # relative error is meaningless where the expected value is 0
                    msg += f", max rel error {(abs_err[scale > 0] / scale[scale > 0]).max():.3g}"
        msg += f" (tolerance rtol={rtol:g}, atol={atol:g})"
        if detail and ok.ndim:
            idx = [tuple(int(i) for i in row) for row in bad[:_MAX_LISTED]]
            shown = ", ".join(str(i if len(i) != 1 else i[0]) for i in idx)
            more = f" and {bad.shape[0] - _MAX_LISTED} more" if bad.shape[0] > _MAX_LISTED else ""
            msg += f"; first at index {shown}{more}"
        problems.append((nm, "values", msg))
    return problems


def _n_outputs(expected) -> int | None:
    return len(expected) if isinstance(expected, tuple) else None


def _matches(question, got_list, expected, rtol, atol) -> bool:
    n = _n_outputs(expected)
    exp_list = _as_outputs(expected, n)
    if isinstance(exp_list, str) or len(exp_list) != len(got_list):
        return False
    return not _diff(question, got_list, exp_list, n, rtol, atol, detail=False)


def _find_misconception(question, inputs, got_list, rtol, atol) -> Misconception | None:
    for m in question.misconceptions:
        try:
            with np.errstate(all="ignore"):
                out = m.variant(**copy.deepcopy(inputs))
        except Exception:  # noqa: BLE001 - a variant that cannot run on these inputs matches nothing
            continue
        if _matches(question, got_list, out, rtol, atol):
            return m
    return None


def compare(question: Question, inputs: dict, got: Any, expected: Any, *, case: Case | None = None,
            detail: bool | None = None) -> Verdict:
    """Compare a student's output with the reference's on one case; never raises.

    question: the :class:`Question`; inputs: the kwargs both were called with;
    got: what the student's function returned (any object); expected: the reference's output
    (ndarray or tuple of ndarrays); case: supplies ``rtol``/``atol`` (defaults of :class:`Case`
    otherwise) and, unless ``detail`` is given, whether ``message`` is the detailed diagnosis
    (only for visible cases; otherwise it is in grader words, and ``Verdict.detail`` holds the
    diagnosis).
    """
    if detail is None:
        detail = case is None or case.visibility == "visible"
    try:
        return _compare(question, inputs, got, expected, case, detail)
    except Exception as e:  # noqa: BLE001 - a grader must survive anything a student returns
        full = f"could not compare the output ({type(e).__name__})"
        return Verdict(False, full if detail else "could not compare the output", detail=full)


def _compare(question, inputs, got, expected, case, detail: bool) -> Verdict:
    rtol = case.rtol if case is not None else Case.rtol
    atol = case.atol if case is not None else Case.atol
    n = _n_outputs(expected)
    exp_list = _as_outputs(expected, n)
    if isinstance(exp_list, str):
        raise TypeError(f"compare: reference output of {question.id} is not numeric: {exp_list}")
    got_list = _as_outputs(got, n)
    if isinstance(got_list, str):
        what = "an array" if n is None else f"a tuple of {n} numeric arrays"
        return Verdict(False, got_list if detail else f"the function did not return {what}", detail=got_list)

    if question.score is not None:
        g, e = got_list[0], exp_list[0]
        if g.shape != e.shape:
            full = f"{_name(question, 0, n)} has shape {g.shape}, expected {e.shape}"
            return Verdict(False, full if detail else _HIDDEN_PROBLEM["shape"].format(name=_name(question, 0, n)),
                           detail=full)
        frac, msg = question.score(g, e, inputs)
        frac = float(np.clip(frac, 0.0, 1.0)) if np.isfinite(frac) else 0.0
        return Verdict(frac >= 1.0, msg if detail else f"earned {frac:.0%} of the points", None, frac, detail=msg)

    problems = _diff(question, got_list, exp_list, n, rtol, atol, detail=True)   # indices: in `detail` only
    if not problems:
        return Verdict(True, "passed")
    full = "; ".join(text for _, _, text in problems)
    shown = full if detail else "; ".join(_HIDDEN_PROBLEM[kind].format(name=nm) for nm, kind, _ in problems)
    m = _find_misconception(question, inputs, got_list, rtol, atol)
    if m is not None:
        note = f". Likely misconception [{m.name}]: {m.message}"
        full, shown = full + note, shown + note
    return Verdict(False, shown, m, detail=full)
