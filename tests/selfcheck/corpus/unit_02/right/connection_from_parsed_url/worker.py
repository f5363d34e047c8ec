import os
from urllib.parse import urlparse

from redis import Redis

redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379")


def connect(url):
    parts = urlparse(url)
    tls = parts.scheme == "rediss"
    return Redis(host=parts.hostname, port=parts.port or 6379, username=parts.username,
                 password=parts.password, ssl=tls, **({"ssl_cert_reqs": None} if tls else {}))


conn = connect(redis_url)
