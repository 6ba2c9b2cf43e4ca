"""Browser test of the built book (`make book` first): every page of the toc in headless Chromium, offline.

A local HTTP server serves ``_build/html`` on 127.0.0.1; every request to any other host is aborted and
recorded, so a page that needs a CDN (MathJax, require.js, the widget manager, fonts) fails. On each page:
no blocked request, no JavaScript error, MathJax typeset every formula (no raw ``$$``, no ``mjx-merror``),
lecture pages show at least one figure from the notebook outputs, and each saved widget view is rendered
exactly once. A screenshot of every page goes to ``_build/screenshots/`` (the first screen; the whole
page with ``BOOK_FULL_SCREENSHOTS=1``, which costs a few seconds per page).

Live figures (tools/live_figures.py): every ``interact``/``interactive_output`` of a page's notebook is a
``.ck-live`` block; moving each of its sliders changes the image, offline. Launch links: every Binder, Colab
and JupyterHub button opens a file committed at HEAD (the student version for pages with exercises, whose
download button serves that same file).

Without ``_build/html`` the tests skip locally and FAIL when ``CI=true`` (CI builds the book first).
Chromium is Debian's ``/usr/bin/chromium`` (never ``playwright install``). This file is the only user of
Playwright: its sync API may be started once per process, so the fixtures live here.
"""
from __future__ import annotations

import functools
import html.parser
import importlib.util
import http.server
import os
import pathlib
import re
import shutil
import subprocess
import threading
from urllib.parse import parse_qs, urlparse

import nbformat

import pytest
import yaml

pytestmark = pytest.mark.browser

ROOT = pathlib.Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"
TIMEOUT_MS = 20_000
# Stock Jupyter Book 1.0.4 emits its thebe/togglebutton config twice on every page: harmless.
KNOWN_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)
VIEW_SCRIPT = 'script[type="application/vnd.jupyter.widget-view+json"]'


# The toc helpers live in tools/book_toc.py (not a package): load that file.
_spec = importlib.util.spec_from_file_location("book_toc", ROOT / "tools" / "book_toc.py")
book_toc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(book_toc)
PAGES = book_toc.docnames(yaml.safe_load((ROOT / "book" / "_toc.yml").read_text(encoding="utf-8")))


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: `make book` must run before the tests)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def base_url():
    if not (HTML / "index.html").is_file():
        _unavailable(f"{HTML} is missing: run `make book` first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="session")
def browser(base_url):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if not (shutil.which(CHROMIUM) or os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


FULL_SHOTS = os.environ.get("BOOK_FULL_SCREENSHOTS") == "1"


def _open_offline(browser, url):
    """Open ``url`` with every non-local request aborted; returns (page, blocked, errors)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    blocked, errors = [], []

    def route(r):
        u = urlparse(r.request.url)
        if u.scheme in ("file", "data", "blob") or u.hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: str(e) in KNOWN_ERRORS or errors.append(str(e)))
    page.on("response", lambda resp: resp.status >= 400 and errors.append(f"HTTP {resp.status} {resp.url}"))
    page.goto(url, wait_until="load")
    return page, blocked, errors


@pytest.mark.parametrize("docname", PAGES)
def test_page_offline(base_url, browser, docname):
    html_file = HTML / f"{docname}.html"
    if not html_file.is_file():
        _unavailable(f"{html_file.relative_to(ROOT)} was not built (partial toc?)")
    page, blocked, errors = _open_offline(browser, f"{base_url}/{docname}.html")
    try:
        page.wait_for_selector("main", timeout=TIMEOUT_MS)

        # Maths: every formula typeset by the bundled MathJax.
        n_math = page.locator("main .math").count()
        if n_math:
            page.wait_for_selector("mjx-container", state="attached", timeout=TIMEOUT_MS)
            page.wait_for_function("() => !!(window.MathJax && MathJax.startup && MathJax.startup.promise)",
                                   timeout=TIMEOUT_MS)
            page.evaluate("() => MathJax.startup.promise")
            assert page.locator("main .math mjx-container").count() >= n_math, "some formulas not typeset"
        text = page.inner_text("main")
        assert "$$" not in text, "raw $$ in the page: is dollarmath enabled in _config.yml?"
        assert page.locator("mjx-merror").count() == 0, "MathJax reported an error in a formula"

        # Figures: notebook output images present and decoded.
        if docname.startswith("lectures/"):
            imgs = page.locator(".cell_output img")
            assert imgs.count() >= 1, "a lecture page must show at least one figure"
            broken = page.evaluate(
                "() => [...document.querySelectorAll('.cell_output img')]"
                ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            assert broken == [], f"figures that did not load: {broken}"

        # Widgets: each saved view rendered exactly once (twice = the widget JS was loaded twice).
        n_views = page.locator(VIEW_SCRIPT).count()
        scripts = page.evaluate("() => [...document.scripts].map(s => s.src).filter(Boolean)")
        n_managers = sum(urlparse(s).path.endswith("/embed-amd.js") for s in scripts)
        if n_views:
            page.wait_for_function(
                f"() => document.querySelectorAll('.widget-subarea > .jupyter-widgets').length >= {n_views}",
                timeout=TIMEOUT_MS)
            page.wait_for_timeout(300)  # a second (duplicate) manager would render right after the first
            assert page.locator(".widget-subarea").count() == n_views
            assert page.locator(".widget-subarea > .jupyter-widgets").count() == n_views
            assert n_managers == 1, f"embed-amd.js loaded {n_managers} times"
        else:
            # saved widget state without views (sliders replaced by live figures): MyST-NB still loads it once
            has_state = page.locator('script[type="application/vnd.jupyter.widget-state+json"]').count() > 0
            assert n_managers == int(has_state), (
                f"embed-amd.js loaded {n_managers} times (top-level _static/?)")

        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{docname.replace('/', '__')}.png"), full_page=FULL_SHOTS)
        assert blocked == [], f"requests that needed the network: {blocked}"
        assert errors == [], f"JavaScript/HTTP errors: {errors}"
    finally:
        page.close()


def test_assets_are_local():
    """The offline assets exist in the build, and the toc's pages were all built (full toc in CI)."""
    if not (HTML / "index.html").is_file():
        _unavailable(f"{HTML} is missing: run `make book` first")
    static = HTML / "_static"
    for rel in ("mathjax/tex-chtml.js", "widgets/require.js", "widgets/html-manager/embed-amd.js", "offline-shim.js"):
        assert (static / rel).is_file(), f"_build/html/_static/{rel} missing"
    if IN_CI:
        missing = [d for d in PAGES if not (HTML / f"{d}.html").is_file()]
        assert not missing, f"pages of book/_toc.yml not built: {missing}"


# ------------------------------------------------------------------------------ live figures
def _n_widgets(docname: str) -> int:
    """How many slider figures the page's notebook makes: ``interact(`` and ``interactive_output(`` calls."""
    source = book_toc.source_of(docname, ROOT)
    if source is None or source.suffix != ".ipynb":
        return 0
    code = "\n".join(c.source for c in nbformat.read(source, as_version=4).cells if c.cell_type == "code")
    return len(re.findall(r"\b(?:interact|interactive_output)\(", code))


LIVE_PAGES = [d for d in PAGES if _n_widgets(d)]


def test_live_pages_found():
    assert len(LIVE_PAGES) >= 5, LIVE_PAGES


@pytest.mark.parametrize("docname", LIVE_PAGES)
def test_live_figures_follow_the_sliders(base_url, browser, docname):
    """Every widget is live: moving each slider shows another precomputed image, offline."""
    if not (HTML / f"{docname}.html").is_file():
        _unavailable(f"{docname}.html was not built (partial toc?)")
    page, blocked, errors = _open_offline(browser, f"{base_url}/{docname}.html")
    try:
        blocks = page.locator(".ck-live")
        assert blocks.count() == _n_widgets(docname), "every interact/interactive_output must become live"
        for b in range(blocks.count()):
            block = blocks.nth(b)
            img = block.locator("img.ck-live-img")
            assert int(block.get_attribute("data-frames")) <= 30
            sliders = block.locator("input.ck-live-slider")
            assert sliders.count() >= 1
            for k in range(sliders.count()):
                slider = sliders.nth(k)
                start_src, start_value = img.get_attribute("src"), slider.input_value()
                readout = slider.locator("xpath=following-sibling::output")
                start_text = readout.inner_text()
                key = "Home" if int(start_value) == int(slider.get_attribute("max")) else "End"
                slider.focus()
                slider.press(key)                                       # the student drags it to one end
                assert slider.input_value() != start_value
                assert img.get_attribute("src") != start_src, f"block {b}, slider {k}: the image did not change"
                assert readout.inner_text() != start_text
                assert page.evaluate("i => i.complete && i.naturalWidth > 0", img.element_handle())
                slider.fill(start_value)                                 # and back: the build's own figure
                assert img.get_attribute("src") == start_src
        SHOTS.mkdir(parents=True, exist_ok=True)
        blocks.first.screenshot(path=str(SHOTS / f"live__{docname.replace('/', '__')}.png"))
        assert blocked == [], f"requests that needed the network: {blocked}"
        assert errors == [], f"JavaScript/HTTP errors: {errors}"
    finally:
        page.close()


# ------------------------------------------------------------------------------ launch links
class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def _repo_path(url: str) -> str | None:
    """The repository path a launch URL opens (Binder, Colab, JupyterHub/nbgitpuller), else None."""
    u = urlparse(url)
    query = parse_qs(u.query)
    if u.hostname == "mybinder.org":
        return query["urlpath"][0].removeprefix("lab/tree/")
    if u.hostname == "colab.research.google.com":
        return re.sub(r"^/github/[^/]+/[^/]+/blob/[^/]+/", "", u.path)
    if u.path.endswith("/hub/user-redirect/git-pull"):
        repo = query["repo"][0].rstrip("/").split("/")[-1]
        return query["urlpath"][0].removeprefix("lab/tree/").removeprefix(f"{repo}/")
    return None


def _committed(path: str) -> bool:
    return subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"HEAD:{path}"],
                          capture_output=True).returncode == 0


def test_launch_links_open_committed_files():
    """Every launch button of every built page opens a file that exists in the repository at HEAD;
    pages made from a notebook with exercises open (and download) the committed student version."""
    if not (HTML / "index.html").is_file():
        _unavailable(f"{HTML} is missing: run `make book` first")
    checked = 0
    for docname in PAGES:
        page = HTML / f"{docname}.html"
        if not page.is_file() or book_toc.source_of(docname, ROOT).suffix != ".ipynb":
            continue
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        paths = [p for p in map(_repo_path, parser.hrefs) if p is not None]
        assert len(paths) == 3, f"{docname}: expected Binder, Colab and JupyterHub links, got {paths}"
        generated = docname.startswith(book_toc.GENERATED)
        expected = f"student/{docname.removeprefix('book/')}.ipynb" if generated else f"{docname}.ipynb"
        for path in paths:
            assert path == expected, f"{docname}: a launch link opens {path}, expected {expected}"
            assert (ROOT / path).is_file() and _committed(path), f"{docname}: {path} is not committed at HEAD"
            checked += 1
        if generated:
            download = HTML / "_sources" / f"{docname}.ipynb"
            assert download.read_bytes() == (ROOT / expected).read_bytes(), f"{docname}: download is not {expected}"
    assert checked >= 3, "no launch link found"
