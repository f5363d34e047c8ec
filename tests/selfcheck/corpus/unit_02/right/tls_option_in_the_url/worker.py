"""The Redis connection."""
import os

import redis

redis_url = os.getenv("REDIS_URL", "redis://localhost:6379")

# Heroku's TLS Redis uses a self-signed certificate: say so in the URL itself.
conn_url = redis_url + "?ssl_cert_reqs=none" if redis_url.startswith("rediss://") else redis_url
conn = redis.from_url(conn_url)
