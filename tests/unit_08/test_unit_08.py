"""Unit 08: trusted jobs and input. Job payloads in Redis are JSON and the worker refuses pickled
ones; it runs only the app's own job functions; a body over the limit is refused with 413."""
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from grader import fanout, flows, jobs
from grader.feedback import fail
from grader.processes import wait_until

UNIT = 8


@pytest.fixture(autouse=True)
def learner_files(target, request):
    if request.node.originalname != "test_challenge":  # the quiz needs no code
        target.require("worker.py", "utils.py", "app.py", unit=UNIT)


DONE = ("finished", "failed", "stopped", "canceled")


def test_job_payloads_in_redis_are_json(learner, redis):
    answers = fanout.post_many(learner, [("json", {}), ("json", {"sections": True})])
    ids = [flows.job_id_from(answer, UNIT, 2) for answer in answers]
    merge = jobs.fetch(redis, ids[1])
    ids += list(merge.dependency_ids) if merge is not None else []
    for job_id in ids:
        problem = jobs.payload_problem(redis, job_id)
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
DONE = ("finished", "failed", "stopped", "canceled")

BIG_BODY = '''
from app import app
value = "x" * (1024 * 1024)
response = app.test_client().post("/report", json={"priority": value})
text = response.get_data(as_text=True)
result(status=response.status_code, body=response.get_json(silent=True), length=len(text), echoed="x" * 1000 in text)
'''


def json_queue(redis, name="default"):
    from rq import Queue
    from rq.serializers import JSONSerializer

    return Queue(name, connection=redis, serializer=JSONSerializer)


def test_worker_runs_only_the_apps_jobs(learner, redis, s3, bucket):
    with tempfile.TemporaryDirectory(prefix="course-allow-") as folder:
        marker = Path(folder) / "ran-a-function-named-in-redis"
        planted = json_queue(redis).enqueue("os.mkdir", str(marker))  # JSON, and still a way in
        worker = learner.start_worker()
        report = jobs.fetch(redis, flows.job_id_from(flows.post_report(learner), UNIT, 3))  # while it starts
        flows.wait_for_worker(learner, redis, worker)
        wait_until(lambda: jobs.status(planted) in DONE and jobs.status(report) in DONE, 30)
        if marker.exists():
            fail("A JSON job planted in Redis naming os.mkdir ran on your worker: JSON keeps pickled code out, but "
                 "the worker still calls any function a job names. Check job.func_name against your own job "
                 "functions before running it (a Job subclass, given to the Worker as job_class).",
                 unit=UNIT, step=3)
    if jobs.status(report) != "finished":
        fail(f"Your worker refused or failed the report job itself ({jobs.status(report)}: "
             f"{flows.job_error_summary(report)}). The allowed names are the functions' full names, like "
             "'utils.make_report'.", unit=UNIT, step=3)


def test_a_body_over_the_limit_is_refused(learner):
    answer = learner.probe(BIG_BODY, timeout=30, what="POST /report with a 1 MB body")
    if answer["echoed"]:
        fail("POST /report with a 1 MB priority answered with that value in its error message. Never echo input "
             "back: say what is allowed instead.", unit=UNIT, step=4)
    if answer["status"] != 413:
        fail(f"POST /report with a 1 MB body answered {answer['status']}; the app should refuse a body that large "
             "before reading it: set app.config[\"MAX_CONTENT_LENGTH\"] (the page sends a few bytes).",
             unit=UNIT, step=4)
    body = answer["body"]
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) or answer["length"] > 1000:
        fail(f"POST /report with a 1 MB body answered 413, but not as a short JSON error ({answer['length']} "
             "characters). Add an errorhandler for HTTPException that answers jsonify(error=...).",
             unit=UNIT, step=4)


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target, UNIT)
