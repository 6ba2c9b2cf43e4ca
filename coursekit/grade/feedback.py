"""Per-student outputs: ``feedback/<student>.md`` and ``.html``, ``gradescope/<student>/results.json``.

Everything here is rendered from the student's record (see :mod:`.engine`). Only the fields meant
for students are used: a case's ``message`` (for non-visible cases it never carries the compare
diagnosis, exception text, inputs or reference outputs), ``misconception_message``, the cell
errors of the student's own top-level code. ``detail`` and ``stdout_tail`` stay in ``.state`` for
the instructor. All text from the submission is escaped in HTML.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from .._io import atomic_write, safe_name

__all__ = ["markdown", "html_page", "gradescope_results", "write_student", "STATUS_TEXT"]

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

_MARK = {"passed": "✅", "failed": "❌", "error": "💥", "timeout": "⏱", "not-implemented": "⬜",
         "not-defined": "❓", "no-result": "❓"}


def _fmt(x: float) -> str:
    return f"{x:g}"


def _case_label(c: dict) -> str:
    return c["name"] if c["visibility"] == "visible" else f"hidden test {c['index'] + 1}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(lab, rec: dict) -> str:
    lines = [f"# {lab.id}: {lab.title}", "",
             f"Feedback for **{rec['student']}**: **{_fmt(rec['score'])} / {_fmt(rec['max_score'])}** points",
             "", f"Status: {STATUS_TEXT.get(rec['status'], rec['status'])}."]
    if rec.get("message"):
        lines += ["", f"> {rec['message']}"]
    if rec.get("cell_errors"):
        lines += ["", "Errors while running your answer cells:", ""]
        for e in rec["cell_errors"]:
            lines.append(f"- {e['label']}: `{e['error_type']}` {e['message']}")
    for k, q in enumerate(rec["questions"], 1):
        lines += ["", f"## Q{k}. {q['title']} (`{q['function']}`): {_fmt(q['score'])} / {_fmt(q['max_score'])}", ""]
        lines += ["| | test | points | feedback |", "|---|---|---|---|"]
        for c in q["cases"]:
            msg, label = _md_cell(c["message"]), _md_cell(_case_label(c))
            lines.append(f"| {_MARK.get(c['status'], '')} | {label} | {_fmt(c['score'])} / "
                         f"{_fmt(c['max_score'])} | {msg} |")
    lines.append("")
    return "\n".join(lines)


_CSS = """body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.3rem .5rem;
vertical-align:top;text-align:left}th{background:#f3f3f3}.passed{background:#eefbe9}.failed,.error,.timeout,
.no-result,.not-defined{background:#fdeeee}.not-implemented{background:#f6f6f6}.total{font-size:1.3em}
blockquote{border-left:4px solid #e0a800;margin:0;padding:.3rem 1rem;background:#fff8e1}code{background:#f3f3f3}"""


def html_page(lab, rec: dict) -> str:
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(lab.id)}: feedback for "
             f"{e(rec['student'])}</title><style>{_CSS}</style></head><body>",
             f"<h1>{e(lab.id)}: {e(lab.title)}</h1>",
             f"<p class='total'>Feedback for <b>{e(rec['student'])}</b>: <b>{_fmt(rec['score'])} / "
             f"{_fmt(rec['max_score'])}</b> points</p>",
             f"<p>Status: {e(STATUS_TEXT.get(rec['status'], rec['status']))}.</p>"]
    if rec.get("message"):
        parts.append(f"<blockquote>{e(rec['message'])}</blockquote>")
    if rec.get("cell_errors"):
        parts.append("<p>Errors while running your answer cells:</p><ul>")
        for c in rec["cell_errors"]:
            parts.append(f"<li>{e(c['label'])}: <code>{e(c['error_type'])}</code> {e(c['message'])}</li>")
        parts.append("</ul>")
    for k, q in enumerate(rec["questions"], 1):
        parts.append(f"<h2>Q{k}. {e(q['title'])} (<code>{e(q['function'])}</code>): {_fmt(q['score'])} / "
                     f"{_fmt(q['max_score'])}</h2><table><tr><th></th><th>test</th><th>points</th>"
                     f"<th>feedback</th></tr>")
        for c in q["cases"]:
            parts.append(f"<tr class='{e(c['status'])}'><td>{_MARK.get(c['status'], '')}</td><td>"
                         f"{e(_case_label(c))}</td><td>{_fmt(c['score'])} / {_fmt(c['max_score'])}</td>"
                         f"<td>{e(c['message'])}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def gradescope_results(lab, rec: dict) -> dict:
    """The record in Gradescope's ``results.json`` schema (one test per case)."""
    tests = []
    for k, q in enumerate(rec["questions"], 1):
        for c in q["cases"]:
            tests.append({"name": f"Q{k} {q['function']}: {_case_label(c)}", "number": f"{k}.{c['index'] + 1}",
                          "score": c["score"], "max_score": c["max_score"],
                          "status": "passed" if c["passed"] else "failed",
                          "output": c["message"], "visibility": c["visibility"]})
    out = [f"{lab.id}: {_fmt(rec['score'])} / {_fmt(rec['max_score'])} points. "
           f"Status: {STATUS_TEXT.get(rec['status'], rec['status'])}."]
    if rec.get("message"):
        out.append(rec["message"])
    for c in rec.get("cell_errors", []):
        out.append(f"{c['label']}: {c['error_type']} {c['message']}")
    return {"score": rec["score"], "execution_time": rec.get("execution_time", 0.0), "output": "\n".join(out),
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def write_student(out_dir, lab, rec: dict) -> None:
    """Write the student's three files atomically."""
    out_dir = Path(out_dir)
    name = safe_name(rec["student"])
    atomic_write(out_dir / "feedback" / f"{name}.md", markdown(lab, rec))
    atomic_write(out_dir / "feedback" / f"{name}.html", html_page(lab, rec))
    atomic_write(out_dir / "gradescope" / name / "results.json",
                 json.dumps(gradescope_results(lab, rec), indent=1))
