"""Unit 07's shared steps: post several reports in one go, ask the status route
about a job, and find the jobs a merge job waits for."""
from grader import flows, jobs
from grader.processes import wait_until

POST_MANY = '''
from app import app
{record_raised}
client = app.test_client()
if {workers}:  # post only once that many rq workers wait (they start while the app imports)
    import time
    import redis
    from rq import Worker
    _redis, _deadline = redis.Redis.from_url(os.environ["REDIS_URL"]), time.monotonic() + 20
    while Worker.count(connection=_redis) < {workers} and time.monotonic() < _deadline:
        time.sleep(0.02)
answers = []
for kind, body in {requests!r}:
    raised.clear()
    if kind == "json":
        response = client.post("/report", json=body)
    elif kind == "form":
        response = client.post("/report", data=body)
    else:  # raw bytes sent as JSON, e.g. a body that is not valid JSON
        response = client.post("/report", data=body, content_type="application/json")
    answers.append(dict(status=response.status_code, body=response.get_json(silent=True),
                        text=response.get_data(as_text=True)[:300], error=raised[-1] if raised else None))
result(answers=answers)
'''

def post_many(learner, requests, env=None, workers=0):
    """POST /report once per (kind, body) in one child process; kind is json, form or raw.
    With `workers`, the requests wait (up to 20 s) until that many rq workers have registered."""
    code = POST_MANY.format(requests=list(requests), workers=workers, record_raised=flows.RECORD_RAISED)
    return learner.probe(code, timeout=30, what="POST /report", env=env)["answers"]


def dependencies(redis, job):
    """The jobs `job` waits for (its depends_on), fetched whatever their serializer."""
    return [jobs.fetch(redis, job_id) for job_id in job.dependency_ids]


def settled(redis, timeout, quiet=0.3):
    """Wait until no job is queued or running on any queue, and every registered
    worker waits for jobs again (its connection blocked in Redis), for `quiet` seconds
    in a row; True if that happened in time. An empty queue alone is not enough: when
    a job ends, its worker enqueues the jobs that depend on it a moment later, and
    only then goes back to waiting. (rq keeps a worker's state "idle" throughout.)"""
    import time

    from rq import Worker

    idle_since = [None]

    def idle():
        for queue in jobs.queues(redis):
            if queue.count or queue.started_job_registry.get_job_ids():
                idle_since[0] = None
                return False
        if redis.info("clients")["blocked_clients"] < Worker.count(connection=redis):
            idle_since[0] = None
            return False
        idle_since[0] = idle_since[0] or time.monotonic()
        return time.monotonic() - idle_since[0] >= quiet

    return bool(wait_until(idle, timeout, interval=0.05))


def start_workers(learner, count, env=None):
    """Start `count` of the learner's workers at once; return their processes."""
    return [learner.start_worker(env=env) for _ in range(count)]


def most_at_once(runs):
    """The most jobs that were running at the same moment, from their own
    (started_at, ended_at) as rq stored them. A job that starts the instant
    another ends does not overlap it."""
    events = []
    for started, ended in runs:
        if started is None or ended is None:
            continue
        events += [(started, 1), (ended, -1)]
    events.sort(key=lambda event: (event[0], event[1]))  # at a tie, the end first
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most
