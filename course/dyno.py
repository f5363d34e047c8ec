"""A Procfile process type run as Heroku runs it: in a dyno.

Heroku stops a dyno (a restart, a deploy, a scale-down) by sending SIGTERM to
every process in it, then SIGKILL 30 s later to whatever still runs. honcho,
which runs the Procfile for `course run`, signals only the process group of
each command it started. An rq worker runs each job in a work horse that has
a process group of its own, so under plain honcho the horse never got the
SIGTERM and a plain Worker's job seemed to survive a stop that kills it on
Heroku.

So honcho starts each command through a keeper, this file run as a script
(the standard library only, so it starts fast and needs no import path):

    honcho -> keeper (one per process type) -> sh -c COMMAND (a new session)

The keeper runs the command in a session of its own, and on SIGTERM (honcho
stopping everything) or SIGHUP (`course restart`, like `heroku ps:restart`)
it stops the whole dyno the Heroku way: SIGTERM to every process in that
session or below the keeper, SIGKILL to those left after the grace. After a
restart it starts the command again. On Linux the keeper is a subreaper, so a
process whose parent dies (a horse whose worker exited) stays below it.
"""
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

HEROKU_GRACE_SECONDS = 30
# Heroku's 30 s, shortened only by the course's own checks.
GRACE_ENV = "COURSE_TEST_DYNO_GRACE_SECONDS"
# After SIGKILL: enough for the kernel to take the processes down.
KILLED_SECONDS = 5


def grace_seconds():
    """Seconds between a dyno's SIGTERM and its SIGKILL."""
    try:
        return max(0.0, float(os.environ[GRACE_ENV]))
    except (KeyError, ValueError):
        return float(HEROKU_GRACE_SECONDS)


def stop_seconds():
    """How long a whole dyno may take to stop, SIGKILL included."""
    return grace_seconds() + KILLED_SECONDS


def procfile_command(kind, command, folder):
    """The Procfile command that runs `command` as the dyno `kind`; its keeper leaves
    its process id in `folder`, where `course restart` finds it."""
    keeper = [sys.executable, str(Path(__file__).resolve()), "keep", kind, str(folder), command]
    return "exec " + " ".join(shlex.quote(part) for part in keeper)


def honcho_command(args):
    """The command that runs honcho with `args` (honcho's own, such as start -f Procfile)."""
    return [sys.executable, str(Path(__file__).resolve()), "honcho", *args]


def _run_honcho(args):
    from honcho import command, manager

    # honcho SIGKILLs the process groups still running 5 s after the first process
    # ends. Each keeper gives its dyno Heroku's grace itself, and must get to finish.
    manager.KILL_WAIT = stop_seconds() + KILLED_SECONDS
    command.main(args)


# ---------------------------------------------------------------- the keeper

def _say(text):
    try:
        print(f"dyno: {text}", flush=True)
    except OSError:  # nobody reads the output any more: the dyno must still stop as it should
        sys.stdout = open(os.devnull, "w")


def _become_subreaper():
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def _process_table():
    """{pid: (parent pid, session id)} of every live process (zombies left out)."""
    table = {}
    if Path("/proc/self/stat").exists():
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
                if fields[0] != b"Z":
                    table[int(entry.name)] = (int(fields[1]), int(fields[3]))
            except (OSError, IndexError, ValueError):
                continue
        return table
    listing = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid=", "-o", "stat="], capture_output=True, text=True)
    for line in listing.stdout.splitlines():
        try:
            pid, parent, state = line.split(None, 2)
            if not state.startswith("Z"):
                table[int(pid)] = (int(parent), os.getsid(int(pid)))
        except (ValueError, OSError):
            continue
    return table


def _exit_status(code):
    """A shell's view of an exit code: 128 + the signal for a process a signal ended."""
    return 128 - code if code < 0 else code


class Dyno:
    def __init__(self, kind, command):
        self.kind = kind
        self.command = command
        self.main = None
        self.status = None  # the main process's exit code, once it ended
        self.requests = []  # "stop" or "restart", from the signal handlers

    def start(self):
        _say(f"Starting process with command `{self.command}`")
        self.main = subprocess.Popen(["/bin/sh", "-c", self.command], start_new_session=True)
        self.status = None

    def members(self):
        """Every process of the dyno: in its session, or below the keeper."""
        table = _process_table()
        below = {pid for pid, (parent, _) in table.items() if parent == os.getpid()}
        todo = list(below)
        while todo:
            pid = todo.pop()
            for child, (parent, _) in table.items():
                if parent == pid and child not in below:
                    below.add(child)
                    todo.append(child)
        session = {pid for pid, (_, sid) in table.items() if sid == self.main.pid}
        return sorted((below | session) - {os.getpid()})

    def reap(self):
        """Collect every child that ended: the main process and any orphan handed to the keeper."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.main.pid:
                self.status = self.main.returncode = os.waitstatus_to_exitcode(status)

    def _signal(self, pids, signum):
        for pid in pids:
            try:
                os.kill(pid, signum)
            except OSError:
                pass

    def _gone_within(self, seconds):
        deadline = time.monotonic() + seconds
        while True:
            self.reap()
            if self.status is not None and not self.members():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def stop(self, why):
        """Heroku's stop: SIGTERM to every process, SIGKILL to those left after the grace."""
        grace = grace_seconds()
        started = time.monotonic()
        pids = self.members()
        _say(f"{why}: SIGTERM to all processes (pids {', '.join(map(str, pids))}); "
             f"SIGKILL in {grace:g} s to any still running")
        self._signal(pids, signal.SIGTERM)
        if not self._gone_within(grace):
            left = self.members()
            _say(f"SIGKILL to the processes still running after {grace:g} s (pids {', '.join(map(str, left))})")
            self._signal(left, signal.SIGKILL)
            self._gone_within(KILLED_SECONDS)
        _say(f"Process exited with status {_exit_status(self.status or 0)} "
             f"(the dyno stopped in {time.monotonic() - started:.1f} s)")

    def keep(self):
        """Run the command until it ends or a stop comes; start it again after each restart."""
        self.start()
        while True:
            self.reap()
            if "stop" in self.requests:
                self.stop("Stopping")
                return _exit_status(self.status or 0)
            if "restart" in self.requests:
                self.requests.remove("restart")
                self.stop("Restarting")
                if "stop" in self.requests:  # stopped for good while it restarted
                    return _exit_status(self.status or 0)
                self.start()
                continue
            if self.status is not None:  # the command ended by itself: so does its dyno
                if self.members():
                    self.stop(f"Process exited with status {_exit_status(self.status)}")
                return _exit_status(self.status)
            time.sleep(0.1)


def keep(kind, folder, command):
    dyno = Dyno(kind, command)
    signal.signal(signal.SIGTERM, lambda *_: dyno.requests.append("stop"))
    signal.signal(signal.SIGINT, lambda *_: dyno.requests.append("stop"))
    signal.signal(signal.SIGHUP, lambda *_: dyno.requests.append("restart"))
    _become_subreaper()
    pid_file = Path(folder) / f"{kind}.pid"
    try:
        pid_file.write_text(f"{os.getpid()}\n")
    except OSError:
        pid_file = None  # the dyno runs; only `course restart` cannot find it
    try:
        return dyno.keep()
    finally:
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["keep"]:
        raise SystemExit(keep(*sys.argv[2:5]))
    if sys.argv[1:2] == ["honcho"]:
        raise SystemExit(_run_honcho(sys.argv[2:]))
    raise SystemExit(f"usage: {sys.argv[0]} keep KIND FOLDER COMMAND | honcho ARGS...")
