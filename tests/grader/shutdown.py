"""Stop a worker the way Heroku stops a dyno: SIGTERM to every process in it,
then SIGKILL to whatever is still alive when the grace period is over."""
import os
import signal
import time



def stop_like_heroku(learner, grace):
    """SIGTERM every process the learner started (worker, work horse, scheduler);
    wait up to `grace` seconds for all to exit, then SIGKILL the rest.
    Returns (seconds until all had exited or grace ran out, whether SIGKILL was needed)."""
    started = time.monotonic()
    for pid in learner.pids():
        _signal(pid, signal.SIGTERM)
    while time.monotonic() - started < grace:
        for process in learner.processes:
            process.popen.poll()  # reap exited children, so they do not linger as zombies
        if not learner.pids():
            return time.monotonic() - started, False
        time.sleep(0.1)
    for pid in learner.pids():
        _signal(pid, signal.SIGKILL)
    for process in learner.processes:
        try:
            process.popen.wait(5)
        except Exception:
            pass
    return grace, True


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass
