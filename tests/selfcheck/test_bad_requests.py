"""Bad input gets a clear 4xx JSON answer from the reference app, never a 500."""
import json
import os
import subprocess
import sys

import pytest

from course import ROOT, services

# (method, path, body bytes, content type) -> the app must answer below 500;
# expect_json: the answer must also be a JSON object with an "error".
BAD_REQUESTS = [
    ("POST", "/report", b"{not json", "application/json", True),
    ("POST", "/report", b"[1, 2]", "application/json", True),
    ("POST", "/report", b'"high"', "application/json", True),
    ("POST", "/report", b'{"priority": 5}', "application/json", True),
    ("POST", "/report", b'{"priority": ["high"]}', "application/json", True),
    ("POST", "/report", b'{"priority": {"a": 1}}', "application/json", True),
    ("POST", "/report", b'{"priority": "urgent"}', "application/json", True),
    ("POST", "/report", b"priority=urgent", "application/x-www-form-urlencoded", True),
    ("POST", "/report", b"\xff\xfe\x00garbage", "application/json", True),
    ("GET", "/report/" + "a" * 500, b"", None, True),
    ("GET", "/report/not%20an%20id", b"", None, True),
    ("GET", "/report/%00", b"", None, True),
    ("GET", "/report/caf%C3%A9", b"", None, True),
    ("GET", "/report/rq:job:abc", b"", None, True),
    ("GET", "/report/00000000-0000-0000-0000-000000000000", b"", None, True),
    ("GET", "/report", b"", None, False),
    ("DELETE", "/report/abc", b"", None, False),
]

PROBE = """
import json, sys
from app import app
client = app.test_client()
answers = []
for method, path, body, kind, _ in json.loads(sys.argv[1]):
    headers = {"Content-Type": kind} if kind else {}
    response = client.open(path, method=method, data=body.encode("latin-1"), headers=headers)
    answers.append({"status": response.status_code, "json": response.get_json(silent=True)})
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def answers():
    with services.redis_server() as redis_url:
        env = {**os.environ, "REDIS_URL": redis_url, "S3_BUCKET": "reports", "AWS_DEFAULT_REGION": "us-east-1"}
        cases = [(m, p, b.decode("latin-1"), k, j) for m, p, b, k, j in BAD_REQUESTS]
        done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cases)], cwd=ROOT / "solution",
                              env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-1500:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("index", range(len(BAD_REQUESTS)),
                         ids=[f"{m} {p[:40]} {b[:20]!r}" for m, p, b, _, _ in BAD_REQUESTS])
def test_a_bad_request_gets_a_4xx(answers, index):
    method, path, body, _, expect_json = BAD_REQUESTS[index]
    answer = answers[index]
    assert 400 <= answer["status"] < 500, f"{method} {path[:60]} {body[:30]!r} answered {answer['status']}"
    if expect_json:
        assert isinstance(answer["json"], dict) and answer["json"].get("error"), (
            f"{method} {path[:60]} answered {answer['status']} without a JSON error: {answer['json']!r}")


# ---------------------------------------------------------------- the same, and worse, over real HTTP

def test_a_bad_input_set_over_http_gets_short_4xx_json_never_a_5xx():
    """The bad-request set of benchmarks/faults.py (deep JSON, broken chunked bodies,
    10 MB values, odd ids and priorities, damaged job records in Redis), sent to the
    finished app run as its Procfile runs it: no answer >= 500, every 4xx a short
    JSON error, nothing echoed back."""
    from benchmarks import faults

    with faults.running_app(ROOT / "solution", report_seconds=1) as (app, redis):
        rows = faults.send_bad_input(app, redis.client())
    assert len(rows) >= 200
    broken = [f"{label}: {status or 'no answer'}" for label, status, _, _ in rows if status >= 500 or status == 0]
    assert not broken, f"{len(broken)} of {len(rows)} bad requests got a 5xx or no answer: {broken[:10]}"
    bare = [f"{label}: {status}" for label, status, has_error, _ in rows if 400 <= status < 500 and not has_error]
    assert not bare, f"{len(bare)} 4xx answers without a short JSON error: {bare[:10]}"
    echoed = [label for label, _, _, was_echoed in rows if was_echoed]
    assert not echoed, f"answers that echoed a large value back: {echoed[:10]}"
