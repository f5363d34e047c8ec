"""The web app: a page with a button, and the route that starts a report."""
# [unit 05.4-06.1]
# import re
#
# [end]
# [unit 06.2+]
import os
import re

# [end]
# [unit 01-03.3]
# import os
# import uuid
#
# import boto3
# [end]
# [unit 09.3+]
import redis
# [end]
# [unit 01-05.3]
# from flask import Flask, jsonify, render_template
# [end]
# [unit 05.4-07.1]
# from flask import Flask, jsonify, render_template, url_for
# [end]
# [unit 07.2+]
from flask import Flask, jsonify, render_template, request, url_for
# [end]
# [unit 06.5+]
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
# [end]
# [unit 01-03.3]
#
# from report_data import fetch_sales
# from report_pdf import build_pdf
# [end]
# [unit 03.4-06.1]
# from rq import Queue
# [end]
# [unit 06.2-07.5]
# from rq import Queue, Retry
# [end]
# [unit 07.6+]
from rq import Queue, RateLimit, Retry
# [end]
# [unit 05.4-11]
# from rq.exceptions import NoSuchJobError
# [end]
# [unit 12+]
from rq.exceptions import DuplicateJobError, NoSuchJobError
# [end]
# [unit 05.4+]
from rq.job import Job
# [end]
# [unit 08.2+]
from rq.serializers import JSONSerializer
# [end]
# [unit 09.4+]
from rq.utils import now
from rq.worker import Worker
# [end]
# [unit 08.4+]
from werkzeug.exceptions import HTTPException
# [end]
# [unit 03.4-05.3]
#
# from utils import make_report
# [end]
# [unit 05.4-07.5]
#
# from utils import download_url, make_report
# [end]
# [unit 07.6+]

from report_data import SECTIONS
from utils import download_url, fetch_section, make_report, merge_sections
# [end]
# [unit 03.4-09.2]
# from worker import conn
# [end]
# [unit 09.3+]
from worker import redis_url

# The web app's own Redis client. redis-py's default retries (a few quick
# ones) are enough when Redis refuses the connection; a Redis that takes the
# connection but never answers gets 2 s (redis-py's default is 5 s), then
# TimeoutError. The worker's client waits up to 40 s for a Redis that is
# restarting; a page must not, so past that, the 503 says "try again shortly".
tls = {"ssl_cert_reqs": None} if redis_url.startswith("rediss://") else {}
conn = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2, **tls)
# [end]

app = Flask(__name__)
# [unit 08.4+]

# Flask reads the whole body of a request before the route sees it. The page
# sends a few bytes; anything over 16 KB is refused with 413 before it is read.
app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
# [end]
# [unit 03.4-07.1]
#
# # A Queue is a named list in Redis. The route only appends to it; a worker,
# # in another process, takes jobs off it and runs them.
# queue = Queue("default", connection=conn)
# [end]
# [unit 07.2+]

# One queue per priority. The worker listens on high, default, low in that
# order, so it takes a job from high before any from default or low.
PRIORITIES = ("high", "default", "low")
# [end]
# [unit 07.2-08.1]
# queues = {name: Queue(name, connection=conn) for name in PRIORITIES}
# [end]
# [unit 08.2+]
# JSON, not pickle: a worker unpickling job data would run whatever code
# anyone able to write to Redis put there. JSON carries data, but one item of
# that data is the name of the function to run: the worker also checks that
# name against the app's own jobs (worker.py).
queues = {name: Queue(name, connection=conn, serializer=JSONSerializer) for name in PRIORITIES}
# [end]
# [unit 06.2+]

# How long one run of a report may take before the worker stops it. From the
# environment, so a deploy can change it without a code change.
JOB_TIMEOUT = int(os.environ.get("JOB_TIMEOUT", "600"))

# When a run fails (say S3 is briefly down), run it again: up to 3 more times,
# after 10 s, 30 s, then 60 s. Waiting needs the worker's scheduler (worker.py).
RETRY = Retry(max=3, interval=[10, 30, 60])
# [end]
# [unit 07.6+]

# Every section job queries the one sales database. A sectioned report asks it
# 4 queries at once, and every other report and every worker dyno adds more.
# One RateLimit shared by all of them, keyed by the database, lets at most
# SECTION_SLOTS section jobs be queued or running at a time; rq holds the rest
# back (status rate_limited) and queues them as slots free up. From the
# environment, so it can follow what the database takes without a code change.
SECTION_SLOTS = int(os.environ.get("SECTION_SLOTS", "4"))
SALES_DB = RateLimit("sales-db", SECTION_SLOTS)
# [end]
# [unit 10.3+]

# How long Redis keeps a job once it has ended. rq keeps a finished job 500 s
# by default, but a failed one for a YEAR, and its failure record for ever:
# every failed report would stay in Redis's memory. A finished job is kept as
# long as its download link is worth asking for; a failed one for a week, time
# to read why it failed (`rq info`, the failed registry), then Redis drops it.
RESULT_TTL = 24 * 3600  # seconds: a day
FAILURE_TTL = 7 * 24 * 3600  # a week
KEEP = {"result_ttl": RESULT_TTL, "failure_ttl": FAILURE_TTL}
# [end]
# [unit 05.4+]

# rq's job ids: letters, digits, "_" and "-" (a uuid4 unless you choose one).
# Anything else is not a job id, so it gets a 400 before Redis is asked.
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# [end]
# [unit 12+]

# A client may name its request with an Idempotency-Key header (a random id it
# makes once per click): the same key twice is the same report. The key goes
# into the job's id, so it may hold what a job id may, and "report-" and the
# key together stay within a job id's 128 characters.
KEY_PREFIX = "report-"
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{1,121}")
# [end]
# [unit 06.5+]

# rq has more states than the page needs. A job waiting for its next retry
# is "scheduled"; to the person waiting it is still queued.
# [end]
# [unit 06.5-09.3]
# PAGE_STATUS = {"scheduled": "queued"}
# [end]
# [unit 09.4+]
# A job someone stopped or canceled (rq's stop command, job.cancel()) will
# never finish: to the person waiting, it failed.
PAGE_STATUS = {"scheduled": "queued", "stopped": "failed", "canceled": "failed"}
# [end]
# [unit 06.5+]

# What the page says when Redis cannot be reached (down, restarting, failing
# over): 503 and a Retry-After, so the page (and any client) waits and asks again.
QUEUE_DOWN = "The job queue is unavailable; try again shortly."
# [end]
# [unit 09.4+]

# A started job whose worker has sent no heartbeat for this long was cut off:
# its worker was killed, or its dyno lost. rq notices too, later (worker.py).
# Three of the worker's heartbeats (HEARTBEAT in worker.py: 10 s unless the
# environment sets it; web and worker read the same config vars).
INTERRUPTED_AFTER = 3 * int(os.environ.get("HEARTBEAT", "10"))  # seconds
# [end]
# [unit 06.5+]


@app.errorhandler(RedisConnectionError)
@app.errorhandler(RedisTimeoutError)
def queue_unavailable(error):
    app.logger.warning("Redis unavailable: %s", error)
    return jsonify(error=QUEUE_DOWN), 503, {"Retry-After": "5"}
# [end]
# [unit 08.4+]


@app.errorhandler(HTTPException)
def http_error(error):
    """Every 4xx Flask raises (404, 405, 413, a body it cannot parse...) as
    JSON with a short sentence, like the route's own errors, not an HTML page."""
    return jsonify(error=f"{error.name}."), error.code


@app.errorhandler(RecursionError)
def too_deep(error):
    # json.loads recurses once per nested [ or {: a body nested thousands deep
    # runs out of stack before it runs out of bytes.
    return jsonify(error="The request body is nested too deeply."), 400


@app.errorhandler(Exception)
def unexpected(error):
    """Anything else: the traceback goes to the log, a sentence to the client.
    In the status route it is a job record that cannot be read (damaged, or
    written by something else): that report is gone, as far as the page goes."""
    app.logger.exception("%s %s failed", request.method, request.path)
    if request.endpoint == "report_status":
        return jsonify(error="That report's record cannot be read. Start a new report."), 404
    return jsonify(error="Something went wrong on our side. Try again."), 500
# [end]


@app.get("/")
def index():
    return render_template("index.html")


@app.post("/report")
def create_report():
# [unit 01-03.3]
#     # Everything below runs while the browser (and Heroku's router) waits.
#     rows = fetch_sales()  # the slow query: REPORT_SECONDS seconds
#     pdf = build_pdf(rows)
#     key = f"reports/{uuid.uuid4()}.pdf"
#     s3 = boto3.client("s3")
#     s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=pdf, ContentType="application/pdf")
#     return jsonify(key=key)
# [end]
# [unit 08.4+]
    try:
        request.get_data()  # the whole body, read (and kept) now: a broken one is a 400 here
    except HTTPException:
        raise  # 413: over MAX_CONTENT_LENGTH
    except Exception:  # the client broke off, or sent chunks that do not add up
        return jsonify(error="The request body could not be read."), 400
# [end]
# [unit 03.4+]
    # Enqueue and answer at once; the worker does the slow part.
# [end]
# [unit 03.4-06.1]
#     job = queue.enqueue(make_report, job_timeout=600)
# [end]
# [unit 06.2-07.1]
#     job = queue.enqueue(make_report, job_timeout=JOB_TIMEOUT, retry=RETRY)
# [end]
# [unit 07.2+]
    priority, sections, problem = report_options()
    if problem:
        return jsonify(error=problem), 400
    queue = queues[priority]
# [end]
# [unit 12+]
    key = request.headers.get("Idempotency-Key")
    if key is not None:  # the client named this request: enqueue it once, whatever it sends after
        return enqueue_once(queue, key, sections)
# [end]
# [unit 07.2-07.5]
#     job = queue.enqueue(make_report, job_timeout=JOB_TIMEOUT, retry=RETRY)
# [end]
# [unit 07.6+]
    if sections:
        job = enqueue_sectioned_report(queue)
    else:
# [end]
# [unit 07.6-10.2]
#         job = queue.enqueue(make_report, job_timeout=JOB_TIMEOUT, retry=RETRY)
# [end]
# [unit 10.3+]
        # One round trip to Redis, not two: given a pipeline, enqueue queues its
        # writes (the queue's name in rq:queues, the job, its id on the queue)
        # there, and execute() sends them together, as one transaction.
        with conn.pipeline() as pipe:
            job = queue.enqueue(make_report, job_timeout=JOB_TIMEOUT, retry=RETRY, pipeline=pipe, **KEEP)
            pipe.execute()
# [end]
# [unit 03.4-05.3]
#     return jsonify(job_id=job.id), 202
# [end]
# [unit 05.4+]
    # status_url tells the page where to ask how the job is doing.
    status_url = url_for("report_status", job_id=job.id)
    return jsonify(job_id=job.id, status_url=status_url), 202
# [end]
# [unit 05.5+]


@app.get("/report/<job_id>")
def report_status(job_id):
    """The job's state as JSON: status, progress, and the download link or the error."""
    if not JOB_ID.fullmatch(job_id):
        return jsonify(error="That is not a report id."), 400
    try:
# [end]
# [unit 05.5-08.1]
#         job = Job.fetch(job_id, connection=conn)
# [end]
# [unit 08.2+]
        job = Job.fetch(job_id, connection=conn, serializer=JSONSerializer)
# [end]
# [unit 05.5+]
    except NoSuchJobError:
        return jsonify(error="There is no report with that id. It may have expired."), 404
    status = job.get_status().value
# [end]
# [unit 07.7+]
    if status == "deferred":  # a merge job, still waiting for its sections
        return jsonify(merge_status(job))
# [end]
# [unit 06.5+]
    status = PAGE_STATUS.get(status, status)
# [end]
# [unit 09.4+]
    if status == "started" and worker_gone(job):
        status = "interrupted"  # the page says so, and keeps polling: rq will retry it
# [end]
# [unit 05.5+]
    answer = {"job_id": job.id, "status": status, "progress": job.meta.get("progress", 0)}
    if status == "finished":
        answer["progress"] = 100
        answer["url"] = download_url(job.return_value())
    elif status == "failed":
        answer["error"] = failure_reason(job)
    return jsonify(answer)


# [end]
# [unit 05.5-06.4]
# def failure_reason(job):
#     """The last line of the job's traceback: the exception and its message."""
#     result = job.latest_result()
#     text = (result.exc_string if result else None) or "The report failed."
#     return text.strip().splitlines()[-1]
# [end]
# [unit 06.5+]
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
# [end]
# [unit 09.2+]
    if "AbandonedJob" in last[0] or "ShutDownImminent" in kind:
        return "The worker building the report stopped before it finished. Try again."
# [end]
# [unit 06.5+]
    return "The report failed. Try again; if it fails again, tell us."
# [end]
# [unit 07.2+]


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
# [end]
# [unit 07.2-08.3]
#         return None, None, f"priority must be high, default or low, not {priority!r}."
# [end]
# [unit 08.4+]
        # Not echoed back: it could be 10 MB, or HTML meant for someone's page.
        return None, None, "priority must be high, default or low."
# [end]
# [unit 07.2+]
    sections = body.get("sections", False) in (True, "true", "1", "on")
    return priority, sections, None
# [end]
# [unit 07.6+]


def enqueue_sectioned_report(queue):
    """One job per section, each behind the sales database's limit (SALES_DB),
    then a merge job that rq holds back (deferred) until every section job has
    finished. Returns the merge job: its result is the report's key."""
    # One enqueue per section: rq takes a rate-limited job only on its own
    # (no pipeline, so no enqueue_many), and decides there and then whether it
    # gets a slot (queued) or waits for one (rate_limited).
# [end]
# [unit 07.6-10.2]
#     section_jobs = [queue.enqueue(fetch_section, name, rate_limit=SALES_DB, job_timeout=JOB_TIMEOUT)
#                     for name in SECTIONS]
#     return queue.enqueue(merge_sections, depends_on=section_jobs, job_timeout=JOB_TIMEOUT, retry=RETRY)
# [end]
# [unit 10.3+]
    section_jobs = [queue.enqueue(fetch_section, name, rate_limit=SALES_DB, job_timeout=JOB_TIMEOUT, **KEEP)
                    for name in SECTIONS]
    return queue.enqueue(merge_sections, depends_on=section_jobs, job_timeout=JOB_TIMEOUT, retry=RETRY, **KEEP)
# [end]
# [unit 12+]


def enqueue_once(queue, key, sections):
    """POST /report with an Idempotency-Key. The first request with that key
    enqueues the report; any later one (a double-click, a retry whose answer
    was lost) is answered with that same job, not a second report. The key
    names the request: a later one with other options still gets the first job."""
    if not IDEMPOTENCY_KEY.fullmatch(key):
        return jsonify(error="Idempotency-Key must be 1 to 121 letters, digits, '_' or '-'."), 400
    if sections:
        # The merge job depends on its sections, and rq cannot enqueue a job with
        # dependencies, or a rate-limited one (the sections), uniquely. Refused,
        # rather than a key that protects nothing.
        return jsonify(error="Idempotency-Key is not supported for sectioned reports; send it without one."), 400
    job_id = KEY_PREFIX + key
    try:
        # unique=True: Redis checks that no job has this id, in any state, and
        # enqueues it, in one step (a Lua script) that nothing can come between.
        queue.enqueue(make_report, job_id=job_id, unique=True, job_timeout=JOB_TIMEOUT, retry=RETRY, **KEEP)
    except DuplicateJobError:
        pass  # an earlier request with this key made the job: answer with it
    return jsonify(job_id=job_id, status_url=url_for("report_status", job_id=job_id)), 202
# [end]
# [unit 07.7+]


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
# [end]
# [unit 09.4+]


def worker_gone(job):
    """True if the worker that started job has stopped sending heartbeats:
    killed with its work horse, or its dyno lost, so nobody is running it."""
    if not job.worker_name:
        return False  # no worker recorded: nothing to go on
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + job.worker_name, connection=conn)
    if worker is None or worker.last_heartbeat is None:  # its record expired: silent for minutes
        return True
    return (now() - worker.last_heartbeat).total_seconds() > INTERRUPTED_AFTER
# [end]
