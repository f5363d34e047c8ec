"""The Redis connection, and the worker that runs queued jobs (python worker.py)."""
import os

import boto3
import redis
from rq import SpawnWorker

import utils

# The queues this worker serves, in priority order: it always takes the next
# job from the first queue in this list that has one.
listen = ["high", "default", "low"]

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")

# Heroku's Redis speaks TLS only (rediss://) with a self-signed certificate,
# so for rediss:// URLs we encrypt but skip the certificate check. redis-py
# rejects ssl_cert_reqs on a plain redis:// URL, so pass it only for TLS.
if redis_url.startswith("rediss://"):
    conn = redis.Redis.from_url(redis_url, ssl_cert_reqs=None)
else:
    conn = redis.Redis.from_url(redis_url)


if __name__ == "__main__":
    # One S3 client for the whole worker, built once here and used by every job.
    utils.s3 = boto3.client("s3")
    # rq 2.0 removed `with Connection(conn):`; the connection is passed in.
    # SpawnWorker: a forked worker can crash on macOS.
    worker = SpawnWorker(listen, connection=conn)
    worker.work()
