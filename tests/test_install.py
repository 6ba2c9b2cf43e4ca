"""The package installs cleanly and runs where students run it: pip wheel, Colab's setup cell, Binder.

No download: every environment here is a FRESH venv that contains exactly a set of distributions and
nothing else: coursekit from its wheel (or from ``binder/postBuild``), and the third-party distributions
that the wheel (or ``binder/requirements.txt``) declares, with their own dependencies, linked from the
installed test environment (every file of each distribution's RECORD). So an import that the declared
dependencies do not cover fails here with ``ModuleNotFoundError`` exactly as after ``pip install`` from
PyPI, and pip itself (``--no-index``) refuses a declared dependency that is not in the environment. What
is not tested is whether the registries still serve those versions (requirements.txt installs them in CI).
The notebook driver (``nbclient``) is the only extra distribution, like the Jupyter server on Binder.

1. pip wheel: the wheel installs with ``--no-index`` into a venv holding only its declared dependencies
   (+ the ``notebooks`` extra); a lecture and a lab's student version, copied to an empty folder, run
   there; ``coursekit release`` and ``coursekit grade --help`` run from the venv.
2. Colab setup cell: in a venv WITHOUT coursekit, the notebook's first cell pip-installs it (pointed at
   the wheel by ``COURSEKIT_PIP``), and the rest of the notebook runs; where coursekit imports, the cell
   installs nothing (``COURSEKIT_PIP`` pointing at a missing file would fail).
3. Binder: ``binder/`` parses, names only packages installed here (with versions its specifiers accept),
   pins every dependency of coursekit; a venv built from exactly those files (requirements + postBuild)
   runs a lecture from its own directory.
"""
from __future__ import annotations

import importlib.metadata as md
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import nbformat
import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE = pathlib.Path(sysconfig.get_paths()["purelib"])
LECTURE = ROOT / "lectures" / "11_selu.ipynb"            # a widget, figures, asserts, exercises; NumPy only
LAB = "lab01_activations.ipynb"
DRIVER = """
import sys, nbformat
from nbclient import NotebookClient
path, allow = sys.argv[1], sys.argv[2] == "allow-errors"
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=allow,
               resources={"metadata": {"path": str(__import__("pathlib").Path(path).parent)}}).execute()
errors = [o.ename for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream")
print("ERRORS", sorted(set(errors)))
print("NOT-IMPLEMENTED-CHECKS", text.count("not implemented yet"))
"""


# ------------------------------------------------------------------------------ environments
def _requirements(names_or_reqs, extras=()) -> list[Requirement]:
    out = []
    for r in names_or_reqs:
        req = r if isinstance(r, Requirement) else Requirement(r)
        if req.marker is None or any(req.marker.evaluate({**default_environment(), "extra": e})
                                     for e in ("", *extras)):
            out.append(req)
    return out


def closure(reqs: list[Requirement]) -> dict[str, md.Distribution]:
    """The installed distributions that ``reqs`` need, recursively (markers evaluated, extras followed)."""
    found: dict[str, md.Distribution] = {}
    todo = list(reqs)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        dist = md.distribution(req.name)        # PackageNotFoundError: declared but not installed here
        assert req.specifier.contains(dist.version, prereleases=True), (req, dist.version)
        new = name not in found
        found[name] = dist
        if new or req.extras:
            todo += _requirements(dist.requires or [], extras=req.extras)
    found.pop("coursekit", None)               # coursekit only ever comes from the wheel / postBuild
    return found


def fresh_venv(path: pathlib.Path, dists: dict[str, md.Distribution]) -> pathlib.Path:
    """A venv (no pip, no system site-packages) holding exactly ``dists``, linked file tree by file tree."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = path / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    for dist in dists.values():
        for top in {pathlib.PurePosixPath(f).parts[0] for f in dist.files or ()}:
            if top in ("..", "__pycache__") or (site / top).exists():
                continue
            src = SITE / top
            if src.exists():
                (site / top).symlink_to(src)
    return path


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", MPLBACKEND="Agg", **extra)
    return env


def _run(cmd, *, cwd, env, timeout=900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _execute(venv, notebook, *, env, allow_errors=False) -> dict:
    out = _run([venv / "bin" / "python", "-c", DRIVER, notebook, "allow-errors" if allow_errors else "strict"],
               cwd=notebook.parent, env=env).stdout
    lines = dict(line.split(" ", 1) for line in out.splitlines() if line.startswith(("ERRORS", "NOT-IMPL")))
    return {"errors": eval(lines["ERRORS"]), "not_implemented": int(lines["NOT-IMPLEMENTED-CHECKS"])}


def _source_copy(dest: pathlib.Path) -> pathlib.Path:
    """The files a package build reads (what a clone has), without build outputs or the venv."""
    for rel in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / rel, dest / rel)
    shutil.copytree(ROOT / "coursekit", dest / "coursekit", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    src = _source_copy(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", out, src],
         cwd=src, env=_env())
    (whl,) = out.glob("coursekit-*.whl")
    return whl


def _wheel_requirements(whl: pathlib.Path) -> list[Requirement]:
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return [Requirement(line.split(":", 1)[1].strip()) for line in z.read(meta).decode().splitlines()
                if line.startswith("Requires-Dist:")]


# ------------------------------------------------------------------------------ 1 + 2: wheel, Colab
@pytest.fixture(scope="module")
def student_venv(wheel, tmp_path_factory):
    """A fresh venv with the wheel's declared dependencies (+ extra ``notebooks``), without coursekit."""
    reqs = _requirements(_wheel_requirements(wheel), extras=("notebooks",))
    assert {canonicalize_name(r.name) for r in reqs} >= {"numpy", "nbformat", "matplotlib", "jinja2", "ipykernel"}
    assert "torch" not in {canonicalize_name(r.name) for r in reqs}, "torch must stay an optional extra"
    # nbclient: the test's notebook driver; pip: the setup cell installs with it (Colab has it)
    dists = closure(reqs + [Requirement("nbclient"), Requirement("pip")])
    assert "torch" not in dists
    return fresh_venv(tmp_path_factory.mktemp("venv") / "student", dists)


@pytest.fixture(scope="module")
def colab_run(student_venv, wheel, tmp_path_factory):
    """The Colab path: coursekit missing, the lecture's setup cell installs the wheel, the lecture runs."""
    py = student_venv / "bin" / "python"
    work = tmp_path_factory.mktemp("work")
    before = subprocess.run([py, "-c", "import coursekit"], env=_env(), cwd=work, capture_output=True)
    shutil.copy2(LECTURE, work / LECTURE.name)
    result = _execute(student_venv, work / LECTURE.name, env=_env(COURSEKIT_PIP=str(wheel)))
    where = _run([py, "-c", "import coursekit; print(coursekit.__file__)"], cwd=work, env=_env()).stdout.strip()
    return {"before": before, "result": result, "where": pathlib.Path(where), "work": work}


def test_colab_cell_installs_coursekit_then_the_notebook_runs(colab_run, student_venv):
    assert colab_run["before"].returncode != 0 and b"ModuleNotFoundError" in colab_run["before"].stderr
    assert colab_run["result"]["errors"] == []
    assert colab_run["where"].is_relative_to(student_venv), colab_run["where"]   # from the wheel, not the repo


def test_wheel_runs_a_lecture_and_a_student_lab_in_an_empty_folder(colab_run, student_venv, tmp_path):
    # the lecture ran in an empty folder with the wheel's coursekit (colab_run); now a lab's student version.
    # coursekit is installed: the setup cell must not call pip again (COURSEKIT_PIP names a missing file)
    assert colab_run["result"]["errors"] == []
    env = _env(COURSEKIT_PIP=str(tmp_path / "missing.whl"))
    shutil.copy2(ROOT / "student" / "labs" / LAB, tmp_path / LAB)
    lab = _execute(student_venv, tmp_path / LAB, env=env, allow_errors=True)
    # the student version runs; only its unfinished exercises raise, and the self-checks say so
    assert set(lab["errors"]) <= {"NotImplementedError"} and lab["not_implemented"] >= 1, lab


def test_wheel_cli_release_and_grade(colab_run, student_venv, tmp_path):
    cli = student_venv / "bin" / "coursekit"
    shutil.copy2(ROOT / "labs" / LAB, tmp_path / LAB)
    out = _run([cli, "release", tmp_path / LAB, "--out", tmp_path / "release"], cwd=tmp_path, env=_env())
    released = tmp_path / "release" / LAB
    assert str(released) in out.stdout and "### BEGIN SOLUTION" not in released.read_text()
    assert released.read_bytes() == (ROOT / "student" / "labs" / LAB).read_bytes()
    assert "usage: coursekit grade" in _run([cli, "grade", "--help"], cwd=tmp_path, env=_env()).stdout


def test_an_undeclared_dependency_fails_here(wheel, tmp_path):
    """The check has teeth: were nbformat not declared (so not in the venv), `coursekit release` would fail."""
    reqs = [r for r in _requirements(_wheel_requirements(wheel)) if canonicalize_name(r.name) != "nbformat"]
    venv = fresh_venv(tmp_path / "venv", closure(reqs))
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "--quiet", wheel],
         cwd=tmp_path, env=_env())
    shutil.copy2(ROOT / "labs" / LAB, tmp_path / LAB)
    proc = subprocess.run([venv / "bin" / "coursekit", "release", tmp_path / LAB, "--out", tmp_path / "out"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert proc.returncode != 0 and "No module named 'nbformat'" in proc.stderr, proc.stderr[-2000:]


# ------------------------------------------------------------------------------ 3: Binder
BINDER = ROOT / "binder"


def _binder_requirements() -> list[Requirement]:
    reqs = []
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            reqs.append(Requirement(line))
        elif line:
            assert line.startswith("--extra-index-url https://download.pytorch.org/whl/cpu"), line
    return reqs


def test_binder_files_parse_and_name_installable_packages(wheel):
    assert (BINDER / "runtime.txt").read_text().strip() == f"python-{sys.version_info[0]}.{sys.version_info[1]}"
    reqs = _binder_requirements()
    names = {canonicalize_name(r.name) for r in reqs}
    for req in reqs:    # installed here, in a version that the line accepts (so pip can install it here)
        assert req.specifier.contains(md.version(req.name), prereleases=True), (str(req), md.version(req.name))
    missing = {canonicalize_name(r.name) for r in _requirements(_wheel_requirements(wheel))} - names
    assert not missing, f"binder/requirements.txt must pin every dependency of coursekit: {missing}"
    assert {"torch", "ipywidgets", "ipykernel"} <= names
    post = (BINDER / "postBuild").read_text()
    assert post.startswith("#!/bin/bash") and os.access(BINDER / "postBuild", os.X_OK)
    assert "pip install --no-cache-dir --no-deps ." in post


def test_binder_environment_runs_a_lecture_from_its_directory(tmp_path):
    """requirements.txt, then postBuild in a copy of the repository, then a lecture from lectures/."""
    extra = [Requirement(n) for n in ("pip", "setuptools", "nbclient")]   # Binder's base image has these
    venv = fresh_venv(tmp_path / "binder-venv", closure(_binder_requirements() + extra))
    (tmp_path / "repo").mkdir()
    repo = _source_copy(tmp_path / "repo")
    shutil.copytree(BINDER, repo / "binder")
    (repo / "lectures").mkdir()
    shutil.copy2(LECTURE, repo / "lectures" / LECTURE.name)
    env = _env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", PIP_NO_BUILD_ISOLATION="0",
               COURSEKIT_PIP=str(tmp_path / "missing.whl"))   # the setup cell must not need to install
    _run(["bash", repo / "binder" / "postBuild"], cwd=repo, env=env)
    assert _execute(venv, repo / "lectures" / LECTURE.name, env=env)["errors"] == []
