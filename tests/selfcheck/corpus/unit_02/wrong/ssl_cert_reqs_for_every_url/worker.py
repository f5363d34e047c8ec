import os

import redis

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")
# Heroku's certificates are self-signed.
conn = redis.Redis.from_url(redis_url, ssl_cert_reqs=None)
