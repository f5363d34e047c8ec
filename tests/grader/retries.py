"""Follow a job through rq's retries without waiting out the learner's intervals.

A retry with an interval puts the job in the queue's ScheduledJobRegistry (a
Redis sorted set scored by the time it is due); the scheduler that the worker
runs moves due jobs back onto the queue about once a second. The grader moves
the due time to now, so a retry after 60 s happens within a second or two, but
it is still the learner's scheduler that has to put the job back.
"""
import time

from rq.registry import ScheduledJobRegistry

from grader import jobs
from grader.feedback import LearnerFailure

# How long a due retry may wait for the scheduler (it looks every second) before
# the grader concludes that no scheduler is running; and how long, when no
# scheduler holds the queue's lock at all (a running one renews it every second).
SCHEDULER_GRACE = 6
NO_SCHEDULER_GRACE = 2
NO_SCHEDULER = ("The job failed once and rq scheduled its retry, but nothing ever put it back on the queue: "
                "retry intervals need rq's scheduler. Start the worker with `worker.work(with_scheduler=True)` "
                "(or `rq worker --with-scheduler`).")


class NoScheduler(LearnerFailure):
    pass


def make_due(redis, registry_key, job_ids):
    """Make these jobs of a scheduled registry due now, so a scheduler moves them to their
    queue at once (rq compares whole seconds, so one second ago)."""
    if job_ids:
        redis.zadd(registry_key, dict.fromkeys(job_ids, int(time.time()) - 1), xx=True)


def hurry(redis, job):
    """If the job waits in the scheduled registry, make it due now. True if it was waiting."""
    key = ScheduledJobRegistry(job.origin, connection=redis).key
    due = redis.zscore(key, job.id)
    if due is None:
        return False
    if due > int(time.time()) - 1:
        make_due(redis, key, [job.id])
    return True


def make_everything_due(redis):
    """Make every job waiting in a scheduled registry (a retry's back-off, an enqueue_in)
    due now. Returns None, so it can lead an `or` in a wait_until condition."""
    for queue in jobs.queues(redis):
        registry = queue.scheduled_job_registry
        make_due(redis, registry.key, registry.get_job_ids())


def run_once(redis, job_id):
    """Let the job run only once, whatever retries it was enqueued with: for a check about
    what one run does (a failure shown, a timeout), where each retry would fail alike and
    only add the scheduler's waits. rq keeps retries_left as a plain field of the job."""
    key = f"rq:job:{job_id}"
    if redis.hexists(key, "retries_left"):
        redis.hset(key, "retries_left", 0)


def scheduler_holds(redis, queue_name):
    """True if some rq scheduler holds the queue's lock (rq:scheduler-lock:<queue>)."""
    return bool(redis.exists(f"rq:scheduler-lock:{queue_name}"))


class RetryFastForward:
    """Makes a job's scheduled retry due at once, each time check() is called, and
    raises NoScheduler once it is certain nobody will put the due job back: due for
    SCHEDULER_GRACE s, or for NO_SCHEDULER_GRACE s with no scheduler holding its queue."""

    def __init__(self, redis, job):
        self.redis, self.job = redis, job
        self.waited = False
        self.due_since = None

    def check(self):
        if not hurry(self.redis, self.job):
            self.due_since = None
            return
        self.waited = True
        self.due_since = self.due_since or time.monotonic()
        overdue = time.monotonic() - self.due_since
        if overdue > SCHEDULER_GRACE or (overdue > NO_SCHEDULER_GRACE
                                         and not scheduler_holds(self.redis, self.job.origin)):
            raise NoScheduler(NO_SCHEDULER)


def waiting(redis, job):
    """True if the job waits in its queue's scheduled registry (a retry's wait)."""
    return redis.zscore(ScheduledJobRegistry(job.origin, connection=redis).key, job.id) is not None


def due_in(redis, job):
    """Seconds from now until the job's scheduled retry is due (None if it waits for none)."""
    due = redis.zscore(ScheduledJobRegistry(job.origin, connection=redis).key, job.id)
    return None if due is None else due - time.time()


def follow(redis, job, timeout):
    """Wait until the job has finished or failed for good, hurrying each scheduled
    retry. Returns (state, whether a retry ever waited in the scheduled registry).
    Raises NoScheduler if a due retry is never picked up."""
    fast_forward = RetryFastForward(redis, job)
    deadline = time.monotonic() + timeout
    while True:
        state = jobs.status(job)
        if state in jobs.ENDED:
            return state, fast_forward.waited
        fast_forward.check()
        if time.monotonic() >= deadline:
            raise LearnerFailure(f"After {timeout} s the job was still {state}.")
        time.sleep(0.05)
