"""The web app: a page with a button, and the route that starts a report."""
import os
import re

from flask import Flask, jsonify, render_template, request, url_for
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job

from report_data import SECTIONS
from utils import download_url, fetch_section, make_report, merge_sections
from worker import conn

app = Flask(__name__)

# One queue per priority. The worker listens on high, default, low in that
# order, so it takes a job from high before any from default or low.
PRIORITIES = ("high", "default", "low")
queues = {name: Queue(name, connection=conn) for name in PRIORITIES}

# How long one run of a report may take before the worker stops it. From the
# environment, so a deploy can change it without a code change.
JOB_TIMEOUT = int(os.environ.get("JOB_TIMEOUT", "600"))

# When a run fails (say S3 is briefly down), run it again: up to 3 more times,
# after 10 s, 30 s, then 60 s. Waiting needs the worker's scheduler (worker.py).
RETRY = Retry(max=3, interval=[10, 30, 60])

# rq's job ids: letters, digits, "_" and "-" (a uuid4 unless you choose one).
# Anything else is not a job id, so it gets a 400 before Redis is asked.
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

# rq has more states than the page needs. A job waiting for its next retry
# is "scheduled"; to the person waiting it is still queued.
PAGE_STATUS = {"scheduled": "queued", "deferred": "queued", "stopped": "failed", "canceled": "failed"}

# What the page says when Redis cannot be reached (down, restarting, failing
# over): 503 and a Retry-After, so the page (and any client) waits and asks again.
QUEUE_DOWN = "The job queue is unavailable; try again shortly."


@app.errorhandler(RedisConnectionError)
@app.errorhandler(RedisTimeoutError)
def queue_unavailable(error):
    app.logger.warning("Redis unavailable: %s", error)
    return jsonify(error=QUEUE_DOWN), 503, {"Retry-After": "5"}


@app.get("/")
def index():
    return render_template("index.html")


@app.post("/report")
def create_report():
    # Enqueue and answer at once; the worker does the slow part.
    priority, sections, problem = report_options()
    if problem:
        return jsonify(error=problem), 400
    queue = queues[priority]
    if sections:
        job = enqueue_sectioned_report(queue)
    else:
        job = queue.enqueue(make_report, job_timeout=JOB_TIMEOUT, retry=RETRY)
    # status_url tells the page where to ask how the job is doing.
    status_url = url_for("report_status", job_id=job.id)
    return jsonify(job_id=job.id, status_url=status_url), 202


@app.get("/report/<job_id>")
def report_status(job_id):
    """The job's state as JSON: status, progress, and the download link or the error."""
    if not JOB_ID.fullmatch(job_id):
        return jsonify(error="That is not a report id."), 400
    try:
        job = Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        return jsonify(error="There is no report with that id. It may have expired."), 404
    status = job.get_status().value
    if status == "deferred":  # a merge job, still waiting for its sections
        return jsonify(merge_status(job))
    status = PAGE_STATUS.get(status, status)
    answer = {"job_id": job.id, "status": status, "progress": job.meta.get("progress", 0)}
    if status == "finished":
        answer["progress"] = 100
        answer["url"] = download_url(job.return_value())
    elif status == "failed":
        answer["error"] = failure_reason(job)
    return jsonify(answer)


def failure_reason(job):
    """A short sentence for the person waiting. The traceback, with endpoints,
    bucket names and keys they have no use for, stays in the job's failure
    record (job.latest_result().exc_string, `rq info`, the worker's log)."""
    result = job.latest_result()
    last = ((result.exc_string if result else None) or "").strip().splitlines()[-1:] or [""]
    kind, _, message = last[0].partition(": ")
    if kind.endswith("DataSourceError"):  # our own exception: its message is written for people
        return message
    if kind.startswith(("botocore.", "boto3.")):
        return "The report could not be saved to storage (S3). Try again in a few minutes."
    if "Timeout" in kind:
        return "The report took too long and was stopped."
    if "AbandonedJob" in last[0] or "ShutDownImminent" in kind:
        return "The worker building the report stopped before it finished. Try again."
    return "The report failed. Try again; if it fails again, tell us."


def report_options():
    """The request's options, from its JSON body or its form fields:
    (priority, sections, None), or (None, None, a message) if they are wrong."""
    if request.is_json:
        body = request.get_json(silent=True)  # None if the body is not valid JSON
        if not isinstance(body, dict):
            return None, None, 'The request body must be a JSON object, like {"priority": "high"}.'
    else:
        body = request.form
    priority = body.get("priority", "default")
    if priority not in PRIORITIES:
        return None, None, f"priority must be high, default or low, not {priority!r}."
    sections = body.get("sections", False) in (True, "true", "1", "on")
    return priority, sections, None


def enqueue_sectioned_report(queue):
    """One job per section, each behind the sales database's limit (SALES_DB),
    then a merge job that rq holds back (deferred) until every section job has
    finished. Returns the merge job: its result is the report's key."""
    # One enqueue per section: rq takes a rate-limited job only on its own
    # (no pipeline, so no enqueue_many), and decides there and then whether it
    # gets a slot (queued) or waits for one (rate_limited).
    section_jobs = queue.enqueue_many(
        [Queue.prepare_data(fetch_section, args=(name,), timeout=JOB_TIMEOUT) for name in SECTIONS])
    return queue.enqueue(merge_sections, depends_on=section_jobs, job_timeout=JOB_TIMEOUT, retry=RETRY)


def merge_status(job):
    """The answer for a merge job that is still waiting. If a section job failed,
    rq will never run the merge, so the report has failed: say which section."""
    sections = job.fetch_dependencies()
    for section in sections:
        if section.get_status().value == "failed":
            return {"job_id": job.id, "status": "failed", "progress": 0,
                    "error": f"Section {section.args[0]!r} failed: {failure_reason(section)}"}
    done = sum(section.get_status().value == "finished" for section in sections)
    return {"job_id": job.id, "status": "queued", "progress": 90 * done // max(len(sections), 1)}
