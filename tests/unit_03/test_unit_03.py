"""Unit 03: creating the worker and util files. The route enqueues and answers at
once; a real worker process, listening on high, default, low, runs
utils.make_report, which leaves a valid PDF in the bucket."""
import reprlib

import pytest

from grader import flows, jobs
from grader.storage import bucket_keys
from grader.feedback import fail

LISTEN = ["high", "default", "low"]


def test_worker_listens_on_high_default_low_in_order(learner, redis):
    process = learner.start_worker()  # it starts while worker.py is read
    declared = learner.probe("import worker\nresult(listen=getattr(worker, 'listen', None))",
                             what="importing worker.py", timeout=15)["listen"]
    if declared is not None and list(declared) != LISTEN:
        fail(f"worker.listen is {declared!r}; it must be {LISTEN!r}, in that order: the order is the priority.",
             step=3)
    found = flows.wait_for_worker(learner, redis, process)
    queues = found.queue_names()
    if queues != LISTEN:
        fail(f"Your worker listens on {queues!r}; it must listen on {LISTEN!r}, in that order "
             "(`Worker(listen, connection=conn)`).", step=3)


def test_conn_still_follows_REDIS_URL(learner, redis):
    seen = flows.read_through_conn(learner, redis, step=3)
    if seen["value"] != seen["expected"]:
        fail("worker.conn does not reach the Redis that REDIS_URL names, so the web app and the worker "
             "would use different queues. Build conn from redis_url.", step=3)


def test_route_enqueues_and_answers_at_once(learner, redis, s3, bucket):
    """202 with a job id at once, and nothing slow done in the web process."""
    # A route that runs the query itself takes at least REPORT_SECONDS; an enqueueing one a few
    # milliseconds. The bound sits halfway, so a busy machine cannot fail a right answer.
    slow_query = 5
    answer = flows.post_report(learner, REPORT_SECONDS=str(slow_query))
    if answer["seconds"] >= slow_query / 2:
        fail(f"POST /report took {answer['seconds']:.1f} s with REPORT_SECONDS={slow_query}: the route still runs slow "
             "work itself. It should only enqueue the job and answer.", step=4)
    if answer["status"] == 200:
        from rq import Queue

        if any(queue.count for queue in Queue.all(connection=redis)):
            fail("POST /report enqueued the job but answered 200 (OK). Answer 202 (Accepted): the work is "
                 "not done yet, only queued. `return jsonify(job_id=job.id), 202`.", step=4)
        if bucket_keys(s3, bucket):
            fail("POST /report still answers 200 after building the report itself. Enqueue the work "
                 "(`queue.enqueue(make_report)`) and answer 202 with the job id.", step=4)
        fail(f"POST /report answered 200 with {answer['text'][:80]!r} and enqueued nothing. Enqueue the work "
             "(`queue.enqueue(make_report)`) and answer 202 with the job id.", step=4)
    job_id = flows.job_id_from(answer, 4)
    # The probe has exited: any thread it started has finished. No worker ran, so no report may exist yet.
    made = bucket_keys(s3, bucket)
    if made:
        fail(f"A report ({made[0]}) reached the bucket although no worker ran: the web process built it "
             "(in the route or in a thread). Only the worker may run make_report.", step=4)
    job = jobs.fetch(redis, job_id)
    if job is None:
        fail(f"POST /report answered job id {job_id!r}, but Redis has no such job. Return job.id from "
             "`queue.enqueue(...)`.", step=4)
    if job.origin not in LISTEN or jobs.status(job) != "queued":
        fail(f"The job is {jobs.status(job)} on queue {job.origin!r}; it should wait on one of {LISTEN} "
             "for a worker.", step=4)


def test_worker_runs_the_job_to_a_pdf_in_the_bucket(learner, redis, s3, bucket):
    # The route sees REPORT_SECONDS unset, as on Heroku; only the worker gets the short query.
    worker = learner.start_worker()  # it starts while the route is asked
    answer = flows.post_report(learner, REPORT_SECONDS=None)
    job_id = flows.job_id_from(answer, 4)
    queued = jobs.fetch(redis, job_id)
    if queued is not None:
        flows.check_job_timeout(queued, 4)
    job = flows.run_job(learner, redis, job_id, worker=worker)
    state = jobs.status(job)
    if state != "finished" and worker.spawns_horses:
        fail(f"The job ended {state} ({flows.job_error_summary(job)}), and your worker runs each job in a fresh "
             "Python (SpawnWorker), which imports utils.py anew and inherits nothing that worker.py sets up under "
             "`if __name__ == \"__main__\":`, as a forked job would. Build what make_report needs in utils.py.",
             step=5)  # the note on fork or spawn, after the first job runs
    if state != "finished":
        fail(f"The worker ran the job and it ended {state}: {flows.job_error_summary(job)}", step=2)
    key = jobs.result(job)
    if not isinstance(key, str) or not key:
        fail(f"The job finished but returned {reprlib.repr(key)}, not the key of an uploaded PDF. Enqueue "
             "utils.make_report, which uploads the report and returns its key.", step=4)
    flows.check_pdf_at(s3, bucket, key, 2)


def test_make_report_uploads_to_the_bucket_S3_BUCKET_names(learner, s3, bucket):
    seen = learner.probe("from utils import make_report\nresult(key=make_report())", timeout=30,
                         what="utils.make_report()")
    flows.check_pdf_at(s3, bucket, seen["key"], 2, what="make_report()")


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
