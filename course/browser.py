"""The browser for the checks that open the page (unit 05's): one already on this
machine, a headless shell first (Chromium without a window: Playwright's own choice
for headless work, and half the CPU of a whole browser per page check), else
Playwright's own headless Chromium, downloaded once into .course/browsers/. Where none can be had, the checks that need one are not run
(never passed, never failed), and `why` says what would fix it.

Settings: CHROMIUM_PATH names a Chromium or Chrome binary; COURSE_BROWSER=none
hides every browser (to see what grading does without one); COURSE_BROWSER=install
lets the course install Debian's chromium-headless-shell where it runs as root
on Debian, also beside a whole Chromium it found (CI does the same when its CI
variable is set).

Standard library only: the course command asks before it starts pytest, and hands
the answer down (BROWSER_FOUND / BROWSER_MISSING), so its pytest runs agree and
no download is tried twice.
"""
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from course import ROOT

SETTING = "COURSE_BROWSER"
BROWSER_FOUND = "COURSE_BROWSER_FOUND"      # for child processes: the binary to use
BROWSER_MISSING = "COURSE_BROWSER_MISSING"  # ... or why there is none
NOT_RUN = "not run: no browser"
OWN = ROOT / ".course" / "browsers"         # PLAYWRIGHT_BROWSERS_PATH for the course's own download
SHELL_NAMES = ("chromium-headless-shell", "chrome-headless-shell")  # Debian's; Chrome for Testing's
SHELL_PACKAGE = "chromium-headless-shell"  # Debian's package of it; older releases have only "chromium"
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "microsoft-edge")
MAC_APPS = ("Google Chrome.app/Contents/MacOS/Google Chrome", "Chromium.app/Contents/MacOS/Chromium",
            "Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
            "Microsoft Edge.app/Contents/MacOS/Microsoft Edge")
# Playwright's folders of browsers: the course's own, and the user's (a `playwright install` done before).
PLAYWRIGHT_CACHES = (OWN, Path.home() / ".cache" / "ms-playwright", Path.home() / "Library" / "Caches" / "ms-playwright")
# Inside one of those: the headless shell or a whole Chromium, as Playwright lays them out.
PLAYWRIGHT_SHELLS = ("chromium_headless_shell-*/*/chrome-headless-shell", "chromium_headless_shell-*/*/headless_shell")
PLAYWRIGHT_BINARIES = ("chromium-*/chrome-linux*/chrome", "chromium-*/*/Chromium.app/Contents/MacOS/Chromium",
                       "chromium-*/*/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing")
# A download that failed is not tried again for this long (each grading would wait on it).
RETRY_AFTER = 3600
PROBE_SECONDS = 10
DOWNLOAD_SECONDS = 900
APT_SECONDS = 900


def say(text):
    print(f"course: {text}", file=sys.stderr, flush=True)


def hidden():
    return os.environ.get(SETTING, "").strip().lower() == "none"


def find(obtain=True, tell=say):
    """(binary, None) or (None, why there is none: one line, with the command that fixes it).
    obtain: download Playwright's Chromium (or install the distribution's, where allowed)
    when the machine has none; tell(line) says what is being done."""
    if hidden():
        return None, f"{NOT_RUN}: {SETTING}=none hides every browser (unset it to grade the page in a browser)."
    handed = os.environ.get(BROWSER_FOUND)
    if handed and Path(handed).is_file():
        return handed, None
    if os.environ.get(BROWSER_MISSING):
        return None, os.environ[BROWSER_MISSING]
    named = os.environ.get("CHROMIUM_PATH")
    if named:
        if Path(named).is_file():
            return named, None
        return None, f"{NOT_RUN}: CHROMIUM_PATH names {named}, which is not a file. {install_hint()}"
    found = on_this_machine()
    if found and obtain and not is_headless_shell(found) and may_install_package():
        shell, _ = install_package(tell, packages=(SHELL_PACKAGE,))  # lighter to grade with
        found = shell or found
    if found or not obtain:
        return found, None if found else f"{NOT_RUN} on this machine. {install_hint()}"
    found, problem = download(tell)
    if not found and may_install_package():
        found, problem = install_package(tell)
    return (found, None) if found else (None, f"{NOT_RUN}: {problem} {install_hint()}")


def prepare(tell=say):
    """Find (or obtain) the browser once for this command and hand the answer to the
    pytest runs it starts. Says once, plainly, when there is none. Returns the binary or None."""
    binary, why = find(tell=tell)
    if binary:
        os.environ[BROWSER_FOUND] = binary
        os.environ.pop(BROWSER_MISSING, None)
    elif os.environ.get(BROWSER_MISSING) != why:  # said once per command, not at every grading of `watch`
        os.environ[BROWSER_MISSING] = why
        tell(f"the checks that open the page in a browser will be skipped, not graded: {why.removeprefix(NOT_RUN + ': ')}")
    return binary


def on_this_machine():
    """A Chromium or Chrome already here: a headless shell on PATH or from Playwright,
    else a whole browser on PATH, in the usual macOS places, or from Playwright. None
    if there is none."""
    return _installed(SHELL_NAMES, PLAYWRIGHT_SHELLS) or _installed(NAMES, PLAYWRIGHT_BINARIES, MAC_APPS)


def is_headless_shell(binary):
    return "headless" in Path(binary).name


def _installed(names, playwright_patterns, mac_apps=()):
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    if sys.platform == "darwin":
        for folder in (Path("/Applications"), Path.home() / "Applications"):
            for app in mac_apps:
                if (folder / app).is_file():
                    return str(folder / app)
    for cache in PLAYWRIGHT_CACHES:
        for pattern in playwright_patterns:
            for path in sorted(cache.glob(pattern), reverse=True):  # the newest revision first
                if path.is_file() and os.access(path, os.X_OK):
                    return str(path)
    return None


# ---------------------------------------------------------------- Playwright's download

def _failure_note():
    return OWN / "download-failed.json"


def _playwright_version():
    try:
        from importlib.metadata import version

        return version("playwright")
    except Exception:
        return ""


def _remembered_failure():
    try:
        note = json.loads(_failure_note().read_text())
    except (OSError, ValueError):
        return None
    fresh = time.time() - note.get("at", 0) < RETRY_AFTER and note.get("playwright") == _playwright_version()
    return note.get("why") if fresh else None


def _remember_failure(why):
    OWN.mkdir(parents=True, exist_ok=True)
    _failure_note().write_text(json.dumps({"at": time.time(), "playwright": _playwright_version(), "why": why}))


@contextlib.contextmanager
def _lock():
    """One download at a time: the pytest runs of one grading may all need the browser at once."""
    OWN.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(OWN / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _playwright(*args, timeout):
    env = dict(os.environ, PLAYWRIGHT_BROWSERS_PATH=str(OWN))
    return subprocess.run([sys.executable, "-m", "playwright", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _what_to_download():
    """(title, url) of Playwright's headless Chromium for this machine, from Playwright itself."""
    done = _playwright("install", "--dry-run", "chromium-headless-shell", timeout=60)
    title = next((line.strip() for line in done.stdout.splitlines() if line.strip() and not line.startswith(" ")), "")
    url = re.search(r"Download url:\s*(\S+)", done.stdout)
    if done.returncode or not url:
        raise OSError((done.stderr or done.stdout).strip().splitlines()[-1:] or ["playwright gave no download address"])
    return re.sub(r"\s*\(playwright.*\)$", "", title) or "Chromium", url.group(1)


def _size(url):
    """The download's size in bytes (0 if the server does not say); raises OSError, at once
    or within PROBE_SECONDS, where it cannot be reached."""
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=PROBE_SECONDS) as response:
        return int(response.headers.get("Content-Length") or 0)


def download(tell=say):
    """Playwright's headless Chromium in .course/browsers/, downloaded if it is not there yet:
    (binary, None) or (None, why not). A server that cannot be reached is found out in
    seconds, before Playwright's own retries, and remembered for an hour."""
    if importlib_missing("playwright"):
        return None, "the playwright package is not installed, so its Chromium cannot be downloaded."
    with _lock():
        found = _own_binary()
        if found:
            return found, None
        remembered = _remembered_failure()
        if remembered:
            return None, remembered
        try:
            title, url = _what_to_download()
            host = urllib.parse.urlsplit(url).hostname
            try:
                size = _size(url)
            except (OSError, urllib.error.URLError) as error:
                reason = getattr(error, "reason", error)
                raise OSError(f"{host} cannot be reached from here ({reason})") from None
            where = OWN.relative_to(ROOT) if OWN.is_relative_to(ROOT) else OWN
            tell(f"downloading Playwright's {title} ({size / 1e6:.0f} MB, once) into {where}/ ..."
                 if size else f"downloading Playwright's {title} (once) into {where}/ ...")
            started = time.monotonic()
            done = _playwright("install", "chromium-headless-shell", "--no-progress", timeout=DOWNLOAD_SECONDS)
            if done.returncode:
                lines = [l.strip() for l in (done.stderr + done.stdout).splitlines() if l.strip().startswith("Error")]
                raise OSError(lines[0] if lines else f"playwright install exited with code {done.returncode}")
        except subprocess.TimeoutExpired:
            why = "downloading Playwright's Chromium took too long and was stopped."
            _remember_failure(why)
            return None, why
        except OSError as error:
            why = f"Playwright's Chromium could not be downloaded: {error}."
            _remember_failure(why)
            tell(why)
            return None, why
        found = _own_binary()
        if not found:
            return None, "Playwright said its Chromium is installed, but no browser binary is in its folder."
        _failure_note().unlink(missing_ok=True)
        tell(f"downloaded in {time.monotonic() - started:.0f} s: {found}")
        return found, None


def _own_binary():
    for pattern in PLAYWRIGHT_SHELLS + PLAYWRIGHT_BINARIES:
        for path in sorted(OWN.glob(pattern), reverse=True):
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return None


def importlib_missing(name):
    import importlib.util

    return importlib.util.find_spec(name) is None


# ---------------------------------------------------------------- the distribution's package

def _os_release():
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return {}
    return dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', text, re.M))


def _opted_in():
    """Installing system packages is asked for: COURSE_BROWSER=install, or a CI run."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return os.environ.get(SETTING, "").strip().lower() == "install" or ci


def may_install_package():
    """Whether the course may install Debian's chromium itself: asked for (COURSE_BROWSER=install
    or CI), as root, with apt-get, on Debian (Ubuntu's chromium package is a shim for a snap)."""
    return (sys.platform.startswith("linux") and _opted_in() and hasattr(os, "geteuid") and os.geteuid() == 0
            and shutil.which("apt-get") is not None and _os_release().get("ID") == "debian")


def install_package(tell=say, packages=(SHELL_PACKAGE, "chromium")):
    """apt-get install the first of `packages` Debian has: (binary, None) or (None, why not)."""
    asked = "CI is set" if os.environ.get(SETTING, "").strip().lower() != "install" else f"{SETTING}=install"
    tell(f"installing Debian's {packages[0]} package with apt-get ({asked} and this runs as root) ...")
    started = time.monotonic()
    env, package = dict(os.environ, DEBIAN_FRONTEND="noninteractive"), packages[0]
    try:
        update = subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True,
                                timeout=APT_SECONDS, stdin=subprocess.DEVNULL)
        for package in packages:
            done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", package], env=env,
                                  capture_output=True, text=True, timeout=APT_SECONDS, stdin=subprocess.DEVNULL)
            found = shutil.which(package)
            if not done.returncode and found:
                break
    except subprocess.TimeoutExpired:
        return None, f"apt-get install {package} took too long and was stopped."
    if done.returncode or not found:
        lines = [l for l in (done.stderr + update.stderr).splitlines() if l.startswith("E:")]
        return None, f"apt-get install {package} failed ({lines[0] if lines else f'exit code {done.returncode}'})."
    size = re.search(r"Need to get ([\d.,]+ \w?B)", done.stdout)
    tell(f"installed {found} in {time.monotonic() - started:.0f} s" + (f" ({size.group(1)} downloaded)" if size else ""))
    return found, None


# ---------------------------------------------------------------- what fixes it

def install_command():
    """The command that installs a Chromium or Chrome on this machine."""
    if sys.platform == "darwin":
        return "brew install --cask google-chrome"
    system = _os_release()
    ids = {system.get("ID", "")} | set(system.get("ID_LIKE", "").split())
    if "ubuntu" in ids:
        return "sudo snap install chromium"
    managers = (("apt-get", "sudo apt-get install chromium"), ("dnf", "sudo dnf install chromium"),
                ("apk", "sudo apk add chromium"), ("pacman", "sudo pacman -S chromium"),
                ("zypper", "sudo zypper install chromium"))
    for tool, command in managers:
        if shutil.which(tool):
            return command
    return "sudo apt-get install chromium"


def install_hint():
    return (f"Install Chromium (`{install_command()}`) or set CHROMIUM_PATH to a Chromium or Chrome binary, "
            "then grade again.")
