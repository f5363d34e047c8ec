"""Small jobs for the notebooks.

A worker finds a job's function by its import path (`demo_jobs.note`), so
the function must live in a module the worker can import, not in a notebook
cell: a worker in another process cannot see the notebook's variables.
"""
import time


def noop():
    """Does nothing: what is left to measure is the worker's own cost per job."""
    return None


def note(label, seconds=0.0):
    """Waits a little (a stand-in for real work) and returns its label."""
    time.sleep(seconds)
    return label


def in_steps(count=10, seconds=0.1):
    """A slow job in steps that records how far it got in job.meta["progress"]
    (0-100), as the solution's make_report does for the page's progress bar."""
    from rq import get_current_job

    job = get_current_job()  # None when called directly, outside a worker
    for step in range(1, count + 1):
        time.sleep(seconds)
        if job is not None:
            job.meta["progress"] = 100 * step // count
            job.save_meta()
    return count
