"""Set up the course's virtual environment on first use (standard library only).

`python3 -m course ...` runs here first: it makes .venv beside the course,
installs requirements-course.txt into it (again only when a requirements file
changed), and re-runs the same command with .venv's Python. That is the
whole set-up: Python 3.11+ and nothing else.
"""
import contextlib
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("COURSE_VENV", ROOT / ".venv"))
REQUIREMENTS = ROOT / "requirements-course.txt"
CONSTRAINTS = ROOT / "constraints-course.txt"  # every package's tested version
STAMP = VENV / ".course-requirements"
MIN_PYTHON = (3, 11)
# The installer the set-up tries first: uv installs the pins in a fraction of pip's time
# (a fresh .venv, nothing cached: 15-17 s against pip's 115-126 s). Where it cannot be
# installed or fails, pip does the work. COURSE_INSTALLER=pip skips it.
UV = "uv==0.13.9"
# pip's settings that change what is installed, and uv's options for the same.
PIP_TO_UV = {"PIP_INDEX_URL": "--index-url", "PIP_EXTRA_INDEX_URL": "--extra-index-url",
             "PIP_FIND_LINKS": "--find-links", "PIP_ONLY_BINARY": "--only-binary", "PIP_NO_BINARY": "--no-binary"}


def venv_python():
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _wanted_stamp():
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, CONSTRAINTS):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _in_venv():
    return Path(sys.prefix).resolve() == VENV.resolve()


def _say(text):
    print(f"course: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _setup_lock():
    """Hold the set-up lock for VENV: a second `python3 -m course` started while the
    first is still installing waits here instead of installing over it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: nothing to lock with (and the course needs POSIX anyway)
        yield
        return
    VENV.mkdir(parents=True, exist_ok=True)
    with open(VENV / ".course-setup.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"another `python3 -m course` is setting up {VENV.name}/; waiting for it to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _has_pip():
    return any(VENV.glob("lib/python3*/site-packages/pip")) or (VENV / "Lib" / "site-packages" / "pip").is_dir()


def _stamp():
    return STAMP.read_text().strip() if STAMP.exists() else ""


def ensure():
    """Return if this process already runs in an up-to-date .venv; otherwise
    set it up and replace this process with the same command run there."""
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"course: this course needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; "
                 f"this is {sys.version.split()[0]}. Install a newer Python and run the command with it.")
    if os.environ.get("COURSE_NO_VENV") == "1":
        return  # the caller manages its own environment
    wanted = _wanted_stamp()
    if _in_venv() and _stamp() == wanted:
        return
    if not (venv_python().exists() and _stamp() == wanted):
        with _setup_lock():
            _set_up(wanted)  # finds it done if another command finished it meanwhile
    if _in_venv():
        return
    python = str(venv_python())
    args = [python, "-m", "course", *sys.argv[1:]]
    if os.name == "nt":  # execv does not replace the process on Windows
        sys.exit(subprocess.call(args))
    os.execv(python, args)


def _set_up(wanted):
    """Create VENV and install the pinned requirements, unless that is already done."""
    started = time.monotonic()
    if not venv_python().exists() or not _has_pip():  # new, or left half-made by a failed attempt
        _say(f"creating {VENV.name}/ (first run only)")
        result = subprocess.run([sys.executable, "-m", "venv", str(VENV)])
        if result.returncode or not venv_python().exists():
            sys.exit(f"course: could not create a virtual environment: {_venv_fix()}")
    if _stamp() != wanted:
        _say(f"installing the course's pinned requirements into {VENV.name}/ (once) ...")
        how = _install_with_uv() or _install_with_pip()
        STAMP.write_text(wanted + "\n")
        _say(f"set-up done: {_count_installed()} packages installed with {how} in "
             f"{time.monotonic() - started:.0f} s")


def _venv_fix():
    """One sentence with the command that gives this Python a working venv module."""
    import shutil

    if shutil.which("apt-get"):  # Debian and Ubuntu package venv (and its pip) apart from Python
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        return (f"on Debian and Ubuntu, Python's venv module is a package of its own; install it with "
                f"`sudo apt-get install python{version}-venv` and run the same command again.")
    return (f"this Python ({sys.executable}) has no working venv module; run the command with another "
            "Python 3.11 or newer (from python.org, Homebrew or your package manager).")


def _pins():
    return ["-r", str(REQUIREMENTS), "-c", str(CONSTRAINTS)]


def _install_with_uv():
    """Install the pins with uv (itself installed into VENV by pip); 'uv', or None where
    uv cannot be had or fails, so that pip does it."""
    if os.environ.get("COURSE_INSTALLER", "").lower() == "pip":
        return None
    got = subprocess.run([str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", UV],
                         capture_output=True, text=True)
    uv = VENV / ("Scripts/uv.exe" if os.name == "nt" else "bin/uv")
    if got.returncode or not uv.exists():
        return None
    options = []
    for setting, option in PIP_TO_UV.items():
        for value in os.environ.get(setting, "").split():
            options += [option, value]
    done = subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(venv_python()), *options, *_pins()],
                          capture_output=True, text=True)
    if done.returncode:
        said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        said = [line for line in said if line.startswith("error")] or said[-1:] or [f"exit code {done.returncode}"]
        _say(f"uv could not install them ({said[0]}); "
             "pip installs them instead")
        return None
    return "uv"


def _install_with_pip():
    result = subprocess.run(
        [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", *_pins()])
    if result.returncode:
        sys.exit("course: installing requirements-course.txt failed (see pip's message above). "
                 "Check your network connection, then run the same command again.")
    return "pip"


def _count_installed():
    """How many of the course's packages .venv holds (not pip, nor uv)."""
    found = list(VENV.glob("lib/python3*/site-packages/*.dist-info")) + list(VENV.glob("Lib/site-packages/*.dist-info"))
    return sum(path.name.split("-")[0].lower() not in ("pip", "uv") for path in found)
