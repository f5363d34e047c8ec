"""Run learner code safely: its own process group, a time bound, clean-up.

Every piece of learner code runs in a child process started here, never in
the grader's own process, so an import that hangs, a worker that never
exits or a crash cannot take the grader down. Each child carries a marker in
its environment; anything still alive with that marker after a check is a
leaked process, reported to the learner and killed.
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from grader import diagnose
from grader.feedback import LearnerFailure

MARKER_VAR = "COURSE_GRADER_RUN"
RESULT_PREFIX = "@@course-result@@"

PROBE_TEMPLATE = '''\
import json, os, sys
sys.path.insert(0, os.getcwd())
_result = {{}}
def result(**values):
    _result.update(values)
{code}
print({prefix!r} + json.dumps(_result, default=str), flush=True)
'''


def _kill_group(pgid, sig=signal.SIGKILL):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def marked_processes(marker, variable=MARKER_VAR):
    """PIDs (other than ours) of live processes whose environment has
    variable=marker. Linux only (elsewhere: none found)."""
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
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


class Process:
    """A learner process running in the background (a worker, a web server)."""

    def __init__(self, args, cwd, env, name, shell=False):
        self.name = name
        self.log_file = tempfile.NamedTemporaryFile(prefix="course-log-", suffix=".txt", delete=False)
        self.popen = subprocess.Popen(
            args, cwd=cwd, env=env, shell=shell, executable="/bin/bash" if shell else None,
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its children too
        )

    def alive(self):
        return self.popen.poll() is None

    def log(self):
        self.log_file.flush()
        return Path(self.log_file.name).read_text(errors="replace")

    def explain_exit(self):
        """Why it stopped, in a sentence."""
        reason = diagnose.explain(self.log(), what=self.name)
        return reason or f"{self.name} exited with code {self.popen.returncode} and printed nothing useful."

    def terminate(self, grace=10):
        """SIGTERM the whole group (as Heroku does), then SIGKILL after `grace` seconds."""
        if self.alive():
            _kill_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(self.popen.pid)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def close(self):
        self.terminate(grace=5)
        self.log_file.close()
        try:
            os.unlink(self.log_file.name)
        except OSError:
            pass


class Learner:
    """Runs code from one learner app folder with a given environment."""

    def __init__(self, target, env):
        self.target = target
        self.marker = uuid.uuid4().hex
        # The grader's own bin/ first on PATH, so `python`, `gunicorn` and `rq` in a
        # Procfile mean the pinned ones, as they do on a Heroku dyno.
        path = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
        self.env = {**env, MARKER_VAR: self.marker, "PYTHONDONTWRITEBYTECODE": "1",
                    "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(target.path), "PATH": path}
        self.processes = []
        self.probe_outputs = []  # what recent probes printed: Flask logs a 500's traceback there

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
        script = PROBE_TEMPLATE.format(code=textwrap.dedent(code), prefix=RESULT_PREFIX)
        with tempfile.TemporaryDirectory(prefix="course-probe-") as folder:
            path = Path(folder) / "probe.py"
            path.write_text(script)
            out_path = Path(folder) / "out.txt"
            with open(out_path, "w") as out:
                popen = subprocess.Popen(
                    [sys.executable, str(path)], cwd=self.target.path, env=env or self.env,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )
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
            output = out_path.read_text(errors="replace")
        self.probe_outputs = (self.probe_outputs + [output])[-5:]
        for line in reversed(output.splitlines()):
            if line.startswith(RESULT_PREFIX):
                return json.loads(line[len(RESULT_PREFIX):])
        raise LearnerFailure(diagnose.explain(output, what=what) or f"{what} exited with code {popen.returncode}.")

    def start(self, args, *, name, shell=False, env=None, cwd=None):
        """Start a background process (killed, with its children, after the check)."""
        process = Process(args, cwd or self.target.path, env or self.env, name, shell=shell)
        self.processes.append(process)
        return process

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

    def web_error(self):
        """The last exception the app logged while answering (in a web process or a
        test-client probe), as a sentence ('' if none): what hides behind a bare
        '500 Internal Server Error'."""
        logs = [p.log() for p in self.processes if "web" in p.name] + self.probe_outputs
        for log in reversed(logs):
            lines = log.splitlines()
            starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
            if not starts:
                continue
            block = []
            for line in lines[starts[-1]:]:
                block.append(line)
                if len(block) > 1 and line and not line[0].isspace():
                    break  # the exception line ends the traceback
            return diagnose.explain("\n".join(block), what="the route")
        return ""

    def leaked(self):
        """Processes still alive with this learner's marker (after its own were stopped)."""
        return [(pid, command_line(pid)) for pid in marked_processes(self.marker)]

    def close(self):
        """Stop every process this check started; return what had leaked past them."""
        for process in self.processes:
            process.close()
        leftovers = self.leaked()
        for pid, _ in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return leftovers


def describe_leaks(leftovers):
    shown = "; ".join(f"pid {pid}: {shlex.quote(cmd)[:80]}" for pid, cmd in leftovers[:3])
    return (f"Your code left {len(leftovers)} process(es) running after the check ({shown}). "
            "A worker or server started from app.py or utils.py outlives its caller: start workers "
            "only from worker.py (or the Procfile), never from the web app.")


def wait_until(condition, timeout, interval=0.05):
    """Poll condition() until it returns something truthy; return it (or None at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
