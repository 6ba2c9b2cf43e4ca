#!/usr/bin/env python
"""Make the book page of a notebook with exercises (a lab, or a lecture with exercises): the executed
SOLUTION notebook, then stripped to the student version, figures kept.

The published book must not show solutions, yet a page without its figures and sliders would be a poor
page. So, for each solution notebook ``labs/labNN_*.ipynb`` or ``lectures/NN_*.ipynb`` with exercises:

1. execute it (nbclient, widget state stored, as MyST-NB would);
2. :func:`coursekit.labs.release.student_cells` with ``keep_outputs=True``: the same cell processing as
   ``coursekit release`` (hidden cells dropped, solution blocks replaced), keeping every output except
   those of the exercise and self-check cells;
3. write ``book/<folder>/<name>.ipynb`` with ``mystnb.execution_mode: off`` so the book does not run it
   again (it would raise ``NotImplementedError``).

The page's launch and download buttons point at the committed student version
``student/<folder>/<name>.ipynb`` (book/_ext/student_links.py), not at this generated file.

    python tools/book_labs.py labs/lab01_activations.ipynb [...] --out book/labs

The Makefile rebuilds a page only when its solution notebook changed.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import nbformat
from nbclient import NotebookClient

from coursekit._io import atomic_path
from coursekit.labs.release import student_cells


def book_page(src: pathlib.Path, *, timeout: int = 300) -> nbformat.NotebookNode:
    nb = nbformat.read(src, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(src.parent)}}).execute()
    nb.cells = student_cells(nb, name=src.name, keep_outputs=True)
    nb.metadata["mystnb"] = {"execution_mode": "off"}
    nbformat.validate(nb)
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    args = ap.parse_args(argv)
    for src in args.notebooks:
        nb = book_page(src)
        with atomic_path(args.out / src.name) as tmp, open(tmp, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        print(f"book_labs: {src} -> {args.out / src.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
