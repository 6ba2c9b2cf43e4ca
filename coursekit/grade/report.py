"""Cohort outputs: ``grades.csv`` and ``report.html`` (item analysis, self-contained, inline PNG plots).

Item analysis, per test case: *difficulty* = the fraction of students who passed it; *discrimination*
= the correlation between a student's score on the case and their total on the *other* cases
(the corrected item-total correlation; near 0 or negative flags a case that does not separate
strong from weak submissions, often a broken or ambiguous test).
"""
from __future__ import annotations

import base64
import csv
import io
import unicodedata
from collections import Counter

import numpy as np

from .._io import atomic_write
from .feedback import STATUS_TEXT, clean_text, render

__all__ = ["write_grades_csv", "write_report", "item_analysis", "csv_cell"]

_FORMULA = "=+-@"


def csv_cell(text) -> str:
    """A text cell that no spreadsheet runs as a formula (CSV injection), cleaned like all untrusted text.

    A cell is prefixed with ``'`` when it starts with a tab or carriage return, or when its first
    character that is not whitespace, a control or an invisible format character (a space, tab,
    no-break space, U+2003, U+200B, U+FEFF ...) is ``=``, ``+``, ``-`` or ``@`` or a full-width form
    of one (spreadsheets skip such leading characters before reading a formula).
    """
    raw = text if isinstance(text, str) else str(text)
    text = clean_text(raw).replace("\n", " ")
    if raw[:1] in ("\t", "\r", "\n"):
        return "'" + text
    for ch in text:
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp") or ch == "\ufffd":
            continue
        return "'" + text if unicodedata.normalize("NFKC", ch)[:1] in _FORMULA else text
    return text


def write_grades_csv(path, lab, records) -> None:
    """One row per record: student, one column per question id, total, max, status."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student", *[q.id for q in lab.questions], "total", "max", "status"])
    for r in records:
        by_id = {q["id"]: q["score"] for q in r["questions"]}
        w.writerow([csv_cell(r["student"]), *[f"{by_id.get(q.id, 0.0):g}" for q in lab.questions],
                    f"{r['score']:g}", f"{r['max_score']:g}", csv_cell(r["status"])])
    atomic_write(path, buf.getvalue())


def item_analysis(lab, records) -> list[dict]:
    """Per case: question, name, visibility, points, pass rate, mean score, discrimination, top failure."""
    if not records:
        return []
    cols, meta = [], []
    for qi, q in enumerate(lab.questions):
        for ci, case in enumerate(q.cases):
            cols.append([r["questions"][qi]["cases"][ci]["score"] / case.points if case.points else 0.0
                         for r in records])
            statuses = Counter(r["questions"][qi]["cases"][ci]["status"] for r in records)
            statuses.pop("passed", None)
            meta.append((q, ci, case, statuses.most_common(1)[0] if statuses else None))
    S = np.asarray(cols, dtype=np.float64)                       # (items, students)
    pts = np.asarray([m[2].points for m in meta], dtype=np.float64)[:, None]
    totals = (S * pts).sum(axis=0)
    out = []
    for k, (q, ci, case, top) in enumerate(meta):
        rest = totals - S[k] * pts[k]
        disc = float("nan")
        if S.shape[1] > 2 and S[k].std() > 0 and rest.std() > 0:
            disc = float(np.corrcoef(S[k], rest)[0, 1])
        out.append({"question": q.id, "case": case.name if case.visibility == "visible" else f"hidden test {ci + 1}",
                    "visibility": case.visibility, "points": case.points,
                    "pass_rate": float(np.mean(S[k] >= 1.0)), "mean": float(S[k].mean()),
                    "discrimination": disc, "top_failure": f"{top[0]} ({top[1]})" if top else ""})
    return out


def _png(fig) -> str:
    """The figure as base64 PNG (the report template puts it in a ``data:`` URI)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(lab, records, miscon) -> list[str]:
    from matplotlib.figure import Figure   # no pyplot: no global state, no GUI backend, faster import

    def subplots(figsize):
        fig = Figure(figsize=figsize)
        return fig, fig.subplots()

    imgs = []
    totals = [r["score"] for r in records]
    fig, ax = subplots(figsize=(6, 3))
    top = max(lab.points, 1.0)
    nbins = int(min(40, max(5, np.ceil(top) + 1)))
    ax.hist(totals, bins=np.linspace(-top / (2 * (nbins - 1)), top + top / (2 * (nbins - 1)), nbins + 1),
            color="#4c72b0", edgecolor="white")
    ax.set_xlabel(f"total score (max {lab.points:g})")
    ax.set_ylabel("students")
    ax.set_title("Distribution of total scores")
    imgs.append(_png(fig))

    nq = len(lab.questions)
    fig, ax = subplots(figsize=(max(6, 1.1 * nq), 3.2))
    fr = np.asarray([[r["questions"][qi]["score"] / q.points if q.points else 0.0 for r in records]
                     for qi, q in enumerate(lab.questions)])
    zero, full = (fr <= 0).mean(axis=1), (fr >= 1).mean(axis=1)
    part = 1 - zero - full
    x = np.arange(nq)
    ax.bar(x, full, color="#55a868", label="full marks")
    ax.bar(x, part, bottom=full, color="#dd8452", label="partial")
    ax.bar(x, zero, bottom=full + part, color="#c44e52", label="zero")
    ax.set_xticks(x, [q.function for q in lab.questions], rotation=30, ha="right")
    ax.set_ylabel("fraction of students")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
    ax.set_title("Score distribution per question")
    imgs.append(_png(fig))

    if miscon:
        top = miscon[:12]
        fig, ax = subplots(figsize=(6, 0.35 * len(top) + 1))
        ax.barh(range(len(top))[::-1], [m["students"] for m in top], color="#8172b3")
        ax.set_yticks(range(len(top))[::-1], [f"{m['question'].split('.')[-1]}: {m['name']}" for m in top])
        ax.set_xlabel("students")
        ax.set_title("Most frequent misconceptions")
        imgs.append(_png(fig))
    return imgs


def _misconceptions(lab, records) -> list[dict]:
    counts: Counter = Counter()
    cases: Counter = Counter()
    messages = {}
    for r in records:
        seen = set()
        for q in r["questions"]:
            for c in q["cases"]:
                if c.get("misconception"):
                    k = (q["id"], c["misconception"])
                    cases[k] += 1
                    messages[k] = c.get("misconception_message") or ""
                    if k not in seen:
                        seen.add(k)
                        counts[k] += 1
    return [{"question": k[0], "name": k[1], "students": n, "cases": cases[k], "message": messages[k]}
            for k, n in counts.most_common()]


def write_report(path, lab, records) -> None:
    """The cohort report: summary, plots, per-question table, item analysis, misconceptions."""
    n = len(records)
    ctx = {"lab": lab, "n": n}
    if n:
        totals = np.asarray([r["score"] for r in records], dtype=np.float64)
        miscon = _misconceptions(lab, records)
        questions = []
        for qi, q in enumerate(lab.questions):
            sc = np.asarray([r["questions"][qi]["score"] for r in records])
            ni = sum(all(c["status"] == "not-implemented" for c in r["questions"][qi]["cases"]) for r in records)
            questions.append({"id": q.id, "points": q.points, "mean": float(sc.mean()),
                              "full": float(np.mean(sc >= q.points)), "zero": float(np.mean(sc <= 0)),
                              "not_implemented": ni})
        ctx.update(mean=float(totals.mean()), median=float(np.median(totals)), lo=float(totals.min()),
                   hi=float(totals.max()), miscon=miscon, questions=questions, items=item_analysis(lab, records),
                   statuses=[(s, k, STATUS_TEXT.get(s, "")) for s, k in
                             Counter(r["status"] for r in records).most_common()],
                   plots=_plots(lab, records, miscon))
    atomic_write(path, render("html", "report.html.j2", **ctx))
