"""The Redis connection, and the worker that runs queued jobs."""
import os

import redis
from rq import Worker

listen = ["default"]

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")
if redis_url.startswith("rediss://"):
    conn = redis.Redis.from_url(redis_url, ssl_cert_reqs=None)
else:
    conn = redis.Redis.from_url(redis_url)

if __name__ == "__main__":
    Worker(listen, connection=conn).work()
