"""The web app: a page with a button, and the route that starts a report."""
import os
import re

from flask import Flask, jsonify, render_template, request, url_for
from rq import Queue, RateLimit, Retry
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


@app.get("/")
def index():
    return render_template("index.html")


@app.post("/report")
def create_report():
    # Enqueue and answer at once; the worker does the slow part.
    priority, sections, problem = report_options()
    if problem:
        return jsonify(error=problem), 400
    if priority == "high":
        queue = queues["high"]
    elif priority == "low":
        queue = queues["low"]
    else:
        queue = queues["default"]
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
    """The last line of the job's traceback: the exception and its message."""
    result = job.latest_result()
    text = (result.exc_string if result else None) or "The report failed."
    return text.strip().splitlines()[-1]


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
    """One job per section, one at a time, all under the sales database's cap,
    then a merge job that rq holds back (deferred) until every section job has
    finished. Returns the merge job: its result is the report's key."""
    cap = RateLimit("sales-db", int(os.environ.get("SECTION_SLOTS", "4")))  # same key for every report
    section_jobs = []
    for name in SECTIONS:
        section_jobs.append(queue.enqueue(fetch_section, name, job_timeout=JOB_TIMEOUT, rate_limit=cap))
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
