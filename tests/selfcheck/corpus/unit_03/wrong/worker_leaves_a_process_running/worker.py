"""The Redis connection, and a worker that is always running."""
import os
import subprocess

import redis

listen = ["high", "default", "low"]

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")
if redis_url.startswith("rediss://"):
    conn = redis.Redis.from_url(redis_url, ssl_cert_reqs=None)
else:
    conn = redis.Redis.from_url(redis_url)

# Start a worker whenever this module is imported, detached so that it keeps
# running after whoever imported us has finished.
subprocess.Popen(["rq", "worker", "--url", redis_url, *listen], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
