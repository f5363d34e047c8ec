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
