"""Unit 08, what rq 3.0 keeps in Redis and what a job costs: a finished and a
failed report job both leave Redis within a bound (rq's defaults keep a failed
job a year, and its failure record for ever), and the worker builds its S3
client once, not once per job."""
import os

import pytest

from grader import fanout, flows, jobs, retries
from grader.feedback import LearnerFailure, fail

UNIT = 8
STEP = 15
DAY = 24 * 3600
LONGEST = 30 * DAY  # a month: past this, ended jobs pile up in Redis's memory
SHORTEST = 60  # a finished job must outlive the page's next few polls


@pytest.fixture(autouse=True)
def learner_files(target):
    target.require("worker.py", "utils.py", "app.py", unit=UNIT)


def run_to_end(learner, redis, env, job_id):
    """Run the job on a worker of its own (started with env), return its final state."""
    worker = learner.start_worker(env=env)
    try:
        flows.wait_for_worker(learner, redis, worker)
        state, _ = retries.follow(redis, jobs.fetch(redis, job_id), 40)
    except retries.NoScheduler as error:
        fail(str(error), unit=6, step=3)
    except LearnerFailure as error:
        fail(str(error), unit=UNIT, step=STEP)
    finally:
        worker.kill()  # its job is over: a graceful stop would only cost a second or two
    return state


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


def test_ended_jobs_leave_redis_within_a_month(learner, redis, s3, bucket):
    finished = flows.job_id_from(flows.post_report(learner), UNIT, STEP)
    state = run_to_end(learner, redis, learner.environment(), finished)
    if state != "finished":
        fail(f"A report job ended {state} with nothing wrong: {flows.job_error_summary(jobs.fetch(redis, finished))}",
             unit=UNIT, step=STEP)
    ttls = kept_for(redis, finished)
    if ttls[f"rq:job:{finished}"] == -2:
        fail("A finished report job was gone from Redis the moment it finished, before the page could ask for its "
             "link. result_ttl=0 deletes it at once: keep it a day (result_ttl=24 * 3600).", unit=UNIT, step=STEP)
    for key, seconds in ttls.items():
        if seconds == -1 or seconds > LONGEST:
            fail(f"Redis keeps a finished report job ({key}) {describe(seconds)}: every report ever made stays in "
                 "Redis's memory. Enqueue it with a result_ttl of a day or so (result_ttl=24 * 3600), not -1.",
                 unit=UNIT, step=STEP)
        if 0 <= seconds < SHORTEST:
            fail(f"Redis keeps a finished report job ({key}) only {seconds} s: the page may not have asked for its "
                 "link yet. Keep it a day or so (result_ttl=24 * 3600).", unit=UNIT, step=STEP)

    broken = learner.environment(REPORT_BROKEN_SECTIONS="north")
    failed = flows.job_id_from(flows.post_report(learner), UNIT, STEP)
    retries.run_once(redis, failed)  # its retries would fail alike
    state = run_to_end(learner, redis, broken, failed)
    if state != "failed":
        fail(f"With its data source down, a report job ended {state}, not failed.", unit=UNIT, step=STEP)
    for key, seconds in kept_for(redis, failed).items():
        if seconds == -1 or seconds > LONGEST:
            fail(f"Redis keeps a failed report job ({key}) {describe(seconds)}: rq's default failure_ttl is a year, "
                 "and every failed report stays in Redis's memory that long. Enqueue it with a failure_ttl of a "
                 "week or so (failure_ttl=7 * 24 * 3600).", unit=UNIT, step=STEP)
        if 0 <= seconds < SHORTEST:
            fail(f"Redis keeps a failed report job ({key}) only {seconds} s: nobody has time to read why it "
                 "failed. Keep it a week or so (failure_ttl=7 * 24 * 3600).", unit=UNIT, step=STEP)


# Put first on the worker's PYTHONPATH: every botocore client the worker's
# processes create (boto3.client and boto3.resource both go through it) is logged.
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
SHARED_CLIENT_STEP = 6


def test_worker_builds_its_s3_client_once_not_per_job(learner, redis, s3, bucket, tmp_path):
    folder = tmp_path / "counter"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(CLIENT_COUNTER)
    log = tmp_path / "clients.log"
    log.touch()
    env = learner.environment(PYTHONPATH=os.pathsep.join([str(folder), learner.env["PYTHONPATH"]]),
                              COURSE_CLIENT_LOG=log)
    answers = fanout.post_many(learner, [("json", {})] * 3)
    ids = [flows.job_id_from(answer, UNIT, 3) for answer in answers]
    worker = learner.start_worker(env=env)
    try:
        flows.wait_for_worker(learner, redis, worker)
        for job_id in ids:
            state, _ = retries.follow(redis, jobs.fetch(redis, job_id), 40)
            if state != "finished":
                fail(f"A report job ended {state}: {flows.job_error_summary(jobs.fetch(redis, job_id))}",
                     unit=UNIT, step=SHARED_CLIENT_STEP)
    except retries.NoScheduler as error:
        fail(str(error), unit=6, step=3)
    except LearnerFailure as error:
        fail(str(error), unit=UNIT, step=SHARED_CLIENT_STEP)
    finally:
        worker.kill()  # every job is over; what it logged is on disk
    made = [line.split() for line in log.read_text().splitlines()]
    s3_clients = [pid for pid, service in made if service == "s3"]
    if len(s3_clients) >= len(ids):
        fail(f"Your worker built {len(s3_clients)} S3 clients to run {len(ids)} report jobs: one per job, each "
             "reading boto3's service model again (tens of milliseconds). Build it once, when utils.py is "
             "imported (s3 = boto3.client(\"s3\") at the top of the module), and use it in every job. Built "
             "lazily inside a job it is still one per job: each job runs in a work horse of its own.",
             unit=UNIT, step=SHARED_CLIENT_STEP)
