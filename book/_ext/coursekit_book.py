"""Sphinx extension of the trainingtips book (loaded through ``sphinx.local_extensions`` in _config.yml).

1. Pages generated from a notebook with exercises (``book/labs/X``, ``book/lectures/X``, see
   tools/book_labs.py) are executed solutions with the solutions stripped; the file a student must open is
   the committed student version ``student/labs/X.ipynb``. So the page's launch buttons (Binder, Colab,
   JupyterHub) name that file, and its download button serves it (copied over ``_sources/<page>.ipynb``
   when the build finishes). Every other page keeps its own notebook.
2. ``live-figures.js`` (book/_static) drives the live figures that tools/live_figures.py precomputes.
"""
from __future__ import annotations

import shutil
from pathlib import Path

GENERATED = ("book/labs/", "book/lectures/")


def student_file(pagename: str) -> str | None:
    """``student/labs/X.ipynb`` for the generated page ``book/labs/X``; None for any other page."""
    if pagename.startswith(GENERATED):
        return f"student/{pagename.removeprefix('book/')}.ipynb"
    return None


def _point_launch_buttons(app, pagename, templatename, context, doctree):
    target = student_file(pagename)
    if target is None:
        return
    if not (Path(app.srcdir) / target).is_file():
        raise FileNotFoundError(f"coursekit_book: {pagename} has no student version {target}: run `make student`")
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = button["url"].replace(f"{pagename}.ipynb", target)


def _serve_student_downloads(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for pagename in app.env.found_docs:
        target = student_file(pagename)
        dest = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
        if target and dest.parent.is_dir():
            shutil.copyfile(Path(app.srcdir) / target, dest)


def setup(app):
    # sphinx-book-theme adds the launch buttons at priority 501: rewrite them after it.
    app.connect("html-page-context", _point_launch_buttons, priority=600)
    app.connect("build-finished", _serve_student_downloads)
    app.add_js_file("live-figures.js", loading_method="defer")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
