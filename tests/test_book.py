"""Browser test of the built book (`make book` first): every page of the toc in headless Chromium, offline.

A local HTTP server serves ``_build/html`` on 127.0.0.1; every request to any other host is aborted and
recorded, so a page that needs a CDN (MathJax, require.js, the widget manager, fonts) fails. On each page:
no blocked request, no JavaScript error, MathJax typeset every formula (no raw ``$$``, no ``mjx-merror``),
lecture pages show at least one figure from the notebook outputs, and each saved widget view is rendered
exactly once. A full-page screenshot of every page goes to ``_build/screenshots/``.

Without ``_build/html`` the tests skip locally and FAIL when ``CI=true`` (CI builds the book first).
Chromium is Debian's ``/usr/bin/chromium`` (never ``playwright install``). This file is the only user of
Playwright: its sync API may be started once per process, so the fixtures live here.
"""
from __future__ import annotations

import functools
import importlib.util
import http.server
import os
import pathlib
import shutil
import threading
from urllib.parse import urlparse

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
            assert n_managers == 0, "the widget manager is loaded on a page without widgets (top-level _static/?)"

        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{docname.replace('/', '__')}.png"), full_page=True)
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
