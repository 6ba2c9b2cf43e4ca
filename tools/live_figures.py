"""Live figures in the static book: every slider figure is precomputed on a bounded grid at build time.

The book is static (no kernel), so a slider alone cannot redraw its figure. During ``make book`` every
notebook kernel runs :func:`install` first (the Makefile points ``IPYTHONDIR`` at a profile whose
startup file calls it; notebooks are unchanged and run as usual anywhere else). It replaces

* ``ipywidgets.interact(fn, name=Slider(...), ...)`` and
* ``ipywidgets.interactive_output(fn, {"name": slider, ...})``

by versions that draw ``fn``'s figure for every setting of a grid over the sliders (at most
:data:`MAX_FRAMES` settings per widget: each slider keeps its default, its ends and evenly spaced values
between, the product of the counts bounded) and display one HTML block: a native range input per
slider (its positions are the grid's values), the image of the current setting, and the other images as
JSON. ``book/_static/live-figures.js`` swaps the image when a slider moves: no kernel, no network.
The original sliders of an ``interactive_output`` are hidden (``layout.display = "none"``).
"""
from __future__ import annotations

import base64
import contextlib
import html
import io
import itertools
import json
import math

MAX_FRAMES = 30


def _positions(widget) -> tuple[list, list[str], int] | None:
    """(values, labels, index of the current value) of a slider-like widget, or None (not a control)."""
    if hasattr(widget, "options") and hasattr(widget, "index"):        # SelectionSlider, Dropdown, ...
        labels = [str(x) for x in widget._options_labels]
        return list(widget._options_values), labels, widget.index
    if all(hasattr(widget, a) for a in ("min", "max", "step", "value")):
        lo, hi, step = widget.min, widget.max, widget.step
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1
        decimals = max(0, -math.floor(math.log10(step))) + 2 if step < 1 else 0
        raw = [round(lo + i * step, decimals) for i in range(n)]
        if isinstance(widget.value, int) and not isinstance(widget.value, bool):
            raw = [int(v) for v in raw]
        base = getattr(widget, "base", None)                                 # FloatLogSlider: exponents
        current = math.log(widget.value, base) if base else widget.value
        index = min(range(n), key=lambda i: abs(raw[i] - current))
        values = [base ** v for v in raw] if base else raw
        values[index] = widget.value
        fmt = getattr(widget, "readout_format", ".3g") or ".3g"
        labels = [format(v, fmt) if not isinstance(v, int) else str(v) for v in values]
        return values, labels, index
    if isinstance(getattr(widget, "value", None), bool):                   # Checkbox, ToggleButton
        return [False, True], ["off", "on"], int(widget.value)
    return None


def _subsample(n: int, k: int, keep: int) -> list[int]:
    """``k`` indices of ``range(n)``, evenly spread, both ends and ``keep`` included."""
    if k >= n:
        return list(range(n))
    picks = sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [keep]
    if keep not in picks:
        picks[min(range(len(picks)), key=lambda j: (picks[j] in (0, n - 1) and len(picks) > 2, abs(picks[j] - keep)))] = keep
    return sorted(set(picks))


def grid_counts(sizes: list[int], budget: int = MAX_FRAMES) -> list[int]:
    """How many values each slider gets: the fewest first, the product at most ``budget``."""
    counts = [1] * len(sizes)
    while True:
        open_ = [d for d in range(len(sizes)) if counts[d] < sizes[d]
                 and math.prod(counts) // counts[d] * (counts[d] + 1) <= budget]
        if not open_:
            return counts
        d = min(open_, key=lambda d: (counts[d], d))
        counts[d] += 1


def _png(fig) -> str:
    """The figure as a base64 PNG with a 256-colour palette: line plots look the same at ~1/4 of the bytes."""
    from PIL import Image    # Pillow: a dependency of matplotlib
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    image = Image.open(io.BytesIO(buf.getvalue())).quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _draw(fn, kwargs) -> str:
    """Call ``fn(**kwargs)`` with ``plt.show`` silenced; the PNG (base64) of the figure it drew."""
    import matplotlib.pyplot as plt
    plt.close("all")
    show = plt.show
    plt.show = lambda *a, **k: None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            result = fn(**kwargs)
        figs = [plt.figure(n) for n in plt.get_fignums()]
        if not figs and hasattr(result, "savefig"):
            figs = [result]
        if len(figs) != 1:
            raise ValueError(f"live_figures: {getattr(fn, '__name__', fn)} drew {len(figs)} figures, expected 1")
        return _png(figs[0])
    finally:
        plt.show = show
        plt.close("all")


def live_html(fn, controls: dict) -> str:
    """The HTML block of a live figure: ``controls`` maps ``fn``'s keyword names to widgets or fixed values."""
    names, grids, fixed = [], [], {}
    for name, widget in controls.items():
        pos = _positions(widget)
        if pos is None:
            fixed[name] = getattr(widget, "value", widget)
        else:
            names.append(name)
            grids.append((widget, *pos))
    counts = grid_counts([len(g[1]) for g in grids])
    axes = []   # per slider: (values, labels, index of the default)
    for (widget, values, labels, index), k in zip(grids, counts):
        idx = _subsample(len(values), k, index)
        axes.append(([values[i] for i in idx], [labels[i] for i in idx], idx.index(index)))
    frames = []
    for setting in itertools.product(*[range(len(a[0])) for a in axes]):
        kwargs = dict(fixed, **{n: a[0][i] for n, a, i in zip(names, axes, setting)})
        frames.append(_draw(fn, kwargs))
    start = 0
    for a in axes:
        start = start * len(a[0]) + a[2]
    rows = []
    for (widget, *_), name, (values, labels, default) in zip(grids, names, axes):
        label = html.escape(getattr(widget, "description", "") or name)
        rows.append(
            f'<label class="ck-live-control" style="display:inline-block;margin-right:1.5em">{label} '
            f'<input type="range" class="ck-live-slider" style="vertical-align:middle" '
            f'min="0" max="{len(values) - 1}" step="1" value="{default}" data-name="{html.escape(name)}" '
            f'aria-label="{label}"> <output style="display:inline-block;min-width:3.5em">'
            f'{html.escape(labels[default])}</output></label>')
    data = json.dumps({"shape": [len(a[0]) for a in axes], "labels": [a[1] for a in axes], "frames": frames})
    title = html.escape(getattr(fn, "__name__", "figure"))
    return (f'<div class="ck-live" data-frames="{len(frames)}">'
            f'<div class="ck-live-controls">{"".join(rows)}</div>'
            f'<img class="ck-live-img" alt="{title}" src="data:image/png;base64,{frames[start]}">'
            f'<script type="application/json" class="ck-live-data">{data}</script></div>')


def _display(fn, controls):
    from IPython.display import HTML, display
    display(HTML(live_html(fn, controls)))


def install() -> None:
    """Replace ``ipywidgets.interact`` and ``ipywidgets.interactive_output`` in this kernel."""
    import ipywidgets

    def widget_from(abbrev):
        if isinstance(abbrev, ipywidgets.Widget) or isinstance(abbrev, ipywidgets.fixed):
            return abbrev
        return ipywidgets.interactive.widget_from_abbrev(abbrev) or abbrev

    def interact(fn=None, **kwargs):
        if fn is None:                       # @interact(x=...) used as a decorator
            return lambda f: interact(f, **kwargs)
        _display(fn, {k: widget_from(v) for k, v in kwargs.items()})
        return fn

    def interactive_output(fn, controls):
        for widget in controls.values():
            if isinstance(widget, ipywidgets.DOMWidget):
                widget.layout.display = "none"
        from IPython.display import HTML
        return HTML(live_html(fn, controls))

    ipywidgets.interact = interact
    ipywidgets.interactive_output = interactive_output
