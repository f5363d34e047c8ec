import os

import redis

redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
extra = {"ssl_cert_reqs": None} if redis_url.startswith("rediss://") else {}
conn = redis.Redis.from_url(redis_url, health_check_interval=30, **extra)
