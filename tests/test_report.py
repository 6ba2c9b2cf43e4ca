"""Cohort outputs (coursekit.grade.report): grades.csv that no spreadsheet runs as formulas, and a
report.html rendered from an autoescaped template."""
import csv
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "grade_fixtures"))
import fixture_lab as FX  # noqa: E402

from coursekit.grade import report  # noqa: E402
from coursekit.labs.spec import Misconception  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_feedback import record  # noqa: E402

FORMULAS = ["=1+1", " =1+1", "\u00a0=cmd|' /C calc'!A0", "\t=1", "\r=1", "\n=1", "  +1", "\u2003-2+3", "\u3000@SUM(A1)",
            "\u200b=1", "\ufeff=1", "\u2028=1", "\x00=1", "\uff1d1+1", "\uff0b1", "-", "@x", "\u00a0\u00a0\t =HYPERLINK(x)"]
PLAIN = ["alice", "bob smith", "a=1", "x-1", "über", "1+1"]


@pytest.mark.parametrize("text", FORMULAS)
def test_csv_cell_neutralises_formulas_after_any_leading_space(text):
    cell = report.csv_cell(text)
    assert cell.startswith("'"), (text, cell)


@pytest.mark.parametrize("text", PLAIN)
def test_csv_cell_keeps_plain_text(text):
    assert report.csv_cell(text) == text


def test_grades_csv_neutralises_every_student_cell(tmp_path):
    ids = [" =1+1", "\u00a0=cmd", "\udcff=latin1-name", "ok"]          # \udcff: a non-UTF-8 byte of a file name
    recs = [record(status_of=lambda q, i, c: "passed", student=s, cell_errors=[]) for s in ids]
    recs[1]["status"] = "=evil()"
    report.write_grades_csv(tmp_path / "g.csv", FX.LAB, recs)
    with open(tmp_path / "g.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:]] == ["' =1+1", "'\u00a0=cmd", "'\ufffd=latin1-name", "ok"]
    assert rows[2][-1] == "'=evil()"
    assert all(r[-3:-1] == ["7", "7"] for r in rows[1:])


def test_report_html_is_escaped(tmp_path):
    q0 = FX.LAB.questions[0]
    evil_q = replace(q0, id="labfx.<script>x</script>", title="<img src=x onerror=alert(1)>",
                     misconceptions=(Misconception("<b>m</b>", "<script>alert(2)</script>", q0.misconceptions[0].variant),))
    lab = replace(FX.LAB, title="<script>alert(3)</script>", questions=(evil_q, *FX.LAB.questions[1:]))
    recs = [record(status_of=lambda q, i, c: "failed", student="<i>s</i>", cell_errors=[], lab=lab) for _ in range(3)]
    for r in recs:
        r["questions"][0]["cases"][0]["misconception"] = "<b>m</b>"
        r["questions"][0]["cases"][0]["misconception_message"] = "<script>alert(2)</script>"
    report.write_report(tmp_path / "r.html", lab, recs)
    page = (tmp_path / "r.html").read_text()
    assert "<script" not in page and "<b>m" not in page and "onerror=alert" not in page.replace("&lt;img", "")
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert page.count("data:image/png;base64,") == 3


def test_report_without_submissions(tmp_path):
    report.write_report(tmp_path / "r.html", FX.LAB, [])
    page = (tmp_path / "r.html").read_text()
    assert "<p>No submissions.</p>" in page and "data:image" not in page
