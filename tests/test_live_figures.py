"""tools/live_figures.py: the grid of precomputed settings is bounded, holds each slider's default and
ends, and the HTML block carries one image per setting, the default one shown first."""
from __future__ import annotations

import base64
import importlib.util
import json
import math
import pathlib
import re

import pytest

ipywidgets = pytest.importorskip("ipywidgets")
plt = pytest.importorskip("matplotlib.pyplot")

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("live_figures", ROOT / "tools" / "live_figures.py")
live = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(live)


@pytest.mark.parametrize("sizes", [[30], [100], [4], [29, 16], [100, 100, 100], [41, 59, 61, 81], [2, 2, 2, 2, 2, 2]])
def test_grid_is_bounded_and_uses_the_budget(sizes):
    counts = live.grid_counts(sizes)
    assert math.prod(counts) <= live.MAX_FRAMES
    assert all(1 <= c <= n for c, n in zip(counts, sizes))
    # no slider could get one more value within the budget
    assert all(c == n or math.prod(counts) // c * (c + 1) > live.MAX_FRAMES for c, n in zip(counts, sizes))


@pytest.mark.parametrize("n,k,keep", [(29, 6, 8), (100, 5, 80), (51, 3, 40), (4, 30, 3), (10, 2, 0), (10, 2, 5)])
def test_subsample_keeps_default_and_ends(n, k, keep):
    idx = live._subsample(n, k, keep)
    assert keep in idx and len(idx) == min(n, k) and idx == sorted(set(idx))
    if k >= 3 or n <= k:
        assert idx[0] == 0 and idx[-1] == n - 1


def _data(block: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" class="ck-live-data">(.*?)</script>', block).group(1))


def test_live_html_one_frame_per_setting_default_first():
    calls = []

    def draw(a, b, c):
        calls.append((a, b, c))
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, a], [0, b])
        ax.set_title(c)
        plt.show()

    block = live.live_html(draw, {"a": ipywidgets.IntSlider(value=3, min=0, max=10),
                                  "b": ipywidgets.FloatLogSlider(value=1.0, base=10, min=-2, max=1, step=0.5),
                                  "c": ipywidgets.fixed("title")})
    data = _data(block)
    assert data["shape"] == [6, 5] and len(data["frames"]) == 30 == len(calls)
    assert len(set(data["frames"])) == 30, "different settings must draw different images"
    assert {a for a, _, _ in calls} >= {0, 3, 10} and {c for *_, c in calls} == {"title"}
    assert any(b == 1.0 for _, b, _ in calls) and min(b for _, b, _ in calls) == pytest.approx(0.01)
    shown = re.search(r'src="data:image/png;base64,([^"]+)"', block).group(1)
    a_index = data["labels"][0].index("3")
    b_index = data["labels"][1].index(format(1.0, ipywidgets.FloatLogSlider().readout_format))
    assert shown == data["frames"][a_index * 5 + b_index]
    assert base64.b64decode(shown)[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []


def test_install_replaces_interact_and_interactive_output(monkeypatch):
    shown = []
    monkeypatch.setattr(ipywidgets, "interact", ipywidgets.interact)
    monkeypatch.setattr(ipywidgets, "interactive_output", ipywidgets.interactive_output)
    monkeypatch.setattr(live, "_display", lambda fn, controls: shown.append((fn, controls)))
    live.install()

    def draw(p):
        plt.plot([0, p])

    assert ipywidgets.interact(draw, p=ipywidgets.FloatSlider(value=0.5, min=0, max=1)) is draw
    assert ipywidgets.interact(p=(0, 4))(draw) is draw                  # decorator form, abbreviation
    assert isinstance(shown[1][1]["p"], ipywidgets.IntSlider)
    slider = ipywidgets.SelectionSlider(options=[1, 2, 4], value=2)
    out = ipywidgets.interactive_output(draw, {"p": slider})
    assert slider.layout.display == "none" and "ck-live" in out.data
    assert _data(out.data)["labels"] == [["1", "2", "4"]]


def test_one_figure_per_setting():
    def two(p):
        plt.figure()
        plt.figure()

    with pytest.raises(ValueError, match="drew 2 figures"):
        live.live_html(two, {"p": ipywidgets.IntSlider(value=1, min=0, max=2)})
