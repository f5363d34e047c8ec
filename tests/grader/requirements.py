"""What a requirements.txt makes pip install, read as Heroku's build reads it
(`pip install -r requirements.txt`): its requirement lines, the files it names
with -r (more requirements) and -c (constraints: versions only, they install
nothing), and every package those requirements pull in.

The packages pulled in are found offline, from the metadata of the libraries
installed here (the course's .venv, at the versions the course tests), with
each dependency's markers judged for a Heroku dyno: Linux on x86_64, running
the Python that .python-version names."""
import functools
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

# `-c FILE`, `--constraint FILE`, `--constraint=FILE`, `-cFILE`; the same for -r.
INCLUDE = re.compile(r"^(?:-(?P<short>[rc])|--(?P<long>requirement|constraint))(?:\s*=\s*|\s+|(?<=[rc]))(?P<path>\S+)")
PER_REQUIREMENT_OPTION = re.compile(r"\s+--(?:hash|config-settings|global-option)\b")
# Heroku installs the newest patch release of the Python .python-version names (3.12 -> 3.12.14);
# markers that compare patch releases (redis's `python_full_version < '3.11.3'`) see a late one.
NEWEST_PATCH = 99


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def installed_owners():
    """{top-level module: [distributions that install it]} for the libraries installed
    here: read once per process (it walks every installed package's file list)."""
    return metadata.packages_distributions()


@dataclass
class Requirements:
    """One requirements.txt and the files it names, as pip reads them."""
    pins: dict = field(default_factory=dict)         # name -> version: lines `name==version` that install
    extras: dict = field(default_factory=dict)       # name -> extras, for every requirement line (`redis[hiredis]`)
    loose: list = field(default_factory=list)        # requirement lines without an exact version
    constraints: dict = field(default_factory=dict)  # name -> version, from -c files
    missing: list = field(default_factory=list)      # (option, file name) of -r/-c files that are not there
    files: list = field(default_factory=list)        # every file read, the first one first

    def pinned(self, name):
        """The one version pip may install for name, or None: a pin, else a constraint."""
        return self.pins.get(name) or self.constraints.get(name)


def logical_lines(text):
    """pip's lines: a trailing backslash joins the next line; comments are dropped."""
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            yield line


def read(path, locate=None):
    """The Requirements of the file at path. locate(name, including_file) finds a file
    named with -r or -c (default: beside the file that names it, as pip does)."""
    found = Requirements()
    locate = locate or (lambda name, including: including.parent / name)
    _read(Path(path), found, locate, constraint=False, seen=set())
    return found


def _read(path, found, locate, constraint, seen):
    if path.resolve() in seen:
        return
    seen.add(path.resolve())
    found.files.append(path)
    for line in logical_lines(path.read_text()):
        include = INCLUDE.match(line)
        if include:
            option = include.group("short") or include.group("long")[0]
            target = locate(include.group("path"), path)
            if target is None or not Path(target).is_file():
                found.missing.append((f"-{option}", include.group("path")))
            else:
                # Inside a constraints file every line is a constraint, whatever names it.
                _read(Path(target), found, locate, constraint or option == "c", seen)
            continue
        if line.startswith("-"):
            continue  # --index-url, -e ...: options that pin no version
        line = PER_REQUIREMENT_OPTION.split(line, 1)[0]  # `name==1.0 --hash=sha256:...`
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            if not constraint:
                found.loose.append(line)
            continue
        name = canonical(requirement.name)
        exact = [s.version for s in requirement.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if constraint:
            if exact:
                found.constraints[name] = exact[0]
        elif exact:
            found.pins[name] = exact[0]
            found.extras[name] = found.extras.get(name, set()) | set(requirement.extras)
        else:
            found.loose.append(line)
            found.extras[name] = found.extras.get(name, set()) | set(requirement.extras)


def heroku_environment(python_version=None):
    """Marker values on a Heroku dyno running python_version ('3.12'; this Python's if None)."""
    env = default_environment()
    major, minor = (python_version.split(".")[:2] if python_version
                    else (str(sys.version_info.major), str(sys.version_info.minor)))
    env.update(sys_platform="linux", platform_system="Linux", platform_machine="x86_64", os_name="posix",
               implementation_name="cpython", platform_python_implementation="CPython",
               python_version=f"{major}.{minor}", python_full_version=f"{major}.{minor}.{NEWEST_PATCH}",
               implementation_version=f"{major}.{minor}.{NEWEST_PATCH}")
    return env


def installs(roots, environment):
    """{name: version installed here, or None} of every package pip installs for roots
    ({name: extras}) and what they require in turn, markers judged in environment."""
    found, walked = {}, set()
    todo = [(canonical(name), frozenset(extras)) for name, extras in roots.items()]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in walked:
            continue
        walked.add((name, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            found.setdefault(name, None)
            continue
        found[name] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            wanted = not requirement.marker or any(
                requirement.marker.evaluate({**environment, "extra": extra}) for extra in (extras or {""}))
            if wanted:
                todo.append((canonical(requirement.name), frozenset(requirement.extras)))
    return found


def python_version_of(path):
    """The X.Y the .python-version file at path names, or None."""
    path = Path(path)
    if path.is_file():
        m = re.match(r"\s*(3\.\d+)", path.read_text())
        return m.group(1) if m else None
    return None
