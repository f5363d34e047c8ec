"""Unit 07's shared steps: post several reports in one go, ask the status route
about a job, and find the jobs a merge job waits for."""
from grader import jobs
from grader.learner import wait_until

POST_MANY = '''
from app import app
client = app.test_client()
answers = []
for kind, body in {requests!r}:
    if kind == "json":
        response = client.post("/report", json=body)
    elif kind == "form":
        response = client.post("/report", data=body)
    else:  # raw bytes sent as JSON, e.g. a body that is not valid JSON
        response = client.post("/report", data=body, content_type="application/json")
    answers.append(dict(status=response.status_code, body=response.get_json(silent=True),
                        text=response.get_data(as_text=True)[:300]))
result(answers=answers)
'''

GET_STATUS = '''
from app import app
response = app.test_client().get("/report/" + {job_id!r})
result(status=response.status_code, body=response.get_json(silent=True),
       text=response.get_data(as_text=True)[:300])
'''


def post_many(learner, requests, env=None):
    """POST /report once per (kind, body) in one child process; kind is json, form or raw."""
    return learner.probe(POST_MANY.format(requests=list(requests)), timeout=30, what="POST /report",
                         env=env)["answers"]


def get_status(learner, job_id, env=None):
    """GET /report/<job_id> through Flask's test client."""
    return learner.probe(GET_STATUS.format(job_id=job_id), timeout=20, what="GET /report/<job_id>", env=env)


def dependencies(redis, job):
    """The jobs `job` waits for (its depends_on), fetched whatever their serializer."""
    return [jobs.fetch(redis, job_id) for job_id in job.dependency_ids]


def settled(redis, timeout, quiet=1.0):
    """Wait until no job has been queued or running on any queue for `quiet` seconds
    in a row; True if that happened in time. A moment of idleness is not enough: when
    a job ends, its worker enqueues the jobs that depend on it a few milliseconds later."""
    import time

    idle_since = [None]

    def idle():
        for queue in jobs.queues(redis):
            if queue.count or queue.started_job_registry.get_job_ids():
                idle_since[0] = None
                return False
        idle_since[0] = idle_since[0] or time.monotonic()
        return time.monotonic() - idle_since[0] >= quiet

    return bool(wait_until(idle, timeout, interval=0.1))


def fast_forward_retries(redis):
    """Make every job waiting in a scheduled registry (a retry's back-off, an
    enqueue_in) due now, so the worker's scheduler moves it to its queue at once."""
    import time

    for queue in jobs.queues(redis):
        registry = queue.scheduled_job_registry
        due = {job_id: int(time.time()) - 1 for job_id in registry.get_job_ids()}  # rq compares whole seconds
        if due:
            redis.zadd(registry.key, due)
