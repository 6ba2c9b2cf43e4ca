#!/usr/bin/env python
"""Make the book's lab pages: the STUDENT notebook, carrying the figures of an executed solution.

The published book must not show lab solutions, yet a lab page without its figures and sliders
would be a poor page. So, for each solution notebook ``labs/labNN_*.ipynb``:

1. execute it (nbclient, widget state stored, as MyST-NB would);
2. apply the release transformation (:func:`coursekit.labs.release.strip_solutions`, cells tagged
   ``solution-only``/``hidden`` dropped);
3. drop the outputs of the exercise cells and of the self-check cells (a "passed" under
   ``raise NotImplementedError`` would mislead), keep every other output (figures, widgets);
4. write ``book/labs/<name>.ipynb`` with ``mystnb.execution_mode: off`` so the book does not run
   it again (it would raise ``NotImplementedError``). Its download button serves this file:
   exactly the student version.

    python tools/book_labs.py labs/lab01_activations.ipynb [...] --out book/labs

The Makefile rebuilds a page only when its solution notebook changed.
"""
from __future__ import annotations

import argparse
import pathlib
import re
import sys

import nbformat
from nbclient import NotebookClient

from coursekit._io import atomic_path
from coursekit.labs.release import EXERCISE_TAG, HIDDEN_TAGS, strip_solutions

_CHECK_CALL = re.compile(r"^\s*(?:\w+\s*=\s*)?check\(", re.M)


def book_page(src: pathlib.Path, *, timeout: int = 300) -> nbformat.NotebookNode:
    nb = nbformat.read(src, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(src.parent)}}).execute()
    cells = []
    for k, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if any(t in HIDDEN_TAGS for t in tags):
            continue
        if cell.cell_type == "code":
            cell.source, _ = strip_solutions(cell.source, where=f"cell {k} of {src.name}")
            if EXERCISE_TAG in tags or _CHECK_CALL.search(cell.source):
                cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
        cells.append(cell)
    nb.cells = cells
    nb.metadata["mystnb"] = {"execution_mode": "off"}
    nbformat.validate(nb)
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for src in args.notebooks:
        nb = book_page(src)
        with atomic_path(args.out / src.name) as tmp, open(tmp, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        print(f"book_labs: {src} -> {args.out / src.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
