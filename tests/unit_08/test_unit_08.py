"""Unit 08: trusted jobs and input. Job payloads in Redis are JSON and the worker refuses pickled
ones; it runs only the app's own job functions, named in full; a body over the limit is refused
with 413, and bad input of every shape gets a short JSON 4xx, never a 500."""
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from grader import flows, jobs, retries
from grader.feedback import fail
from grader.processes import wait_until


def test_job_payloads_in_redis_are_json(learner, redis):
    answers = flows.post_many(learner, [("json", {}), ("json", {"sections": True})])
    ids = [flows.job_id_from(answer, 2) for answer in answers]
    merge = jobs.fetch(redis, ids[1])
    ids += list(merge.dependency_ids) if merge is not None else []
    for job_id in ids:
        problem = jobs.payload_problem(redis, job_id)
        if problem:
            fail(f"The job {job_id} is stored in Redis as {problem}, not JSON. Create every Queue in app.py with "
                 "serializer=JSONSerializer, so the worker never has to unpickle what it reads from Redis.",
                 step=2)


def test_worker_runs_json_jobs_and_refuses_pickled_ones(learner, redis, s3, bucket):
    from rq import Queue

    with tempfile.TemporaryDirectory(prefix="course-pickle-", dir=learner.tmp) as folder:
        marker = Path(folder) / "ran-code-from-redis"
        planted = Queue("default", connection=redis).enqueue("os.getpid")
        jobs.plant_pickled_payload(redis, planted, marker)
        worker = learner.start_worker()
        answer = flows.post_report(learner)  # while the worker starts
        job = jobs.fetch(redis, flows.job_id_from(answer, 2))
        flows.wait_for_worker(learner, redis, worker)
        wait_until(lambda: planted.get_status(refresh=True).value in jobs.ENDED, 15)
        if marker.exists():
            fail("A pickled job payload planted in Redis ran code in your worker: it unpickles job data. "
                 "Anyone who can write to your Redis could run any code there. Give the Worker "
                 "serializer=JSONSerializer.", step=3)
    # A job the worker cannot read may be retried: skip the back-off waits.
    wait_until(lambda: retries.make_everything_due(redis) or jobs.status(job) in jobs.ENDED, 30)
    if jobs.status(job) != "finished":
        fail(f"The worker could not run a job the route enqueued: it ended {jobs.status(job)} "
             f"({flows.job_error_summary(job)}). The queues in app.py and the Worker must use the same "
             "serializer, JSONSerializer.", step=3)
    # The status route reads the same JSON job back (its result, its progress in meta).
    status_url = (answer["body"] or {}).get("status_url") or f"/report/{job.id}"
    seen = flows.get_status(learner, urlsplit(status_url).path)
    body = seen["body"] if isinstance(seen["body"], dict) else {}
    if seen["status"] != 200 or body.get("status") != "finished" or not body.get("url"):
        pickled = any(word in str(seen["error"]) for word in ("pickle", "Deserializ", "UnicodeDecode"))
        why = (" The route reads the job with pickle: give Job.fetch (or the Queue it fetches with) "
               "serializer=JSONSerializer, as the queues that wrote it have." if pickled else
               " Read the job back with the serializer it was written with: Job.fetch(job_id, connection=conn, "
               "serializer=JSONSerializer).")
        shown = f"raised {seen['error']}" if seen["error"] else f"answered {seen['status']} {seen['text'][:100]!r}"
        fail(f"The job finished, but the status route {shown} instead of status 'finished' with the download url."
             + why, step=2)

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


# Functions outside the app that a JSON job can name. The second is os.mkdir too,
# reached through utils' own `import os` (rq imports "utils", then looks up os.mkdir
# in it): a name that merely starts with "utils." is not one of the app's jobs.
PLANTED = ("os.mkdir", "utils.os.mkdir")


def test_worker_runs_only_the_apps_jobs(learner, redis, s3, bucket):
    with tempfile.TemporaryDirectory(prefix="course-allow-", dir=learner.tmp) as folder:
        markers = {name: Path(folder) / f"ran-{name}-named-in-redis" for name in PLANTED}
        planted = [json_queue(redis).enqueue(name, str(markers[name])) for name in PLANTED]  # JSON, still a way in
        worker = learner.start_worker()
        report = jobs.fetch(redis, flows.job_id_from(flows.post_report(learner), 3))  # while it starts
        flows.wait_for_worker(learner, redis, worker)
        wait_until(lambda: all(jobs.status(job) in jobs.ENDED for job in [*planted, report]), 30)
        if markers["os.mkdir"].exists():
            fail("A JSON job planted in Redis naming os.mkdir ran on your worker: JSON keeps pickled code out, but "
                 "the worker still calls any function a job names. Check job.func_name against your own job "
                 "functions before running it (a Job subclass, given to the Worker as job_class).",
                 step=3)
        if markers["utils.os.mkdir"].exists():
            fail("A JSON job planted in Redis naming utils.os.mkdir ran on your worker: that is os.mkdir, found "
                 "through utils.py's `import os`. A check on the name's first part (func_name.startswith(\"utils.\"), "
                 "or split(\".\")[0]) lets through every module utils.py imports, and everything in them. Compare the whole name with "
                 "the set of your job functions' names: `if self.func_name not in ALLOWED_JOBS`.",
                 step=3)
    if jobs.status(report) != "finished":
        fail(f"Your worker refused or failed the report job itself ({jobs.status(report)}: "
             f"{flows.job_error_summary(report)}). The allowed names are the functions' full names, like "
             "'utils.make_report'.", step=3)


def test_a_body_over_the_limit_is_refused(learner):
    answer = learner.probe(BIG_BODY, timeout=30, what="POST /report with a 1 MB body")
    if answer["echoed"]:
        fail("POST /report with a 1 MB priority answered with that value in its error message. Never echo input "
             "back: say what is allowed instead.", step=4)
    if answer["status"] != 413:
        fail(f"POST /report with a 1 MB body answered {answer['status']}; the app should refuse a body that large "
             "before reading it: set app.config[\"MAX_CONTENT_LENGTH\"] (the page sends a few bytes).",
             step=4)
    body = answer["body"]
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) or answer["length"] > 1000:
        fail(f"POST /report with a 1 MB body answered 413, but not as a short JSON error ({answer['length']} "
             "characters). Add an errorhandler for HTTPException that answers jsonify(error=...).",
             step=4)


# What the internet sends that the page never would (kind, body, what it is). Each must
# get a short JSON 4xx, never a 5xx; a bad priority or body a 400 (the contract's).
DEEP = 5000  # levels of nesting: json.loads raises RecursionError past about 1,000
BAD_INPUT = [
    ("json", {"priority": ["high"]}, "a list as priority"),
    ("json", {"priority": {"high": 1}}, "an object as priority"),
    ("json", {"priority": None}, "null as priority"),
    ("json", {"priority": 5}, "a number as priority"),
    ("raw", '{"priority": ' + "[" * DEEP + "]" * DEEP + "}", f"a priority nested {DEEP} levels deep"),
    ("raw", "[" * DEEP + "]" * DEEP, f"a body nested {DEEP} levels deep"),
    ("raw", '{"priority": "high"', "a body that is not valid JSON"),
    ("raw", '"high"', "a JSON body that is not an object"),
    ("json", {"priority": "<b>urgent</b>"}, "HTML as priority"),
    ("form", {"priority": "urgent"}, "a form with an unknown priority"),
]
# Shapes of `sections` the page never sends: taken as no sections (202) or refused (4xx).
ODD_SECTIONS = [
    ("json", {"sections": ["north"]}, "a list as sections"),
    ("json", {"sections": {"north": True}}, "an object as sections"),
]


def test_bad_input_of_every_shape_gets_a_short_json_4xx(learner, redis):
    requests = BAD_INPUT + ODD_SECTIONS
    answers = flows.post_many(learner, requests)
    for (kind, body, what), answer in zip(requests, answers):
        status, sent = answer["status"], f"POST /report with {what}"
        if kind != "raw":
            sent += f" ({body!r})"
        if status >= 500:
            raised = f" raised {answer['error']}, so it" if answer["error"] else ""
            hint = ("json.loads raises RecursionError for a body nested that deep, and get_json(silent=True) does "
                    "not catch it: answer it with its own errorhandler, a 400." if "RecursionError" in str(answer["error"])
                    else "A list or an object cannot be looked up in a dict or a set: compare with a tuple, or check "
                    "that the value is a string first." if "unhashable" in str(answer["error"])
                    else "Check each value's type and value before using it.")
            fail(f"{sent}{raised} answered {status}; bad input gets a short JSON 4xx, never a 5xx. {hint}",
                 step=4)
        if (kind, body, what) in BAD_INPUT and status != 400:
            fail(f"{sent} answered {status} ({answer['text'][:80]!r}); it should answer 400 with a JSON error: "
                 "priority must be high, default or low, and the body a JSON object.", step=4)
        if 400 <= status < 500:
            error = answer["body"].get("error") if isinstance(answer["body"], dict) else None
            if not isinstance(error, str) or not error.strip() or answer["length"] > 1000:
                fail(f"{sent} answered {status}, but not as a short JSON error ({answer['text'][:80]!r}). Answer "
                     "jsonify(error=\"...\") with a sentence, as the route's own errors do.", step=4)
        if "<b>" in answer["text"]:
            fail(f"{sent} answered with that HTML in its message. Never echo input back: say what is allowed "
                 "instead (\"priority must be high, default or low.\").", step=4)


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
