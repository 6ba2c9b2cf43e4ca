"""Per-student outputs: ``feedback/<student>.md`` and ``.html``, ``gradescope/<student>/results.json``.

Everything here is rendered from the student's record (built by the grader, see :mod:`.engine`),
through one view (:func:`feedback_view`) that every format shares. Text the submission controls —
the student id (its file name), exception types and messages, cell labels, any diagnosis of a
visible case — is *untrusted*:

* it is cleaned (:func:`clean_text`: lone surrogates and control characters replaced, bidi
  overrides removed) and cut to :data:`MAX_FIELD` characters, and one page holds at most
  :data:`MAX_PAGE_TEXT` characters of it and :data:`MAX_CELL_ERRORS` cell errors; so every
  student's ``.md``, ``.html`` and ``results.json`` stays under about 100 kB plus the lab's own
  text (each character costs at most 5 bytes once escaped);
* in Markdown it is never inline markup: multi-line text sits in a fenced code block whose fence
  is longer than any run of backticks inside, one-line text in a code span built the same way, so
  no heading, link, image or raw HTML of the student's can render;
* in HTML the templates escape it (Jinja2 autoescaping);
* in ``results.json`` every output and name is declared ``"text"`` (Gradescope renders that as
  plain text, never as HTML or Markdown).

A case that is not ``visible`` shows only grader words (passed / failed / raised an exception /
timed out ...) and, when a known misconception matched, the lab's own explanation of it: never its
exception type, message, printed output or diagnosis, which the student's code controls (and could
fill with the hidden inputs, which that code can read). ``detail`` and ``stdout_tail`` of a record
stay in ``.state`` for the instructor.
"""
from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import jinja2

from .._io import atomic_write, safe_name

__all__ = ["markdown", "html_page", "gradescope_results", "write_student", "feedback_view", "clean_text",
           "Untrusted", "environment", "render", "md_fence", "md_code", "md_cell", "STATUS_TEXT", "CASE_TEXT", "HIDDEN_NOTE", "MAX_FIELD", "MAX_PAGE_TEXT", "MAX_CELL_ERRORS"]

STATUS_TEXT = {
    "ok": "graded",
    "timeout": "stopped at the time limit (cases that finished before were graded)",
    "output-limit": "stopped: printed too much output (cases that finished before were graded)",
    "result-limit": "stopped: sent back too much data",
    "crashed": "the program stopped early (cases that finished before were graded)",
    "not-a-notebook": "the file is not a Jupyter notebook",
    "no-answers": "no answer cells were found",
    "unreadable": "the file could not be read",
    "grader-error": "the grader failed on this submission (it will be regraded)",
}
"""What a submission's status means, in the words shown to students and in the cohort report."""

CASE_TEXT = {
    "passed": "passed",
    "failed": "failed",
    "error": "raised an exception",
    "timeout": "timed out",
    "not-implemented": "not implemented",
    "not-defined": "the function was not defined",
    "no-result": "no result came back",
}
"""A case's outcome in grader words: all that a case that is not ``visible`` shows (with :data:`HIDDEN_NOTE`
when it did not pass)."""
HIDDEN_NOTE = " (hidden test: details are not shown)"

MAX_FIELD = 1000
"""Characters kept of one untrusted text field (a message, a cell error); the student id keeps 200."""
MAX_PAGE_TEXT = 16000
"""Characters of untrusted text on one student's page, all fields together."""
MAX_CELL_ERRORS = 20
"""Cell errors listed on one page (the rest are counted)."""

_MARK = {"passed": "✅", "failed": "❌", "error": "💥", "timeout": "⏱", "not-implemented": "⬜",
         "not-defined": "❓", "no-result": "❓"}
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A)) | {0x200E, 0x200F, 0x061C}


class Untrusted(str):
    """Text the submission controls. The Markdown template refuses to print it unless it goes
    through ``|code`` or ``|fence``; the HTML template escapes it like any text."""


def clean_text(text, limit: int = MAX_FIELD, *, multiline: bool = True) -> str:
    """``text`` (any object: ``str()`` of it) made safe to write anywhere and cut to ``limit`` characters.

    Lone surrogates (from a broken exception message or a non-UTF-8 file name) and control
    characters become U+FFFD, bidi overrides are dropped, ``\\r\\n``/``\\r`` become ``\\n`` (with
    ``multiline=False`` every run of whitespace becomes one space). A cut says how much it dropped.
    """
    text = text if isinstance(text, str) else str(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ord(ch) in _BIDI:
            continue
        if ch in "\n\t":
            out.append(ch)
        elif cat in ("Cs", "Cc"):
            out.append("\ufffd")
        else:
            out.append(ch)
        if len(out) > limit:
            break
    text = "".join(out)
    if not multiline:
        text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit] + " … [cut]"
    return text


# ----------------------------------------------------------------------------- one view for every format

class _Budget:
    """Hands out at most :data:`MAX_PAGE_TEXT` characters of untrusted text to one page."""

    def __init__(self, total: int = MAX_PAGE_TEXT):
        self.left = total

    def take(self, text, limit: int = MAX_FIELD, *, multiline: bool = True) -> Untrusted:
        text = clean_text(text, min(limit, max(self.left, 0)), multiline=multiline) if self.left > 0 else \
            "[not shown: this page already holds the most text it shows from one submission]"
        self.left -= len(text)
        return Untrusted(text)


def _fmt(x) -> str:
    return f"{float(x):g}"


def _misconception_text(lab, qid, name) -> str | None:
    """The lab's own explanation of misconception ``name`` of question ``qid`` (never text from the record)."""
    for q in lab.questions:
        if q.id == qid:
            for m in q.misconceptions:
                if m.name == name:
                    return f"Likely misconception [{m.name}]: {m.message}"
    return None


def feedback_view(lab, rec: dict) -> dict:
    """What every format shows of ``rec``: trusted text as ``str``, the submission's as :class:`Untrusted`
    (cleaned, cut, within the page's budget), hidden cases in grader words only."""
    budget = _Budget()
    student = budget.take(rec.get("student", ""), 200, multiline=False)
    status = str(rec.get("status", ""))
    view = {"lab_id": lab.id, "lab_title": lab.title, "student": student,
            "score": _fmt(rec.get("score", 0.0)), "max_score": _fmt(rec.get("max_score", lab.points)),
            "status_text": STATUS_TEXT.get(status, "graded with an unknown status"),
            "message": budget.take(rec["message"]) if rec.get("message") else None,
            "cell_errors": [], "cell_errors_more": 0, "questions": []}
    errors = list(rec.get("cell_errors") or ())
    for e in errors[:MAX_CELL_ERRORS]:
        view["cell_errors"].append(budget.take(f"{e.get('label', '')}: {e.get('error_type', '')}: "
                                               f"{e.get('message', '')}"))
    view["cell_errors_more"] = max(0, len(errors) - MAX_CELL_ERRORS)
    for k, q in enumerate(rec.get("questions") or (), 1):
        cases = []
        for c in q["cases"]:
            visible = c.get("visibility") == "visible"
            st = c.get("status") if c.get("status") in CASE_TEXT else "no-result"
            note = None
            if visible and st != "passed":
                note = budget.take(c.get("message", ""))
            elif not visible and st != "passed" and c.get("misconception"):
                note = _misconception_text(lab, q.get("id"), c["misconception"])
            cases.append({"label": c["name"] if visible else f"hidden test {int(c['index']) + 1}",
                          "number": f"{k}.{int(c['index']) + 1}", "visible": visible,
                          "visibility": c.get("visibility", "hidden"), "status": st, "mark": _MARK[st],
                          "result": CASE_TEXT[st] + ("" if visible or st in ("passed", "not-implemented")
                                                     else HIDDEN_NOTE), "note": note, "passed": st == "passed",
                          "score": float(c.get("score", 0.0)), "max_score": float(c.get("max_score", 0.0)),
                          "points": f"{_fmt(c.get('score', 0.0))} / {_fmt(c.get('max_score', 0.0))}"})
        view["questions"].append({"number": k, "title": q.get("title") or q.get("function", ""),
                                  "function": q.get("function", ""), "score": _fmt(q.get("score", 0.0)),
                                  "max_score": _fmt(q.get("max_score", 0.0)), "cases": cases})
    return view


# ----------------------------------------------------------------------------- Markdown and HTML

def _backtick_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"`+", text)), default=0)


def md_fence(text) -> str:
    """A fenced code block holding ``text`` literally: its fence is longer than any backtick run inside."""
    fence = "`" * max(3, _backtick_run(text) + 1)
    return f"{fence}text\n{text}\n{fence}"


def md_code(text) -> str:
    """An inline code span holding one line of ``text`` literally (same rule for its backticks)."""
    text = " ".join(str(text).split())
    ticks = "`" * (_backtick_run(text) + 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" or not text.strip() else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def md_cell(text) -> str:
    """Trusted text (the lab's, the grader's) in a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _md_finalize(value):
    if isinstance(value, Untrusted):
        raise TypeError("feedback markdown: untrusted text must go through |code or |fence")
    return "" if value is None else value


@lru_cache(maxsize=None)
def environment(kind: str) -> jinja2.Environment:
    """The Jinja2 environment of ``templates/``: ``"html"`` autoescapes every value; ``"md"`` has the
    filters ``fence``, ``code`` and ``cell`` and raises on :class:`Untrusted` text printed bare."""
    loader = jinja2.FileSystemLoader(Path(__file__).with_name("templates"))
    common = dict(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                  keep_trailing_newline=True)
    if kind == "html":
        return jinja2.Environment(autoescape=True, **common)
    env = jinja2.Environment(autoescape=False, finalize=_md_finalize, **common)
    env.filters.update(fence=md_fence, code=md_code, cell=md_cell)
    return env


def render(kind: str, template: str, **context) -> str:
    """Render ``templates/<template>`` (``kind`` ``"html"``: autoescaped; ``"md"``: untrusted text must be
    fenced or code-spanned)."""
    return environment(kind).get_template(template).render(**context)


def markdown(lab, rec: dict) -> str:
    """The student's feedback as Markdown."""
    return render("md", "feedback.md.j2", v=feedback_view(lab, rec))


def html_page(lab, rec: dict) -> str:
    """The student's feedback as a self-contained HTML page."""
    return render("html", "feedback.html.j2", v=feedback_view(lab, rec))


# ----------------------------------------------------------------------------- Gradescope

def gradescope_results(lab, rec: dict) -> dict:
    """The record in Gradescope's ``results.json`` schema (one test per case), all text declared plain.

    Gradescope's autograder specification ("Output String Formatting") renders each output and name
    as one of ``text``, ``html``, ``simple_format`` (its default, which lets some HTML through), ``md``
    or ``ansi``; only ``text`` shows a string as it is, so it is set for the top-level output
    (``output_format``), as the default of every test's output and name (``test_output_format``,
    ``test_name_format``) and on every test (``output_format``, ``name_format``)."""
    v = feedback_view(lab, rec)
    tests = []
    for q in v["questions"]:
        for c in q["cases"]:
            output = c["result"] if c["note"] is None else f"{c['result']}. {c['note']}" if not c["visible"] \
                else str(c["note"])
            tests.append({"name": f"Q{q['number']} {q['function']}: {c['label']}", "name_format": "text",
                          "number": c["number"], "score": c["score"], "max_score": c["max_score"],
                          "status": "passed" if c["passed"] else "failed",
                          "output": output, "output_format": "text", "visibility": c["visibility"]})
    out = [f"{v['lab_id']}: {v['score']} / {v['max_score']} points. Status: {v['status_text']}."]
    if v["message"]:
        out.append(v["message"])
    if v["cell_errors"]:
        out.append("Errors while running your answer cells:")
        out += [f"- {e}" for e in v["cell_errors"]]
    if v["cell_errors_more"]:
        out.append(f"(and {v['cell_errors_more']} more)")
    return {"score": float(rec.get("score", 0.0)), "execution_time": rec.get("execution_time", 0.0),
            "output": "\n".join(out), "output_format": "text", "test_output_format": "text",
            "test_name_format": "text", "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def write_student(out_dir, lab, rec: dict) -> None:
    """Write the student's three files atomically."""
    out_dir = Path(out_dir)
    name = safe_name(rec["student"])
    atomic_write(out_dir / "feedback" / f"{name}.md", markdown(lab, rec))
    atomic_write(out_dir / "feedback" / f"{name}.html", html_page(lab, rec))
    atomic_write(out_dir / "gradescope" / name / "results.json",
                 json.dumps(gradescope_results(lab, rec), indent=1, ensure_ascii=False))
