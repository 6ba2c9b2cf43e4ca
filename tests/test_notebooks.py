"""Static checks over every notebook of the course and over the book's table of contents.

Runs without executing anything (nbval executes the notebooks; tests/test_book.py checks the built site).
Every notebook under lectures/ and labs/ (release directories excluded) must be committed clean (no outputs,
no execution counts), declare the python3 kernel, fix its seeds, be listed in book/_toc.yml; lectures must
also contain an ``assert`` in a code cell. Every notebook's first code cell is the current setup cell of
tools/notebook_setup.py (Colab install pinned to the book's release, the backend switch), tested in-process here
and end to end in tests/test_install.py. A notebook with exercises is listed as its generated page
``book/<folder>/<name>``. The toc must list only files that exist, the lectures in the
course's order, and there must be no top-level ``_static/`` (it makes Jupyter Book load every widget script
twice, see _config.yml).
"""
from __future__ import annotations

import ast
import importlib.util
import pathlib
import re
import sys

import nbformat
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOC_PATH = ROOT / "book" / "_toc.yml"
BIB_PATH = ROOT / "references.bib"
# The toc helpers live in tools/book_toc.py (not a package): load that file.
_spec = importlib.util.spec_from_file_location("book_toc", ROOT / "tools" / "book_toc.py")
book_toc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(book_toc)
_spec = importlib.util.spec_from_file_location("notebook_setup", ROOT / "tools" / "notebook_setup.py")
notebook_setup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebook_setup)
_spec = importlib.util.spec_from_file_location("student_versions", ROOT / "tools" / "student_versions.py")
student_versions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_versions)
SKIP_PARTS = {"release", ".ipynb_checkpoints"}

LECTURES = (
    "01_recipe", "02_vanishing_gradients", "03_maxout", "04_softmax_cross_entropy", "05_preprocessing_init",
    "06_learning_rates_adagrad", "07_momentum", "08_generalization", "09_dropout", "10_batch_norm", "11_selu",
    "12_highway_residual", "13_methodology", "14_pretraining",
)
LABS = ("lab01_activations", "lab02_optimizers", "lab03_dropout_batchnorm", "lab04_selu", "lab05_challenge")

# A seed is fixed when a code cell calls one of these (coursekit, NumPy, torch, random) or passes seed=...
SEED_RE = re.compile(
    r"\b(?:manual_seed|default_rng|Generator|RandomState|random\.seed|np\.random\.seed)\s*\(|\bseed\s*=\s*[\w(]"
)
# Anything that draws random numbers or builds randomly initialised layers / data splits.
RANDOM_RE = re.compile(
    r"\b(?:rand\w*|normal|uniform|shuffle|permutation|choice|integers|dropout|Dropout|Linear|Maxout|Highway|"
    r"load_digits|make_spirals|make_blobs|augment_digits|fit|Generator|default_rng)\s*\("
)
CITE_RE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def _notebooks(folder: str) -> list[pathlib.Path]:
    base = ROOT / folder
    if not base.is_dir():
        return []
    return sorted(p for p in base.rglob("*.ipynb") if not SKIP_PARTS & set(p.relative_to(base).parts))


NOTEBOOKS = _notebooks("lectures") + _notebooks("labs")
LECTURE_NOTEBOOKS = _notebooks("lectures")


def _id(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT))


def _read(path: pathlib.Path):
    return nbformat.read(path, as_version=4)


def _toc() -> dict:
    return yaml.safe_load(TOC_PATH.read_text(encoding="utf-8"))


def _code_without_magics(source: str) -> str:
    """Cell source with IPython magics/shell lines blanked, so that ``ast`` can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


# ------------------------------------------------------------------------------------------ per notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_valid_and_committed_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{_id(path)}: code cells {dirty} have outputs or execution counts; "
                       f"run `.venv/bin/nbstripout {_id(path)}`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_kernelspec_python3(path):
    spec = _read(path).metadata.get("kernelspec", {})
    assert spec.get("name") == "python3", f"{_id(path)}: kernelspec name must be 'python3', got {spec!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_seeds_fixed(path):
    code = "\n".join(c.source for c in _read(path).cells if c.cell_type == "code")
    if not RANDOM_RE.search(code):
        return  # deterministic notebook (e.g. optimizer trajectories from a fixed start): nothing to seed
    assert SEED_RE.search(code), (f"{_id(path)}: no seed found (e.g. coursekit.manual_seed(SEED), "
                                  f"np.random.default_rng(SEED), seed=...)")


@pytest.mark.parametrize("path", LECTURE_NOTEBOOKS, ids=_id)
def test_lecture_code_parses_and_asserts(path):
    n_asserts = 0
    for i, cell in enumerate(_read(path).cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_code_without_magics(cell.source))
        except SyntaxError as e:  # pragma: no cover - message for the author
            pytest.fail(f"{_id(path)}: code cell {i} does not parse: {e}")
        n_asserts += sum(isinstance(node, ast.Assert) for node in ast.walk(tree))
    assert n_asserts >= 1, f"{_id(path)}: a lecture must check its claims with at least one assert"


@pytest.mark.parametrize("path", LECTURE_NOTEBOOKS, ids=_id)
def test_lecture_name_and_title(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), f"{path.name}: expected NN_slug.ipynb"
    cells = _read(path).cells
    assert cells and cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), (
        f"{_id(path)}: the first cell must be markdown starting with the page title '# NN. Title'")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_listed_in_toc(path):
    docname = student_versions.page_docname(path, ROOT)  # book/<folder>/<name>: generated page (exercises)
    assert docname in book_toc.docnames(_toc()), f"{_id(path)} is not listed in book/_toc.yml (add '- file: {docname}')"


# ------------------------------------------------------------------------------------------ setup cell
SETUP = notebook_setup.setup_source(ROOT)
COURSEKIT = importlib.import_module("coursekit")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_setup_cell_is_first_and_current(path):
    """Every notebook's first code cell is tools/notebook_setup.py's current cell (Colab install + backend)."""
    assert notebook_setup.is_current(_read(path), SETUP), (
        f"{_id(path)}: the setup cell is missing or old: run `python tools/notebook_setup.py`")


def test_setup_cell_pin_is_the_books_release():
    import tomllib
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert f'"coursekit @ git+{url}@v{version}"' in SETUP


def _run_setup(monkeypatch, env: dict, pip_calls: list):
    import subprocess
    for key in ("COURSEKIT_BACKEND", "COURSEKIT_PIP"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def fake_pip(cmd, *args, **kwargs):  # records the install and "installs" the coursekit we have
        pip_calls.append(cmd)
        sys.modules["coursekit"] = COURSEKIT
        return 0

    monkeypatch.setattr(subprocess, "check_call", fake_pip)
    saved = COURSEKIT.get_default_backend()
    try:
        exec(compile(SETUP, "setup-cell", "exec"), {})
        return COURSEKIT.get_default_backend()
    finally:
        COURSEKIT.set_default_backend(saved[0], device=saved[1], dtype=saved[2])


def test_setup_cell_does_nothing_where_coursekit_imports(monkeypatch):
    calls = []
    assert _run_setup(monkeypatch, {}, calls)[:2] == ("numpy", "cpu")
    assert calls == [], "the setup cell must not call pip (no network) where coursekit imports"


def test_setup_cell_installs_the_pinned_release_when_missing(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "coursekit", None)   # `import coursekit` raises ImportError
    _run_setup(monkeypatch, {}, calls)
    assert len(calls) == 1 and calls[0][-1] == f"coursekit @ {notebook_setup.release_pin(ROOT)}"
    calls.clear()
    monkeypatch.setitem(sys.modules, "coursekit", None)
    _run_setup(monkeypatch, {"COURSEKIT_PIP": "/tmp/coursekit-0.1.0-py3-none-any.whl"}, calls)
    assert calls[0][-1] == "/tmp/coursekit-0.1.0-py3-none-any.whl"


def test_setup_cell_backend_switch(monkeypatch):
    from coursekit import backend as B
    calls = []
    assert _run_setup(monkeypatch, {"COURSEKIT_BACKEND": "numpy"}, calls)[:2] == ("numpy", "cpu")
    if B.torch_available():
        assert _run_setup(monkeypatch, {"COURSEKIT_BACKEND": "torch"}, calls)[:2] == ("torch", "cpu")
        expected = ("torch", "cuda") if B.cuda_available() else ("numpy", "cpu")   # no GPU: stay on NumPy
        assert _run_setup(monkeypatch, {"COURSEKIT_BACKEND": "cuda"}, calls)[:2] == expected
    with pytest.raises(ValueError, match="BACKEND must be one of"):
        _run_setup(monkeypatch, {"COURSEKIT_BACKEND": "gpu"}, calls)
    assert calls == []


# ------------------------------------------------------------------------------------------ the book
def test_toc_lists_only_existing_files():
    missing = [name for name in book_toc.docnames(_toc()) if book_toc.source_of(name, ROOT) is None]
    assert not missing, f"book/_toc.yml lists files that do not exist: {missing}"


def test_toc_order_and_parts():
    toc = _toc()
    assert toc["format"] == "jb-book" and toc["root"] == "book/intro"
    parts = {p["caption"]: [c["file"] for c in p["chapters"]] for p in toc["parts"]}
    page = {p.relative_to(ROOT).with_suffix("").as_posix(): student_versions.page_docname(p, ROOT) for p in NOTEBOOKS}
    assert parts["Lectures"] == [page[f"lectures/{s}"] for s in LECTURES]
    assert parts["Labs"] == [page[f"labs/{s}"] for s in LABS]
    assert all(page[f"labs/{s}"].startswith("book/labs/") for s in LABS), "every lab has exercises"
    names = book_toc.docnames(toc)
    assert len(names) == len(set(names)), f"duplicate toc entries: {names}"


def test_no_top_level_static_dir():
    assert not (ROOT / "_static").exists(), (
        "a top-level _static/ makes Jupyter Book load every widget script twice: use book/_static/")


def test_citations_resolve():
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", BIB_PATH.read_text(encoding="utf-8"), re.M))
    sources = [(p, "\n".join(c.source for c in _read(p).cells if c.cell_type == "markdown")) for p in NOTEBOOKS]
    sources += [(p, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "book").glob("*.md"))]
    unknown = {(_id(p), key.strip()) for p, text in sources
               for group in CITE_RE.findall(text) for key in group.split(",") if key.strip() not in keys}
    assert not unknown, f"citation keys missing from references.bib: {sorted(unknown)}"


def test_bibliography_keys_unique():
    keys = re.findall(r"^@\w+\{([^,\s]+),", BIB_PATH.read_text(encoding="utf-8"), re.M)
    assert len(keys) == len(set(keys)) and len(keys) >= 25, keys
