"""Child pytest runs: the one place the course starts a pytest of its own grader.

Every way the course runs the grader is a configuration of `start` (or `run`,
which also waits, bounds the time and stops what is left):

- `course grade`'s lanes: one run per lane, output captured (course/grading.py);
- `watch`'s warm runs: a run kept up between gradings, spoken to on stdin and
  stdout (course/warm.py, tests/grader/host.py);
- the self-checks' gradings: batches of app folders in one run
  (tests/selfcheck/runner.py);
- the self-checks run in the background, reported through JUnit XML
  (tests/selfcheck/background.py).

Each run starts from the course folder with the course's own Python, without the
variables that would change what it grades (COURSE_TARGET, PYTEST_ADDOPTS), and,
where the kernel allows it, in a network of its own (course/sandbox.py).
"""
import os
import signal
import subprocess
import sys

from course import ROOT, sandbox

NOT_PASSED_ON = ("COURSE_TARGET", "PYTEST_ADDOPTS")


def command(*args):
    """The command line of a pytest run of the grader with these arguments."""
    return [sys.executable, "-m", "pytest", *map(str, args)]


def environment(**extra):
    """This process's environment for a child run, with `extra` on top (None removes)."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_PASSED_ON}
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def start(args, *, env=None, stdin=subprocess.DEVNULL, stdout=None, stderr=subprocess.STDOUT, text=False,
          new_session=False, own_network=True, script=None):
    """Start a run of `args` (pytest's arguments; or `script` with them, a grader program
    that runs pytest itself) and return its Popen."""
    argv = [sys.executable, str(script), *map(str, args)] if script else command(*args)
    return subprocess.Popen(argv, cwd=ROOT, env=environment() if env is None else env, stdin=stdin, stdout=stdout,
                            stderr=stderr if stdout is not None else None, text=text, start_new_session=new_session,
                            preexec_fn=sandbox.own_network() if own_network else None)


def run(args, *, env=None, output=None, timeout=None, on_start=None):
    """Run to the end: output to the open file `output` (None: this terminal). Past
    `timeout` seconds it is sent SIGTERM (the grader stops its services and learner
    processes), then its whole session SIGKILL. Returns (exit code, timed out)."""
    popen = start(args, env=env, stdout=output, new_session=timeout is not None)
    timed_out = False
    try:
        if on_start:
            on_start(popen)
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        popen.terminate()
        try:
            popen.wait(20)
        except subprocess.TimeoutExpired:
            pass
    finally:
        if timeout is not None:
            try:
                os.killpg(popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        popen.wait()
    return popen.returncode, timed_out
