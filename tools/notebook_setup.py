#!/usr/bin/env python
"""Write the setup cell, the first code cell of every lecture and lab: install coursekit where it is
missing (Colab), then the one backend switch (NumPy by default, torch on CPU or on a GPU on request).

    python tools/notebook_setup.py            # insert or update the cell in lectures/*.ipynb and labs/*.ipynb
    python tools/notebook_setup.py --check    # exit 1 and name the notebooks whose cell is missing or old

The cell is guarded: where ``import coursekit`` works (your machine, Binder, JupyterHub, the book build)
it installs nothing and needs no network. Where it fails (Colab) it pip-installs the release of
coursekit that the book was built from: ``git+<repository.url of _config.yml>@v<version of
pyproject.toml>``, the tag of the book's release. ``COURSEKIT_PIP`` overrides what is installed (the
tests point it at a locally built wheel).

The cell is found by its id ``coursekit-setup`` and kept just before the first other code cell; the rest
of the notebook is untouched (cell ids kept). tests/test_notebooks.py checks that every notebook holds the
current cell: after changing this file, the version or the repository, re-run this tool.
"""
from __future__ import annotations

import argparse
import pathlib
import re
import sys
import tomllib

import nbformat
import yaml

from coursekit._io import atomic_path

ROOT = pathlib.Path(__file__).resolve().parents[1]
CELL_ID = "coursekit-setup"
TAGS = ["coursekit-setup", "hide-input"]   # hide-input: collapsed on the book's pages
BACKENDS = ("numpy", "torch", "cuda")

TEMPLATE = '''\
# Setup (written by tools/notebook_setup.py): on Colab, install coursekit; elsewhere this does nothing.
import os, subprocess, sys
try:
    import coursekit
except ImportError:  # pinned to the release of the book
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet",
                           os.environ.get("COURSEKIT_PIP", "coursekit @ {pin}")])
    import coursekit
# The one backend switch (see "Running the course"): "numpy" (default; the numbers in the text),
# "torch" (torch on the CPU) or "cuda" (torch on the GPU when there is one, e.g. Colab; else NumPy).
BACKEND = os.environ.get("COURSEKIT_BACKEND", "numpy")
if BACKEND not in {backends}:
    raise ValueError(f"BACKEND must be one of {backends}, got {{BACKEND!r}}")
if BACKEND == "torch" or (BACKEND == "cuda" and coursekit.backend.cuda_available()):
    coursekit.set_default_backend("torch", device="cuda" if BACKEND == "cuda" else "cpu")
    print("coursekit backend:", coursekit.get_default_backend())'''


def release_pin(root: pathlib.Path = ROOT) -> str:
    """``git+https://github.com/ORG/REPO@vX.Y.Z``: the repository of the book and the package's version."""
    version = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    url = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"].rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"notebook_setup: repository.url in _config.yml must be a GitHub URL, got {url!r}")
    return f"git+{url}@v{version}"


def setup_source(root: pathlib.Path = ROOT) -> str:
    return TEMPLATE.format(pin=release_pin(root), backends=BACKENDS)


def notebooks(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    out = []
    for folder in ("lectures", "labs"):
        base = root / folder
        out += sorted(p for p in base.rglob("*.ipynb")
                      if not {"release", ".ipynb_checkpoints"} & set(p.relative_to(base).parts))
    return out


def with_setup(nb, source: str):
    """``nb`` with its setup cell current and placed before every other code cell (in place; returned)."""
    cells = [c for c in nb.cells if c.get("id") != CELL_ID]
    old = [c for c in nb.cells if c.get("id") == CELL_ID]
    cell = old[0] if old else nbformat.v4.new_code_cell(id=CELL_ID)
    cell.source = source
    cell.outputs, cell.execution_count = [], None
    cell.metadata["tags"] = list(TAGS)
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    cells.insert(first_code, cell)
    nb.cells = cells
    return nb


def is_current(nb, source: str) -> bool:
    code = [c for c in nb.cells if c.cell_type == "code"]
    return bool(code) and code[0].get("id") == CELL_ID and code[0].source == source \
        and code[0].metadata.get("tags") == TAGS and sum(c.get("id") == CELL_ID for c in nb.cells) == 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="name the notebooks whose setup cell is not current")
    args = ap.parse_args(argv)
    source, stale = setup_source(), []
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        if is_current(nb, source):
            continue
        stale.append(path)
        if not args.check:
            nbformat.validate(with_setup(nb, source))
            with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
                nbformat.write(nb, f)
        print(f"notebook_setup: {'stale' if args.check else 'updated'} {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
