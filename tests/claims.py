"""Run a lecture's claim sections in this process, so a test can break an idea and see its claim fail.

A lecture asserts its claims; a claim that cannot fail proves nothing. A break test monkeypatches one
idea inside coursekit (pytest's ``monkeypatch``), runs the lecture's cells up to the end of that claim's
section, and checks that the claim's own ``assert`` fails::

    def test_c3_needs_rescaling(monkeypatch):
        monkeypatch.setattr(F, "dropout", dropout_without_rescaling)
        assert_claim_fails("09_dropout", "C3")

Cells run in order from the top of the notebook: every cell outside a ``## C<k>.`` section (setup, glue)
and the cells of the sections named in ``needs`` and of ``claim`` itself; other claim sections are
skipped, so a break test costs only what its claim needs. Widget cells (``widgets.interact``) are
skipped (no kernel here). Matplotlib draws on the Agg backend and figures are closed after each cell.
"""
from __future__ import annotations

import os
import pathlib
import re
import traceback

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402

import coursekit  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
_SECTION = re.compile(r"^##\s+(C\d+)\b", re.M)
_WIDGET = re.compile(r"\bwidgets\.(?:interact|interactive)\b|\binteract\(")


def notebook(name: str) -> pathlib.Path:
    """``"09_dropout"`` or ``"lab04_selu"`` -> its path (lectures/ or labs/)."""
    for folder in ("lectures", "labs"):
        p = ROOT / folder / f"{name}.ipynb"
        if p.is_file():
            return p
    raise FileNotFoundError(f"no notebook named {name!r} under lectures/ or labs/")


def claim_cells(name: str, claim: str, needs: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """``(section, source)`` of the code cells to run for ``claim``, in notebook order; the cells after
    the end of ``claim``'s section are not included."""
    nb = nbformat.read(notebook(name), as_version=4)
    wanted = {claim, *needs}
    section, cells, seen = None, [], False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = _SECTION.search(cell.source)
            if m:
                section = m.group(1)
            elif cell.source.lstrip().startswith("## "):
                section = None                           # a non-claim section (glue, summary)
            if seen and section != claim:
                break
            seen = seen or section == claim
            continue
        if section is not None and section not in wanted:
            continue
        if _WIDGET.search(cell.source):
            continue
        cells.append((section, cell.source))
    if not seen:
        raise ValueError(f"{name}: no section '## {claim}.'")
    return cells


def run_claim(name: str, claim: str, needs: tuple[str, ...] = ()) -> dict:
    """Run the cells of :func:`claim_cells` in one namespace, with the notebook's folder as the working
    directory; returns the namespace. Restores coursekit's default backend afterwards."""
    ns: dict = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(notebook(name).parent)
    try:
        for k, (section, src) in enumerate(claim_cells(name, claim, needs)):
            code = compile(src, f"<{name} {section or 'setup'} cell {k}>", "exec")
            try:
                exec(code, ns)
            finally:
                plt.close("all")
    finally:
        os.chdir(cwd)
        coursekit.set_default_backend("numpy")
    return ns


def assert_claim_fails(name: str, claim: str, needs: tuple[str, ...] = ()) -> AssertionError:
    """Run :func:`run_claim` and check that it stops with an ``AssertionError`` raised by a cell of
    ``claim``'s own section (not by a setup cell or an earlier claim). Returns the error."""
    try:
        run_claim(name, claim, needs)
    except AssertionError as err:
        where = [f.filename for f in traceback.extract_tb(err.__traceback__)]
        cell = next((w for w in reversed(where) if w.startswith(f"<{name} ")), "")
        if f" {claim} cell " not in cell:
            raise AssertionError(f"{name}: the assert that failed is in {cell or where[-1]}, not in {claim}") from err
        return err
    raise AssertionError(f"{name} {claim}: the claim still holds with the idea broken")
