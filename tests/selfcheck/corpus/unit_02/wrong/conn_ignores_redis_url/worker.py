import os

import redis

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")
conn = redis.Redis(host="localhost", port=6379, decode_responses=True)
