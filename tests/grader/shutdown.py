"""Stop a worker the way Heroku stops a dyno: SIGTERM to every process in it,
then SIGKILL to whatever is still alive when the grace period is over."""
import os
import signal
import time



def stop_like_heroku(learner, grace):
    """SIGTERM every process the learner started (worker, work horse, scheduler);
    wait up to `grace` seconds for all to exit, then SIGKILL the rest.
    A dyno ends when its command exits: once every process the grader started
    (each dyno's command) has exited, whatever they left running (an orphaned
    work horse) is killed at once, as Heroku does, not at the end of the grace.
    Returns (seconds until the commands had exited or grace ran out, whether SIGKILL
    was needed because a command was still running when the grace ran out)."""
    started = time.monotonic()
    for pid in learner.pids():
        _signal(pid, signal.SIGTERM)
    killed = True
    while time.monotonic() - started < grace:
        for process in learner.processes:
            process.popen.poll()  # reap exited children, so they do not linger as zombies
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
    return seconds, killed


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass
