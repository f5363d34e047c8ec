"""A real headless browser (Chromium, driven by Playwright) for the checks that
need one: the page's own JavaScript polling the learner's status route.

Which browser is course/browser.py's answer. Where there is none, a check that
needs one is skipped with the reason (`not run: no browser ...`): it earns no
points and fails nothing, and the unit shows as not fully graded."""
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from course import browser as course_browser
from grader import feedback
from grader.feedback import LearnerFailure

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

# A folder: when set, the checks that open the page save what it shows there, as
# PNG files (`python3 -m course screenshots` makes the lessons' pictures this way).
SCREENSHOTS = "COURSE_SCREENSHOTS"
# The window the pictures are taken in: the page's card with a margin around it.
SCREENSHOT_VIEWPORT = {"width": 720, "height": 480}

_found = None


def screenshots_folder():
    """The folder COURSE_SCREENSHOTS names, or None when no screenshots are asked for."""
    folder = os.environ.get(SCREENSHOTS)
    return Path(folder) if folder else None


def save_screenshot(page, name):
    """Save what page shows as NAME.png in the screenshots folder, if one is asked for."""
    folder = screenshots_folder()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"))


def chromium():
    """The browser binary for this run (found, or obtained, once); skips the check, saying
    why, where there is none."""
    global _found
    if _found is None:
        _found = course_browser.find(tell=lambda line: print(f"course: {line}", file=sys.__stderr__, flush=True))
    binary, why = _found
    if not binary:
        pytest.skip(why)
    return binary


@contextmanager
def open_page(url):
    """Yield a Playwright page showing url, in a fresh headless Chromium profile. url may be
    a function that returns it: it is called once the browser runs, so what it waits for
    (a web app starting) and the browser's own start overlap."""
    feedback.require_marker("browser")
    binary = chromium()
    try:
        from playwright.sync_api import Error as PlaywrightError, sync_playwright
    except ImportError:
        raise LearnerFailure("This check needs the playwright package; run `python3 -m course test` once "
                             "to install the course's tools.") from None
    with sync_playwright() as playwright:
        with tempfile.TemporaryDirectory(prefix="course-browser-") as profile:
            try:
                window = {"viewport": SCREENSHOT_VIEWPORT} if screenshots_folder() else {}
                context = playwright.chromium.launch_persistent_context(
                    profile, executable_path=binary, headless=True, args=ARGS, **window)
            except PlaywrightError as error:  # the machine's browser, not the learner's page
                said = next((l.strip() for l in str(error).splitlines() if l.strip()), "")
                pytest.skip(f"{course_browser.NOT_RUN} that starts: {binary} did not start ({said[:160]}). "
                            f"{course_browser.install_hint()}")
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.goto(url() if callable(url) else url, wait_until="load", timeout=15000)
                yield page
            finally:
                context.close()
