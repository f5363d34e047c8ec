"""The Redis connection, and the worker that runs queued jobs (python worker.py)."""
import os
from datetime import timedelta

import redis
from rq import Queue, Repeat
from rq.serializers import JSONSerializer
from rq import Worker

from utils import delete_old_reports

# The queues this worker serves, in priority order: it always takes the next
# job from the first queue in this list that has one.
listen = ["high", "default", "low"]

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")

# Heroku's Redis speaks TLS only (rediss://) with a self-signed certificate,
# so for rediss:// URLs we encrypt but skip the certificate check. redis-py
# rejects ssl_cert_reqs on a plain redis:// URL, so pass it only for TLS.
if redis_url.startswith("rediss://"):
    conn = redis.Redis.from_url(redis_url, ssl_cert_reqs=None)
else:
    conn = redis.Redis.from_url(redis_url)

# Heroku stops a dyno with SIGTERM to every process in it, then SIGKILL 30 s
# later. HerokuWorker's work horse ignores that SIGTERM, so the running job
# carries on; if it is still running SHUTDOWN_GRACE seconds later, it is
# stopped with ShutDownImminentException and recorded as failed (or retried)
# while there is time left to save that. A plain Worker's horse would die at once.
SHUTDOWN_GRACE = 15

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

if __name__ == "__main__":
    schedule_cleanup()
    # The connection is passed in (rq 2.0 removed `with Connection(conn):`),
    # and so is the serializer: the queues in app.py use JSON too.
    worker = Worker(listen, connection=conn, serializer=JSONSerializer)
    # The scheduler puts jobs whose retry wait is over back on their queue.
    # Without it, a job scheduled for a retry waits forever.
    worker.work(with_scheduler=True)
