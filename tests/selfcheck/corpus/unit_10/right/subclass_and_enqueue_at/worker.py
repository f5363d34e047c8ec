"""The Redis connection, and the worker that runs queued jobs (python worker.py)."""
import os
from datetime import timedelta

import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry
from rq import Queue, Repeat
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import HerokuWorker
from rq.worker_pool import WorkerPool

from utils import delete_old_reports, fetch_section, make_report, merge_sections

# The queues this worker serves, in priority order: it always takes the next
# job from the first queue in this list that has one.
listen = ["high", "default", "low"]

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")

# Heroku's Redis speaks TLS only (rediss://) with a self-signed certificate,
# so for rediss:// URLs we encrypt but skip the certificate check. redis-py
# rejects ssl_cert_reqs on a plain redis:// URL, so pass it only for TLS.
tls = {"ssl_cert_reqs": None} if redis_url.startswith("rediss://") else {}


def connect(retries):
    """A client for redis_url that, when Redis drops (a restart, a failover),
    reconnects and sends the command again up to `retries` times, waiting
    0.25 s, 0.5 s, 1 s, then 2 s between tries, instead of raising at once."""
    return redis.Redis.from_url(
        redis_url, retry=Retry(ConstantBackoff(1), retries),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        socket_connect_timeout=5, health_check_interval=30, **tls)


# The worker's client rides out about 40 s without Redis: 20 tries, 2 s apart
# at most. rq's scheduler process copies these settings. The web app makes its
# own client (app.py) that gives up after a couple of seconds.
conn = connect(retries=20)

# Heroku stops a dyno with SIGTERM to every process in it, then SIGKILL 30 s
# later. HerokuWorker's work horse ignores that SIGTERM, so the running job
# carries on; if it is still running SHUTDOWN_GRACE seconds later, it is
# stopped with ShutDownImminentException and recorded as failed (or retried)
# while there is time left to save that. A plain Worker's horse would die at once.
# 25 s uses most of Heroku's 30 s and leaves 5 s to record the failure. A report
# that needs longer still starts again from scratch after a restart.
SHUTDOWN_GRACE = int(os.environ.get("SHUTDOWN_GRACE", "25"))

# The worker's main process writes a heartbeat while its horse runs a job, every
# HEARTBEAT seconds (rq's default is 30). A job whose worker was killed outright
# keeps status "started"; rq treats it as abandoned once its heartbeat is 60 s
# past due, and the next clean-up (every CLEANUP_REGISTRIES seconds, rq's default
# is 10 minutes) retries it or marks it failed. An idle worker waits for a job
# up to WORKER_TTL - 15 seconds at a time (rq's default: 405) and cleans up only
# between waits, so that wait is kept short too.
HEARTBEAT = 10
CLEANUP_REGISTRIES = 30
WORKER_TTL = 35

# JSON keeps pickled code out, but a JSON job still names a function, and the
# worker imports and calls whatever it names: a job saying "os.system" with a
# shell command as its argument would run it. So the worker runs only these.
ALLOWED_JOBS = {f"{f.__module__}.{f.__name__}"
                for f in (make_report, fetch_section, merge_sections, delete_old_reports)}


class ReportJob(Job):
    """A job that refuses to run any function but this app's own."""

    def perform(self):
        if self.func_name not in ALLOWED_JOBS:
            raise PermissionError(f"refusing to run {self.func_name!r}: not one of this app's jobs")
        return super().perform()


# The clean-up runs on the low queue: reports people are waiting for go first.
CLEANUP_JOB_ID = "delete-old-reports"
CLEANUP_EVERY = 3600  # seconds


def schedule_cleanup():
    """Run delete_old_reports a minute from now, then every hour (for a month;
    dynos restart daily, and each start renews it). The fixed job id means each
    worker that starts replaces the one schedule instead of adding another."""
    from datetime import datetime, timezone
    queue = Queue("default", connection=conn, serializer=JSONSerializer)
    queue.enqueue_at(datetime.now(timezone.utc) + timedelta(minutes=5), delete_old_reports, job_id=CLEANUP_JOB_ID,
                   repeat=Repeat(times=24 * 30, interval=CLEANUP_EVERY))


class ReportWorker(HerokuWorker):
    imminent_shutdown_delay = 10

    def __init__(self, queues, **kwargs):
        # rq's WorkerPool passes none of these: they default to this app's.
        kwargs.setdefault("job_monitoring_interval", HEARTBEAT)
        kwargs.setdefault("maintenance_interval", CLEANUP_REGISTRIES)
        kwargs.setdefault("worker_ttl", WORKER_TTL)
        super().__init__(queues, **kwargs)


if __name__ == "__main__":
    schedule_cleanup()
    if int(os.environ.get("WORKER_PROCESSES", 1)) > 1:
        pool = WorkerPool(listen, connection=conn, num_workers=int(os.environ["WORKER_PROCESSES"]),
                          worker_class=ReportWorker, serializer=JSONSerializer, job_class=ReportJob)
        pool.start()
        raise SystemExit(0)
    # The connection is passed in (rq 2.0 removed `with Connection(conn):`),
    # and so is the serializer: the queues in app.py use JSON too.
    worker = ReportWorker(listen, connection=conn, serializer=JSONSerializer, job_class=ReportJob,
                          job_monitoring_interval=HEARTBEAT, maintenance_interval=CLEANUP_REGISTRIES,
                          worker_ttl=WORKER_TTL)
    # The scheduler puts jobs whose retry wait is over back on their queue.
    # Without it, a job scheduled for a retry waits forever.
    worker.work(with_scheduler=True)
