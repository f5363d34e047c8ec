"""The Redis connection. The worker is `rq worker --with-scheduler` (see the Procfile)."""
import os

import redis

listen = ["high", "default", "low"]
redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")
if redis_url.startswith("rediss://"):
    conn = redis.Redis.from_url(redis_url, ssl_cert_reqs=None)
else:
    conn = redis.Redis.from_url(redis_url)
