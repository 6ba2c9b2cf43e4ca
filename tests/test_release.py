"""release(): the student notebook has no solutions, hidden cells or outputs, and keeps tags, ids, checks."""
import importlib.util
import json
import pathlib
import re

import nbformat
import pytest

from coursekit.labs import spec
from coursekit.labs.release import (BEGIN, END, has_exercises, release, strip_solutions, student_cells,
                                    student_path)

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_versions", ROOT / "tools" / "student_versions.py")
student_versions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_versions)

LABS = spec.all_labs()


def _solution_lines(nb):
    """Non-trivial lines inside BEGIN/END blocks of the solution notebook."""
    lines, inside = [], False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if line.strip() == BEGIN:
                inside = True
            elif line.strip() == END:
                inside = False
            elif inside and len(line.strip()) > 12:
                lines.append(line.strip())
    return lines


def _in_open_code(nb, line):
    """True if ``line`` also occurs outside every solution block (e.g. in an experiment cell)."""
    for cell in nb.cells:
        inside = False
        for src in cell.source.splitlines():
            if src.strip() == BEGIN:
                inside = True
            elif src.strip() == END:
                inside = False
            elif not inside and src.strip() == line:
                return True
    return False


@pytest.fixture(scope="module", params=LABS, ids=[lab.id for lab in LABS])
def released(request, tmp_path_factory):
    lab = request.param
    src = spec.notebook_path(lab)
    out = release(src, tmp_path_factory.mktemp(lab.id))
    return lab, nbformat.read(src, as_version=4), nbformat.read(out, as_version=4), out


def test_no_solution_text(released):
    lab, solution, student, path = released
    text = path.read_text()
    assert BEGIN not in text and END not in text
    # lines that also appear outside every solution block (e.g. an experiment cell) may stay
    sol_lines = [line for line in _solution_lines(solution) if not _in_open_code(solution, line)]
    assert sol_lines
    for cell in student.cells:
        for line in sol_lines:
            assert line not in cell.source, (cell.id, line)


def test_hidden_cells_and_outputs_removed(released):
    lab, solution, student, path = released
    assert any("solution-only" in c.metadata.get("tags", []) for c in solution.cells)
    for cell in student.cells:
        tags = cell.metadata.get("tags", [])
        assert "solution-only" not in tags and "hidden" not in tags
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        assert "assert check(" not in cell.source
    kept = [c.id for c in solution.cells if not set(c.metadata.get("tags", [])) & {"solution-only", "hidden"}]
    assert [c.id for c in student.cells] == kept
    assert "widgets" not in student.metadata
    nbformat.validate(student)


def test_tags_ids_metadata_and_checks_kept(released):
    lab, solution, student, path = released
    assert student.metadata["coursekit"] == {"lab": lab.id}
    by_id = {c.id: c for c in solution.cells}
    for q in lab.questions:
        cells = [c for c in student.cells if f"q:{q.id}" in c.metadata.get("tags", [])]
        assert len(cells) == 1
        cell = cells[0]
        assert "exercise" in cell.metadata["tags"]
        assert by_id[cell.id].metadata["tags"] == cell.metadata["tags"]
        assert re.search(rf"^def {q.function}\(", cell.source, re.M)
        assert '"""' in cell.source                                   # the docstring stays
        assert "raise NotImplementedError" in cell.source
        assert any(c.source.strip() == f'check("{q.id}", {q.function});' for c in student.cells)


def test_released_functions_raise_not_implemented(released):
    lab, solution, student, path = released
    ns = {}
    exec("\n\n".join(c.source for c in student.cells if "exercise" in c.metadata.get("tags", [])), ns)
    for q in lab.questions:
        inputs = spec.case_inputs(q, 0, spec.PUBLIC_SEED)
        with pytest.raises(NotImplementedError):
            ns[q.function](**inputs)


def test_strip_solutions_keeps_indentation():
    src = "def f(x):\n    \"\"\"Doc.\"\"\"\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\ny = 1"
    out, n = strip_solutions(src)
    assert n == 1
    assert out == "def f(x):\n    \"\"\"Doc.\"\"\"\n    # YOUR CODE HERE\n    raise NotImplementedError\n\ny = 1"


@pytest.mark.parametrize("src,match", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\n  ### BEGIN SOLUTION\n### END SOLUTION", "nested"),
])
def test_strip_solutions_rejects_bad_markers(src, match):
    with pytest.raises(ValueError, match=match):
        strip_solutions(src)


def _write(tmp_path, cells, lab=None):
    nb = nbformat.v4.new_notebook(cells=cells)
    if lab:
        nb.metadata["coursekit"] = {"lab": lab}
    path = tmp_path / "toy.ipynb"
    nbformat.write(nb, path)
    return path


def test_release_errors(tmp_path):
    with pytest.raises(ValueError, match="notebook_path must be an existing"):
        release(tmp_path / "missing.ipynb", tmp_path / "out")
    ex = nbformat.v4.new_code_cell("def f():\n    return 1")
    ex.metadata["tags"] = ["exercise", "q:lab01.f"]
    with pytest.raises(ValueError, match="has no '### BEGIN SOLUTION' block"):
        release(_write(tmp_path, [ex]), tmp_path / "out")
    ok = nbformat.v4.new_code_cell("def g():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")
    ok.metadata["tags"] = ["exercise", "q:lab01.sigmoid_forward"]
    with pytest.raises(ValueError, match="exactly one cell tagged 'q:lab01.sigmoid_backward'|does not define"):
        release(_write(tmp_path, [ok], lab="lab01"), tmp_path / "out")
    with pytest.raises(ValueError, match="out_dir must differ"):
        release(_write(tmp_path, [ok]), tmp_path)


def test_release_toy_notebook(tmp_path):
    md = nbformat.v4.new_markdown_cell("# Toy")
    ex = nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION")
    ex.metadata["tags"] = ["exercise", "q:toy.f"]
    ex.outputs = [nbformat.v4.new_output("stream", text="hi")]
    ex.execution_count = 3
    hidden = nbformat.v4.new_code_cell("secret = 42")
    hidden.metadata["tags"] = ["hidden"]
    out = release(_write(tmp_path, [md, ex, hidden]), tmp_path / "student")
    data = json.loads(out.read_text())
    assert [c["cell_type"] for c in data["cells"]] == ["markdown", "code"]
    assert data["cells"][1]["outputs"] == [] and "secret" not in out.read_text()
    assert data["cells"][1]["id"] == ex.id


# ------------------------------------------------------------------ committed student versions
def test_committed_student_versions_are_current():
    """student/<folder>/<name>.ipynb is exactly what `coursekit release` writes today (else: make student)."""
    problems = student_versions.stale(ROOT)
    assert not problems, "run `make student` (tools/student_versions.py): " + "; ".join(problems)


def test_every_lab_has_a_committed_student_version():
    sources = student_versions.with_exercises(ROOT)
    assert sorted(p.name for p in sources) == sorted(spec.notebook_path(lab).name for lab in LABS)
    for src in sources:
        assert student_path(src, ROOT) == ROOT / "student" / src.parent.name / src.name
        assert student_path(src, ROOT).is_file()


def test_stale_student_version_is_detected(tmp_path):
    """The up-to-date check can fail: a changed solution, a missing and an orphaned student file."""
    (tmp_path / "labs").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "_toc.yml").write_text("parts:\n  - chapters:\n      - file: book/labs/toy\n")
    ex = nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION")
    ex.metadata["tags"] = ["exercise"]
    nbformat.write(nbformat.v4.new_notebook(cells=[ex]), tmp_path / "labs" / "toy.ipynb")
    assert student_versions.stale(tmp_path) == ["student/labs/toy.ipynb is out of date with labs/toy.ipynb"]
    student_versions.write(tmp_path)
    assert student_versions.stale(tmp_path) == []
    nb = nbformat.read(tmp_path / "labs" / "toy.ipynb", as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("return x", "return 2 * x")
    nbformat.write(nb, tmp_path / "labs" / "toy.ipynb")
    assert student_versions.stale(tmp_path) == []          # solution text changed: student file unchanged
    nb.cells.append(nbformat.v4.new_markdown_cell("New text."))
    nbformat.write(nb, tmp_path / "labs" / "toy.ipynb")
    assert len(student_versions.stale(tmp_path)) == 1
    (tmp_path / "student" / "labs" / "old.ipynb").write_text("{}")
    assert any("old.ipynb has no solution" in p for p in student_versions.stale(tmp_path))
    # the toc names the page of a notebook with exercises book/labs/...; without exercises labs/...
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, tmp_path / "labs" / "toy.ipynb")
    assert not has_exercises(nb)
    student_versions.write(tmp_path)
    assert "- file: labs/toy" in (tmp_path / "book" / "_toc.yml").read_text()
    assert not (tmp_path / "student" / "labs" / "toy.ipynb").exists()
    assert student_versions.stale(tmp_path) == []


def test_student_cells_book_page_keeps_figures_only():
    """The book page (keep_outputs=True) keeps figure outputs, drops exercise and check outputs."""
    fig = nbformat.v4.new_code_cell("plot()")
    fig.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBO"})]
    ex = nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION")
    ex.metadata["tags"] = ["exercise"]
    ex.outputs = [nbformat.v4.new_output("stream", text="solution output")]
    chk = nbformat.v4.new_code_cell('check("toy.f", f);')
    chk.outputs = [nbformat.v4.new_output("stream", text="passed")]
    nb = nbformat.v4.new_notebook(cells=[fig, ex, chk])
    page = student_cells(nbformat.from_dict(nb), name="toy", keep_outputs=True)
    assert [len(c.outputs) for c in page] == [1, 0, 0]
    student = student_cells(nbformat.from_dict(nb), name="toy")
    assert [len(c.outputs) for c in student] == [0, 0, 0]
    assert "return x" not in page[1].source and "raise NotImplementedError" in page[1].source
