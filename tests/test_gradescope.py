"""Gradescope (coursekit.grade.gradescope): requirements parsed with ``packaging``, templates shipped
in the package, and run_autograder's results, including when the grader cannot run."""
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "grade_fixtures"))
import fixture_lab as FX  # noqa: E402

from coursekit.grade import gradescope  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURE_SPEC = str(Path(FX.__file__).resolve()) + ":LAB"
HAVE_BWRAP = shutil.which("bwrap") is not None


def test_grading_requirements_parsed_with_packaging():
    text = """\
# a comment
-r other.txt
--index-url https://example.invalid/simple
NumPy==2.4.6  # pinned: results depend on it
array_api.COMPAT ==1.16.0
scipy~=1.17 ; python_version >= "3.11"
scikit-learn[extra]~=1.9
torch==2.13.0
not a requirement !!
-e .
jinja2~=3.1
"""
    lines = gradescope.grading_requirements(text).splitlines()
    assert lines == ["NumPy==2.4.6", "array_api.COMPAT==1.16.0", 'scipy~=1.17; python_version >= "3.11"',
                     "scikit-learn[extra]~=1.9", "matplotlib", "tqdm", "nbformat", "jinja2~=3.1", "packaging"]
    assert not any(line.startswith("torch") for line in lines)


def test_grading_requirements_of_this_checkout():
    lines = gradescope.grading_requirements((REPO / "requirements.txt").read_text()).splitlines()
    names = [line.split("=")[0].split("~")[0].split(">")[0] for line in lines]
    assert names == list(gradescope.GRADING_REQUIREMENTS)
    assert "numpy==2.4.6" in lines


def test_templates_are_package_data():
    """A wheel (what setup.sh installs on Gradescope) carries the Jinja2 templates."""
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = cfg["tool"]["setuptools"]["package-data"]["coursekit"]
    templates = sorted((REPO / "coursekit" / "grade" / "templates").glob("*"))
    assert {t.name for t in templates} == {"feedback.md.j2", "feedback.html.j2", "report.html.j2"}
    for t in templates:
        rel = t.relative_to(REPO / "coursekit").as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), (rel, globs)
    deps = {d.split(">")[0].split("=")[0].split("~")[0] for d in cfg["project"]["dependencies"]}
    assert {"jinja2", "packaging"} <= deps


def test_bundle_carries_templates_and_their_requirements(tmp_path):
    FX.write_notebook(tmp_path / "lab.ipynb", FX.notebook())
    gradescope.bundle(tmp_path / "lab.ipynb", tmp_path / "ag.zip", lab_spec=FIXTURE_SPEC)
    with zipfile.ZipFile(tmp_path / "ag.zip") as z:
        names = set(z.namelist())
        reqs = z.read("requirements-grading.txt").decode().split("\n")
    assert "coursekit-src/coursekit/grade/templates/feedback.md.j2" in names
    assert any(r.startswith("jinja2") for r in reqs) and any(r.startswith("packaging") for r in reqs)


def test_bundle_refuses_a_notebook_that_names_no_lab(tmp_path):
    nb = FX.notebook()
    nb["metadata"].pop("coursekit")
    FX.write_notebook(tmp_path / "lab.ipynb", nb)
    with pytest.raises(ValueError, match="no metadata.coursekit.lab"):
        gradescope.bundle(tmp_path / "lab.ipynb", tmp_path / "ag.zip")
    FX.write_notebook(tmp_path / "lab.ipynb", FX.notebook())          # labfx is not a course lab
    with pytest.raises(ValueError, match="get_lab"):
        gradescope.bundle(tmp_path / "lab.ipynb", tmp_path / "ag.zip")
    assert not (tmp_path / "ag.zip").exists()


def test_run_autograder_without_a_file(tmp_path):
    root = FX.autograder_layout(tmp_path, {})
    os.symlink(tmp_path / "lab.ipynb", root / "submission" / "link.ipynb")     # a link is not a submission
    res = json.loads(gradescope.run_autograder(root).read_text())
    assert res["score"] == 0 and res["output_format"] == "text" and "No file was submitted" in res["output"]


@pytest.mark.parametrize("rc, words", [(3, "could not start its sandbox"), (1, "failed on this submission")])
def test_run_autograder_when_the_grader_cannot_run(tmp_path, monkeypatch, rc, words):
    root = FX.autograder_layout(tmp_path, {"hw.ipynb": FX.notebook()})
    calls = []

    def fake_run(argv, **kw):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, rc, "", "coursekit grade: refusing to run student code: \x1b[31mno bwrap")
    monkeypatch.setattr(gradescope.subprocess, "run", fake_run)
    res = json.loads(gradescope.run_autograder(root).read_text())
    assert res["score"] == 0 and words in res["output"] and "\x1b" not in res["output"]
    argv = calls[0]
    assert argv[1:4] == ["-m", "coursekit.cli", "grade"] and argv[5] == str((root / "submission" / "hw.ipynb").resolve())
    assert "--lab-spec" in argv and "--no-sandbox" not in argv


@pytest.mark.sandbox
@pytest.mark.skipif(not HAVE_BWRAP and not os.environ.get("CI"), reason="bubblewrap is not installed (CI installs it)")
def test_run_autograder_prefers_the_lab_notebook_and_writes_plain_text(tmp_path):
    other = FX.notebook()
    other["metadata"]["coursekit"]["lab"] = "lab01"
    root = FX.autograder_layout(tmp_path, {"a_other.ipynb": other, "b <i>lab.ipynb": FX.notebook()})
    res = json.loads(gradescope.run_autograder(root).read_text())
    assert res["score"] == FX.LAB.points and len(res["tests"]) == 6
    assert res["output"].startswith("Graded b <i>lab.ipynb (of 2 notebooks submitted).\n")
    assert res["output_format"] == "text" and all(t["output_format"] == "text" for t in res["tests"])
