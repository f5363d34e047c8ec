import os

from redis import Redis
from rq import Queue, Worker

listen = ("high", "default", "low")
redis_url = os.getenv("REDIS_URL") or "redis://localhost:6379"

options = {"ssl_cert_reqs": None} if redis_url.startswith("rediss://") else {}
conn = Redis.from_url(redis_url, **options)


def main():
    queues = [Queue(name, connection=conn) for name in listen]
    Worker(queues, connection=conn, name=f"reports.{os.getpid()}").work(with_scheduler=True)


if __name__ == "__main__":
    main()
