"""The macOS Seatbelt profile (course/sandbox.py: seatbelt_profile) says what the
sandbox promises: it is read here as Seatbelt reads it (an s-expression), on every
platform, for a policy like a learner process's, and each promise is checked on
what it allows, not on its wording.

The promises: everything denied unless allowed; each write folder writable; the
real HOME's secrets and the course's tests/ neither readable nor writable (the
grader's probe files excepted); TCP and UDP only to the named ports, on loopback;
signals only within the sandbox; every path quoted so that a quote or backslash in
a folder's name cannot end its string. Whether macOS enforces the text is checked by
the attacks in test_sandbox.py, which run on macOS only."""
import os
import sys
from pathlib import Path

import pytest

from course import ROOT
from course import sandbox

PROBES = ROOT / "tests" / "grader" / "probes"
FILE_READ = {"file-read*", "file-read-data"}
FILE_WRITE = {"file-write*", "file-write-data", "file-write-create", "file-write-unlink"}
NETWORK = {"network*", "network-outbound", "network-inbound", "network-bind"}


def parse(text):
    """The forms of an SBPL text: lists of atoms (str) and strings (Str), decoded.
    Raises ValueError on unbalanced parentheses or an unterminated string."""
    stack, index = [[]], 0
    while index < len(text):
        char = text[index]
        if char == ";":
            index = text.find("\n", index)
            index = len(text) if index < 0 else index
        elif char == "(":
            stack.append([])
        elif char == ")":
            if len(stack) == 1:
                raise ValueError(f"a ')' closes nothing at {index}")
            form = stack.pop()
            stack[-1].append(form)
        elif char == '"':
            value, index = [], index + 1
            while index < len(text) and text[index] != '"':
                if text[index] == "\\":
                    index += 1
                value.append(text[index] if index < len(text) else "")
                index += 1
            if index >= len(text):
                raise ValueError("a string is not closed")
            stack[-1].append(Str("".join(value)))
        elif not char.isspace():
            end = index
            while end < len(text) and not text[end].isspace() and text[end] not in '()";':
                end += 1
            stack[-1].append(text[index:end])
            index = end - 1
        index += 1
    if len(stack) != 1:
        raise ValueError(f"{len(stack) - 1} '(' never closed")
    return stack[0]


class Str(str):
    """A string literal of the profile (not an atom)."""


def covers(flt, path):
    """Whether the filter form `flt` matches the file `path`."""
    kind, value = flt[0], flt[-1]
    if kind == "subpath":
        return path == value or path.startswith(value.rstrip("/") + "/")
    if kind in ("literal", "path"):
        return path == value
    raise AssertionError(f"the check does not know the filter {flt}: say here what it matches")


def allowed(forms, operations, path):
    """The allow forms that let one of `operations` reach `path`."""
    found = []
    for form in forms:
        if form[:1] != ["allow"]:
            continue
        ops = [item for item in form[1:] if isinstance(item, str) and not isinstance(item, Str)]
        filters = [item for item in form[1:] if isinstance(item, list)]
        if not operations & set(ops):
            continue
        if not filters or any(isinstance(f[-1], Str) and f[0] in ("subpath", "literal", "path") and covers(f, path)
                              for f in filters):
            found.append(form)
    return found


def faults(text, sample):
    """What is wrong with the profile `text` for the policy `sample` ([]: nothing)."""
    try:
        forms = parse(text)
    except ValueError as error:
        return [f"the profile does not parse: {error}"]
    problems = []
    if forms[:2] != [["version", "1"], ["deny", "default"]]:
        problems.append(f"it does not start with (version 1) (deny default): {forms[:2]}")
    if any(form[:1] == ["allow"] and "default" in form[1:] for form in forms):
        problems.append("it allows by default")
    for folder in sample["write"]:
        real = os.path.realpath(folder)
        if not any(["subpath", real] == f for form in allowed(forms, {"file-write*"}, real)
                   for f in form if isinstance(f, list)):
            problems.append(f"the write folder {real} is not allowed as a subpath")
    home = os.path.realpath(os.path.expanduser("~"))
    secrets = [f"{home}/.aws/credentials", f"{home}/.ssh/id_ed25519", f"{home}/.netrc"]
    course_tests = [str(ROOT / "tests" / "conftest.py"), str(ROOT / "tests" / "unit_03" / "test_jobs.py")]
    for path in map(os.path.realpath, secrets + course_tests):
        for operations, what in ((FILE_READ, "read"), (FILE_WRITE, "written")):
            granted = allowed(forms, operations, path)
            if granted:
                problems.append(f"{path} can be {what}: {granted[0]}")
    if not allowed(forms, FILE_READ, os.path.realpath(PROBES / "x.py")):
        problems.append("the grader's probe files cannot be read")
    ports = set()
    for form in forms:
        if form[:1] == ["allow"] and NETWORK & {item for item in form if isinstance(item, str)}:
            filters = [item for item in form if isinstance(item, list)]
            if not filters:
                problems.append(f"a network rule without a filter allows every address: {form}")
            for f in filters:
                host, _, port = f[-1].rpartition(":")
                if f[:2] == ["remote", "ip"] and host != "localhost":
                    problems.append(f"learner code may reach {f[-1]}, not on loopback")
                if not port.isdigit():
                    problems.append(f"a network rule allows every port: {form}")
                else:
                    ports.add(int(port))
    if ports != {*sample["connect"], *sample["bind"]}:
        problems.append(f"the profile names ports {sorted(ports)}, not {sorted({*sample['connect'], *sample['bind']})}")
    signals = [form for form in forms if form[:2] == ["allow", "signal"]]
    if signals != [["allow", "signal", ["target", "same-sandbox"]]]:
        problems.append(f"signals are allowed beyond the sandbox: {signals}")
    return problems


@pytest.fixture
def sample(tmp_path):
    """A policy like a learner process's, with a write folder whose name holds a quote
    and a backslash."""
    app, home = tmp_path / "student-a", tmp_path / "course-home"
    odd = tmp_path / 'it\'s "odd" \\ here'
    for folder in (app, home, odd):
        folder.mkdir()
    return sandbox.policy(read=[sys.prefix, sys.base_prefix, Path(sys.executable).resolve().parent, app, PROBES],
                          write=[home, app, odd], connect=[6379, 9000], bind=[8000])


def test_the_profile_holds_the_policy(sample):
    text = sandbox.seatbelt_profile(sample)
    assert faults(text, sample) == [], text


BROKEN = {
    "quotes_left_as_they_are": lambda text, sample: text.replace(
        sandbox.sbpl_string(os.path.realpath(sample["write"][-1])), '"' + os.path.realpath(sample["write"][-1]) + '"'),
    "allow_by_default": lambda text, sample: text.replace("(deny default)", "(allow default)"),
    "home_readable": lambda text, sample: text.replace(
        "(allow file-read* (literal", f"(allow file-read* (subpath \"{os.path.expanduser('~')}\") (literal"),
    "course_readable": lambda text, sample: text.replace(
        "(allow file-read* (literal", f"(allow file-read* (subpath \"{ROOT}\") (literal"),
    "every_port": lambda text, sample: text.replace("localhost:6379", "localhost:*"),
    "any_host": lambda text, sample: text.replace("localhost:6379", "*:6379"),
    "signal_anyone": lambda text, sample: text.replace("(target same-sandbox))\n(allow process-info", "(target others))\n(allow process-info"),
    "unbalanced": lambda text, sample: text.replace("(allow ipc-posix-sem)", "(allow ipc-posix-sem"),
}


@pytest.mark.parametrize("broken", BROKEN, ids=list(BROKEN))
def test_the_check_finds_a_broken_profile(sample, broken):
    """The check above has teeth: each way a renderer could get it wrong is found."""
    text = BROKEN[broken](sandbox.seatbelt_profile(sample), sample)
    assert text != sandbox.seatbelt_profile(sample), "the breakage changed nothing: the test is stale"
    assert faults(text, sample), f"the check missed a profile with {broken}"


def test_on_macos_the_profile_is_the_file_network_and_signal_layer(monkeypatch):
    """Where sandbox_init is there, `course grade` says the profile holds those layers,
    names what is still missing (no network of its own), and `course class` grades."""
    from course import classroom

    monkeypatch.setattr(sandbox.sys, "platform", "darwin")
    monkeypatch.setattr(sandbox, "_seatbelt", lambda: (print, print))  # stands for libSystem's pair
    monkeypatch.setattr(sandbox, "seatbelt_refused", lambda: "")  # Python starts in the profile
    layers = sandbox.layers()
    assert (layers["files"], layers["network"], layers["signals"], layers["isolation"]) == (True, True, True, False)
    line = sandbox.note()
    assert line.startswith("sandbox: macOS's Seatbelt profile holds the file, network and signal layers"), line
    assert sandbox.MEANS["isolation"] in line
    assert classroom.refusal(unsafe=False) == ""


def _trial(monkeypatch, enter):
    """seatbelt_refused's own trial (not its cached answer), on a macOS where
    sandbox_init is there and entering the profile does what `enter` does."""
    monkeypatch.setattr(sandbox.sys, "platform", "darwin")
    monkeypatch.setattr(sandbox, "_seatbelt", lambda: (print, print))
    monkeypatch.setattr(sandbox, "_enter_seatbelt", enter)
    return sandbox.seatbelt_refused.__wrapped__()


def test_a_profile_python_starts_in_is_kept(monkeypatch):
    assert _trial(monkeypatch, lambda profile: None) == ""


def test_a_profile_macos_refuses_turns_the_sandbox_off_and_says_so(monkeypatch):
    """The profile is checked on the course's CI's macOS versions only. Where macOS
    will not run Python in it, every check would fail for the grader's sake: learner
    code runs unconfined, `course grade` says why in its one line, and `course class`
    refuses to grade others' code."""
    from course import classroom

    def refuse(profile):
        raise OSError(1, "sandbox_init refused the Seatbelt profile: unbound variable: file-map-executable")

    reason = _trial(monkeypatch, refuse)
    assert reason, "a profile that keeps Python from starting was kept"
    monkeypatch.setattr(sandbox, "seatbelt_refused", lambda: reason)
    assert not sandbox.wanted() and sandbox.policy(read=["/x"]) is None
    line = sandbox.note()
    assert line.startswith("sandbox off: macOS would not run Python in the course's Seatbelt profile"), line
    assert "Not grading others' code here" in classroom.refusal(unsafe=False)
