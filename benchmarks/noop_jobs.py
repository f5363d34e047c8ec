"""Jobs for the worker throughput benchmark: they do (almost) nothing, so what
is measured is the worker's own cost per job (dequeue, fork or not, bookkeeping)."""
import time


def noop():
    """The cheapest job there is."""
    return None


def pause(seconds):
    """A short job: sleeps, as a job waiting on a database or S3 would."""
    time.sleep(seconds)
