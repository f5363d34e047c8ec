"""A real headless browser (Chromium, driven by Playwright) for the checks that
need one: the page's own JavaScript polling the learner's status route."""
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from grader.feedback import LearnerFailure

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NO_BROWSER = (
    "This check opens the page in a real browser, and none was found. Install Chromium "
    "(`sudo apt-get install chromium`, or `.venv/bin/python -m playwright install chromium`), "
    "or set CHROMIUM_PATH to a Chromium or Chrome binary, then grade again."
)


def find_chromium(playwright):
    """The browser binary: $CHROMIUM_PATH, one on PATH, or Playwright's own download."""
    named = os.environ.get("CHROMIUM_PATH")
    if named:
        return named if Path(named).is_file() else None
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    try:
        own = playwright.chromium.executable_path
    except Exception:
        return None
    return own if own and Path(own).is_file() else None


@contextmanager
def open_page(url):
    """Yield a Playwright page showing url, in a fresh headless Chromium profile. url may be
    a function that returns it: it is called once the browser runs, so what it waits for
    (a web app starting) and the browser's own start overlap."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise LearnerFailure("This check needs the playwright package; run `python3 -m course test` once "
                             "to install the course's tools.") from None
    with sync_playwright() as playwright:
        binary = find_chromium(playwright)
        if not binary:
            raise LearnerFailure(NO_BROWSER)
        with tempfile.TemporaryDirectory(prefix="course-browser-") as profile:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=binary, headless=True, args=ARGS)
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.goto(url() if callable(url) else url, wait_until="load", timeout=15000)
                yield page
            finally:
                context.close()
