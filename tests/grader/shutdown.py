"""Stop a worker the way Heroku stops a dyno: SIGTERM to every process in it,
then SIGKILL to whatever is still alive when the grace period is over."""
import os
import signal
import time
from pathlib import Path

from grader.prelude import start_worker_with_prelude
from grader.processes import process_table, wait_until


def stop_like_heroku(learner, grace, first=(), ready=None, ready_within=2):
    """SIGTERM every process the learner started (worker, work horse, scheduler);
    wait up to `grace` seconds for all to exit, then SIGKILL the rest.
    `first`: process ids to SIGTERM before the others, which get theirs once
    ready() is true (or ready_within seconds have passed): Heroku signals every
    process at about the same moment, in no order it promises.
    A dyno ends when its command exits: once every process the grader started
    (each dyno's command) has exited, whatever they left running (an orphaned
    work horse) is killed at once, as Heroku does, not at the end of the grace.
    Returns (seconds until the commands had exited or grace ran out, whether SIGKILL
    was needed because a command was still running when the grace ran out, how many
    seconds the longest-lived work horse lived after SIGTERM, or None if there was none).
    A work horse is a process below a command that leads a process group of its own
    (rq's forking workers make one per job): it is the job, so how long it outlives
    SIGTERM is how much time the job was given, whatever the machine's load."""
    commands = {process.popen.pid for process in learner.processes}
    running, table = learner.pids(), process_table()
    horses = {pid for pid in running - commands if table.get(pid, (0, "", 0))[2] == pid}
    started = time.monotonic()
    for pid in running & set(first):
        _signal(pid, signal.SIGTERM)
    if ready is not None:
        wait_until(ready, ready_within, interval=0.01)
    for pid in running - set(first):
        _signal(pid, signal.SIGTERM)
    horse_seconds = 0.0 if horses else None
    killed = True
    while time.monotonic() - started < grace:
        for process in learner.processes:
            process.popen.poll()  # reap exited children, so they do not linger as zombies
        if horses:
            table = process_table()
            if any(pid in table and table[pid][1] != "Z" for pid in horses):
                horse_seconds = time.monotonic() - started
        if not any(process.popen.returncode is None for process in learner.processes):
            killed = False
            break
        time.sleep(0.1)
    seconds = time.monotonic() - started if not killed else grace
    for pid in learner.pids():
        _signal(pid, signal.SIGKILL)
    for process in learner.processes:
        try:
            process.popen.wait(5)
        except Exception:
            pass
    return seconds, killed, horse_seconds


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


# rq's stop handler (BaseWorker.request_stop), made to wait a moment before it acts,
# as it may on a dyno whose CPU is busy; it notes the process id in the file named by
# COURSE_STOP_HANDLER_LOG as it starts. Heroku's SIGTERM reaches a pool's worker at
# about the moment the pool's own SIGINT does; with the handler slowed, the second
# signal arrives while the worker is still handling the first, the case a worker
# must take as one warm stop (rq otherwise takes it as two, and the second tells
# the work horse to give up at once).
SLOW_STOP = '''
import os


def _slow_stop_handler():
    import time

    from rq.worker.base import BaseWorker

    request_stop = BaseWorker.request_stop

    def slow_request_stop(self, signum, frame):
        with open(os.environ["COURSE_STOP_HANDLER_LOG"], "a") as log:
            log.write(f"{os.getpid()}\\n")
        time.sleep(float(os.environ["COURSE_STOP_HANDLER_DELAY"]))
        return request_stop(self, signum, frame)

    BaseWorker.request_stop = slow_request_stop


_slow_stop_handler()
'''


def start_worker_with_slow_stop_handler(learner, folder, delay, env):
    """Start the learner's worker (the Procfile's worker line, or python worker.py)
    with rq's stop handler waiting `delay` seconds before it acts. `folder` is an
    empty folder for the files that do it; env is the worker's environment.
    Returns the process, and a function giving the ids of the processes that
    have started handling a stop signal."""
    folder = Path(folder)
    log = folder / "stop-handlers.log"
    log.touch()
    learner.may_write(log)
    env = {**env, "COURSE_STOP_HANDLER_DELAY": str(delay), "COURSE_STOP_HANDLER_LOG": str(log)}

    def handling():
        return {int(line) for line in log.read_text().split()}

    return start_worker_with_prelude(learner, folder, SLOW_STOP, env), handling
