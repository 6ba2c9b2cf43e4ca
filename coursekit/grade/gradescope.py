"""Gradescope: build the autograder zip, and the ``run_autograder`` entry point inside it.

``coursekit gradescope-bundle LAB.ipynb --out autograder.zip`` writes a zip with

* ``setup.sh`` (run once, as root, when Gradescope builds the image): installs bubblewrap and
  Python 3.11, creates ``/autograder/venv`` with coursekit's grading dependencies (pins taken from
  this checkout's requirements.txt), installs the bundled coursekit, builds the sandbox venv;
* ``run_autograder``: ``python -m coursekit.grade.gradescope --root /autograder``;
* ``lab.ipynb`` (the solution notebook: it names the lab; the sandbox never sees it),
  ``coursekit-src/`` (this coursekit, installed by setup.sh) and ``config.json``.

:func:`run_autograder` grades ``ROOT/submission/*.ipynb`` with the same :class:`~.engine.Grader`
and writes ``ROOT/results/results.json``; ``ROOT`` is ``/autograder`` unless
``$COURSEKIT_AUTOGRADER_ROOT`` or ``--root`` says otherwise. If the sandbox is unavailable (for
instance the container forbids user namespaces) it writes a zero-score result that says so,
unless the bundle was built with ``--no-sandbox``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path

from .._io import atomic_path, atomic_write

__all__ = ["bundle", "run_autograder", "SETUP_SH", "RUN_AUTOGRADER", "GRADING_REQUIREMENTS"]

GRADING_REQUIREMENTS = ("numpy", "array-api-compat", "scipy", "scikit-learn", "matplotlib", "tqdm", "nbformat")
"""The packages of requirements.txt that grading needs (no torch, no book tooling)."""

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


def _requirements(repo: Path) -> str:
    req = repo / "requirements.txt"
    pins = {}
    if req.is_file():
        for line in req.read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_.-]+)\s*([=~<>!].*)?$", line.strip())
            if m and m.group(1).lower() in GRADING_REQUIREMENTS:
                pins[m.group(1).lower()] = line.strip()
    return "\n".join(pins.get(p, p) for p in GRADING_REQUIREMENTS) + "\n"


def bundle(lab_notebook, out_zip, *, no_sandbox: bool = False, lab_spec: str | None = None) -> Path:
    """Write the Gradescope autograder zip for ``lab_notebook``; returns its path."""
    from .engine import load_lab_notebook
    lab_notebook = Path(lab_notebook)
    if lab_spec is None:
        load_lab_notebook(lab_notebook)                # fail now, not on Gradescope
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
        add_text("requirements-grading.txt", _requirements(repo))
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
    atomic_write(dest, json.dumps(results, indent=1))
    return dest


def run_autograder(root: str | os.PathLike | None = None, *, jobs: int = 1) -> Path:
    """Grade the submission in ``root/submission`` and write ``root/results/results.json``."""
    from .engine import Grader, load_lab_notebook, safe_name, student_id
    from .notebook import notebook_lab_id, read_notebook
    from .sandbox import SandboxUnavailable
    root = Path(root or os.environ.get("COURSEKIT_AUTOGRADER_ROOT") or "/autograder")
    src = root / "source"
    cfg = json.loads((src / "config.json").read_text()) if (src / "config.json").is_file() else {}
    lab_nb = src / "lab.ipynb"
    if cfg.get("lab_spec"):
        from .engine import load_lab_spec
        lab = load_lab_spec(str(src / cfg["lab_spec"]))
        solution = read_notebook(lab_nb)
    else:
        lab, solution = load_lab_notebook(lab_nb)
    files = sorted(p for p in (root / "submission").glob("*") if p.is_file())
    nbs = [p for p in files if p.suffix == ".ipynb"]
    chosen = None
    for p in nbs:                          # prefer the notebook of this lab
        try:
            if notebook_lab_id(read_notebook(p)) == lab.id:
                chosen = p
                break
        except Exception:  # noqa: BLE001 - judged by the grader below
            pass
    chosen = chosen or (nbs[0] if nbs else (files[0] if files else None))
    if chosen is None:
        return _write_results(root, {"score": 0.0, "output": f"No file was submitted; expected the {lab.id} "
                                                           f"notebook (.ipynb).", "tests": []})
    with tempfile.TemporaryDirectory(prefix="coursekit-gs-") as out:
        try:
            Grader(lab_nb, out, lab=lab, solution_nb=solution, jobs=jobs, sandbox=not cfg.get("no_sandbox"),
                   progress=False).grade([chosen])
        except SandboxUnavailable as e:
            return _write_results(root, {"score": 0.0, "tests": [],
                                         "output": f"The autograder could not start its sandbox, so the "
                                                   f"submission was not run. Please tell the instructor. ({e})"})
        res = Path(out) / "gradescope" / safe_name(student_id(chosen)) / "results.json"
        results = json.loads(res.read_text())
    if len(nbs) > 1:
        results["output"] = f"Graded {chosen.name} (of {len(nbs)} notebooks submitted).\n" + results["output"]
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
