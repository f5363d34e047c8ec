"""Unit 10: housekeeping. A clean-up job deletes only old reports and the worker schedules it;
ended jobs leave Redis within a month; the worker builds one S3 client, not one per job."""
import json
import uuid

import pytest

from grader import flows, jobs, retries
from grader.feedback import LearnerFailure, attempt, fail
from grader.storage import backdated_objects, bucket_keys, empty
from grader.faults import s3_fault_proxy
from grader.prelude import start_worker_with_prelude
from grader.processes import wait_until


CLEANUP = "delete_old_reports"


def put(s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=b"%PDF-1.4 old report")


# More old reports than one listing page (1,000 keys) or one DeleteObjects call holds.
OLD_REPORTS = 1005
DAY = 24 * 3600


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
                 "(MalformedXML; the local S3 does too). Delete in batches of at most 1,000 keys.", step=1)
        if error:
            raise error
        keys = set(bucket_keys(s3, bucket))
        if new not in keys:
            fail(f"{CLEANUP}(max_age_seconds={DAY}) deleted a report uploaded a moment ago. Compare each object's "
                 "LastModified with now minus max_age_seconds, and delete only older ones.", step=1)
        if other not in keys:
            fail(f"{CLEANUP} deleted {other}, which is not a report. List only keys under reports/ (Prefix=).",
                 step=1)
        left = sorted(set(old) & keys)
        if left and len(left) < len(old):
            fail(f"Of {len(old)} reports a month old, {CLEANUP}(max_age_seconds={DAY}) left {len(left)}. One "
                 "list_objects_v2 call returns at most 1,000 keys: list them all, with "
                 "s3.get_paginator(\"list_objects_v2\") (or by following NextContinuationToken).", step=1)
        if left:
            fail(f"{CLEANUP}(max_age_seconds={DAY}) left every one of {len(old)} reports a month old. Delete every "
                 "report older than max_age_seconds.", step=1)
    finally:
        empty(s3, bucket)


# Where a clean-up job can be: waiting (scheduled, queued), running, or already run
# (a job the worker took at once, as rq's cron scheduler makes it, is seen there).
def cleanup_jobs(redis, live_only=False):
    """The clean-up jobs in Redis. live_only: those that will run again (scheduled,
    queued, or running now: a repeat is one of these three at every moment)."""
    found = []
    for queue in jobs.queues(redis):
        ids = queue.scheduled_job_registry.get_job_ids() + queue.get_job_ids()
        ids += queue.started_job_registry.get_job_ids(cleanup=False)  # the grader reads; the worker cleans up
        if not live_only:
            for registry in (queue.failed_job_registry, queue.finished_job_registry):
                ids += registry.get_job_ids(cleanup=False)
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


def check_one_schedule_after_a_second_start(learner, redis):
    """Start the worker command once more, as a restart or a second worker dyno does,
    and fail if that added a scheduled clean-up job instead of replacing the one
    there was."""
    second = learner.start_worker()

    def second_listens():
        from rq import Worker

        if not second.alive():
            fail(f"Your worker command, started a second time next to the first, stopped: {second.explain_exit()}",
                 step=2)
        return {w.pid for w in Worker.all(connection=redis)} & second.pids()

    if not wait_until(second_listens, 20):
        fail("Your worker command, started a second time next to the first, registered no rq worker within 20 s.",
             step=2)
    scheduled = {job.id for job in cleanup_jobs(redis, live_only=True)}
    if len(scheduled) > 1:
        fail(f"Your worker was started twice (a restart, or a second worker dyno), and now {len(scheduled)} "
             "clean-up jobs are scheduled: each start adds one more schedule that repeats for ever, so the "
             "clean-up runs once an hour per start. Schedule it under a fixed job id "
             "(job_id=\"delete-old-reports\"): enqueued again under the same id, it replaces the one schedule.",
             step=2)


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
                 "what it enqueues would not run anyway: " + CRON_PICKLES, step=2)
        fail(f"{waited} s after your worker started, no job running utils.{CLEANUP} was scheduled or queued. Have the "
             "worker schedule it when it starts (queue.enqueue_in with a Repeat, or a job that schedules "
             "the next one).", step=2)
    # A clean-up the worker cannot read is the one to explain, whatever else was scheduled.
    job = next((j for j in found if jobs.payload_problem(redis, j.id) == "pickle"), found[0])
    # Ended first: once it has run, its repeat is scheduled, and must stay where it is.
    ran = wait_until(lambda: (job.refresh() or job.ended_at) or retries.make_everything_due(redis), 20)
    if not ran:
        fail(f"The scheduled clean-up job was made due, but your worker did not run it within 20 s (it is "
             f"{jobs.status(job)}). Does the worker run with its scheduler (work(with_scheduler=True))?",
             step=2)
    latest = job.latest_result()
    if latest is not None and latest.type.name != "SUCCESSFUL":
        error = flows.job_error_summary(job)
        if jobs.payload_problem(redis, job.id) == "pickle":
            if enqueued_by_cron(redis, job.id):
                fail(f"rq's cron scheduler enqueued the clean-up and your worker refused it ({error}): "
                     + CRON_PICKLES, step=2)
            fail(f"The clean-up job is stored with pickle, and your worker refused it ({error}) before {CLEANUP} "
                 "ran. Schedule it on a queue made with serializer=JSONSerializer, as the worker's are.",
                 step=2)
        fail(f"The scheduled clean-up job failed on your worker: {error}.", step=2)
    if fresh not in bucket_keys(s3, bucket):
        fail("The scheduled clean-up deleted a report made a moment ago. Its default max age should be days, "
             "not seconds.", step=1)
    if not wait_until(lambda: cleanup_jobs(redis, live_only=True), 5):
        fail("The clean-up ran once, but nothing is scheduled to run it again. Repeat it "
             "(repeat=Repeat(times=..., interval=...)) or have it schedule the next run.", step=2)
    check_one_schedule_after_a_second_start(learner, redis)
STEP = 3
DAY = 24 * 3600
LONGEST = 30 * DAY  # a month: past this, ended jobs pile up in Redis's memory
# A finished job is how the status route finds the report: it must last at least as
# long as the download link the route hands out (an hour). rq's default is 500 s.
SHORTEST_FINISHED = 3600
SHORTEST_FAILED = 60  # time to read why it failed
BROKEN = "north"  # the section whose data source the failure run takes down (see report_data.py)
QUICK = 0.05  # REPORT_SECONDS for these runs: how long a job takes does not matter here


def run_to_end(learner, redis, env, job_ids):
    """Run the jobs on a worker of its own (started with env); return their final states."""
    worker = learner.start_worker(env=env)
    try:
        flows.wait_for_worker(learner, redis, worker)
        return [retries.follow(redis, jobs.fetch(redis, job_id), 40)[0] for job_id in job_ids]
    except retries.NoScheduler as error:
        fail(str(error), unit=6, step=3)
    except LearnerFailure as error:
        fail(str(error), step=STEP)
    finally:
        worker.kill()  # its jobs are over: a graceful stop would only cost a second or two


def post_plain_and_sectioned(learner, redis):
    """POST a plain report and a sectioned one; (plain job id, merge job id, section job ids)."""
    answers = flows.post_many(learner, [("json", {}), ("json", {"sections": True})])
    plain, merge = (flows.job_id_from(answer, STEP) for answer in answers)
    merge_job = jobs.fetch(redis, merge)
    sections = list(merge_job.dependency_ids) if merge_job is not None else []
    if not sections:
        fail("A sectioned report (sections: true) answered with a job that depends on no section jobs.",
             unit=7, step=4)
    return plain, merge, sections


def kept_for(redis, job_id):
    """{key: seconds left} for the job's hash and its results record; -1 is for ever,
    -2 is gone."""
    return {key: redis.ttl(key) for key in (f"rq:job:{job_id}", f"rq:results:{job_id}")}


def describe(seconds):
    if seconds == -1:
        return "for ever (no expiry)"
    if seconds >= DAY:
        return f"{seconds / DAY:,.0f} days"
    return f"{seconds:,} s"


# What to pass, said once for the sections and the merge: the plain report's enqueue
# is not the only one.
EVERY_JOB = "Pass it to every enqueue of a report's jobs: the plain report, each section and the merge (**KEEP)."


# Why a finished job must outlive an hour: the status route finds the report through it.
GONE_TOO_SOON = ("after that the status route answers 404 for a report still in the bucket, sooner than the "
                 "hour its download link lasts")


def check_finished_kept(redis, job_id, what, also="", short=GONE_TOO_SOON):
    ttls = kept_for(redis, job_id)
    if ttls[f"rq:job:{job_id}"] == -2:
        fail(f"{what[:1].upper() + what[1:]} was gone from Redis the moment it finished, before the page could ask for its link. "
             "result_ttl=0 deletes it at once: keep it a day (result_ttl=24 * 3600)." + also, step=STEP)
    for key, seconds in ttls.items():
        if seconds == -1 or seconds > LONGEST:
            fail(f"Redis keeps {what} ({key}) {describe(seconds)}: every report ever made stays in Redis's memory. "
                 "Enqueue it with a result_ttl of a day or so (result_ttl=24 * 3600), not -1." + also,
                 step=STEP)
        if 0 <= seconds < SHORTEST_FINISHED:
            default = ", rq's default of 500 s when no result_ttl is given" if seconds <= 500 else ""
            fail(f"Redis keeps {what} ({key}) only {describe(seconds)}{default}: {short}. Keep it a day or so "
                 "(result_ttl=24 * 3600)." + also, step=STEP)


def check_failed_kept(redis, job_id, what, also=""):
    for key, seconds in kept_for(redis, job_id).items():
        if seconds == -1 or seconds > LONGEST:
            fail(f"Redis keeps {what} ({key}) {describe(seconds)}: rq's default failure_ttl is a year, and every "
                 "failed report stays in Redis's memory that long. Enqueue it with a failure_ttl of a week or so "
                 "(failure_ttl=7 * 24 * 3600)." + also, step=STEP)
        if 0 <= seconds < SHORTEST_FAILED:
            fail(f"Redis keeps {what} ({key}) only {seconds} s: nobody has time to read why it failed. Keep it a "
                 "week or so (failure_ttl=7 * 24 * 3600)." + also, step=STEP)


def test_ended_jobs_leave_redis_within_a_month(learner, redis, s3, bucket):
    """A plain and a sectioned report run to the end, then again with one section's data
    source down: every job they made (the plain report, the sections, the merge) must
    leave Redis within a month, and stay long enough to be read."""
    plain, merge, sections = post_plain_and_sectioned(learner, redis)
    states = run_to_end(learner, redis, learner.environment(REPORT_SECONDS=QUICK), [plain, merge])
    for job_id, state in zip((plain, merge), states):
        if state != "finished":
            fail(f"A report job ended {state} with nothing wrong: "
                 f"{flows.job_error_summary(jobs.fetch(redis, job_id))}", step=STEP)
    check_finished_kept(redis, plain, "a finished report job")
    for section in sections:
        check_finished_kept(redis, section, "a finished section job of a sectioned report", " " + EVERY_JOB,
                            short="the jobs of a sectioned report should stay as long as a plain report's")
    check_finished_kept(redis, merge, "the finished merge job of a sectioned report", " " + EVERY_JOB)

    plain, merge, sections = post_plain_and_sectioned(learner, redis)
    for job_id in (plain, merge, *sections):
        retries.run_once(redis, job_id)  # its retries would fail alike
    # The broken section's job, found by its argument; all of them if none can be read.
    broken = [job_id for job_id in sections if BROKEN in str(jobs.decode(jobs.fetch(redis, job_id).data))] or sections
    state, *section_states = run_to_end(
        learner, redis, learner.environment(REPORT_SECONDS=QUICK, REPORT_BROKEN_SECTIONS=BROKEN), [plain, *broken])
    failed = [section for section, ended in zip(broken, section_states) if ended == "failed"]
    if state != "failed" or not failed:
        fail(f"With the {BROKEN!r} section's data source down, "
             + (f"a report job ended {state}" if state != "failed" else "every section job finished")
             + ", not failed.", step=STEP)
    check_failed_kept(redis, plain, "a failed report job")
    for section in failed:
        check_failed_kept(redis, section, "a failed section job of a sectioned report", " " + EVERY_JOB)
    # A section failed, so rq never runs the merge: what it would keep is the job's own setting.
    waiting = jobs.fetch(redis, merge)
    if waiting is not None and (waiting.failure_ttl is None or waiting.failure_ttl > LONGEST):
        given = "without a failure_ttl" if waiting.failure_ttl is None else f"with failure_ttl={waiting.failure_ttl}"
        kept = "a year, rq's default" if waiting.failure_ttl is None else describe(waiting.failure_ttl)
        fail(f"The merge job of a sectioned report is enqueued {given}: if it fails, Redis keeps it {kept}. Enqueue "
             "it with a failure_ttl of a week or so (failure_ttl=7 * 24 * 3600). " + EVERY_JOB, step=STEP)


# Run first in the worker's Python (grader.prelude): every botocore client the
# worker's processes create (boto3.client and boto3.resource both go through it) is logged.
CLIENT_COUNTER = '''
import os


def _count_clients():
    import botocore.session

    create = botocore.session.Session.create_client

    def create_client(self, service_name, *args, **kwargs):
        with open(os.environ["COURSE_CLIENT_LOG"], "a") as log:
            log.write(f"{os.getpid()} {service_name}\\n")
        return create(self, service_name, *args, **kwargs)

    botocore.session.Session.create_client = create_client


_count_clients()
'''
SHARED_CLIENT_STEP = 1


def test_worker_builds_its_s3_client_once_not_per_job(learner, redis, s3, bucket, tmp_path):
    log = tmp_path / "clients.log"
    log.touch()
    learner.may_write(log)
    answers = flows.post_many(learner, [("json", {})] * 3)
    ids = [flows.job_id_from(answer, 3, unit=8) for answer in answers]
    env = learner.environment(COURSE_CLIENT_LOG=log, REPORT_SECONDS=QUICK)
    worker = start_worker_with_prelude(learner, tmp_path, CLIENT_COUNTER, env)
    try:
        flows.wait_for_worker(learner, redis, worker)
        for job_id in ids:
            state, _ = retries.follow(redis, jobs.fetch(redis, job_id), 40)
            if state != "finished":
                fail(f"A report job ended {state}: {flows.job_error_summary(jobs.fetch(redis, job_id))}",
                     step=SHARED_CLIENT_STEP)
    except retries.NoScheduler as error:
        fail(str(error), unit=6, step=3)
    except LearnerFailure as error:
        fail(str(error), step=SHARED_CLIENT_STEP)
    finally:
        worker.kill()  # every job is over; what it logged is on disk
    made = [line.split() for line in log.read_text().splitlines()]
    s3_clients = [pid for pid, service in made if service == "s3"]
    if len(s3_clients) >= len(ids):
        fail(f"Your worker built {len(s3_clients)} S3 clients to run {len(ids)} report jobs: one per job, each "
             "reading boto3's service model again (tens of milliseconds). Build it once, when utils.py is "
             "imported (s3 = boto3.client(\"s3\") at the top of the module), and use it in every job. Built "
             "lazily inside a job it is still one per job: each job runs in a work horse of its own.",
             step=SHARED_CLIENT_STEP)


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
