"""Unit 02: Redis, locally and on Heroku. worker.py's `conn` must reach the Redis
that REDIS_URL names, including Heroku's TLS Redis with its self-signed certificate."""
from urllib.parse import urlsplit

import pytest

from course import services
from grader import flows
from grader.feedback import attempt, fail

DEFAULT_URL = "redis://localhost:6379"


def is_local_default(url):
    """redis://localhost:6379 or the same server spelled differently (127.0.0.1, /0)."""
    parts = urlsplit(str(url))
    return (parts.scheme == "redis" and parts.hostname in ("localhost", "127.0.0.1")
            and parts.port in (None, 6379) and parts.path in ("", "/", "/0") and not parts.query)


def test_redis_url_comes_from_the_environment(learner):
    named = learner.probe("import worker\nresult(url=getattr(worker, 'redis_url', None))",
                          what="importing worker.py", timeout=15)
    if named["url"] is None:
        fail("worker.py has no `redis_url`. Read it from the environment: "
             f"`redis_url = os.environ.get('REDIS_URL', '{DEFAULT_URL}')`.", step=3)
    if named["url"] != learner.env["REDIS_URL"]:
        fail(f"With REDIS_URL={learner.env['REDIS_URL']}, worker.redis_url is {named['url']!r}. Read REDIS_URL "
             "from the environment: Heroku sets it, and its value changes when Heroku rotates credentials.",
             step=3)
    default, error = attempt(learner.probe, "import worker\nresult(url=worker.redis_url)", what="importing worker.py",
                             env=learner.environment(REDIS_URL=None), timeout=15)
    if error:
        fail(f"Without REDIS_URL set, {error} Fall back to {DEFAULT_URL!r}: "
             f"`os.environ.get('REDIS_URL', '{DEFAULT_URL}')`.", step=3)
    if not is_local_default(default["url"]):
        fail(f"Without REDIS_URL, worker.redis_url is {default['url']!r}; fall back to {DEFAULT_URL!r} "
             "so it works with a Redis on your own machine.", step=3)


def test_conn_reaches_the_redis_named_by_REDIS_URL(learner, redis):
    seen = flows.read_through_conn(learner, redis, step=3)
    if seen["value"] != seen["expected"]:
        fail("worker.conn does not reach the Redis that REDIS_URL names (a value the grader stored there was "
             "not found). Build conn from redis_url, not from a hard-coded host.", step=3)


def test_conn_works_with_the_tls_redis_heroku_gives(learner, redis, redis_url):
    """Heroku's Redis: rediss://, self-signed certificate, a password in the URL."""
    with services.tls_front(redis_url) as (tls_url, _ca):
        seen, error = attempt(flows.read_through_conn, learner, redis, url=tls_url, step=4)
    if error:
        text = str(error)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            fail("With a rediss:// URL (Heroku's Redis), conn fails the certificate check: Heroku's "
                 "certificates are self-signed. For rediss:// URLs pass ssl_cert_reqs=None.",
                 step=4)
        raise error
    if seen["value"] != seen["expected"]:
        fail("With a rediss:// REDIS_URL, worker.conn does not reach that Redis. Build conn from redis_url "
             "for rediss:// URLs too.", step=4)


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
