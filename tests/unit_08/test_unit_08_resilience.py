"""Unit 08, what production does to the app: a JSON job naming a function that
is not one of the app's jobs does not run; the worker and its scheduler carry
on through a Redis restart, with no restart of their own; a body over the
limit is refused with 413 JSON, and nothing it held is echoed back."""
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from course import services
from grader import fanout, flows, jobs
from grader.feedback import LearnerFailure, fail
from grader.learner import process_table, wait_until

UNIT = 8
DONE = ("finished", "failed", "stopped", "canceled")
OUTAGE = 5  # seconds Redis is down
RECOVERY = 20  # seconds the worker and its scheduler have to work again
# Once the worker has run a job again, its scheduler (same client settings: a
# couple of seconds at most between reconnects, then a look every second) has
# this long to move a due job; past that it died with the connection. A correct
# answer is done in a second or two; 5 s was missed once by a correct answer on a
# machine running four gradings at once. A dead scheduler never moves it at all.
SCHEDULER_GRACE = 10

BIG_BODY = '''
from app import app
value = "x" * (1024 * 1024)
response = app.test_client().post("/report", json={"priority": value})
text = response.get_data(as_text=True)
result(status=response.status_code, body=response.get_json(silent=True), length=len(text), echoed="x" * 1000 in text)
'''


@pytest.fixture(autouse=True)
def learner_files(target):
    target.require("worker.py", "utils.py", "app.py", unit=UNIT)


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


@contextmanager
def own_redis():
    """A Redis only this check uses, on a port it keeps, with its data in an
    append-only file, so it can be stopped and started again. Yields restart(seconds, until):
    Redis stops, starts again after `seconds` or as soon as until() is true, and
    restart returns until()'s last answer."""
    binary = services.find_redis_server()
    port = services.free_port()
    with tempfile.TemporaryDirectory(prefix="course-restart-") as folder:
        command = [binary, "--port", str(port), "--bind", services.LOOPBACK, "--dir", folder, "--save", "",
                   "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes"]
        processes = []

        def start():
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            processes.append(process)
            services.wait_for_port(port, 15, process, what="Redis server")

        def stop():
            process = processes[-1]
            process.terminate()
            process.wait(10)

        def restart(seconds, until=lambda: False):
            stop()
            seen = wait_until(until, seconds, 0.1)  # the outage itself
            start()
            return seen

        start()
        try:
            yield f"redis://{services.LOOPBACK}:{port}/0", restart
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def test_worker_and_scheduler_ride_out_a_redis_restart(learner, s3, bucket):
    import redis as redis_py

    with own_redis() as (url, restart):
        client = redis_py.Redis.from_url(url)
        env = learner.environment(REDIS_URL=url)
        worker = learner.start_worker(env=env)
        try:
            ride_out(learner, client, worker, url, restart)
        finally:
            worker.kill()  # while its Redis is still up: a worker stopped without it would wait for it


def ride_out(learner, client, worker, url, restart):
    import redis as redis_py

    flows.wait_for_worker(learner, client, worker)
    # Idle, waiting for a job, and its scheduler running (it holds its queues' locks).
    wait_until(lambda: client.keys("rq:scheduler-lock:*"), 3)
    before = wait_until(lambda: scheduler_pids(client), 3) or set()  # it registers just after taking them
    # A worker or scheduler without retries dies at its first command while Redis is down:
    # that is the verdict, and Redis comes back at once instead of after the whole outage.
    if restart(OUTAGE, until=lambda: not worker.alive() or schedulers_died(before)):
        rode_out_badly(worker)
    back = time.monotonic()
    client = redis_py.Redis.from_url(url)
    scheduled = json_queue(client, "low").enqueue_in(timedelta(seconds=1), "utils.delete_old_reports",
                                                     max_age_seconds=10 ** 9)
    report = jobs.fetch(client, flows.job_id_from(flows.post_report(learner, REDIS_URL=url), UNIT, 10))

    report_done, died = [], []

    def over():
        fanout.fast_forward_retries(client)  # due now: only the scheduler can still move it
        if not worker.alive():
            return True
        if jobs.status(report) not in DONE:
            return False
        report_done[:1] = report_done[:1] or [time.monotonic()]
        if schedulers_died(before):
            died[:1] = [True]  # it did not ride the restart out: no need to wait out the grace
            return True
        return jobs.status(scheduled) in DONE or time.monotonic() - report_done[0] > SCHEDULER_GRACE

    wait_until(over, RECOVERY - (time.monotonic() - back))
    if not worker.alive() or died:
        rode_out_badly(worker)
    if jobs.status(report) != "finished":
        fail(f"{RECOVERY} s after Redis came back from a {OUTAGE} s restart, a new report job was "
             f"{jobs.status(report)} on your (still running) worker; it should have finished.", unit=UNIT, step=10)
    if jobs.status(scheduled) != "finished":
        waited = f"{SCHEDULER_GRACE} s after your worker ran a report again" if report_done else f"{RECOVERY} s"
        fail(f"Redis came back from a {OUTAGE} s restart, and {waited} a job scheduled for 1 s later was "
             f"still {jobs.status(scheduled)}: the worker's scheduler died with the connection. Give `conn` "
             "redis-py's retry (Retry with a backoff, retry_on_error); rq's scheduler copies its settings.",
             unit=UNIT, step=10)


def rode_out_badly(worker):
    """Fail for a worker that exited over the restart, or a scheduler process that did."""
    if not worker.alive():
        fail(f"Redis restarted ({OUTAGE} s down) while your worker waited for jobs, and the worker exited "
             f"({worker.explain_exit()}). On Heroku that is a crashed dyno. Build `conn` with redis-py's "
             "retry (retry=Retry(ExponentialBackoff(...), 20), retry_on_error=[ConnectionError, "
             "TimeoutError]) so it rides out a restart.", unit=UNIT, step=10)
    fail(f"Redis restarted ({OUTAGE} s down) while your worker waited for jobs, and your worker's scheduler "
         "process exited: the scheduler died with the connection (rq starts another only at the worker's next "
         "clean-up, and jobs scheduled meanwhile wait). Give `conn` redis-py's retry (Retry with a backoff, "
         "retry_on_error); rq's scheduler copies its settings.", unit=UNIT, step=10)


def scheduler_pids(client):
    """The process ids rq's schedulers wrote in Redis (each scheduler's hash, rq:scheduler:NAME)."""
    import redis as redis_py

    pids = set()
    try:
        for key in client.keys("rq:scheduler:*"):
            try:
                pids.add(int(client.hget(key, "pid") or 0))
            except ValueError:
                continue
    except redis_py.RedisError:
        pass
    return pids - {0}


def schedulers_died(before):
    """Every scheduler process that ran before the restart has exited. The check asks
    that the scheduler ride the restart out itself, so that is a failure whether or not
    the worker starts another later; it is seen at once, where waiting out
    SCHEDULER_GRACE for the job it never moves took 10 s."""
    table = process_table()
    return bool(before) and all(table.get(pid, (0, "Z"))[1] == "Z" for pid in before)


def test_a_body_over_the_limit_is_refused(learner):
    answer = learner.probe(BIG_BODY, timeout=30, what="POST /report with a 1 MB body")
    if answer["echoed"]:
        fail("POST /report with a 1 MB priority answered with that value in its error message. Never echo input "
             "back: say what is allowed instead.", unit=UNIT, step=12)
    if answer["status"] != 413:
        fail(f"POST /report with a 1 MB body answered {answer['status']}; the app should refuse a body that large "
             "before reading it: set app.config[\"MAX_CONTENT_LENGTH\"] (the page sends a few bytes).",
             unit=UNIT, step=12)
    body = answer["body"]
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) or answer["length"] > 1000:
        fail(f"POST /report with a 1 MB body answered 413, but not as a short JSON error ({answer['length']} "
             "characters). Add an errorhandler for HTTPException that answers jsonify(error=...).",
             unit=UNIT, step=12)
