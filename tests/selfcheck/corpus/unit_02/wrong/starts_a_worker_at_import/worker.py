import os

import redis
from rq import Worker

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")
if redis_url.startswith("rediss://"):
    conn = redis.Redis.from_url(redis_url, ssl_cert_reqs=None)
else:
    conn = redis.Redis.from_url(redis_url)

worker = Worker(["high", "default", "low"], connection=conn)
worker.work()
