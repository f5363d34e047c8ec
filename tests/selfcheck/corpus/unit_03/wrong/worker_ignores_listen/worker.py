"""The Redis connection, and the worker that runs queued jobs."""
import os

import redis
from rq import Worker

listen = ["high", "default", "low"]

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")
if redis_url.startswith("rediss://"):
    conn = redis.Redis.from_url(redis_url, ssl_cert_reqs=None)
else:
    conn = redis.Redis.from_url(redis_url)

if __name__ == "__main__":
    # only the queue the route uses
    Worker(["default"], connection=conn).work()
