"""rq's state in the grader's Redis beyond one job: what a job waits for, when every
queue and worker has gone quiet, how many jobs ran at once."""
import time

from grader import jobs
from grader.processes import wait_until


def dependencies(redis, job):
    """The jobs `job` waits for (its depends_on), fetched whatever their serializer."""
    return [jobs.fetch(redis, job_id) for job_id in job.dependency_ids]


def settled(redis, timeout, quiet=0.3):
    """Wait until no job is queued or running on any queue, and every registered
    worker waits for jobs again (its connection blocked in Redis), for `quiet` seconds
    in a row; True if that happened in time. An empty queue alone is not enough: when
    a job ends, its worker enqueues the jobs that depend on it a moment later, and
    only then goes back to waiting. (rq keeps a worker's state "idle" throughout.)"""
    from rq import Worker

    idle_since = [None]

    def idle():
        for queue in jobs.queues(redis):
            if queue.count or queue.started_job_registry.get_job_ids():
                idle_since[0] = None
                return False
        if redis.info("clients")["blocked_clients"] < Worker.count(connection=redis):
            idle_since[0] = None
            return False
        idle_since[0] = idle_since[0] or time.monotonic()
        return time.monotonic() - idle_since[0] >= quiet

    return bool(wait_until(idle, timeout, interval=0.05))


def most_at_once(runs):
    """The most jobs that were running at the same moment, from their own
    (started_at, ended_at) as rq stored them. A job that starts the instant
    another ends does not overlap it."""
    events = []
    for started, ended in runs:
        if started is None or ended is None:
            continue
        events += [(started, 1), (ended, -1)]
    events.sort(key=lambda event: (event[0], event[1]))  # at a tie, the end first
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most
