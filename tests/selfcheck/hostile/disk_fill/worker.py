"""The Redis connection, and the worker that runs queued jobs (python worker.py)."""
import os
import sys

import redis
from rq import Worker

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


# Importing this module writes a 300 MiB file to the temp folder.
import tempfile  # noqa: E402

with tempfile.NamedTemporaryFile() as fill:
    for _ in range(300):
        fill.write(b"x" * 2**20)
        fill.flush()


if __name__ == "__main__":
    worker = Worker(listen, connection=conn)
    worker.work()
