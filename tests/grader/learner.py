"""Run learner code safely: its own session, an allow-listed environment, a
time bound, bounded output, and clean-up by containment.

Every piece of learner code runs in a child process started here, never in
the grader's own process, so an import that hangs, a worker that never exits
or a crash cannot take the grader down. Learner code sees only an allow-listed
environment (PATH, locale, temp dir, the grader's own Redis and S3 values) and
a throwaway HOME, never the grader's own variables or ~/.aws.

Leaks are found by containment: on Linux the grader is a child subreaper, so a
learner process that detaches (setsid, double fork, a dropped environment) is
re-parented to the grader when its parent exits, and found by ancestry.
Elsewhere, the process groups the grader started are swept.
"""
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

from course import sandbox
from grader import diagnose
from grader.feedback import LearnerFailure

MARKER_VAR = "COURSE_GRADER_RUN"
PROBE_FILE = "course_probe.py"   # diagnose never quotes it
KEEP_BYTES = 32 * 1024           # of learner output: this much from its start, and this much from its end
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


# ---------------------------------------------------------------- containment

SPAWNED = set()                 # pids of the children this process started itself
_spawn_lock = threading.RLock()
_contained = False


def contain():
    """Make this process the reaper of every orphan below it (Linux), and record
    the children it starts, so an orphan is told apart from them. Idempotent."""
    global _contained
    if _contained:
        return _contained
    original = subprocess.Popen.__init__

    def recording_init(self, *args, **kwargs):
        with _spawn_lock:  # a scan never sees a child between its fork and this record
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
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    rest = f.read().rsplit(b")", 1)[1].split()
                table[int(entry.name)] = (int(rest[1]), rest[0].decode(), int(rest[2]), int(rest[3]))
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


def strays(table=None):
    """Orphans re-parented to this process (not children it started) and what
    runs below them. Reaps the ones that already exited."""
    me = os.getpid()
    with _spawn_lock:
        table = process_table() if table is None else table
        mine = {p for p, (ppid, *_r) in table.items() if ppid == me}
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


def reap(pids):
    """Collect the exit of those that are this process's children (orphans it inherited)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def stop_everything():
    """Kill every process below this one (at exit, or when the grader is stopped)."""
    table = process_table()
    everything = descendants([os.getpid()], table) - {os.getpid()}
    kill_all(everything)
    reap(everything)


def _kill_group(pgid, sig=signal.SIGKILL):
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


PROBE_TEMPLATE = '''\
import json, os, sys
sys.path.insert(0, os.getcwd())
_result = {{}}
def result(**values):
    _result.update(values)
{code}
with open({result_path!r}, "w") as _out:
    json.dump(_result, _out, default=str)
# The values are out. Leave as the interpreter does, minus its last clean-up: wait
# for the threads the code started (a report built in a thread of the web process
# must still show) and run its atexit functions; then skip the full garbage
# collection and the teardown of every module, which cost more CPU than many probes.
import atexit, threading
threading._shutdown()
atexit._run_exitfuncs()
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
'''


# ---------------------------------------------------------------- starting learner code

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
        with _spawn_lock:
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
        self._conn, self._said = conn, b""

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
        self._said += data
        if b"\n" in self._said:
            word, _, code = self._said.split(b"\n", 1)[0].partition(b" ")
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


class Process:
    """A learner process running in the background (a worker, a web server)."""

    def __init__(self, args, cwd, env, name, shell=False, rules=None):
        self.name = name
        self.log_file = tempfile.NamedTemporaryFile(prefix="course-log-", suffix=".txt", delete=False)
        self.popen = spawn(args, cwd=cwd, env=env, shell=shell, output=self.log_file, rules=rules)
        self.tree = {self.popen.pid}  # every process seen below it
        self.detached = {}            # pid -> command line of those below it in a session of their own
        self.needed_kill = False
        self.looked_at = set()        # pids below it already checked by note_horses()
        self.spawns_horses = False    # a job ran in a fresh interpreter, not a fork of it
        self._horses_seen_at = 0.0

    def alive(self):
        return self.popen.poll() is None

    def log(self):
        """What it printed: all of it, or its start and its end if it printed a lot."""
        self.log_file.flush()
        return read_bounded(self.log_file.name)

    def explain_exit(self, what="it"):
        """Why it stopped, in a sentence (after 'X stopped at start-up:' or the like)."""
        reason = diagnose.explain(self.log(), what=what)
        return reason or f"{what} exited with code {self.popen.returncode} and printed nothing."

    def note_horses(self):
        """Look at what runs below it now: rq's SpawnWorker runs each job in a fresh
        `python -c ...` that calls main_work_horse; a forking Worker's horse is a copy
        of the worker itself. Called while a job runs; sets spawns_horses. Looks at most
        every 0.2 s (a spawned horse lives longer: starting Python alone takes that)."""
        if time.monotonic() - self._horses_seen_at < 0.2:
            return
        self._horses_seen_at = time.monotonic()
        table = process_table()
        for pid in descendants([self.popen.pid], table) - {self.popen.pid} - self.looked_at:
            self.looked_at.add(pid)
            if "main_work_horse" in command_line(pid):
                self.spawns_horses = True

    def _survey(self):
        """Record everything below it now, and what of that detached into a session of its own."""
        table = process_table()
        self.tree |= descendants([self.popen.pid], table)
        # Below it but in a session of its own (setsid, a daemon): it would outlive the process.
        self.detached.update({p: command_line(p) for p in self.tree
                              if p in table and table[p][3] != self.popen.pid and table[p][1] != "Z"})

    def terminate(self, grace=10):
        """SIGTERM it and everything below it (as Heroku does), then SIGKILL what is left after `grace` s."""
        self._survey()
        if self.alive():
            _kill_group(self.popen.pid, signal.SIGTERM)
            kill_all(self.tree - {self.popen.pid}, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.needed_kill = True
        if self.needed_kill:  # still running: what it started meanwhile goes too
            self.tree |= descendants(self.tree)
        _kill_group(self.popen.pid)
        kill_all(self.tree)  # what ran below it and detached since is found by the learner's sweep
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        reap(self.tree - {self.popen.pid})

    def kill(self):
        """SIGKILL it and everything below it at once: after a check, nothing it would do
        on a graceful stop matters (Redis is emptied before the next check), and a
        graceful stop costs a second or two (gunicorn's, a worker's). What detached from
        it is recorded first, as terminate() does."""
        self._survey()
        _kill_group(self.popen.pid)
        kill_all(self.tree)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        reap(self.tree - {self.popen.pid})

    def close(self):
        self.kill()
        self.log_file.close()
        try:
            os.unlink(self.log_file.name)
        except OSError:
            pass


def syntax_problem(folder):
    """'file, line N: SyntaxError: ...' for the first learner .py file in folder that
    does not parse ('' if all do). Compiled only, never run."""
    for path in sorted(Path(folder).glob("*.py")):
        try:
            compile(path.read_bytes(), path.name, "exec", dont_inherit=True)
        except SyntaxError as error:
            kind = type(error).__name__
            where = f"{path.name}, line {error.lineno}" if error.lineno else path.name
            return f"{where}: {kind}: {error.msg}. Python cannot even read the file; fix that line first."
        except (ValueError, OSError) as error:  # null bytes, unreadable
            return f"{path.name}: {error}. Python cannot even read the file; fix it first."
    return ""


class Learner:
    """Runs code from one learner app folder with a given environment."""

    def __init__(self, target, env):
        self.target = target
        self.marker = uuid.uuid4().hex
        self.home = tempfile.mkdtemp(prefix="course-home-")  # a throwaway HOME: no ~/.aws, no dotfiles
        self.tmp = os.path.join(self.home, "tmp")            # and a temp dir of its own, not the grader's
        os.mkdir(self.tmp)
        # The grader's own bin/ first on PATH, so `python`, `gunicorn` and `rq` in a
        # Procfile mean the pinned ones, as they do on a Heroku dyno.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
        self.env = {**allowed_environment(), **env, MARKER_VAR: self.marker, "HOME": self.home,
                    "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(target.path),
                    "PATH": path, "AWS_EC2_METADATA_DISABLED": "true", "TMPDIR": self.tmp}
        self.processes = []
        self.groups = set()      # the sessions this learner's processes were started in
        self.probe_outputs = []  # what recent probes printed: Flask logs a 500's traceback there
        self.shared = []         # files of the grader's that learner processes may write (a check's log)
        self.group = sandbox.Group.make(f"course-{self.marker}")  # None where no cgroup can be made

    def environment(self, **overrides):
        env = dict(self.env)
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = str(value)
        return env

    def probe(self, code, *, timeout=20, what="your code", env=None):
        """Run `code` in a fresh Python in the app folder; it calls result(**values)
        to hand values back. Returns the values, or fails with a plain message."""
        with tempfile.TemporaryDirectory(prefix="course-probe-") as folder:
            path = Path(folder) / PROBE_FILE
            result_path = Path(folder) / "result.json"
            path.write_text(PROBE_TEMPLATE.format(code=textwrap.dedent(code), result_path=str(result_path)))
            out_path = Path(folder) / "out.txt"
            with open(out_path, "wb") as out:
                args, env = [sys.executable, str(path)], env or self.env
                popen = spawn(args, cwd=self.target.path, env=env, output=out,
                              rules=self.rules(args, self.target.path, env, write=[folder]))
                self.groups.add(popen.pid)
                try:
                    popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    _kill_group(popen.pid)
                    popen.wait()
                    raise LearnerFailure(
                        f"{what} did not finish within {timeout:.0f} s, so the grader stopped it. "
                        "Look for a loop that never ends, or work that starts when a module is imported "
                        "(a worker should start only under `if __name__ == '__main__':`)."
                    ) from None
                finally:
                    _kill_group(popen.pid)  # anything it left behind in its group
            output = read_bounded(out_path)
            try:
                values = json.loads(result_path.read_text())
            except (OSError, ValueError):
                values = None
        self.probe_outputs = (self.probe_outputs + [output])[-5:]
        if isinstance(values, dict):
            return values
        raise LearnerFailure(diagnose.explain(output, what=what) or
                             f"{what} exited with code {popen.returncode} before it finished.")

    def start(self, args, *, name, shell=False, env=None, cwd=None):
        """Start a background process (stopped, with everything below it, after the check)."""
        cwd, env = cwd or self.target.path, env or self.env
        process = Process(args, cwd, env, name, shell=shell, rules=self.rules(args, cwd, env))
        self.processes.append(process)
        self.groups.add(process.popen.pid)
        return process

    def rules(self, args, cwd, env, write=()):
        """The sandbox of one learner process: it reads Python, the venv, the app folder
        and what its environment names; it writes the app folder, its HOME and `write`;
        it reaches the loopback ports its arguments and environment name, nothing else."""
        texts = [args] if isinstance(args, str) else [str(a) for a in args]
        texts += [str(v) for v in env.values()]
        read = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)), self.target.path]
        read += [part for part in env.get("PYTHONPATH", "").split(os.pathsep) if part]
        read += [v for v in env.values() if os.path.isabs(v) and os.path.isfile(v)]  # a CA file, a config file
        top = Path(cwd).resolve()
        if top in Path(__file__).resolve().parents:  # the course's own checkout: its deploy files only
            read += [top / name for name in sandbox.PROJECT_FILES]
        else:
            read.append(top)
        ports = sandbox.loopback_ports(texts)
        return sandbox.policy(read=read, write=[self.home, self.target.path, *self.shared, *write],
                              connect=ports, bind=ports, group=self.group)

    def may_write(self, path):
        """Let the learner processes started from now on write `path` (a log a check reads)."""
        self.shared.append(str(path))

    def start_python(self, script, *, name=None, env=None):
        return self.start([sys.executable, script], name=name or f"`python {script}`", env=env)

    def start_procfile(self, process_type, *, env=None):
        """Start one Procfile process type the way Heroku does: its command run by bash,
        from the Procfile's folder, with APP_DIR naming the app folder."""
        procfile = self.target.project_file("Procfile")
        command = self.target.procfile().get(process_type)
        if command is None:
            raise LearnerFailure(f"The Procfile ({procfile}) has no `{process_type}:` line.")
        env = dict(env or self.env)
        env.setdefault("APP_DIR", str(self.target.path))
        return self.start(command, name=f"the Procfile's {process_type} process ({command!r})",
                          shell=True, env=env, cwd=procfile.parent)

    def start_worker(self, *, env=None):
        """Start the learner's worker: the Procfile's worker line if the app folder has its
        own Procfile (so `rq worker ...` is allowed), else `python worker.py`."""
        if (self.target.path / "Procfile").exists() and "worker" in self.target.procfile():
            return self.start_procfile("worker", env=env)
        return self.start_python("worker.py", env=env)

    def pids(self):
        """Every live process this learner's code runs in: its processes, what runs
        below them, and what detached from them."""
        table = process_table()
        return descendants([p.popen.pid for p in self.processes], table) | self._strays(table)

    def _strays(self, table=None):
        found = strays(table)
        # A self-check grading run's processes carry its marker: they are that run's, not this learner's.
        return {p for p in found if not environ_has(p, b"COURSE_SELFCHECK_RUN=")}

    def web_error(self, message=""):
        """The exception the app logged while answering the request `message` names
        (in a web process or a test-client probe), as a sentence ('' if none): what
        hides behind a bare '500 Internal Server Error'."""
        return diagnose.logged_error([p.log() for p in self.processes if "web" in p.name],
                                     self.probe_outputs, message)

    def leaked(self):
        """(processes that detached from this learner's processes, with their command
        lines; every live process of this learner)."""
        table = process_table()
        ours = set()
        for process in self.processes:
            ours |= process.tree
        everything = descendants(ours, table) | self._strays(table)
        if _contained != "subreaper":  # no subreaper: a sweep of what kept the marker
            everything |= set(marked_processes(self.marker))
        detached = {p: command_line(p) for p in everything if table.get(p, (0, "", 0, 0))[3] not in self.groups}
        for process in self.processes:
            detached.update(process.detached)
        return sorted(detached.items()), everything

    def close(self):
        """Stop every process this check started; return what had detached from them."""
        for process in self.processes:
            process.close()
        for group in self.groups:
            _kill_group(group)
        leftovers, everything = self.leaked()
        if everything:
            kill_all(everything)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                table = process_table()
                if not any(table.get(p, (0, "Z"))[1] != "Z" for p in everything):
                    break
                time.sleep(0.02)
            reap(everything)
        if self.group:  # what hid from ancestry and the marker is still in the group
            reap(self.group.stop())
        shutil.rmtree(self.home, ignore_errors=True)
        return leftovers


def _program(command):
    """A command line as a learner would type it: the program's name, not its path."""
    words = command.split()
    return " ".join([os.path.basename(words[0]), *words[1:]]) if words else "?"


def describe_leaks(leftovers):
    shown = "; ".join(f"`{_program(cmd)[:60]}`" for _pid, cmd in leftovers[:2])
    return (f"Your code left {len(leftovers)} process(es) running after the check ({shown}): start workers "
            "only from worker.py or the Procfile, never from code the web app or a job imports.")


def wait_until(condition, timeout, interval=0.05):
    """Poll condition() until it returns something truthy; return it (or None at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
