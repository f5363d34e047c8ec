"""The learner's web app as a real HTTP server, and its report routes seen from outside.

The server is gunicorn serving `app:app` from the app folder, as the Procfile's
web line does on Heroku, so a check talks to it over HTTP like a browser does.
"""
import json
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote, urljoin, urlsplit

from course import services
from grader.feedback import LearnerFailure, fail

RANK = {"queued": 0, "started": 1, "finished": 2, "failed": 2}


def http(method, url, body=None, timeout=10, headers=None):
    """(status, parsed JSON or text, seconds) for one HTTP request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise LearnerFailure(f"{method} {url} got no answer within {timeout} s ({error}).") from None
    seconds = time.monotonic() - started
    try:
        return status, json.loads(raw), seconds
    except ValueError:
        return status, raw.decode(errors="replace"), seconds


def wait_for_app(base_url, seconds, give_up=lambda: False):
    """True once GET base_url/ answers at all, within `seconds` (or until give_up()
    says waiting is pointless). A web server opens its port before its workers have
    imported the app (gunicorn does), and a busy machine can take seconds to import
    Flask, rq and boto3: a request sent at once would wait on the import, not on the
    route."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not give_up():
        try:
            http("GET", f"{base_url}/", timeout=min(5, max(0.5, deadline - time.monotonic())))
            return True
        except LearnerFailure:
            time.sleep(0.2)
    return False


def start_web(learner, env=None):
    """Start gunicorn on a free loopback port; return (process, base URL)."""
    return wait_web(*spawn_web(learner, env))


def spawn_web(learner, env=None):
    """Start gunicorn on a free loopback port without waiting for it; return (process, port)."""
    port = services.free_port()
    process = learner.start(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--threads", "4", "--timeout", "30", "app:app"],
        name="the web app (gunicorn app:app)", env=env)
    return process, port


def wait_web(process, port):
    """Wait until the gunicorn spawn_web started listens; return (process, base URL)."""
    try:
        services.wait_for_port(port, 20, process.popen, what="web app")
    except services.ServiceError:
        why = process.explain_exit() if not process.alive() else "it did not open its port within 20 s."
        raise LearnerFailure(f"The web app did not start: {why}") from None
    return process, f"http://127.0.0.1:{port}"


def start_report(base, step, unit=None):
    """POST /report; return (job id, absolute status URL)."""
    status, body, _ = http("POST", f"{base}/report", body={})
    if status != 202 or not isinstance(body, dict) or not body.get("job_id"):
        fail(f"POST /report answered {status} with {str(body)[:120]!r}; it should answer 202 with JSON "
             "holding job_id and status_url.", unit=unit, step=step)
    job_id, status_url = str(body["job_id"]), body.get("status_url")
    if not isinstance(status_url, str) or not status_url:
        fail("POST /report answered 202 without a status_url. Add it to the JSON: "
             "`jsonify(job_id=job.id, status_url=url_for(\"report_status\", job_id=job.id))`.", unit=unit, step=step)
    if job_id not in urlsplit(status_url).path:
        fail(f"The status_url {status_url!r} does not hold the job id {job_id!r}; the status route needs the id "
             "in its path, like /report/<job_id>.", unit=unit, step=step)
    return job_id, urljoin(base + "/", status_url)


def with_id(status_url, job_id, other):
    """The status URL with the job id swapped for `other` (URL-quoted)."""
    parts = urlsplit(status_url)
    path = parts.path.replace(job_id, quote(other, safe=""), 1)
    return parts._replace(path=path).geturl()


def read_status(url, step, unit=None):
    """GET the status URL; return its JSON body (failing unless it answers 200 JSON)."""
    code, body, _ = http("GET", url, headers={"Accept": "application/json"})
    if code != 200 or not isinstance(body, dict):
        fail(f"GET {urlsplit(url).path} answered {code} with {str(body)[:120]!r} for a job that exists; "
             "it should answer 200 with JSON holding status and progress.", unit=unit, step=step)
    return body


def progress_of(body, step, unit=None):
    value = body.get("progress")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        fail(f"The status JSON's progress is {value!r}; it should be a number from 0 to 100.", unit=unit, step=step)
    return value


def watch(url, until, timeout, step, unit=None, interval=0.05):
    """Poll the status URL until until(body) is true; return every body seen.
    Fails at the deadline with the last status seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        body = read_status(url, step, unit)
        seen.append(body)
        if until(body):
            return seen
        if time.monotonic() >= deadline:
            raise LearnerFailure(f"After {timeout} s the status route still said {body.get('status')!r} "
                                 f"(progress {body.get('progress')!r}).")
        time.sleep(interval)
