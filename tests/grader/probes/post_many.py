"""POST /report once per (kind, body, ...) in params["requests"]: kind json, form, or raw
or raw-bytes (a body sent as it is with a JSON content type, say one that is not valid JSON). With params["workers"], first
wait (up to 20 s) until that many rq workers wait: they start while the app imports."""
import os
import time

from app import app
from course_probe_support import params, record_raised, result

raised, _ = record_raised(app)
client = app.test_client()
if params["workers"]:
    import redis
    from rq import Worker

    connection, deadline = redis.Redis.from_url(os.environ["REDIS_URL"]), time.monotonic() + 20
    while Worker.count(connection=connection) < params["workers"] and time.monotonic() < deadline:
        time.sleep(0.02)
answers = []
for kind, body, *_ in params["requests"]:
    raised.clear()
    if kind == "json":
        response = client.post("/report", json=body)
    elif kind == "form":
        response = client.post("/report", data=body)
    else:  # raw: text, or bytes sent as latin-1 text (JSON carries no bytes)
        data = body.encode("latin-1") if kind == "raw-bytes" else body
        response = client.post("/report", data=data, content_type="application/json")
    text = response.get_data(as_text=True)
    answers.append(dict(status=response.status_code, body=response.get_json(silent=True), text=text[:300],
                        length=len(text), error=raised[-1] if raised else None))
result(answers=answers)
