"""Steps that several units' checks share: post a report, run a job to its end,
check the learner's Redis connection, check the quiz."""
import re
import reprlib
import time
import tomllib
import uuid

from course import manifest, quiz
from grader import diagnose, feedback, jobs
from grader.feedback import LearnerFailure, attempt, fail
from grader.processes import wait_until
from grader.storage import pdf_problem


def get_status(learner, path, env=None, timeout=20):
    """GET a status path (/report/<id>) through Flask's test client, in a probe:
    {status, body (JSON or None), text, error (what the route raised, if anything)}."""
    return get_statuses(learner, [path], env=env, timeout=timeout)[0]


def get_statuses(learner, paths, env=None, timeout=20):
    """get_status for each of `paths`, in one probe."""
    return learner.run_probe("get_status", paths=list(paths), timeout=timeout, what=f"GET {paths[0]}",
                             env=env)["answers"]


def post_many(learner, requests, env=None, workers=0):
    """POST /report once per (kind, body) in one child process; kind is json, form or raw.
    With `workers`, the requests wait (up to 20 s) until that many rq workers have registered."""
    # JSON carries no bytes: a raw body given as bytes goes as latin-1 text, turned back into the same bytes.
    sent = [("raw-bytes", body.decode("latin-1"), *rest) if kind == "raw" and isinstance(body, bytes) else
            (kind, body, *rest) for kind, body, *rest in requests]
    return learner.run_probe("post_many", requests=sent, workers=workers, timeout=30, what="POST /report",
                             env=env)["answers"]


def start_workers(learner, count, env=None):
    """Start `count` of the learner's workers at once; return their processes."""
    return [learner.start_worker(env=env) for _ in range(count)]


def post_report(learner, body=None, timeout=30, **env):
    """POST /report through Flask's test client in a child process; returns
    {status, seconds, body, text}."""
    return learner.run_probe("post_report", body=body or {}, timeout=timeout, what="POST /report",
                             env=learner.environment(**env) if env else None)


def job_id_from(answer, step, unit=None):
    body = answer["body"] if isinstance(answer["body"], dict) else {}
    if answer.get("error"):
        fail(f"POST /report raised {answer['error']}, so it answered {answer['status']}; it should answer "
             f"202 with JSON holding the job's id, like {{\"job_id\": \"...\"}}.", unit=unit, step=step)
    if answer["status"] != 202 or not body.get("job_id"):
        fail(f"POST /report answered {answer['status']} with {answer['text'][:120]!r}; it should answer "
             f"202 with JSON holding the job's id, like {{\"job_id\": \"...\"}}.", unit=unit, step=step)
    return body["job_id"]


def registered_or_stopped(redis, processes, timeout=20):
    """Wait until `processes` have registered as many rq workers in the grader's Redis,
    or one of them stops. Returns the process that stopped, True, or False (timed out)."""
    from rq import Worker

    def done():
        stopped = next((p for p in processes if not p.alive()), None)
        return stopped or Worker.count(connection=redis) >= len(processes)

    return wait_until(done, timeout) or False


def wait_for_workers(redis, processes, timeout=20):
    """Wait until every one of the worker `processes` has registered; fail plainly if not."""
    from rq import Worker

    found = registered_or_stopped(redis, processes, timeout)
    if found is not True and found is not False:
        raise LearnerFailure(f"{found.name} stopped at start-up: {found.explain_exit()}")
    if not found:
        raise LearnerFailure(
            f"{len(processes)} worker(s) were started, but only {Worker.count(connection=redis)} registered with "
            f"the Redis named by REDIS_URL within {timeout} s. Does each connect with `conn` (built from REDIS_URL) "
            "and call `Worker(listen, connection=conn).work()` under `if __name__ == '__main__':`?")
    return processes


def wait_for_worker(learner, redis, worker, timeout=20):
    """Wait until the worker registers in the grader's Redis; return its rq Worker."""
    from rq import Worker

    wait_for_workers(redis, [worker], timeout)
    return Worker.all(connection=redis)[0]


# A job the grader runs (its query shortened to REPORT_SECONDS=0.3) takes a second
# or two; one still running after this long never returns.
HUNG_AFTER = 15


def run_job(learner, redis, job_id, timeout=40, worker=None):
    """Start the learner's worker (unless one is given) and wait for the job to
    finish or fail. Returns the job."""
    job = jobs.fetch(redis, job_id)
    if job is None:
        raise LearnerFailure(f"POST /report answered with job id {job_id!r}, but Redis has no such job. "
                             "Return the id of the job that `queue.enqueue(...)` gave you (job.id).")
    worker = worker or learner.start_worker()
    wait_for_worker(learner, redis, worker)
    started_at = []

    def over():
        worker.look_for_spawned_horses()
        state = jobs.status(job)
        if state in jobs.ENDED:
            return True
        if state == "started":  # with the grader's short query a report takes a second or two
            started_at[:1] = started_at[:1] or [time.monotonic()]
            return time.monotonic() - started_at[0] > HUNG_AFTER
        return False

    wait_until(over, timeout)
    state = jobs.status(job)
    if state not in jobs.ENDED:
        if state == "started" and started_at:
            timeout = round(time.monotonic() - started_at[0])
        why = {"queued": ": the worker never took it. Does it listen on the queue the route enqueues on?",
               "started": ": the job never returned. Look in the job's code (make_report) for a loop that never "
                          "ends or a call that waits for ever."}.get(state, ".")
        raise LearnerFailure(f"The job was still {state} after {timeout} s with your worker running{why}")
    return job


# The report's query takes REPORT_SECONDS, 35 by default (report_data.py): the grader
# shortens it, but a deployed app runs it in full, so a job's timeout must outlast it,
# with time left to build and upload the PDF.
REAL_REPORT_SECONDS = 35
TIMEOUT_MARGIN = 10


def check_job_timeout(job, step, how="job_timeout=600", unit=None):
    """Fail unless the job's timeout (what the worker enforces) outlasts the report at
    its real REPORT_SECONDS. rq's -1 means no timeout."""
    timeout = job.timeout
    if timeout is None or timeout == -1 or timeout >= REAL_REPORT_SECONDS + TIMEOUT_MARGIN:
        return
    fail(f"The report job's timeout is {timeout} s, but with REPORT_SECONDS unset (as on Heroku) the report's "
         f"query alone takes {REAL_REPORT_SECONDS} s: the worker would stop every report before it is done. The "
         f"grader's short query hides this. Give the job time to finish, with room to spare: {how}.",
         unit=unit, step=step)


def job_error_summary(job):
    text = jobs.error(job).strip()
    return text.splitlines()[-1] if text else "no error recorded"


def check_pdf_at(s3, bucket, key, step, what="The job", unit=None):
    if not isinstance(key, str) or not key:
        fail(f"{what} returned {reprlib.repr(key)}; make_report should return the key (a string) it uploaded the PDF to.",
             unit=unit, step=step)
    try:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        fail(f"{what} returned the key {key!r}, but the bucket named by S3_BUCKET has nothing there. "
             "Upload to os.environ['S3_BUCKET'] and return the key you uploaded to.", unit=unit, step=step)
    problem = pdf_problem(data)
    if problem:
        fail(f"{what} uploaded {key!r}, but {problem}. Upload the bytes build_pdf() returns.", unit=unit, step=step)
    return data


def read_through_conn(learner, redis_client, url=None, step=None, unit=None):
    """Put a random value in the grader's Redis, read it back through worker.conn
    (with REDIS_URL=url), and return what the probe saw."""
    key, value = f"course:check:{uuid.uuid4().hex}", uuid.uuid4().hex
    redis_client.set(key, value, ex=60)
    env = learner.environment(REDIS_URL=url) if url else None
    seen, error = attempt(learner.run_probe, "read_through_conn", key=key, timeout=10, what="importing worker.py",
                          env=env)
    if error:
        if diagnose.PASSWORD_NOT_USED in str(error):
            fail(f"worker.conn reached the Redis that REDIS_URL names, but {diagnose.PASSWORD_NOT_USED}",
                 unit=unit, step=step)
        refused = re.search(r"ConnectionError: (Error \d+ connecting to [^ ]+?)\.? ", str(error))
        if refused and "SSL" not in str(error) and "certificate" not in str(error):
            fail(f"worker.conn does not reach the Redis that REDIS_URL names: it tried another one "
                 f"({refused.group(1)}) and failed. Build conn from redis_url, not from a hard-coded host.",
                 unit=unit, step=step)
        raise error
    if not seen["has_conn"]:
        fail("worker.py has no `conn`. Build it from the URL: `conn = redis.Redis.from_url(redis_url)`.",
             unit=unit, step=step)
    seen["expected"] = value
    return seen


def check_quiz(target, number=None):
    """Every question of the unit's challenge answered right in answers.toml."""
    feedback.require_marker("quiz")
    number = feedback.current_unit() if number is None else number
    unit = manifest.unit(number)
    if not unit.quiz:
        fail(f"Unit {unit.code} has no challenge questions in its unit.toml (a course bug: please report it).")
    path = target.path / manifest.ANSWERS_FILE
    if not path.is_file():
        fail(f"{manifest.ANSWERS_FILE} is missing from {target.display}; `python3 -m course quiz {number}` makes it.",
             unit=number)
    try:
        answers = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        fail(f"{manifest.ANSWERS_FILE} is not valid TOML ({error}). Each answer looks like q1 = \"b\".")
    results = quiz.check(unit, answers)
    given = answers.get(f"unit_{unit.code}", {})
    missing = [q.id for q, right, _ in results if not quiz.normalise(given.get(q.id, ""))]
    wrong = [q.id for q, right, _ in results if not right and q.id not in missing]
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"not answered yet: {', '.join(missing)}")
        if wrong:
            parts.append(f"not right yet: {', '.join(wrong)}")
        fail(f"Unit {unit.code} challenge in {manifest.ANSWERS_FILE}: {'; '.join(parts)}. "
             f"Re-read the unit, or run `python3 -m course quiz {number}`.", unit=number)
