"""Gradescope: build the autograder zip, and the ``run_autograder`` entry point inside it.

``coursekit gradescope-bundle LAB.ipynb --out autograder.zip`` writes a zip with

* ``setup.sh`` (run once, as root, when Gradescope builds the image): installs bubblewrap and
  Python 3.11, creates ``/autograder/venv`` with coursekit's grading dependencies (pins taken from
  this checkout's requirements.txt), installs the bundled coursekit, builds the sandbox venv;
* ``run_autograder``: ``python -m coursekit.grade.gradescope --root /autograder``;
* ``lab.ipynb`` (the solution notebook: it names the lab; the sandbox never sees it),
  ``coursekit-src/`` (this coursekit, installed by setup.sh) and ``config.json``.

:func:`run_autograder` grades ``ROOT/submission`` (one regular file: the notebook of this lab if
there is one) by running ``coursekit grade`` on it in a child process, and writes that run's
``results.json`` to ``ROOT/results/results.json``; ``ROOT`` is ``/autograder`` unless
``$COURSEKIT_AUTOGRADER_ROOT`` or ``--root`` says otherwise. If the sandbox is unavailable (for
instance the container forbids user namespaces: ``coursekit grade`` exits with status 3) it writes a
zero-score result that says so, unless the bundle was built with ``--no-sandbox``. Every output is
declared ``"text"`` for Gradescope (:func:`coursekit.grade.feedback.gradescope_results`).

This module runs the grader through its command line, never imports it: the grader's engine
imports the feedback writers, and the Gradescope driver sits above both.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .._io import atomic_path, atomic_write
from ..labs import spec
from .feedback import clean_text
from .notebook import SubmissionError, notebook_lab_id, read_notebook

__all__ = ["bundle", "run_autograder", "SETUP_SH", "RUN_AUTOGRADER", "GRADING_REQUIREMENTS", "grading_requirements"]

GRADING_REQUIREMENTS = ("numpy", "array-api-compat", "scipy", "scikit-learn", "matplotlib", "tqdm", "nbformat",
                        "jinja2", "packaging")
"""The packages of requirements.txt that grading needs (no torch, no book tooling)."""

SANDBOX_UNAVAILABLE_EXIT = 3
"""``coursekit grade``'s exit status when it refuses to run student code without its sandbox."""

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, while building the autograder image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends bubblewrap util-linux python3.11 python3.11-venv
python3.11 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --quiet --upgrade pip
/autograder/venv/bin/python -m pip install --quiet -r /autograder/source/requirements-grading.txt
/autograder/venv/bin/python -m pip install --quiet --no-deps --no-build-isolation /autograder/source/coursekit-src
COURSEKIT_SANDBOX_PYTHON=/usr/bin/python3.11 /autograder/venv/bin/coursekit grade --setup-sandbox
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this once per submission; it writes /autograder/results/results.json.
cd /autograder
exec /autograder/venv/bin/python -m coursekit.grade.gradescope --root /autograder
"""


def grading_requirements(text: str) -> str:
    """The lines of a requirements file (``text``) that grading needs, one per package of
    :data:`GRADING_REQUIREMENTS` in that order: the file's own specifier (pin, markers) where it has
    one, else the bare name. Comments, options (``-r``, ``--index-url``) and lines that are not
    requirements are skipped; names compare as PEP 503 normalises them (``Array_API.compat``)."""
    wanted = {canonicalize_name(p): p for p in GRADING_REQUIREMENTS}
    pins = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        name = canonicalize_name(req.name)
        if name in wanted:
            pins[wanted[name]] = str(req)
    return "\n".join(pins.get(p, p) for p in GRADING_REQUIREMENTS) + "\n"


def _check_lab_notebook(path: Path) -> None:
    """Fail now, not on Gradescope: ``path`` must be a notebook that names one of the course's labs."""
    try:
        lab_id = notebook_lab_id(read_notebook(path))
    except SubmissionError as e:
        raise ValueError(f"gradescope-bundle: lab notebook {str(path)!r}: {e.message}") from None
    if lab_id is None:
        raise ValueError(f"gradescope-bundle: lab notebook {str(path)!r} has no metadata.coursekit.lab; "
                         f"expected one of {spec.LAB_MODULES} (or pass lab_spec=)")
    spec.get_lab(lab_id)


def bundle(lab_notebook, out_zip, *, no_sandbox: bool = False, lab_spec: str | None = None) -> Path:
    """Write the Gradescope autograder zip for ``lab_notebook``; returns its path."""
    lab_notebook = Path(lab_notebook)
    if lab_spec is None:
        _check_lab_notebook(lab_notebook)
    pkg = Path(__file__).resolve().parents[1]          # coursekit/
    repo = pkg.parent
    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        def add_text(name, text, mode=0o644):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
        add_text("setup.sh", SETUP_SH, 0o755)
        add_text("run_autograder", RUN_AUTOGRADER, 0o755)
        req = repo / "requirements.txt"
        add_text("requirements-grading.txt", grading_requirements(req.read_text() if req.is_file() else ""))
        z.write(lab_notebook, "lab.ipynb")
        cfg = {"no_sandbox": bool(no_sandbox)}
        if lab_spec is not None:
            spec_file, _, attr = lab_spec.partition(":")
            z.write(spec_file, "lab_spec.py")
            cfg["lab_spec"] = f"lab_spec.py:{attr or 'LAB'}"
        add_text("config.json", json.dumps(cfg))
        for name in ("pyproject.toml", "README.md"):
            if (repo / name).is_file():
                z.write(repo / name, f"coursekit-src/{name}")
        for p in sorted(pkg.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
                z.write(p, f"coursekit-src/coursekit/{p.relative_to(pkg)}")
    return out_zip


def _write_results(root: Path, results: dict) -> Path:
    dest = root / "results" / "results.json"
    atomic_write(dest, json.dumps(results, indent=1, ensure_ascii=False))
    return dest


def _lab_id(nb_path: Path) -> str | None:
    try:
        return notebook_lab_id(read_notebook(nb_path))
    except SubmissionError:
        return None


def _choose(files: list[Path], lab_id: str | None) -> Path | None:
    """The notebook of this lab if one was submitted, else the first notebook, else the first file."""
    nbs = [p for p in files if p.suffix == ".ipynb"]
    for p in nbs:
        if lab_id is not None and _lab_id(p) == lab_id:
            return p
    return nbs[0] if nbs else (files[0] if files else None)


def _zero(root: Path, output: str) -> Path:
    return _write_results(root, {"score": 0.0, "output": output, "output_format": "text", "tests": []})


def run_autograder(root: str | os.PathLike | None = None, *, jobs: int = 1, timeout_s: float = 2400.0) -> Path:
    """Grade the submission in ``root/submission`` and write ``root/results/results.json``.

    Runs ``coursekit grade`` (``sys.executable -m coursekit.cli``) on the chosen file; its output
    goes to this process's stdout, which Gradescope shows to instructors only. ``timeout_s`` bounds
    that run (Gradescope's own limit is set per assignment)."""
    root = Path(root or os.environ.get("COURSEKIT_AUTOGRADER_ROOT") or "/autograder")
    src = root / "source"
    cfg = json.loads((src / "config.json").read_text()) if (src / "config.json").is_file() else {}
    lab_nb = (src / "lab.ipynb").resolve()
    lab_id = _lab_id(lab_nb)
    sub = root / "submission"
    files = sorted(p for p in sub.iterdir() if p.is_file() and not p.is_symlink()) if sub.is_dir() else []
    chosen = _choose(files, lab_id)
    if chosen is None:
        return _zero(root, f"No file was submitted; expected the {lab_id or 'lab'} notebook (.ipynb).")
    with tempfile.TemporaryDirectory(prefix="coursekit-gs-") as out:
        argv = [sys.executable, "-m", "coursekit.cli", "grade", str(lab_nb), str(chosen.resolve()),
                "--out", out, "--jobs", str(jobs), "--no-progress"]
        if cfg.get("lab_spec"):
            argv += ["--lab-spec", str(src / cfg["lab_spec"])]
        if cfg.get("no_sandbox"):
            argv.append("--no-sandbox")
        try:
            run = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return _zero(root, f"The autograder did not finish within {timeout_s:g} s. Please tell the instructor.")
        sys.stdout.write(run.stdout + run.stderr)
        if run.returncode == SANDBOX_UNAVAILABLE_EXIT:
            reason = clean_text(run.stderr.strip(), 500)
            return _zero(root, "The autograder could not start its sandbox, so the submission was not run. "
                               f"Please tell the instructor. ({reason})")
        found = sorted((Path(out) / "gradescope").glob("*/results.json"))
        if run.returncode != 0 or len(found) != 1:
            return _zero(root, f"The autograder failed on this submission (exit status {run.returncode}). "
                               "Please tell the instructor.")
        results = json.loads(found[0].read_text())
    n_nbs = sum(p.suffix == ".ipynb" for p in files)
    if n_nbs > 1:
        results["output"] = (f"Graded {clean_text(chosen.name, 200, multiline=False)} (of {n_nbs} notebooks "
                             f"submitted).\n" + results["output"])
    return _write_results(root, results)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m coursekit.grade.gradescope",
                                 description="Gradescope's run_autograder: grade /autograder/submission.")
    ap.add_argument("--root", default=None, help="the /autograder folder (default $COURSEKIT_AUTOGRADER_ROOT "
                                                 "or /autograder)")
    args = ap.parse_args(argv)
    dest = run_autograder(args.root)
    print(f"coursekit: wrote {dest}")
    print(json.dumps(json.loads(dest.read_text()).get("score")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
