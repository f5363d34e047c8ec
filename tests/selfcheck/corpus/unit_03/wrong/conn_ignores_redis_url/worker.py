"""The Redis connection, and the worker that runs queued jobs."""
import os

import redis
from rq import Worker

listen = ["high", "default", "low"]
redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")
conn = redis.Redis(host="localhost", port=6379)

if __name__ == "__main__":
    Worker(listen, connection=conn).work()
