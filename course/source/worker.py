# [unit 02.3+]
"""The Redis connection, and the worker that runs queued jobs (python worker.py)."""
import os
# [end]
# [unit 10.2+]
from datetime import timedelta
# [end]
# [unit 02.3+]

import redis
# [end]
# [unit 09.3+]
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
# [end]
# [unit 03.3-08]
# from rq import Worker
# [end]
# [unit 10.2+]
from rq import Queue, Repeat
# [end]
# [unit 08.3+]
from rq.job import Job
from rq.serializers import JSONSerializer
# [end]
# [unit 09+]
from rq.worker import HerokuWorker
# [end]
# [unit 11.2+]
from rq.worker_pool import WorkerPool
# [end]
# [unit 10.2+]

from utils import delete_old_reports
# [end]
# [unit 03.3+]

# The queues this worker serves, in priority order: it always takes the next
# job from the first queue in this list that has one.
listen = ["high", "default", "low"]
# [end]
# [unit 02.3+]

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")

# Heroku's Redis speaks TLS only (rediss://) with a self-signed certificate,
# so for rediss:// URLs we encrypt but skip the certificate check. redis-py
# rejects ssl_cert_reqs on a plain redis:// URL, so pass it only for TLS.
# [end]
# [unit 02.3-09.2]
# if redis_url.startswith("rediss://"):
#     conn = redis.Redis.from_url(redis_url, ssl_cert_reqs=None)
# else:
#     conn = redis.Redis.from_url(redis_url)
# [end]
# [unit 09.3+]
tls = {"ssl_cert_reqs": None} if redis_url.startswith("rediss://") else {}


def connect(retries):
    """A client for redis_url that, when Redis drops (a restart, a failover),
    reconnects and sends the command again up to `retries` times, waiting
    0.25 s, 0.5 s, 1 s, then 2 s between tries, instead of raising at once."""
    return redis.Redis.from_url(
        redis_url, retry=Retry(ExponentialBackoff(cap=2, base=0.25), retries),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        socket_connect_timeout=5, health_check_interval=30, **tls)


# The worker's client rides out about 40 s without Redis: 20 tries, 2 s apart
# at most. rq's scheduler process copies these settings. The web app makes its
# own client (app.py) that gives up after a couple of seconds.
conn = connect(retries=20)
# [end]
# [unit 09+]

# Heroku stops a dyno with SIGTERM to every process in it, then SIGKILL 30 s
# later. HerokuWorker's work horse ignores that SIGTERM, so the running job
# carries on; if it is still running SHUTDOWN_GRACE seconds later, it is
# stopped with ShutDownImminentException and recorded as failed (or retried)
# while there is time left to save that. A plain Worker's horse would die at once.
# 25 s uses most of Heroku's 30 s and leaves 5 s to record the failure. A report
# that needs longer still starts again from scratch after a restart.
SHUTDOWN_GRACE = int(os.environ.get("SHUTDOWN_GRACE", "25"))
# [end]
# [unit 09.2+]

# The worker's main process writes a heartbeat while its horse runs a job, every
# HEARTBEAT seconds (rq's default is 30). A job whose worker was killed outright
# keeps status "started"; rq treats it as abandoned once its heartbeat is 60 s
# past due, and the next clean-up (every CLEANUP_REGISTRIES seconds, rq's default
# is 10 minutes) retries it or marks it failed. An idle worker waits for a job
# up to WORKER_TTL - 15 seconds at a time (rq's default: 405) and cleans up only
# between waits, so that wait is kept short too. Like SHUTDOWN_GRACE, each can
# be changed from the environment (web and worker dynos share config vars).
HEARTBEAT = int(os.environ.get("HEARTBEAT", "10"))
CLEANUP_REGISTRIES = int(os.environ.get("CLEANUP_REGISTRIES", "30"))
WORKER_TTL = int(os.environ.get("WORKER_TTL", "35"))
# [end]
# [unit 08.3+]

# JSON keeps pickled code out, but a JSON job still names a function, and the
# worker imports and calls whatever it names: a job saying "os.system" with a
# shell command as its argument would run it. So the worker runs only these.
ALLOWED_JOBS = {"utils.make_report", "utils.fetch_section", "utils.merge_sections",
                "utils.delete_old_reports"}


class ReportJob(Job):
    """A job that refuses to run any function but this app's own."""

    def perform(self):
        if self.func_name not in ALLOWED_JOBS:
            raise PermissionError(f"refusing to run {self.func_name!r}: not one of this app's jobs")
        return super().perform()
# [end]
# [unit 10.2+]


# The clean-up runs on the low queue: reports people are waiting for go first.
CLEANUP_JOB_ID = "delete-old-reports"
CLEANUP_EVERY = 3600  # seconds


def schedule_cleanup():
    """Run delete_old_reports a minute from now, then every hour (for a month;
    dynos restart daily, and each start renews it). The fixed job id means each
    worker that starts replaces the one schedule instead of adding another."""
    low = Queue("low", connection=conn, serializer=JSONSerializer)
    low.enqueue_in(timedelta(minutes=1), delete_old_reports, job_id=CLEANUP_JOB_ID,
                   repeat=Repeat(times=24 * 30, interval=CLEANUP_EVERY))
# [end]
# [unit 08.3+]


# [end]
# [unit 08.3-08]
# class ReportWorker(Worker):
#     """rq's Worker with this app's settings built in, so every worker has
#     them, however it is started."""
#
# [end]
# [unit 09+]
class ReportWorker(HerokuWorker):
    """rq's HerokuWorker with this app's settings built in, so every worker
    has them, whoever makes it: this file, or rq's WorkerPool, which makes its
    workers itself and passes only the queues, the connection, and its own
    serializer and job class (pickle and a plain Job unless told otherwise)."""

    imminent_shutdown_delay = SHUTDOWN_GRACE

# [end]
# [unit 08.3+]
    def __init__(self, *args, **kwargs):
# [end]
# [unit 08.3-09.1]
#         kwargs.update(serializer=JSONSerializer, job_class=ReportJob)
# [end]
# [unit 09.2+]
        kwargs.update(serializer=JSONSerializer, job_class=ReportJob, job_monitoring_interval=HEARTBEAT,
                      maintenance_interval=CLEANUP_REGISTRIES, worker_ttl=WORKER_TTL)
# [end]
# [unit 08.3+]
        super().__init__(*args, **kwargs)
# [end]
# [unit 11.2+]

    stopping = False

    def request_stop(self, signum, frame):
        # In a pool, Heroku's SIGTERM and the pool's own SIGINT reach a worker
        # at once. rq can take both as warm stops, and the second tells the work
        # horse to give up now: the job loses its grace. Take the first only.
        if not self.stopping:
            self.stopping = True
            super().request_stop(signum, frame)


# How many workers one `python worker.py` runs side by side (WORKER_PROCESSES,
# a config var). A report mostly waits on its query and on S3, so a dyno's CPU
# idles under one worker; each worker costs a process's memory.
WORKER_PROCESSES = int(os.environ.get("WORKER_PROCESSES", "1"))
# [end]
# [unit 03.3+]


if __name__ == "__main__":
# [end]
# [unit 10.2+]
    schedule_cleanup()  # once per dyno, before any worker starts
# [end]
# [unit 03.3-08.2]
#     # rq 2.0 removed `with Connection(conn):`; the connection is passed in.
#     worker = Worker(listen, connection=conn)
# [end]
# [unit 08.3-11.1]
#     # rq 2.0 removed `with Connection(conn):`; the connection is passed in.
#     worker = ReportWorker(listen, connection=conn)
# [end]
# [unit 11.2+]
    if WORKER_PROCESSES > 1:
        # rq's WorkerPool forks WORKER_PROCESSES workers, each with its own work
        # horse and scheduler, and starts a new one if one dies. Each gets a
        # client rebuilt from conn's settings (its retries too) and is a
        # ReportWorker, which brings the rest.
        pool = WorkerPool(listen, connection=conn, num_workers=WORKER_PROCESSES, worker_class=ReportWorker)
        pool.start()
    else:
        # The connection is passed in (rq 2.0 removed `with Connection(conn):`).
        worker = ReportWorker(listen, connection=conn)
        # The scheduler puts jobs whose retry wait is over back on their queue.
        # Without it, a job scheduled for a retry waits forever.
        worker.work(with_scheduler=True)
# [end]
# [unit 03.3-06.2]
#     worker.work()
# [end]
# [unit 06.3-11.1]
#     # The scheduler puts jobs whose retry wait is over back on their queue.
#     # Without it, a job scheduled for a retry waits forever.
#     worker.work(with_scheduler=True)
# [end]
