"""Run learner code: a Learner runs one app folder's code in child processes
(probes, web, worker, Procfile lines) and stops them all after the check.

Every piece of learner code runs in a child process started here, never in
the grader's own process, so an import that hangs, a worker that never exits
or a crash cannot take the grader down. Learner code sees only an allow-listed
environment (grader/spawning.py) and a throwaway HOME, and runs in the sandbox
(course/sandbox.py) this module draws for each process.
"""
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from course import manifest, sandbox
from grader import diagnose
from grader.diagnose import PROBE_FILE, PROBES
from grader.feedback import LearnerFailure
from grader.processes import (MARKER_VAR, command_line, contain, descendants, environ_has, kill_all, kill_group,
                              listening_ports, marked_processes, process_table, read_bounded, reap, strays)
from grader.spawning import allowed_environment, spawn




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


class Process:
    """A learner process running in the background (a worker, a web server)."""

    def __init__(self, args, cwd, env, name, shell=False, rules=None):
        self.name = name
        self.log_file = tempfile.NamedTemporaryFile(prefix="course-log-", suffix=".txt", delete=False)
        self.popen = spawn(args, cwd=cwd, env=env, shell=shell, output=self.log_file, rules=rules)
        self.tree = {self.popen.pid}  # every process seen below it
        self.detached = {}            # pid -> command line of those below it in a session of their own
        self.needed_kill = False
        self.looked_at = set()        # pids below it already checked by look_for_spawned_horses()
        self.spawns_horses = False    # a job ran in a fresh interpreter, not a fork of it
        self._horses_seen_at = 0.0

    def alive(self):
        return self.popen.poll() is None

    def pids(self):
        """It and every live process below it."""
        return descendants([self.popen.pid])

    def listening_ports(self):
        """The TCP ports it and the processes below it listen on (None where that cannot be read)."""
        return listening_ports(self.pids())

    def log(self):
        """What it printed: all of it, or its start and its end if it printed a lot."""
        self.log_file.flush()
        return read_bounded(self.log_file.name)

    def explain_exit(self, what="it"):
        """Why it stopped, in a sentence (after 'X stopped at start-up:' or the like)."""
        reason = diagnose.explain(self.log(), what=what)
        return reason or f"{what} exited with code {self.popen.returncode} and printed nothing."

    def look_for_spawned_horses(self):
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
            kill_group(self.popen.pid, signal.SIGTERM)
            kill_all(self.tree - {self.popen.pid}, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.needed_kill = True
        if self.needed_kill:  # still running: what it started meanwhile goes too
            self.tree |= descendants(self.tree)
        kill_group(self.popen.pid)
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
        kill_group(self.popen.pid)
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
            problem = _compile_problem(path.name, path.read_bytes())
        except OSError as error:  # unreadable
            problem = f"{path.name}: {error}. Python cannot even read the file; fix it first."
        if problem:
            return problem
    return ""


@functools.lru_cache(maxsize=256)
def _compile_problem(name, source):
    """syntax_problem's verdict on one file: every check asks it of the same few files,
    and compiling them each time cost seconds of CPU in a grading of every unit."""
    try:
        compile(source, name, "exec", dont_inherit=True)
    except SyntaxError as error:
        where = f"{name}, line {error.lineno}" if error.lineno else name
        return f"{where}: {type(error).__name__}: {error.msg}. Python cannot even read the file; fix that line first."
    except ValueError as error:  # null bytes
        return f"{name}: {error}. Python cannot even read the file; fix it first."
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
                    started = len(descendants([popen.pid])) - 1  # a runaway's forks, counted before they go
                    kill_group(popen.pid)
                    popen.wait()
                    raise LearnerFailure(
                        f"{what} did not finish within {timeout:.0f} s, so the grader stopped it. " + (
                            diagnose.started_many(started) or
                            "Look for a loop that never ends, or work that starts when a module is imported "
                            "(a worker should start only under `if __name__ == '__main__':`).")
                    ) from None
                finally:
                    kill_group(popen.pid)  # anything it left behind in its group
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

    def run_probe(self, name, *, what, timeout=20, env=None, **params):
        """Run the probe file grader/probes/NAME.py in a fresh Python in the app folder, with
        `params` (JSON values) as course_probe_support.params; return what it passes to result()."""
        code = (f"import json as _json, runpy as _runpy, sys as _sys\n"
                f"_sys.path.append({str(PROBES)!r})\n"
                f"import course_probe_support as _support\n"
                f"_support.params = _json.loads({json.dumps(params)!r})\n"
                f"_support.result = result\n"
                f"_runpy.run_path({str(PROBES / (name + '.py'))!r}, run_name='course_probe')\n")
        return self.probe(code, what=what, timeout=timeout, env=env)

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
        read = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)), self.target.path, PROBES]
        read += [part for part in env.get("PYTHONPATH", "").split(os.pathsep) if part]
        # Files the grader names in the arguments or the environment: a script of its own, a CA file.
        read += [v for v in texts if os.path.isabs(v) and os.path.isfile(v)]
        top = Path(cwd).resolve()
        if top in Path(__file__).resolve().parents:  # the course's own checkout: its deploy files only
            read += [top / name for name in (*manifest.STUDENT_DEPLOY_FILES, *manifest.COURSE_DEPLOY_FILES)]
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

    def still_running(self):
        """Whether a process that carries this learner's marker still runs (Linux)."""
        return bool(marked_processes(self.marker))

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
        if contain() != "subreaper":  # no subreaper: a sweep of what kept the marker
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
            kill_group(group)
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
