"""A real headless browser (Chromium, driven by Playwright) for the checks that
need one: the page's own JavaScript polling the learner's status route.

Which browser is course/browser.py's answer. Where there is none, a check that
needs one is skipped with the reason (`not run: no browser ...`): it earns no
points and fails nothing, and the unit shows as not fully graded."""
import atexit
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from course import browser as course_browser
from grader import feedback, processes
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


class _Kept:
    """The browser every check in this process opens its pages in: started once, and kept
    up between the gradings of a warm run (course/warm.py), so that neither Playwright's
    driver nor Chromium starts again for each one. Each check has a context of its own
    (its own cookies, storage and cache), closed after it."""
    manager = browser = None
    driver = frozenset()    # Playwright's driver process: Chromium runs below it
    handlers = frozenset()  # Chromium's crash handlers, which detach from it


def _browser(binary):
    if _Kept.browser is not None and _Kept.browser.is_connected():
        return _Kept.browser
    close()
    try:
        from playwright.sync_api import Error as PlaywrightError, sync_playwright
    except ImportError:
        raise LearnerFailure("This check needs the playwright package; run `python3 -m course test` once "
                             "to install the course's tools.") from None
    before = processes.children()
    _Kept.manager = sync_playwright()
    playwright = _Kept.manager.start()
    _Kept.driver = frozenset(pid for pid in processes.children() - before if "run-driver" in processes.command_line(pid))
    try:
        _Kept.browser = playwright.chromium.launch(executable_path=binary, headless=True, args=ARGS)
    except PlaywrightError as error:  # the machine's browser, not the learner's page
        close()
        said = next((l.strip() for l in str(error).splitlines() if l.strip()), "")
        pytest.skip(f"{course_browser.NOT_RUN} that starts: {binary} did not start ({said[:160]}). "
                    f"{course_browser.install_hint()}")
    _Kept.handlers = frozenset(_adopt_crash_handlers(before | _Kept.driver))
    return _Kept.browser


def _adopt_crash_handlers(before):
    """Chromium starts its crash handlers detached, so on Linux they come to this process
    as orphans, which the leak check would blame on the learner's code (it ran alongside).
    Those that appeared while the browser started are the grader's own."""
    with processes.spawn_lock:
        found = {pid for pid in processes.children() - before - processes.SPAWNED
                 if Path(processes.command_line(pid).split(" ", 1)[0]).name == "chrome_crashpad_handler"}
        processes.SPAWNED.update(found)
    return found


def close():
    """Stop the kept browser and its driver, if they run."""
    manager, _Kept.manager, _Kept.browser = _Kept.manager, None, None
    _Kept.driver = _Kept.handlers = frozenset()
    if manager is not None:
        try:
            manager.__exit__(None, None, None)
        except Exception:  # a driver that died already: nothing left to stop
            pass


atexit.register(close)  # before the grader's last sweep: Chromium stops as it should


def kept_processes():
    """The pids of the kept browser (its driver and everything below it), to be spared
    when a warm run sweeps up after a grading."""
    kept = _Kept.driver | _Kept.handlers
    return processes.descendants(kept) if kept else set()


@contextmanager
def open_page(url):
    """Yield a Playwright page showing url, in a fresh browser context. url may be
    a function that returns it: it is called once the browser runs, so what it waits for
    (a web app starting) and the browser's own start overlap."""
    feedback.require_marker("browser")
    browser = _browser(chromium())
    context = browser.new_context(**({"viewport": SCREENSHOT_VIEWPORT} if screenshots_folder() else {}))
    try:
        page = context.new_page()
        page.goto(url() if callable(url) else url, wait_until="load", timeout=15000)
        yield page
    finally:
        context.close()
