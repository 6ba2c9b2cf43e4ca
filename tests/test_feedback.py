"""Per-student feedback (coursekit.grade.feedback): what a submission's text can and cannot do to the
``.md``, ``.html`` and ``results.json`` a student reads.

Records are built here by hand in the grader's record schema (the same keys the engine writes), so
every field a submission controls can be filled with an attack.
"""
import json
import os
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "grade_fixtures"))
import fixture_lab as FX  # noqa: E402

from coursekit.grade import feedback  # noqa: E402
from coursekit.labs import spec  # noqa: E402

EVIL = ("boom\n## 20 / 20\n<img src=x onerror=alert(1)>\n[x](javascript:alert(1))\n"
        "````` five backticks\n\ud800 lone surrogate \x1b[31m ansi \x00 nul \u202e bidi\r\nend")
"""Every kind of student text the feedback must neutralise: newlines, a fake score heading, raw HTML,
a javascript: link, a backtick run longer than a plain fence, a lone surrogate, control characters
and a bidi override."""
BAD_CHARS = ("\ud800", "\x1b", "\x00", "\u202e", "\r")


def case(index, c, status, message, *, score=0.0, misconception=None):
    return {"index": index, "name": c.name, "visibility": c.visibility, "max_score": float(c.points),
            "score": float(score), "status": status, "passed": status == "passed", "message": message,
            "detail": message, "misconception": misconception, "misconception_message": None, "seconds": None}


def record(status_of=lambda q, i, c: "error", message_of=lambda q, i, c: "ValueError: " + EVIL, *,
           student="student", message=EVIL, cell_errors=None, lab=FX.LAB):
    questions = []
    for q in lab.questions:
        cases = []
        for i, c in enumerate(q.cases):
            st = status_of(q, i, c)
            cases.append(case(i, c, st, message_of(q, i, c), score=c.points if st == "passed" else 0.0))
        questions.append({"id": q.id, "function": q.function, "title": q.title, "found": "tag",
                          "score": sum(c["score"] for c in cases), "max_score": q.points, "cases": cases})
    if cell_errors is None:
        cell_errors = [{"label": "cell 1", "error_type": "E" + EVIL, "message": EVIL, "status": "error",
                        "trace": EVIL}]
    return {"student": student, "file": f"{student}.ipynb", "status": "crashed", "message": message,
            "score": sum(q["score"] for q in questions), "max_score": lab.points, "questions": questions,
            "cell_errors": cell_errors, "stdout_tail": EVIL, "execution_time": 0.5}


def render_markdown(text: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable("table").render(text)


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text outside <pre>/<code>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text_outside_code, self._depth = [], [], 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._depth += tag in ("pre", "code")

    def handle_endtag(self, tag):
        self._depth -= tag in ("pre", "code")

    def handle_data(self, data):
        if self._depth == 0:
            self.text_outside_code.append(data)


def parse(html: str) -> Tags:
    p = Tags()
    p.feed(html)
    return p


def assert_inert(html: str, allowed=("html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "b",
                                     "strong", "code", "pre", "table", "thead", "tbody", "tr", "th", "td",
                                     "blockquote", "ul", "li")):
    """No tag or attribute that the student's text could have created."""
    p = parse(html)
    for tag, attrs in p.tags:
        assert tag in allowed, (tag, attrs)
        assert not any(k.startswith("on") or "javascript" in (v or "") for k, v in attrs.items()), (tag, attrs)
    outside = "".join(p.text_outside_code)
    assert "20 / 20" not in outside and "onerror" not in outside and "javascript" not in outside


# ----------------------------------------------------------------------------- Markdown

def test_markdown_fences_every_student_text():
    rec = record(student="=evil``<b>x</b>")
    md = feedback.markdown(FX.LAB, rec)
    for bad in BAD_CHARS:
        assert bad not in md
    html = render_markdown(md)
    assert_inert(html)
    headings = re.findall(r"<h\d>(.*?)</h\d>", html)
    assert headings == ["labfx: Grader fixture lab", "Q1. ReLU (<code>relu</code>): 0 / 3",
                        "Q2. Row-wise softmax (<code>softmax</code>): 0 / 2",
                        "Q3. Affine backward (<code>affine_backward</code>): 0 / 2"]
    # the student's text is all there, inside code: one block per visible case, the message, the cell error
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") == 3 + 1 + 2
    assert html.count("````` five backticks") == 3 + 1 + 2
    assert "<code>=evil``&lt;b&gt;x&lt;/b&gt;</code>" in html


def test_markdown_fence_outlasts_any_backtick_run():
    for run in (0, 1, 3, 4, 9):
        text = "a" + "`" * run + "\n# not a heading\n" + "`" * run
        block = feedback.md_fence(text)
        fence = block.split("\n", 1)[0][:-len("text")]
        assert set(fence) == {"`"} and len(fence) == max(3, run + 1)
        html = render_markdown(block + "\n\n# after\n")
        assert "<h1>not a heading</h1>" not in html and "<h1>after</h1>" in html
    span = feedback.md_code("`[x](javascript:alert(1))`")
    assert render_markdown(span).strip() == "<p><code>`[x](javascript:alert(1))`</code></p>"


def test_markdown_template_refuses_bare_untrusted_text():
    with pytest.raises(TypeError, match="untrusted"):
        feedback.environment("md").from_string("{{ x }}").render(x=feedback.Untrusted("<b>"))
    assert feedback.environment("md").from_string("{{ x|code }}").render(x=feedback.Untrusted("<b>")) == "`<b>`"


# ----------------------------------------------------------------------------- HTML

def test_html_escapes_every_student_text():
    rec = record(student="<script>alert(1)</script>")
    page = feedback.html_page(FX.LAB, rec)
    for bad in BAD_CHARS:
        assert bad not in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert_inert(page)
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") == 3 + 1 + 2


# ----------------------------------------------------------------------------- Gradescope

def test_gradescope_declares_plain_text_everywhere():
    res = feedback.gradescope_results(FX.LAB, record(student="<b>x</b>"))
    assert res["output_format"] == res["test_output_format"] == res["test_name_format"] == "text"
    assert all(t["output_format"] == t["name_format"] == "text" for t in res["tests"])
    text = json.dumps(res, ensure_ascii=False)
    text.encode("utf-8")                                   # no lone surrogate left to fail the write
    for bad in BAD_CHARS:
        assert bad not in text and json.dumps(bad)[1:-1] not in text
    assert res["tests"][0]["output"].startswith("ValueError: boom\n## 20 / 20")   # text, kept readable


def test_write_student_writes_text_with_surrogates(tmp_path):
    rec = record(student="student-7")
    feedback.write_student(tmp_path, FX.LAB, rec)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["feedback/student-7.html", "feedback/student-7.md", "gradescope/student-7/results.json"]
    assert json.loads((tmp_path / "gradescope/student-7/results.json").read_text())["output_format"] == "text"


# ----------------------------------------------------------------------------- hidden cases

SECRET = "0.8137250"


def test_hidden_cases_show_grader_words_only():
    """A hidden case's message, type name and printed output carry the hidden input: none of it shows."""
    statuses = ["failed", "error", "timeout", "not-defined", "no-result", "not-implemented"]
    hidden = iter(statuses * 3)
    rec = record(status_of=lambda q, i, c: "error" if c.visibility == "visible" else next(hidden),
                 message_of=lambda q, i, c: f"Leak{SECRET.replace('.', '_')}: x[0] = {SECRET}",
                 message="", cell_errors=[])
    for q in rec["questions"]:
        for c in q["cases"]:
            c["detail"] = c["message"]
    rec["stdout_tail"] = SECRET
    md, page = feedback.markdown(FX.LAB, rec), feedback.html_page(FX.LAB, rec)
    res = feedback.gradescope_results(FX.LAB, rec)
    visible = [t for t in res["tests"] if t["visibility"] == "visible"]
    hidden_tests = [t for t in res["tests"] if t["visibility"] != "visible"]
    assert all(SECRET in t["output"] for t in visible)       # the channel exists: visible text is shown
    assert [t["output"] for t in hidden_tests] == [feedback.CASE_TEXT[s] + feedback.HIDDEN_NOTE for s in statuses[:3]]
    for text in (md, page):
        assert text.count(SECRET) == len(visible) and "Leak0_8137250" in text
        hidden_part = re.findall(r"hidden test \d[^\n]*", text)
        assert hidden_part and not any("Leak" in h or SECRET in h for h in hidden_part)


def test_hidden_misconception_text_comes_from_the_lab():
    rec = record(status_of=lambda q, i, c: "failed", message_of=lambda q, i, c: "forged <b>", message="",
                 cell_errors=[])
    soft = rec["questions"][1]["cases"][1]
    soft["misconception"], soft["misconception_message"] = "softmax-global", "FORGED explanation"
    rec["questions"][0]["cases"][1]["misconception"] = "not-a-misconception-of-this-lab"
    res = feedback.gradescope_results(FX.LAB, rec)
    outputs = {t["name"]: t["output"] for t in res["tests"]}
    assert outputs["Q2 softmax: hidden test 2"] == ("failed (hidden test: details are not shown). Likely misconception [softmax-global]: Each row is its "
                                                    "own distribution: normalise along axis 1, not over the whole "
                                                    "array.")
    assert outputs["Q1 relu: hidden test 2"] == "failed (hidden test: details are not shown)"
    for text in (feedback.markdown(FX.LAB, rec), feedback.html_page(FX.LAB, rec), json.dumps(res)):
        assert "FORGED" not in text and "not-a-misconception" not in text


# ----------------------------------------------------------------------------- bounds

def test_one_student_feedback_stays_small():
    huge = "x`<&\"" * 400_000                                          # 2 MB of the costliest characters
    errors = [{"label": huge, "error_type": huge, "message": huge}] * 10_000
    rec = record(message_of=lambda q, i, c: huge, student=huge, message=huge, cell_errors=errors)
    n_cases = sum(len(q.cases) for q in FX.LAB.questions)
    bound = 100_000 + 1_000 * n_cases
    md = feedback.markdown(FX.LAB, rec)
    page = feedback.html_page(FX.LAB, rec)
    gs = json.dumps(feedback.gradescope_results(FX.LAB, rec), indent=1, ensure_ascii=False)
    for text in (md, page, gs):
        assert len(text.encode("utf-8")) < bound
    v = feedback.feedback_view(FX.LAB, rec)
    untrusted = [v["student"], v["message"], *v["cell_errors"],
                 *[c["note"] for q in v["questions"] for c in q["cases"] if c["visible"] and c["note"]]]
    assert all(isinstance(t, feedback.Untrusted) for t in untrusted)
    assert sum(len(t) for t in untrusted) <= feedback.MAX_PAGE_TEXT + 100 * len(untrusted)
    assert all(len(t) <= feedback.MAX_FIELD + 100 for t in untrusted)
    assert len(v["cell_errors"]) == feedback.MAX_CELL_ERRORS and v["cell_errors_more"] == 10_000 - 20
    assert "and 9980 more" in md


def test_clean_text():
    assert feedback.clean_text("a\ud800b\x07c\u202ed\r\ne\tf") == "a\ufffdb\ufffdcd\ne\tf"
    assert feedback.clean_text("a \n\t b", multiline=False) == "a b"
    assert feedback.clean_text("x" * 50, 10) == "x" * 10 + " … [cut]"
    assert feedback.clean_text(ValueError("v")) == "v"


# ----------------------------------------------------------------------------- end to end, in the sandbox

HAVE_BWRAP = shutil.which("bwrap") is not None


@pytest.mark.sandbox
@pytest.mark.skipif(not HAVE_BWRAP and not os.environ.get("CI"), reason="bubblewrap is not installed (CI installs it)")
def test_hidden_input_in_exception_type_name_is_not_shown(tmp_path):
    """A submission that names its exception type after the case's input (and prints it, and puts it in
    the message) reads it back on the visible case only."""
    from coursekit.grade.engine import Grader
    leak = """\
        import numpy as np

        def relu(x):
            token = "S" + str(int(round(abs(float(x.sum())) * 1e6)))
            print(token)
            raise type(token, (Exception,), {})(token)
        """
    FX.write_notebook(tmp_path / "lab.ipynb", FX.notebook())
    (tmp_path / "subs").mkdir()
    FX.write_notebook(tmp_path / "subs" / "leaky.ipynb", FX.notebook({**FX.SOLUTIONS, "relu": leak}))
    seed = 424242
    Grader(tmp_path / "lab.ipynb", tmp_path / "out", lab=FX.LAB, jobs=1, seed=seed, progress=False,
           log=lambda m: None).grade([tmp_path / "subs"])
    q = FX.LAB.questions[0]
    token = [f"S{int(round(abs(float(spec.case_inputs(q, i, seed)['x'].sum())) * 1e6))}" for i in range(2)]
    out = tmp_path / "out"
    texts = [(out / "feedback" / "leaky.md").read_text(), (out / "feedback" / "leaky.html").read_text(),
             (out / "gradescope" / "leaky" / "results.json").read_text()]
    for text in texts:
        assert token[0] in text                    # visible case: the student sees their own exception
        assert token[1] not in text                # hidden case: not its input, through any channel
    res = json.loads(texts[2])
    hidden = [t for t in res["tests"] if t["name"] == "Q1 relu: hidden test 2"]
    assert hidden[0]["output"] == "raised an exception" + feedback.HIDDEN_NOTE and hidden[0]["score"] == 0
    assert np.isclose(res["score"], 4.0)           # softmax and affine_backward are the solution's
