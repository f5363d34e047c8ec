"""Unit 06: when jobs fail. A short S3 outage is retried (with a wait, run by
rq's scheduler) until the report is made; a long one ends the job `failed`,
with a readable error in the status JSON, nothing in the bucket, and the job in
rq's FailedJobRegistry, from which it can be requeued; a job that runs past
JOB_TIMEOUT is stopped.

S3 faults come from a proxy in front of the local S3 (grader.faults). boto3
retries a 5xx a few times by itself; the grader turns that off
(AWS_MAX_ATTEMPTS=1), and keeps S3 down until rq has scheduled the job's retry,
so that neither boto3's retries (switched back on in the learner's code) nor a
loop of the learner's own can stand in for the job's rq Retry.
"""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from rq.registry import FailedJobRegistry

from grader import failure_sentence, flows, jobs, retries, web
from grader.feedback import attempt, fail
from grader.storage import bucket_keys
from grader.faults import s3_fault_proxy

# The lesson retries after 10 s, 30 s, then 60 s, for an outage of a minute or so: a first
# wait longer than this leaves the person waiting with nothing for no reason, and is
# most often milliseconds written where rq reads seconds.
FIRST_RETRY_WITHIN = 5 * 60
CLOCK_SLACK = 5


@pytest.fixture
def faulty_s3(s3_endpoint):
    """(endpoint, FaultPlan): a local S3 whose uploads fail when the check says so."""
    with s3_fault_proxy(s3_endpoint) as proxy:
        yield proxy


@pytest.fixture
def env(learner, faulty_s3):
    """The learner's environment, with S3 behind the fault proxy and boto3's own retries off."""
    return learner.environment(AWS_ENDPOINT_URL=faulty_s3[0], AWS_MAX_ATTEMPTS=1)


def start_worker(learner, redis, env):
    worker = learner.start_worker(env=env)
    flows.wait_for_worker(learner, redis, worker)
    return worker


def follow(redis, job, timeout=30):
    followed, error = attempt(retries.follow, redis, job, timeout)
    if isinstance(error, retries.NoScheduler):
        fail(str(error), step=3)
    if error:
        fail(f"{error} With the grader moving each retry's wait to now, every run should be over by then.",
             step=2)
    return followed


def readable_error(body, kind, what, bucket):
    if body.get("status") != "failed":
        fail(f"After {what}, the job failed, but the status route says {body.get('status')!r}; it should say "
             "'failed'.", step=5)
    problem = failure_sentence.problem(body.get("error"), kind, what, bucket=bucket)
    if problem:
        fail(problem, step=5)


def check_nothing_left(s3, bucket, what):
    left = bucket_keys(s3, bucket)
    if left:
        fail(f"After {what}, the failed job left {left[0]!r} in the bucket. Build the whole PDF in memory and "
             "upload it once, as the last step; write nothing to S3 before that.", step=6)


def watch_until_retry_waits(redis, job, url, timeout=30):
    """Poll the status route until the job waits for a retry (True) or is over (False);
    return (whether it waits, every status JSON seen)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if retries.waiting(redis, job):
            return True, seen
        if jobs.status(job) in jobs.ENDED:
            return False, seen
        seen.append(web.read_status(url, 5))
        time.sleep(0.03)
    fail(f"S3 refused every upload, and after {timeout} s the job was still {jobs.status(job)}, neither failed "
         "nor waiting for a retry.", step=2)


def duration_words(seconds):
    if seconds >= 2 * 3600:
        return f"{seconds:.0f} s ({seconds / 3600:.1f} hours)"
    return f"{seconds:.0f} s ({seconds / 60:.0f} minutes)" if seconds >= 120 else f"{seconds:.0f} s"


def check_first_wait(redis, job):
    """The job's first retry, as rq scheduled it, is due within FIRST_RETRY_WITHIN."""
    wait = retries.due_in(redis, job)
    if wait is not None and wait > FIRST_RETRY_WITHIN + CLOCK_SLACK:
        fail(f"S3 was down and rq scheduled the job's first retry {duration_words(wait)} after the run failed: "
             "Retry's interval is in seconds, not milliseconds, and a short outage needs a first wait of seconds, "
             f"{FIRST_RETRY_WITHIN // 60} minutes at most, as in interval=[10, 30, 60].", step=2)


def progress_fell(seen):
    """(before, after) for the first fall in the progress the status route showed, or None."""
    top = 0
    for body in seen:
        value = body.get("progress")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value < top:
                return top, value
            top = max(top, value)
    return None


def test_transient_s3_faults_are_retried_to_success(learner, redis, s3, bucket, faulty_s3, env):
    """S3 refuses uploads until rq has scheduled the job's retry: longer than any retry inside
    one run (boto3's own, or a loop) lasts, so only rq's Retry, with a wait, rescues the
    report. Meanwhile the status route is watched: during the wait it says the job is
    queued, and progress never falls, not even when the next run starts the query again."""
    _, plan = faulty_s3
    _, base = web.start_web(learner, env)
    job_id, url = web.start_report(base, 2)
    job = jobs.fetch(redis, job_id)
    retries_given = job.retries_left
    plan.fail_always()
    # A query long enough that the status route sees the second run's progress.
    start_worker(learner, redis, learner.environment(**{**env, "REPORT_SECONDS": "0.6"}))
    waits, seen = watch_until_retry_waits(redis, job, url)
    if not waits:
        state = jobs.status(job)
        inside = (f" Your code tried the upload {plan.uploads} times within the run (boto3's retries or a loop of "
                  "your own): an outage longer than a few seconds outlasts those, and they cover only S3 calls."
                  if plan.uploads > 1 and not retries_given else "")
        if not retries_given:
            fail(f"S3 was down (503 on every upload) and the job ended {state}: it has no retry.{inside} Enqueue it "
                 "with an rq retry, retry=Retry(max=3, interval=[10, 30, 60]), so rq runs it again after a wait.",
                 step=2)
        if state == "failed" and plan.uploads > 1:
            fail(f"S3 was down and rq retried the job the moment each run failed, with no wait: all {plan.uploads} "
                 "attempts landed in the same outage and the job failed. Give Retry a wait between runs, e.g. "
                 "interval=[10, 30, 60].", step=2)
        if state == "finished" and plan.uploads:
            fail("S3 refused every upload, yet the job ended 'finished': the code catches the error and carries on. "
                 "Let the exception propagate, so that rq retries the job.", step=5)
        if state == "finished":
            fail("The job finished without uploading through the S3 that AWS_ENDPOINT_URL names. Create the client "
                 "with boto3.client(\"s3\"), which reads AWS_ENDPOINT_URL.", step=2)
        fail(f"With S3 down, the job ended {state} without rq scheduling a retry: {flows.job_error_summary(job)}.",
             step=2)
    check_first_wait(redis, job)
    plan.heal()  # the outage ends while the job waits for its next run
    during = web.read_status(url, 5)
    if during.get("status") not in ("queued", "scheduled"):
        fail(f"While the job waited for its retry, the status route said {during.get('status')!r}. The job is not "
             "over: rq will run it again, so to the person waiting it is still queued. Map rq's 'scheduled' to "
             "'queued' (and say 'failed' only once the job's status is failed).", step=5)
    seen.append(during)
    fell = progress_fell(seen)
    if fell:
        fail(f"While the job waited for its retry, progress fell from {fell[0]} to {fell[1]}. Keep the progress "
             "the first run reached; it must only rise.", step=5)
    deadline = time.monotonic() + 30
    fast_forward = retries.RetryFastForward(redis, job)
    while jobs.status(job) not in jobs.ENDED:  # the next run, hurried, watched from the status route
        _, error = attempt(fast_forward.check)
        if isinstance(error, retries.NoScheduler):
            fail(str(error), step=3)
        seen.append(web.read_status(url, 5))
        if time.monotonic() > deadline:
            break
        time.sleep(0.03)
    state, _ = follow(redis, job)
    if state != "finished":
        fail(f"S3 was back when rq retried the job, yet it ended {state}: {flows.job_error_summary(job)}.",
             step=2)
    fell = progress_fell(seen)
    if fell:
        fail(f"When rq ran the job again after its wait, progress fell from {fell[0]} to {fell[1]}: the new run "
             "started its query from 0 and wrote over the progress the first run had reached. Store a value only "
             "if it is higher than the one in job.meta.", step=5)
    flows.check_pdf_at(s3, bucket, jobs.result(job), 2)


def test_s3_outage_fails_with_a_readable_error_and_can_be_requeued(learner, redis, s3, bucket, faulty_s3, env):
    _, plan = faulty_s3
    plan.fail_always()
    _, base = web.start_web(learner, env)
    job_id, url = web.start_report(base, 5)
    job = jobs.fetch(redis, job_id)
    retries.run_once(redis, job_id)  # S3 stays down: every retry would fail alike (retrying is checked above)
    start_worker(learner, redis, env)
    state, _ = follow(redis, job)
    if state == "finished":
        fail("Every upload to S3 failed, yet the job ended 'finished': the code catches the error and carries on. "
             "Let the exception propagate, so that rq retries the job and, in the end, marks it failed.",
             step=5)
    readable_error(web.read_status(url, 5), "storage", "an S3 outage", bucket)
    check_nothing_left(s3, bucket, "an S3 outage")
    registry = FailedJobRegistry(job.origin, connection=redis, serializer=job.serializer)
    if job_id not in registry.get_job_ids():
        fail("The failed job is not in rq's FailedJobRegistry, so nobody can find and requeue it. Let it fail "
             "the normal way (raise), and keep the default failure_ttl.", step=7)
    plan.heal()  # the outage is over: requeue it, as `rq requeue` does
    registry.requeue(job_id)
    state, _ = follow(redis, job)
    body = web.read_status(url, 5)
    if state != "finished" or body.get("status") != "finished" or not body.get("url"):
        fail(f"Once S3 was back, the requeued job ended {state} and the status route said {body.get('status')!r}; "
             "requeued, it should finish and give a download url.", step=7)


def test_failed_query_leaves_no_partial_report(learner, redis, s3, bucket, env):
    broken = learner.environment(**{**env, "REPORT_BROKEN_SECTIONS": "north"})
    _, base = web.start_web(learner, broken)
    job_id, url = web.start_report(base, 5)
    job = jobs.fetch(redis, job_id)
    retries.run_once(redis, job_id)  # the data source stays down: every retry would fail alike
    start_worker(learner, redis, broken)
    state, _ = follow(redis, job)
    if state == "finished":
        fail("The data source was down, yet the job ended 'finished': the code catches the error and carries on. "
             "Let the exception propagate, so the job fails and says why.", step=5)
    check_nothing_left(s3, bucket, "the data source failed")
    readable_error(web.read_status(url, 5), "data", "the data source failed", bucket)


def test_job_past_its_timeout_is_stopped(learner, redis, s3, bucket, env):
    with ThreadPoolExecutor(2) as pool:  # two web apps, each with its own settings, asked at once
        asked_usual = pool.submit(flows.post_report, learner, REPORT_SECONDS=None, JOB_TIMEOUT=None)
        asked_slow = pool.submit(flows.post_report, learner, JOB_TIMEOUT="1", REPORT_SECONDS="30")
        usual = jobs.fetch(redis, flows.job_id_from(asked_usual.result(), 4))
        answer = asked_slow.result()
    if usual is not None:
        flows.check_job_timeout(usual, 4, how="JOB_TIMEOUT's default, 600")
        usual.delete()  # only its timeout mattered: no worker should run it
    slow = learner.environment(**{**env, "JOB_TIMEOUT": "1", "REPORT_SECONDS": "30"})
    job = jobs.fetch(redis, flows.job_id_from(answer, 4))
    if job.timeout != 1:
        fail(f"With JOB_TIMEOUT=1 the enqueued job's timeout is {job.timeout!r} s. Read JOB_TIMEOUT from the "
             "environment (default 600) and pass it as job_timeout.", step=4)
    retries.run_once(redis, job.id)  # each retry would time out alike
    start_worker(learner, redis, slow)
    state, _ = follow(redis, job)
    error = jobs.error(job)
    if state != "failed" or "timeout" not in error.lower():
        fail(f"A job past its 1 s timeout should be stopped by the worker and fail; it ended {state} "
             f"({flows.job_error_summary(job)}).", step=4)
    check_nothing_left(s3, bucket, "a timeout")


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
