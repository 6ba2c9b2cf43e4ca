"""Cohort outputs: ``grades.csv`` and ``report.html`` (item analysis, self-contained, inline PNG plots).

Item analysis, per test case: *difficulty* = the fraction of students who passed it; *discrimination*
= the correlation between a student's score on the case and their total on the *other* cases
(the corrected item-total correlation; near 0 or negative flags a case that does not separate
strong from weak submissions, often a broken or ambiguous test).
"""
from __future__ import annotations

import base64
import csv
import html
import io
from collections import Counter

import numpy as np

from .._io import atomic_write

__all__ = ["write_grades_csv", "write_report", "item_analysis"]


def _cell(text: str) -> str:
    """Neutralise spreadsheet formulas in a text cell (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_grades_csv(path, lab, records) -> None:
    """One row per record: student, one column per question id, total, max, status."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student", *[q.id for q in lab.questions], "total", "max", "status"])
    for r in records:
        by_id = {q["id"]: q["score"] for q in r["questions"]}
        w.writerow([_cell(r["student"]), *[f"{by_id.get(q.id, 0.0):g}" for q in lab.questions],
                    f"{r['score']:g}", f"{r['max_score']:g}", r["status"]])
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "<img alt='plot' src='data:image/png;base64," + base64.b64encode(buf.getvalue()).decode() + "'>"


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
    from .feedback import STATUS_TEXT
    e = html.escape
    n = len(records)
    totals = np.asarray([r["score"] for r in records], dtype=np.float64)
    miscon = _misconceptions(lab, records)
    items = item_analysis(lab, records)
    status = Counter(r["status"] for r in records)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(lab.id)} cohort report"
             "</title><style>body{font:15px/1.45 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}"
             "table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
             "text-align:left}th{background:#f3f3f3}td.num{text-align:right}img{max-width:100%}</style></head><body>",
             f"<h1>{e(lab.id)}: {e(lab.title)} — cohort report</h1>"]
    if n == 0:
        parts.append("<p>No submissions.</p></body></html>")
        atomic_write(path, "\n".join(parts))
        return
    parts.append(f"<p>{n} submissions; total score mean {totals.mean():.2f}, median {np.median(totals):.2f}, "
                 f"min {totals.min():g}, max {totals.max():g} (out of {lab.points:g}).</p>")
    parts.append("<table><tr><th>status</th><th>submissions</th><th>meaning</th></tr>" + "".join(
        f"<tr><td>{e(s)}</td><td class='num'>{k}</td><td>{e(STATUS_TEXT.get(s, ''))}</td></tr>"
        for s, k in status.most_common()) + "</table>")
    parts += _plots(lab, records, miscon)
    parts.append("<h2>Questions</h2><table><tr><th>question</th><th>points</th><th>mean</th><th>full marks</th>"
                 "<th>zero</th><th>not implemented</th></tr>")
    for qi, q in enumerate(lab.questions):
        sc = np.asarray([r["questions"][qi]["score"] for r in records])
        ni = sum(all(c["status"] == "not-implemented" for c in r["questions"][qi]["cases"]) for r in records)
        parts.append(f"<tr><td>{e(q.id)}</td><td class='num'>{q.points:g}</td><td class='num'>{sc.mean():.2f}</td>"
                     f"<td class='num'>{np.mean(sc >= q.points):.0%}</td><td class='num'>{np.mean(sc <= 0):.0%}</td>"
                     f"<td class='num'>{ni}</td></tr>")
    parts.append("</table><h2>Item analysis (per test case)</h2><p>pass rate = fraction of students with full "
                 "points on the case; discrimination = correlation of the case's score with the rest of the "
                 "total (blank when undefined).</p><table><tr><th>question</th><th>case</th><th>visibility</th>"
                 "<th>points</th><th>pass rate</th><th>discrimination</th><th>most frequent failure</th></tr>")
    for it in items:
        d = "" if np.isnan(it["discrimination"]) else f"{it['discrimination']:.2f}"
        parts.append(f"<tr><td>{e(it['question'])}</td><td>{e(it['case'])}</td><td>{e(it['visibility'])}</td>"
                     f"<td class='num'>{it['points']:g}</td><td class='num'>{it['pass_rate']:.0%}</td>"
                     f"<td class='num'>{d}</td><td>{e(it['top_failure'])}</td></tr>")
    parts.append("</table><h2>Misconceptions</h2>")
    if miscon:
        parts.append("<table><tr><th>question</th><th>misconception</th><th>students</th><th>cases</th>"
                     "<th>message shown to students</th></tr>")
        for m in miscon:
            parts.append(f"<tr><td>{e(m['question'])}</td><td>{e(m['name'])}</td><td class='num'>{m['students']}</td>"
                         f"<td class='num'>{m['cases']}</td><td>{e(m['message'])}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No known misconception was detected.</p>")
    parts.append("</body></html>")
    atomic_write(path, "\n".join(parts))
