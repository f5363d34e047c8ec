"""Settings for `rq worker --config rq_settings`: the worker's Redis, TLS-ready."""
import os

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379")
if REDIS_URL.startswith("rediss://"):
    # Heroku's Redis has a self-signed certificate; the CLI builds its client from the URL alone.
    REDIS_URL += "&ssl_cert_reqs=none" if "?" in REDIS_URL else "?ssl_cert_reqs=none"
