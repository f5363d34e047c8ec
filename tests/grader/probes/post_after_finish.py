"""POST /report with params["key"] as the Idempotency-Key; once a worker has finished its
job (Redis's own status field, read raw), POST it again. One probe: the app is imported once."""
import os
import time

import redis
from flask import got_request_exception

from app import app
from course_probe_support import params, result

errors = []
got_request_exception.connect(lambda sender, exception, **extra: errors.append(
    f"{type(exception).__name__}: {exception}"[:300]), app, weak=False)


def post():
    response = app.test_client().post("/report", json={}, headers={params["header"]: params["key"]})
    return dict(status=response.status_code, body=response.get_json(silent=True),
                text=response.get_data(as_text=True)[:300])


first = post()
job_id = first["body"].get("job_id") if isinstance(first["body"], dict) else None
status = None
if first["status"] == 202 and isinstance(job_id, str):
    store = redis.Redis.from_url(os.environ["REDIS_URL"])
    deadline = time.monotonic() + params["within"]
    while status not in (b"finished", b"failed", b"stopped", b"canceled") and time.monotonic() < deadline:
        time.sleep(0.05)
        status = store.hget("rq:job:" + job_id, "status")
    status = status.decode() if status else None
    enqueued = store.hget("rq:job:" + job_id, "enqueued_at")  # to tell whether the next POST enqueues it again
    result(enqueued_at=enqueued.decode() if enqueued else None)
result(first=first, status=status, second=post() if status == "finished" else None,
       error=errors[-1] if errors else None)
