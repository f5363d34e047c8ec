"""Processes and containment: the process table, what runs below a process, and
stopping it all.

Leaks are found by containment: on Linux the grader is a child subreaper, so a
learner process that detaches (setsid, double fork, a dropped environment) is
re-parented to the grader when its parent exits, and found by ancestry.
Elsewhere, the process groups the grader started are swept. Each learner's
processes are also in a cgroup where one can be made (course/sandbox.py), which
finds what hid from both.
"""
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

MARKER_VAR = "COURSE_GRADER_RUN"  # set in every learner process's environment, to a learner's marker
KEEP_BYTES = 32 * 1024            # of learner output: this much from its start, and this much from its end
PR_SET_CHILD_SUBREAPER = 36

SPAWNED = set()                 # pids of the children this process started itself
spawn_lock = threading.RLock()
_contained = False


def contain():
    """Make this process the reaper of every orphan below it (Linux), and record
    the children it starts, so an orphan is told apart from them. Idempotent."""
    global _contained
    if _contained:
        return _contained
    original = subprocess.Popen.__init__

    def recording_init(self, *args, **kwargs):
        with spawn_lock:  # a scan never sees a child between its fork and this record
            original(self, *args, **kwargs)
            SPAWNED.add(self.pid)

    subprocess.Popen.__init__ = recording_init
    _contained = "sweep"
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
                _contained = "subreaper"
        except (OSError, AttributeError):
            pass
    return _contained


def process_table():
    """{pid: (ppid, state, pgid, sid)} for every process that can be seen."""
    table = {}
    if os.path.isdir("/proc"):
        # Checks poll this while they wait: raw reads cost half what file objects do.
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                fd = os.open(f"/proc/{name}/stat", os.O_RDONLY)
                try:
                    stat = os.read(fd, 4096)
                finally:
                    os.close(fd)
                rest = stat.rsplit(b")", 1)[1].split()
                table[int(name)] = (int(rest[1]), rest[0].decode(), int(rest[2]), int(rest[3]))
            except (OSError, IndexError, ValueError):
                continue
        return table
    try:
        out = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,stat=,pgid="], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return table
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0].isdigit():
            table[int(parts[0])] = (int(parts[1]), parts[2][:1], int(parts[3]), int(parts[3]))
    return table


def listening_ports(pids):
    """The TCP ports the given processes listen on, read from /proc (Linux);
    None where that cannot be read, so a caller falls back to waiting."""
    if not os.path.isdir("/proc/net"):
        return None
    inodes = set()
    for pid in pids:
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(fd.path)
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except (OSError, IndexError, ValueError):
            continue
    return ports


def descendants(roots, table=None):
    """Every live process below (and including) the given pids."""
    table = process_table() if table is None else table
    children = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [p for p in roots if p in table]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return {p for p in found if table[p][1] != "Z"}


def children(table=None):
    """The pids whose parent is this process: those it started, and orphans it adopted."""
    me = os.getpid()
    table = process_table() if table is None else table
    return {p for p, (ppid, *_r) in table.items() if ppid == me}


def strays(table=None):
    """Orphans re-parented to this process (not children it started) and what
    runs below them. Reaps the ones that already exited."""
    with spawn_lock:
        table = process_table() if table is None else table
        mine = children(table)
        # Forget only children that are gone: a table read before a child was started (by
        # another thread: the self-checks start grading runs all along) does not list it, and
        # forgetting it there made that grading run and its Redis look like orphans next time.
        SPAWNED.difference_update({p for p in SPAWNED - mine if not _exists(p)})
        orphans = mine - SPAWNED
    for pid in [p for p in orphans if table[p][1] == "Z"]:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return descendants([p for p in orphans if table[p][1] != "Z"], table)


def _exists(pid):
    """Whether pid is a process that has not been reaped yet (a zombie counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def environ_has(pid, needle):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read()
    except OSError:
        return False


def kill_all(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def all_gone(pids):
    """Whether every one of these processes has exited."""
    table = process_table()
    return all(table.get(pid, (0, "Z"))[1] == "Z" for pid in pids)


def kill_tree(pid):
    """SIGKILL a process and everything below it at once (a crash, an out-of-memory kill)."""
    kill_all(descendants([pid]))


def reap(pids):
    """Collect the exit of those that are this process's children (orphans it inherited)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def kill_group(pgid, sig=signal.SIGKILL):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def marked_processes(marker, variable=MARKER_VAR):
    """PIDs (other than ours) of live processes whose environment has
    variable=marker. Linux only (elsewhere: none found). A process that drops its
    environment escapes this: the grader finds leaks by ancestry (strays()); this
    serves the checks of processes started with a known environment."""
    needle = f"{variable}={marker}".encode()
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def command_line(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        pass
    if os.path.isdir("/proc"):
        return "?"
    try:  # no /proc (macOS): ask ps, at full width
        out = subprocess.run(["ps", "-ww", "-o", "command=", "-p", str(pid)], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out or "?"


def read_bounded(path, keep=KEEP_BYTES):
    """A file's text, or its first and last `keep` bytes if it is longer."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= 2 * keep:
                data = f.read()
            else:
                head = f.read(keep)
                f.seek(size - keep)
                data = head + f"\n[... {size - 2 * keep} bytes not shown ...]\n".encode() + f.read(keep)
    except OSError:
        return ""
    return data.decode(errors="replace")


def wait_until(condition, timeout, interval=0.05):
    """Poll condition() until it returns something truthy; return it (or None at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)



def stop_everything():
    """Kill every process below this one (at exit, or when the grader is stopped)."""
    table = process_table()
    everything = descendants([os.getpid()], table) - {os.getpid()}
    kill_all(everything)
    reap(everything)
