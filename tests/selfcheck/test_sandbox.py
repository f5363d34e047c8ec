"""Learner code cannot reach past its sandbox (course/sandbox.py): each check runs
one attack as learner code would, through the grader's own harness (a Learner,
its probes and processes, the preloader), and asserts what the attack got.

With COURSE_SANDBOX=off the same checks fail: that is what today's grader would
give a hostile learner without the sandbox.

The attacks: the grader's environment through /proc, the real HOME, writing the
course's tests or another student's folder or the grader's results, a TCP port
nobody granted, a signal to the grader, the preloader's socket, a memory hog, a
disk fill, a fork bomb, and a process left running in a session of its own.

On macOS the sandbox is a Seatbelt profile (no Landlock, no cgroup, no /proc): the
attacks it is meant to stop run there too (the real HOME, the writes, a port nobody
granted, a signal to the grader), and one of its own, the grader's environment read
through sysctl as `ps -E` does. The rest are Linux's and skipped there."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from course import ROOT
from course import sandbox
from grader.processes import process_table

LANDLOCK = sandbox.abi() >= 1
SEATBELT = sys.platform == "darwin" and sandbox.layers()["files"]
pytestmark = pytest.mark.skipif(not (LANDLOCK or SEATBELT),
                                reason="no Landlock in this kernel and no Seatbelt: the sandbox's file layer is "
                                       "missing here")
linux_only = pytest.mark.skipif(not LANDLOCK, reason="the attack goes through Linux's /proc, which macOS "
                                                     "does not have; its macOS twin is the sysctl attack")
# Layers macOS lacks: these would fail there for what is missing, not for a fault in the profile.
no_memory_limit_on_macos = pytest.mark.skipif(not LANDLOCK, reason="macOS does not enforce an address-space "
                                              "limit (RLIMIT_AS): a memory hog is not bounded there")
no_containment_on_macos = pytest.mark.skipif(not LANDLOCK, reason="macOS has no subreaper and no cgroup: a "
                                             "process that leaves its session and drops the grader's marker "
                                             "escapes there")
macos_only = pytest.mark.skipif(not SEATBELT, reason="macOS only: Linux's /proc attack is "
                                                     "test_the_graders_environment_is_out_of_reach")

SECRET = "course-selfcheck-grader-secret"


@pytest.fixture
def learner(one_module_learner, monkeypatch):
    """A learner app folder of one module, with a secret in the grader's environment."""
    monkeypatch.setenv("COURSE_SELFCHECK_GRADER_SECRET", SECRET)
    return one_module_learner


def attack(learner, code, timeout=30):
    return learner.probe(textwrap.dedent(code), timeout=timeout, what="the attack")


@linux_only
def test_the_graders_environment_is_out_of_reach(learner):
    # A process of the grader's started with the secret, as pytest and the preloader are
    # started with the grader's environment (os.environ changed later is not in /proc).
    grader_side = subprocess.Popen(["/bin/sleep", "60"], env={"COURSE_SELFCHECK_GRADER_SECRET": SECRET})
    try:
        got = _read_environments(learner)
    finally:
        grader_side.kill()
        grader_side.wait()
    assert got["own"] is None
    assert got["found"] == [], f"learner code read the grader's secret from {got['found']}"


def _read_environments(learner):
    return attack(learner, f"""
        import os
        found = []
        try:
            pids = os.listdir("/proc")
        except OSError:  # not even listed
            pids = [str(os.getppid()), "1"]
        for pid in pids:
            for name in ("environ", "cmdline"):
                try:
                    if {SECRET!r}.encode() in open(f"/proc/{{pid}}/{{name}}", "rb").read():
                        found.append(f"/proc/{{pid}}/{{name}}")
                except OSError:
                    pass
        result(found=found, own=os.environ.get("COURSE_SELFCHECK_GRADER_SECRET"))
    """)


@macos_only
def test_the_graders_environment_is_out_of_reach_through_sysctl(learner):
    """macOS hands any process the arguments and environment of its user's others
    (sysctl kern.procargs2, what `ps -E` shows); the profile does not allow that sysctl."""
    grader_side = subprocess.Popen(["/bin/sleep", "60"], env={"COURSE_SELFCHECK_GRADER_SECRET": SECRET})
    try:
        got = attack(learner, f"""
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            found, errors = [], set()
            for pid in ({grader_side.pid}, os.getppid(), 1):
                mib = (ctypes.c_int * 3)(1, 49, pid)  # CTL_KERN, KERN_PROCARGS2
                size = ctypes.c_size_t(1 << 18)
                buffer = ctypes.create_string_buffer(size.value)
                if libc.sysctl(mib, 3, buffer, ctypes.byref(size), None, 0) == 0:
                    if {SECRET!r}.encode() in buffer.raw[:size.value]:
                        found.append(pid)
                else:
                    errors.add(ctypes.get_errno())
            result(found=found, errors=sorted(errors))
        """)
    finally:
        grader_side.kill()
        grader_side.wait()
    assert got["found"] == [], f"learner code read the grader's secret from the arguments of {got['found']}"


def test_the_real_home_is_out_of_reach(learner, tmp_path):
    home = tmp_path / "instructor"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("aws_secret_access_key = " + SECRET)
    got = attack(learner, f"""
        try:
            result(read=open({str(home / '.aws' / 'credentials')!r}).read())
        except OSError as error:
            result(read=None, error=error.errno)
    """)
    assert got["read"] is None, "learner code read the instructor's ~/.aws/credentials"


@pytest.mark.parametrize("where", ["course_tests", "other_student", "grader_temp"])
def test_learner_code_writes_only_its_own_folders(learner, tmp_path, where):
    other = tmp_path / "student-b"
    other.mkdir()
    (other / "app.py").write_text("# student b\n")
    grader_temp = Path(tempfile.mkdtemp(prefix="course-results-"))  # where a grading writes its results
    path = {"course_tests": ROOT / "tests" / f".written-by-learner-{os.getpid()}",
            "other_student": other / "app.py",
            "grader_temp": grader_temp / "results.json"}[where]
    try:
        got = attack(learner, f"""
            try:
                with open({str(path)!r}, "a") as f:
                    f.write("# forged\\n")
                result(wrote=True)
            except OSError:
                result(wrote=False)
            import tempfile
            with open(tempfile.mktemp(), "w") as own:  # its own temp dir stays writable
                own.write("fine")
            result(own_temp=True)
        """)
        assert got["own_temp"]
        assert not got["wrote"] and "forged" not in (path.read_text() if path.exists() else ""), (
            f"learner code wrote {path}")
    finally:
        if where == "course_tests":
            path.unlink(missing_ok=True)
        for leftover in grader_temp.iterdir():
            leftover.unlink()
        grader_temp.rmdir()


def test_only_the_ports_the_check_names_are_reachable(learner):
    """A loopback port nobody granted stands for any host: Landlock filters TCP by port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        got = attack(learner, f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
                result(connected=True)
            except OSError as error:
                result(connected=False, error=str(error))
        """)
        assert not got["connected"], f"learner code connected to port {port}, which no check named"
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_the_grader_cannot_be_signalled(learner):
    got = attack(learner, f"""
        import os
        try:
            os.kill({os.getpid()}, 0)
            result(reached=True)
        except PermissionError:
            result(reached=False)
        except OSError as error:
            result(reached=False, error=str(error))
    """)
    assert not got["reached"], "learner code could send a signal to the grader's process"


@linux_only
def test_the_preloader_starts_nothing_for_learner_code(learner):
    """Every descriptor learner code holds is tried as a way to ask the preloader for a
    process; none may start one (it would run outside the learner's sandbox)."""
    got = attack(learner, """
        import json, os, socket, struct, time
        asked = []
        try:  # a preloader listening on a path its command line names
            for pid in os.listdir("/proc"):
                try:
                    words = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
                except OSError:
                    continue
                if any(w.endswith(b"preload.py") for w in words) and len(words) > 2 and words[2]:
                    s = socket.socket(socket.AF_UNIX)
                    try:
                        s.connect(words[2].decode())
                        request = json.dumps({"args": ["/bin/sleep", "30"], "cwd": "/", "env": {},
                                              "shell": False}).encode()
                        socket.send_fds(s, [struct.pack("!I", len(request)) + request], [1])
                        asked.append(pid)
                        time.sleep(0.3)
                    except OSError:
                        pass
                    s.close()
        except OSError:
            pass
        for fd in range(3, 256):
            try:
                s = socket.socket(fileno=os.dup(fd))
            except OSError:
                continue
            request = json.dumps({"args": ["/bin/sleep", "30"], "cwd": "/", "env": {}, "shell": False,
                                  "rules": None}).encode()
            for message in (request, struct.pack("!I", len(request)) + request):
                try:
                    a, b = socket.socketpair()
                    socket.send_fds(s, [message], [1, b.fileno()])
                    asked.append(fd)
                except OSError:
                    pass
            s.close()
        time.sleep(0.5)
        result(asked=asked)
    """)
    started = [pid for pid, row in process_table().items() if row[1] != "Z" and _is_sleep_30(pid)]
    assert not started, f"learner code had the preloader start {started} (asked on descriptors {got['asked']})"


def _is_sleep_30(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == b"/bin/sleep\x0030\x00"
    except OSError:
        return False


@no_memory_limit_on_macos
def test_a_memory_hog_is_refused(learner):
    got = attack(learner, """
        try:
            hog = bytearray(12 * 2**30)
            result(got=len(hog))
        except MemoryError:
            result(got=0)
    """)
    assert got["got"] == 0, "learner code was given 12 GiB of address space"


def test_a_disk_fill_is_cut_off(learner):
    got = attack(learner, f"""
        import signal, tempfile
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so the write fails instead of killing it
        written = 0
        chunk = b"x" * 2**20
        with tempfile.TemporaryFile() as f:
            try:
                while written < {sandbox.LIMITS['file_bytes'] + 2**24}:
                    f.write(chunk)
                    f.flush()
                    written += len(chunk)
            except OSError:
                pass
        result(written=written)
    """, timeout=60)
    assert got["written"] <= sandbox.LIMITS["file_bytes"], f"learner code wrote a {got['written']}-byte file"


@pytest.mark.skipif(not sandbox.layers()["processes"],
                    reason="no process limit here (the grader runs as root and can make no cgroup)")
def test_a_fork_bomb_is_bounded(learner):
    got = attack(learner, """
        import os, signal, time
        children = []
        try:
            for _ in range(3000):
                pid = os.fork()
                if pid == 0:
                    time.sleep(20)
                    os._exit(0)
                children.append(pid)
        except OSError:
            pass
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        result(started=len(children))
    """, timeout=60)
    assert got["started"] < 3000, "learner code started 3,000 processes"


def test_a_runaway_stopped_by_the_clock_is_told_about_its_processes(learner):
    """On a busy machine a fork bomb can meet the check's time bound before the limit
    on processes: the verdict still says what it was doing."""
    with pytest.raises(Exception) as stopped:
        attack(learner, """
            import os, time
            for _ in range(80):
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
            time.sleep(60)
        """, timeout=3)
    message = str(stopped.value)
    assert "did not finish within 3 s" in message and "limit on processes" in message, message
    assert "started 80 processes" in message, message


@pytest.mark.skipif(sandbox.Group.base() is None,
                    reason="no cgroup can be made here (not root, and no cgroup v2 tree delegated to this user): "
                           "the grader makes no course cgroups here, so none can be left behind")
def test_a_group_left_behind_by_an_earlier_grading_is_removed(monkeypatch):
    """A grader stopped mid-check leaves its learner's empty cgroup: the next grading
    removes it once it is old, and leaves a new one (another grading's) alone."""
    base = sandbox.Group.base()
    stale, fresh = (os.path.join(base, f"course-selfcheck-{age}-{os.getpid()}") for age in ("stale", "fresh"))
    os.mkdir(stale)
    os.mkdir(fresh)
    try:
        two_hours_ago = time.time() - 7200
        os.utime(stale, (two_hours_ago, two_hours_ago))
        monkeypatch.setattr(sandbox.Group, "_base", [])  # as a new grading process finds it
        assert sandbox.Group.base() == base
        assert not os.path.exists(stale), "an empty course cgroup two hours old was left in place"
        assert os.path.isdir(fresh), "a course cgroup another grading may be about to use was removed"
    finally:
        for folder in (stale, fresh):
            if os.path.isdir(folder):
                os.rmdir(folder)


@no_containment_on_macos
def test_nothing_is_left_running_whatever_hid_it(learner):
    """A process that leaves its session and group and drops the grader's marker is
    still stopped when the learner's check ends."""
    got = attack(learner, """
        import os, subprocess
        p = subprocess.Popen(["/bin/sleep", "77"], start_new_session=True, env={})
        result(pid=p.pid)
    """)
    pid = got["pid"]
    learner.close()
    learner.close = lambda: []  # the fixture's close: done
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and process_table().get(pid, (0, "Z"))[1] != "Z":
        time.sleep(0.05)
    alive = process_table().get(pid, (0, "Z"))[1] != "Z"
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "a process learner code started was still running after the check"
