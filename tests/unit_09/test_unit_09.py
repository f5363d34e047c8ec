"""Unit 09: restarts and lost workers. A worker stopped the way Heroku stops a dyno lets its job
finish, a job cut off by the shutdown is failed visibly or put back, never lost, and the worker
and its scheduler ride out a Redis restart."""
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest

from course import services
from grader import fanout, flows, jobs
from grader.feedback import fail
from grader.processes import process_table, wait_until
from grader.shutdown import stop_like_heroku

UNIT = 9


@pytest.fixture(autouse=True)
def learner_files(target, request):
    if request.node.originalname != "test_challenge":  # the quiz needs no code
        target.require("worker.py", "utils.py", "app.py", unit=UNIT)


# The lesson's worker reads its grace from SHUTDOWN_GRACE (25 s on Heroku). The long-job
# check waits it out, so it gets a few seconds; the short-job check waits only for its
# job, so it gets room to spare on a busy machine.
GRACE = 3
ROOMY_GRACE = 10


def start_and_wait_until_started(learner, redis, seconds, grace):
    worker = learner.start_worker(env=learner.environment(REPORT_SECONDS=seconds, SHUTDOWN_GRACE=grace))
    answer = flows.post_report(learner)  # while the worker starts
    flows.wait_for_worker(learner, redis, worker)
    job = jobs.fetch(redis, flows.job_id_from(answer, 8, 2))
    if not wait_until(lambda: jobs.status(job) == "started", 20):
        fail(f"The worker did not start the report job within 20 s (it is {jobs.status(job)}).", unit=UNIT, step=1)
    return job


def test_sigterm_lets_the_running_job_finish(learner, redis, s3, bucket):
    job = start_and_wait_until_started(learner, redis, "2", ROOMY_GRACE)
    time.sleep(0.3)
    seconds, killed, _ = stop_like_heroku(learner, grace=15)
    state = jobs.status(job)
    if state != "finished":
        fail(f"Stopped the way Heroku stops a dyno (SIGTERM to every process, the work horse too), your worker "
             f"did not let a 2-second job finish: it ended {state} ({flows.job_error_summary(job)}). Use a "
             "worker whose work horse ignores SIGTERM (rq's HerokuWorker) with a grace period.", unit=UNIT, step=1)
    if killed:
        fail("After SIGTERM your worker finished its job but was still running 15 s later, so Heroku would "
             "SIGKILL it. Let rq handle SIGTERM (a warm shutdown): do not ignore or override it.", unit=UNIT, step=1)
    flows.check_pdf_at(s3, bucket, jobs.result(job), UNIT, 1)


# A job whose work horse (or worker) is gone this soon after SIGTERM was given no grace:
# a plain Worker's work horse dies with the signal, at once. rq's HerokuWorker's horse
# ignores SIGTERM and lives until its imminent_shutdown_delay (GRACE here) is over.
CUT_AT_ONCE = 2


def test_a_job_cut_off_by_shutdown_is_not_lost(learner, redis, s3, bucket):
    from rq.registry import FailedJobRegistry

    job = start_and_wait_until_started(learner, redis, "60", GRACE)
    seconds, killed, horse_seconds = stop_like_heroku(learner, grace=28)
    state = jobs.status(job)
    if state not in ("failed", "queued", "scheduled"):
        fail(f"A job too long to finish before Heroku's SIGKILL was left {state} with no worker running "
             f"({'SIGKILL was needed' if killed else 'the worker exited'} {seconds:.0f} s after SIGTERM). "
             "It must end failed (so it can be requeued) or go back on its queue before the worker dies: "
             "HerokuWorker's imminent_shutdown_delay under 30 s does that.", unit=UNIT, step=2)
    # The job's own time after SIGTERM: its work horse's life, which a busy machine does not
    # stretch (a plain Worker's horse dies with the signal); with no horse (the job ran in the
    # worker's own process), the worker's.
    given = seconds if horse_seconds is None else horse_seconds
    if given < CUT_AT_ONCE and not killed:
        fail(f"Stopped the way Heroku stops a dyno, your worker cut a long job off at once: {seconds:.1f} s after "
             f"SIGTERM it had exited, and the job was {state}. Nothing was lost, but a job that could have finished "
             "within Heroku's 30 s would have been cut off too. Let the running job carry on after SIGTERM (rq's "
             "HerokuWorker), and fail or requeue it only near the end of the grace (imminent_shutdown_delay under "
             "30 s).", unit=UNIT, step=2)
    if state == "failed":
        FailedJobRegistry(job.origin, connection=redis, serializer=job.serializer).requeue(job.id)
    learner.start_worker(env=learner.environment(REPORT_SECONDS="0.2"))
    again = wait_until(lambda: fanout.fast_forward_retries(redis) or jobs.status(job) == "finished", 30)
    if not again:
        fail(f"A job cut off by a shutdown, {state} and then requeued, did not finish on a fresh worker "
             f"(it is {jobs.status(job)}: {flows.job_error_summary(job)}).", unit=UNIT, step=2)
DONE = ("finished", "failed", "stopped", "canceled")
OUTAGE = 5  # seconds Redis is down
RECOVERY = 20  # seconds the worker and its scheduler have to work again
# Once the worker has run a job again, its scheduler (same client settings: a
# couple of seconds at most between reconnects, then a look every second) has
# this long to move a due job; past that it died with the connection. A correct
# answer is done in a second or two; 5 s was missed once by a correct answer on a
# machine running four gradings at once. A dead scheduler never moves it at all.
SCHEDULER_GRACE = 10


def json_queue(redis, name="default"):
    from rq import Queue
    from rq.serializers import JSONSerializer

    return Queue(name, connection=redis, serializer=JSONSerializer)


@contextmanager
def own_redis():
    """A Redis only this check uses, on a port it keeps, with its data in an
    append-only file, so it can be stopped and started again; with a password, as
    Heroku's (a client rebuilt after the restart must still give it). Yields restart(seconds, until):
    Redis stops, starts again after `seconds` or as soon as until() is true, and
    restart returns until()'s last answer."""
    binary = services.find_redis_server()
    port, password = services.free_port(), services.new_password()
    with tempfile.TemporaryDirectory(prefix="course-restart-") as folder:
        command = [binary, "--port", str(port), "--bind", services.LOOPBACK, "--dir", folder, "--save", "",
                   "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes",
                   "--requirepass", password]
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
            yield services.loopback_url(port, password), restart
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
    # A job of the app's own since unit 07, so the worker's allow-list runs it.
    scheduled = json_queue(client, "low").enqueue_in(timedelta(seconds=1), "utils.fetch_section", "north")
    report = jobs.fetch(client, flows.job_id_from(flows.post_report(learner, REDIS_URL=url), UNIT, 3))

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
             f"{jobs.status(report)} on your (still running) worker; it should have finished.", unit=UNIT, step=3)
    if jobs.status(scheduled) != "finished":
        waited = f"{SCHEDULER_GRACE} s after your worker ran a report again" if report_done else f"{RECOVERY} s"
        fail(f"Redis came back from a {OUTAGE} s restart, and {waited} a job scheduled for 1 s later was "
             f"still {jobs.status(scheduled)}: the worker's scheduler died with the connection. Give `conn` "
             "redis-py's retry (Retry with a backoff, retry_on_error); rq's scheduler copies its settings.",
             unit=UNIT, step=3)


def rode_out_badly(worker):
    """Fail for a worker that exited over the restart, or a scheduler process that did."""
    if not worker.alive():
        fail(f"Redis restarted ({OUTAGE} s down) while your worker waited for jobs, and the worker exited "
             f"({worker.explain_exit()}). On Heroku that is a crashed dyno. Build `conn` with redis-py's "
             "retry (retry=Retry(ExponentialBackoff(...), 20), retry_on_error=[ConnectionError, "
             "TimeoutError]) so it rides out a restart.", unit=UNIT, step=3)
    fail(f"Redis restarted ({OUTAGE} s down) while your worker waited for jobs, and your worker's scheduler "
         "process exited: the scheduler died with the connection (rq starts another only at the worker's next "
         "clean-up, and jobs scheduled meanwhile wait). Give `conn` redis-py's retry (Retry with a backoff, "
         "retry_on_error); rq's scheduler copies its settings.", unit=UNIT, step=3)


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


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target, UNIT)
