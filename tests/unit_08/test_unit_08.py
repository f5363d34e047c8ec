"""Unit 08: production hardening. Job payloads in Redis are JSON, and the worker
refuses pickled ones; a worker stopped the way Heroku stops a dyno lets its job
finish, and a job cut off by the shutdown is failed visibly or put back, never
lost; a clean-up job, scheduled by the worker, deletes only old reports."""
import json
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from grader import fanout, flows, jobs
from grader.checks import attempt, backdated_objects, bucket_keys
from grader.faults import s3_fault_proxy
from grader.feedback import fail
from grader.learner import wait_until
from grader.shutdown import stop_like_heroku

UNIT = 8
CLEANUP = "delete_old_reports"
DONE = ("finished", "failed", "stopped", "canceled")


@pytest.fixture(autouse=True)
def learner_files(target, request):
    if request.node.originalname != "test_challenge":  # the quiz needs no code
        target.require("worker.py", "utils.py", "app.py", unit=UNIT)


def payload_problem(redis, job_id):
    """'' if the job's data field is zlib-compressed JSON, else what it is."""
    raw = redis.hget(f"rq:job:{job_id}", "data")
    if raw is None:
        return "missing"
    try:
        raw = zlib.decompress(raw)
    except zlib.error:
        pass
    try:
        json.loads(raw)
        return ""
    except ValueError:
        return "pickle" if raw[:1] == b"\x80" else "not JSON"


def test_job_payloads_in_redis_are_json(learner, redis):
    answers = fanout.post_many(learner, [("json", {}), ("json", {"sections": True})])
    ids = [flows.job_id_from(answer, UNIT, 2) for answer in answers]
    merge = jobs.fetch(redis, ids[1])
    ids += list(merge.dependency_ids) if merge is not None else []
    for job_id in ids:
        problem = payload_problem(redis, job_id)
        if problem:
            fail(f"The job {job_id} is stored in Redis as {problem}, not JSON. Create every Queue in app.py with "
                 "serializer=JSONSerializer, so the worker never has to unpickle what it reads from Redis.",
                 unit=UNIT, step=2)


READ_STATUS = '''
import traceback
from flask import got_request_exception
from app import app
errors = []
got_request_exception.connect(lambda sender, exception, **extra: errors.append(
    f"{{type(exception).__name__}}: {{exception}}"[:300]), app, weak=False)
response = app.test_client().get({path!r}, headers={{"Accept": "application/json"}})
result(status=response.status_code, body=response.get_json(silent=True),
       text=response.get_data(as_text=True)[:300], error=errors[-1] if errors else None)
'''


def test_worker_runs_json_jobs_and_refuses_pickled_ones(learner, redis, s3, bucket):
    from rq import Queue

    with tempfile.TemporaryDirectory(prefix="course-pickle-") as folder:
        marker = Path(folder) / "ran-code-from-redis"
        planted = Queue("default", connection=redis).enqueue("os.getpid")
        jobs.plant_pickled_payload(redis, planted, marker)
        worker = learner.start_worker()
        answer = flows.post_report(learner)  # while the worker starts
        job = jobs.fetch(redis, flows.job_id_from(answer, UNIT, 2))
        flows.wait_for_worker(learner, redis, worker)
        wait_until(lambda: planted.get_status(refresh=True).value in DONE, 15)
        if marker.exists():
            fail("A pickled job payload planted in Redis ran code in your worker: it unpickles job data. "
                 "Anyone who can write to your Redis could run any code there. Give the Worker "
                 "serializer=JSONSerializer.", unit=UNIT, step=3)
    # A job the worker cannot read may be retried: skip the back-off waits.
    wait_until(lambda: fanout.fast_forward_retries(redis) or jobs.status(job) in DONE, 30)
    if jobs.status(job) != "finished":
        fail(f"The worker could not run a job the route enqueued: it ended {jobs.status(job)} "
             f"({flows.job_error_summary(job)}). The queues in app.py and the Worker must use the same "
             "serializer, JSONSerializer.", unit=UNIT, step=3)
    # The status route reads the same JSON job back (its result, its progress in meta).
    status_url = (answer["body"] or {}).get("status_url") or f"/report/{job.id}"
    seen = learner.probe(READ_STATUS.format(path=urlsplit(status_url).path), timeout=20,
                         what=f"GET {urlsplit(status_url).path}")
    body = seen["body"] if isinstance(seen["body"], dict) else {}
    if seen["status"] != 200 or body.get("status") != "finished" or not body.get("url"):
        pickled = any(word in str(seen["error"]) for word in ("pickle", "Deserializ", "UnicodeDecode"))
        why = (" The route reads the job with pickle: give Job.fetch (or the Queue it fetches with) "
               "serializer=JSONSerializer, as the queues that wrote it have." if pickled else
               " Read the job back with the serializer it was written with: Job.fetch(job_id, connection=conn, "
               "serializer=JSONSerializer).")
        shown = f"raised {seen['error']}" if seen["error"] else f"answered {seen['status']} {seen['text'][:100]!r}"
        fail(f"The job finished, but the status route {shown} instead of status 'finished' with the download url."
             + why, unit=UNIT, step=2)


# The lesson's worker reads its grace from SHUTDOWN_GRACE (25 s on Heroku). The long-job
# check waits it out, so it gets a few seconds; the short-job check waits only for its
# job, so it gets room to spare on a busy machine.
GRACE = 3
ROOMY_GRACE = 10


def start_and_wait_until_started(learner, redis, seconds, grace):
    worker = learner.start_worker(env=learner.environment(REPORT_SECONDS=seconds, SHUTDOWN_GRACE=grace))
    answer = flows.post_report(learner)  # while the worker starts
    flows.wait_for_worker(learner, redis, worker)
    job = jobs.fetch(redis, flows.job_id_from(answer, UNIT, 2))
    if not wait_until(lambda: jobs.status(job) == "started", 20):
        fail(f"The worker did not start the report job within 20 s (it is {jobs.status(job)}).", unit=UNIT, step=4)
    return job


def test_sigterm_lets_the_running_job_finish(learner, redis, s3, bucket):
    job = start_and_wait_until_started(learner, redis, "2", ROOMY_GRACE)
    time.sleep(0.3)
    seconds, killed, _ = stop_like_heroku(learner, grace=15)
    state = jobs.status(job)
    if state != "finished":
        fail(f"Stopped the way Heroku stops a dyno (SIGTERM to every process, the work horse too), your worker "
             f"did not let a 2-second job finish: it ended {state} ({flows.job_error_summary(job)}). Use a "
             "worker whose work horse ignores SIGTERM (rq's HerokuWorker) with a grace period.", unit=UNIT, step=4)
    if killed:
        fail("After SIGTERM your worker finished its job but was still running 15 s later, so Heroku would "
             "SIGKILL it. Let rq handle SIGTERM (a warm shutdown): do not ignore or override it.", unit=UNIT, step=4)
    flows.check_pdf_at(s3, bucket, jobs.result(job), UNIT, 4)


# A job whose work horse (or worker) is gone this soon after SIGTERM was given no grace:
# a plain Worker's work horse dies with the signal, at once. rq's HerokuWorker's horse
# ignores SIGTERM and lives until its imminent_shutdown_delay (GRACE here) is over.
CUT_AT_ONCE = 2


def test_a_job_cut_off_by_shutdown_is_not_lost(learner, redis, s3, bucket):
    from rq.registry import FailedJobRegistry

    job = start_and_wait_until_started(learner, redis, "60", GRACE)
    seconds, killed, horse_seconds = stop_like_heroku(learner, grace=28)
    state = jobs.status(job)
    if state not in ("failed", "queued", "scheduled"):
        fail(f"A job too long to finish before Heroku's SIGKILL was left {state} with no worker running "
             f"({'SIGKILL was needed' if killed else 'the worker exited'} {seconds:.0f} s after SIGTERM). "
             "It must end failed (so it can be requeued) or go back on its queue before the worker dies: "
             "HerokuWorker's imminent_shutdown_delay under 30 s does that.", unit=UNIT, step=5)
    # The job's own time after SIGTERM: its work horse's life, which a busy machine does not
    # stretch (a plain Worker's horse dies with the signal); with no horse (the job ran in the
    # worker's own process), the worker's.
    given = seconds if horse_seconds is None else horse_seconds
    if given < CUT_AT_ONCE and not killed:
        fail(f"Stopped the way Heroku stops a dyno, your worker cut a long job off at once: {seconds:.1f} s after "
             f"SIGTERM it had exited, and the job was {state}. Nothing was lost, but a job that could have finished "
             "within Heroku's 30 s would have been cut off too. Let the running job carry on after SIGTERM (rq's "
             "HerokuWorker), and fail or requeue it only near the end of the grace (imminent_shutdown_delay under "
             "30 s).", unit=UNIT, step=5)
    if state == "failed":
        FailedJobRegistry(job.origin, connection=redis, serializer=job.serializer).requeue(job.id)
    learner.start_worker(env=learner.environment(REPORT_SECONDS="0.2"))
    again = wait_until(lambda: fanout.fast_forward_retries(redis) or jobs.status(job) == "finished", 30)
    if not again:
        fail(f"A job cut off by a shutdown, {state} and then requeued, did not finish on a fresh worker "
             f"(it is {jobs.status(job)}: {flows.job_error_summary(job)}).", unit=UNIT, step=5)


def put(s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=b"%PDF-1.4 old report")


# More old reports than one listing page (1,000 keys) or one DeleteObjects call holds.
OLD_REPORTS = 1005
DAY = 24 * 3600


def empty(s3, bucket):
    """Delete everything a check left in the bucket (the fixture's clean-up reads one page only)."""
    keys = bucket_keys(s3, bucket)
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]]})


def test_cleanup_deletes_only_old_reports(learner, s3, bucket, s3_endpoint):
    """1,005 reports a month old (more than one page of listing), a month-old file that is
    not a report, and a report made now; delete_old_reports(max_age_seconds=one day) runs
    against an S3 that, like the real one, refuses to delete more than 1,000 keys a call."""
    old = [f"reports/{uuid.uuid4()}.pdf" for _ in range(OLD_REPORTS)]
    other = "exports/kept-forever.csv"
    backdated_objects(bucket, old + [other], age_seconds=30 * DAY)
    new = f"reports/{uuid.uuid4()}.pdf"
    put(s3, bucket, new)
    try:
        with s3_fault_proxy(s3_endpoint) as (endpoint, _plan):
            _, error = attempt(learner.probe, f"from utils import {CLEANUP}\nresult(deleted={CLEANUP}(max_age_seconds={DAY}))",
                               timeout=60, what=f"utils.{CLEANUP}(max_age_seconds={DAY})",
                               env=learner.environment(AWS_ENDPOINT_URL=endpoint))
        if error and "MalformedXML" in str(error):
            fail(f"{CLEANUP} asked S3 to delete more than 1,000 keys in one delete_objects call, which S3 refuses "
                 "(MalformedXML; the local S3 does too). Delete in batches of at most 1,000 keys.", unit=UNIT, step=6)
        if error:
            raise error
        keys = set(bucket_keys(s3, bucket))
        if new not in keys:
            fail(f"{CLEANUP}(max_age_seconds={DAY}) deleted a report uploaded a moment ago. Compare each object's "
                 "LastModified with now minus max_age_seconds, and delete only older ones.", unit=UNIT, step=6)
        if other not in keys:
            fail(f"{CLEANUP} deleted {other}, which is not a report. List only keys under reports/ (Prefix=).",
                 unit=UNIT, step=6)
        left = sorted(set(old) & keys)
        if left and len(left) < len(old):
            fail(f"Of {len(old)} reports a month old, {CLEANUP}(max_age_seconds={DAY}) left {len(left)}. One "
                 "list_objects_v2 call returns at most 1,000 keys: list them all, with "
                 "s3.get_paginator(\"list_objects_v2\") (or by following NextContinuationToken).", unit=UNIT, step=6)
        if left:
            fail(f"{CLEANUP}(max_age_seconds={DAY}) left every one of {len(old)} reports a month old. Delete every "
                 "report older than max_age_seconds.", unit=UNIT, step=6)
    finally:
        empty(s3, bucket)


# Where a clean-up job can be: waiting (scheduled, queued), running, or already run
# (a job the worker took at once, as rq's cron scheduler makes it, is seen there).
def cleanup_jobs(redis, scheduled_only=False):
    found = []
    for queue in jobs.queues(redis):
        ids = queue.scheduled_job_registry.get_job_ids()
        if not scheduled_only:
            ids += queue.get_job_ids()
            for registry in (queue.started_job_registry, queue.failed_job_registry, queue.finished_job_registry):
                ids += registry.get_job_ids(cleanup=False)  # the grader reads; the worker cleans up
        for job_id in dict.fromkeys(ids):
            job = jobs.fetch(redis, job_id)
            if job is not None and job.func_name.endswith(CLEANUP):
                found.append(job)
    return found


def enqueued_by_cron(redis, job_id):
    """True if rq's cron scheduler enqueued this job: it records each job it
    enqueues in a history (a sorted set per cron job) in Redis."""
    from rq.cron import get_cron_job_history_key

    return any(redis.zscore(key, job_id) is not None for key in redis.scan_iter(get_cron_job_history_key("*")))


def cron_entries(redis):
    """The clean-up entries that running rq cron schedulers registered in Redis
    (each saves its jobs' function, queue and schedule there as JSON)."""
    from redis.exceptions import ResponseError
    from rq.defaults import RQ_KEY_PREFIX

    entries = []
    for key in redis.scan_iter(f"{RQ_KEY_PREFIX}:cron_scheduler:*"):
        try:
            listed = json.loads(redis.hget(key, "cron_jobs") or "[]")
        except (ValueError, ResponseError):
            continue
        entries += [e for e in listed if isinstance(e, dict) and str(e.get("func_name", "")).endswith(CLEANUP)]
    return entries


# rq 3.0.0's cron scheduler enqueues with a Queue made without a serializer: pickle.
CRON_PICKLES = ("in rq 3.0.0 rq cron writes every job with pickle, whatever serializer your queues use, and a JSON "
                "worker refuses pickle (Step 3). Schedule the clean-up from the worker with a JSON queue's "
                "enqueue_in and a Repeat.")


def start_other_processes(learner, target):
    """Start the Procfile's process types other than web and worker (a `cron:` or
    `clock:` line, say), as the dynos a learner scales up on Heroku would run them.
    Returns the process types it started."""
    started = [kind for kind in target.procfile() if kind not in ("web", "worker", "release")]
    for kind in started:
        learner.start_procfile(kind)
    return started


def test_worker_schedules_the_cleanup(learner, redis, s3, bucket, target):
    fresh = f"reports/{uuid.uuid4()}.pdf"
    put(s3, bucket, fresh)
    worker = learner.start_worker()
    others = start_other_processes(learner, target)
    flows.wait_for_worker(learner, redis, worker)
    # Code that schedules it at start-up has run by the time the worker listens (work()
    # never returns); another process type (a `clock:` line) gets longer to start.
    waited = 10 if others else 3
    found = wait_until(lambda: cleanup_jobs(redis), waited)
    if not found:
        # A scheduler process that is slow to start (a busy machine) gets a few more seconds to say what it holds.
        held = cron_entries(redis) or (others and wait_until(lambda: cron_entries(redis), 5))
        if held:
            when = f"cron {held[0]['cron']!r:.40}" if held[0].get("cron") else f"every {held[0].get('interval')} s"
            fail(f"rq's cron scheduler holds the clean-up ({when}) and enqueued nothing while the grader waited; "
                 "what it enqueues would not run anyway: " + CRON_PICKLES, unit=UNIT, step=7)
        fail(f"{waited} s after your worker started, no job running utils.{CLEANUP} was scheduled or queued. Have the "
             "worker schedule it when it starts (queue.enqueue_in with a Repeat, or a job that schedules "
             "the next one).", unit=UNIT, step=7)
    # A clean-up the worker cannot read is the one to explain, whatever else was scheduled.
    job = next((j for j in found if payload_problem(redis, j.id) == "pickle"), found[0])
    ran = wait_until(lambda: fanout.fast_forward_retries(redis) or (job.refresh() or job.ended_at), 20)
    if not ran:
        fail(f"The scheduled clean-up job was made due, but your worker did not run it within 20 s (it is "
             f"{jobs.status(job)}). Does the worker run with its scheduler (work(with_scheduler=True))?",
             unit=UNIT, step=7)
    latest = job.latest_result()
    if latest is not None and latest.type.name != "SUCCESSFUL":
        error = flows.job_error_summary(job)
        if payload_problem(redis, job.id) == "pickle":
            if enqueued_by_cron(redis, job.id):
                fail(f"rq's cron scheduler enqueued the clean-up and your worker refused it ({error}): "
                     + CRON_PICKLES, unit=UNIT, step=7)
            fail(f"The clean-up job is stored with pickle, and your worker refused it ({error}) before {CLEANUP} "
                 "ran. Schedule it on a queue made with serializer=JSONSerializer, as the worker's are.",
                 unit=UNIT, step=7)
        fail(f"The scheduled clean-up job failed on your worker: {error}.", unit=UNIT, step=7)
    if fresh not in bucket_keys(s3, bucket):
        fail("The scheduled clean-up deleted a report made a moment ago. Its default max age should be days, "
             "not seconds.", unit=UNIT, step=6)
    if not wait_until(lambda: cleanup_jobs(redis, scheduled_only=True), 5):
        fail("The clean-up ran once, but nothing is scheduled to run it again. Repeat it "
             "(repeat=Repeat(times=..., interval=...)) or have it schedule the next run.", unit=UNIT, step=7)


def test_challenge(target):
    flows.check_quiz(target, UNIT)
