"""Starting learner processes: in a session of their own, with an allow-listed
environment, confined to the sandbox (course/sandbox.py) before any of their
code runs; forked from the preloaded Python (grader/preload.py) where it can be.
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from course import sandbox
from grader.processes import process_table, reap, spawn_lock

# What learner code may see of the grader's environment: what a program needs to start and
# to find its locale and temp dir. Everything else (tokens, database URLs, AWS keys) stays out.
ALLOWED = {"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "TERM", "LD_LIBRARY_PATH",
           "DYLD_LIBRARY_PATH", "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT"}
ALLOWED_PREFIXES = ("LC_",)
PR_SET_CHILD_SUBREAPER = 36


def allowed_environment(source=None):
    """The part of `source` (default: this process's environment) learner code may see."""
    source = os.environ if source is None else source
    return {k: v for k, v in source.items() if k in ALLOWED or k.startswith(ALLOWED_PREFIXES)}


def spawn(args, *, cwd, env, output, shell=False, rules=None):
    """Start learner code in a session and group of its own (stopping it stops its
    children too), stdin from /dev/null, stdout and stderr to the open file `output`,
    confined to the sandbox `rules` (course/sandbox.py) before any of its code runs.
    Forked from the preloaded Python where it can be (grader/preload.py says when),
    else started plainly. Returns a Popen, or what stands for one."""
    server = Preloader.get()
    popen = server.spawn(args, cwd, env, output, shell, rules) if server is not None else None
    if popen is not None:
        return popen
    return subprocess.Popen(args, cwd=cwd, env=env, shell=shell, executable="/bin/bash" if shell else None,
                            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_confining(rules))


def _confining(rules):
    """A preexec_fn that enters the sandbox (None: no sandbox)."""
    if rules is None:
        return None

    def confine():
        try:
            sandbox.apply(rules)
        except OSError as error:
            os.write(2, f"the grader could not confine this process: {error}\n".encode())
            os._exit(126)
    return confine


class Preloader:
    """The grader's preloaded Python (grader/preload.py), started once per grading run,
    on Linux, unless COURSE_PRELOAD=0. Learner processes it forks start with Flask, rq,
    redis, boto3 and reportlab already imported: most of a second of CPU saved on each.
    It is reached through one end of a socket pair only this process holds: learner
    code cannot ask it to start anything."""

    SCRIPT = Path(__file__).with_name("preload.py")
    TITLE_ROOM = 1024   # empty arguments: room for a forked process's own command line
    READY_WITHIN = 30   # seconds to import everything, on a busy machine
    _instance = None

    @classmethod
    def get(cls):
        """The running preloader (started now if need be), or None: use plain starts."""
        with spawn_lock:
            if cls._instance is None:
                cls._instance = cls._start() or False
            return cls._instance or None

    @classmethod
    def _start(cls):
        if not sys.platform.startswith("linux") or os.environ.get("COURSE_PRELOAD") == "0":
            return None
        server = cls()
        return server if server.popen is not None else None

    def __init__(self):
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control.set_inheritable(False)
        env = {**allowed_environment(), "PYTHONDONTWRITEBYTECODE": "1"}  # learner code may read it: no secrets
        try:
            self.popen = subprocess.Popen(
                [sys.executable, str(self.SCRIPT), str(theirs.fileno()), *[""] * self.TITLE_ROOM],
                cwd=tempfile.gettempdir(), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, pass_fds=[theirs.fileno()])
        except OSError:
            self.popen = None
        theirs.close()
        self.ready = False
        self._sending = threading.Lock()

    def _wait_ready(self):
        if not self.ready:
            with self._sending:
                if not self.ready and select.select([self.control], [], [], self.READY_WITHIN)[0]:
                    try:
                        self.ready = self.control.recv(16) == b"ready"
                    except OSError:
                        self.ready = False
            self.ready = self.ready and self.popen.poll() is None
        return self.ready

    def spawn(self, args, cwd, env, output, shell, rules=None):
        """A ForkedPopen for the new process, or None if the preloader cannot start it."""
        if self.popen.poll() is not None or not self._wait_ready():
            return None
        request = json.dumps({"args": args if shell else [str(a) for a in args], "cwd": str(cwd),
                              "env": dict(env), "shell": bool(shell), "rules": rules}).encode()
        conn, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(20)
            output.flush()
            with self._sending:
                socket.send_fds(self.control, [request], [output.fileno(), theirs.fileno()])
            theirs.close()
            line = b""
            while not line.endswith(b"\n"):
                more = conn.recv(64)
                if not more:
                    raise OSError("the preloader closed the connection")
                line += more
            pid = int(line.split(b"\n", 1)[0])
        except (OSError, ValueError):
            theirs.close()
            conn.close()
            return None
        conn.setblocking(False)
        return ForkedPopen(pid, conn, args)


class ForkedPopen:
    """Stands for subprocess.Popen for a process the preloader forked: its pid,
    and poll() and wait() with the exit code its parent, the preloader, reports."""

    def __init__(self, pid, conn, args):
        self.pid, self.args, self.returncode = pid, args, None
        self._conn, self._received = conn, b""

    def _listen(self, timeout):
        if self.returncode is not None or self._conn is None:
            return
        ready, _, _ = select.select([self._conn], [], [], timeout)
        if not ready:
            return
        try:
            data = self._conn.recv(256)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self._received += data
        if b"\n" in self._received:
            word, _, code = self._received.split(b"\n", 1)[0].partition(b" ")
            if word == b"exit":
                self.returncode = int(code)
        if not data or self.returncode is not None:
            self._conn.close()
            self._conn = None

    def _orphan_gone(self):
        """The preloader went before reporting: the process is an orphan now, or gone."""
        table = process_table()
        return table.get(self.pid, (0, "Z"))[1] == "Z"

    def poll(self):
        self._listen(0)
        if self.returncode is None and self._conn is None and self._orphan_gone():
            reap([self.pid])
            self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            if self._conn is None:
                time.sleep(0.02 if left is None else min(0.02, left))
            else:
                self._listen(0.5 if left is None else min(0.5, left))
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)


