"""`python3 -m course restart [TYPE]`: restart a dyno of the running `course run`,
as `heroku ps:restart --process-type TYPE` restarts one on Heroku.

Each `course run` keeps a folder, .course/run/<its process id>/, holding the
web port it serves and, once its dynos started, one TYPE.pid per dyno: the
process id of that dyno's keeper (course/dyno.py). This command sends the
keeper SIGHUP; the keeper stops the dyno as Heroku does (SIGTERM to every
process in it, SIGKILL after 30 s to any left) and starts it again. The
`course run` terminal shows each step.
"""
import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

from course import dyno, progress, services


def runs_folder():
    return progress.state_dir() / "run"


def _forget_ended_runs():
    """Remove the folders of runs that were killed before they could remove their own."""
    for folder in runs_folder().glob("[0-9]*"):
        if not services.process_alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def registered(port):
    """A folder where this `course run` says which port it serves and its dynos leave their keepers' ids."""
    folder = runs_folder() / str(os.getpid())
    try:
        _forget_ended_runs()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "port").write_text(f"{port}\n")
    except OSError as error:  # the app runs all the same; only `course restart` cannot reach it
        print(f"course: cannot write {folder} ({error.strerror}), so `course restart` will not find this run.",
              file=sys.stderr)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Run:
    port: int
    dynos: dict = field(default_factory=dict)  # {process type: its keeper's process id}


def _is_keeper(pid):
    """The process is a dyno keeper (a process id can be reused once its process ended)."""
    shown = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True)
    return "dyno.py keep" in shown.stdout


def running():
    """Every `course run` still running, with its dynos; the folders of ended ones are removed."""
    _forget_ended_runs()
    runs = []
    for folder in sorted(runs_folder().glob("[0-9]*")):
        try:
            run = Run(int((folder / "port").read_text()))
        except (OSError, ValueError):
            continue
        for pid_file in folder.glob("*.pid"):
            try:
                pid = int(pid_file.read_text())
            except (OSError, ValueError):
                continue
            if services.process_alive(pid) and _is_keeper(pid):
                run.dynos[pid_file.stem] = pid
        if run.dynos:
            runs.append(run)
    return runs


def _say(text):
    print(f"course: {text}", file=sys.stderr)


def restart(kind=None, port=None):
    """Restart the dyno `kind` (every dyno if None) of the `course run` on `port`
    (the only one running, if None)."""
    runs = running()
    if not runs:
        _say("no `python3 -m course run` is running here, so there is no dyno to restart. "
             "Start one in another terminal first, then run this again.")
        return 1
    if port is not None:
        chosen = [run for run in runs if run.port == port]
        if not chosen:
            _say(f"no `course run` serves port {port}; the running one(s) serve port(s) "
                 f"{', '.join(str(run.port) for run in runs)}.")
            return 1
        runs = chosen
    if len(runs) > 1:
        _say(f"{len(runs)} `course run`s are running, on ports {', '.join(str(run.port) for run in runs)}; "
             "say which with --port.")
        return 2
    run = runs[0]
    kinds = list(run.dynos) if kind is None else [kind]
    if kind is not None and kind not in run.dynos:
        _say(f"the `course run` on port {run.port} has no {kind} process; it runs {', '.join(run.dynos)}.")
        return 1
    for name in kinds:
        os.kill(run.dynos[name], signal.SIGHUP)
    grace = dyno.grace_seconds()
    _say(f"restarting {', '.join(kinds)} (the `course run` on port {run.port}), as `heroku ps:restart` does: "
         f"SIGTERM to every process of the dyno now, SIGKILL {grace:g} s later to any still running, then the "
         "process type starts again. The `course run` terminal shows each step.")
    return 0
