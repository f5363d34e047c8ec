"""Stop a worker the way Heroku stops a dyno: SIGTERM to every process in it,
then SIGKILL to whatever is still alive when the grace period is over."""
import os
import signal
import time

from grader.processes import process_table


def stop_like_heroku(learner, grace):
    """SIGTERM every process the learner started (worker, work horse, scheduler);
    wait up to `grace` seconds for all to exit, then SIGKILL the rest.
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
    for pid in running:
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
