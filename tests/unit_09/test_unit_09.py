"""Unit 09: restarts and lost workers. A worker stopped the way Heroku stops a dyno lets its job
finish, a job cut off by the shutdown is failed visibly or put back, never lost, and the worker
and its scheduler ride out a Redis restart; the web app answers a hung Redis with a prompt 503,
and the status route says "interrupted" once a job's worker has missed its heartbeats."""
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import pytest

from course import services
from grader import faults, flows, jobs, retries
from grader.feedback import fail
from grader.processes import all_gone, wait_until
from grader.shutdown import stop_like_heroku


# The lesson's worker reads its grace from SHUTDOWN_GRACE (25 s on Heroku). The long-job
# check waits it out, so it gets a few seconds; the short-job check waits only for its
# job, so it gets room to spare on a busy machine.
GRACE = 3
ROOMY_GRACE = 10


def start_and_wait_until_started(learner, redis, seconds, grace):
    worker = learner.start_worker(env=learner.environment(REPORT_SECONDS=seconds, SHUTDOWN_GRACE=grace))
    answer = flows.post_report(learner)  # while the worker starts
    flows.wait_for_worker(learner, redis, worker)
    job = jobs.fetch(redis, flows.job_id_from(answer, 2, unit=8))
    if not wait_until(lambda: jobs.status(job) == "started", 20):
        fail(f"The worker did not start the report job within 20 s (it is {jobs.status(job)}).", step=1)
    return job


def test_sigterm_lets_the_running_job_finish(learner, redis, s3, bucket):
    job = start_and_wait_until_started(learner, redis, "2", ROOMY_GRACE)
    time.sleep(0.3)
    seconds, killed, _ = stop_like_heroku(learner, grace=15)
    state = jobs.status(job)
    if state != "finished":
        fail(f"Stopped the way Heroku stops a dyno (SIGTERM to every process, the work horse too), your worker "
             f"did not let a 2-second job finish: it ended {state} ({flows.job_error_summary(job)}). Use a "
             "worker whose work horse ignores SIGTERM (rq's HerokuWorker) with a grace period.", step=1)
    if killed:
        fail("After SIGTERM your worker finished its job but was still running 15 s later, so Heroku would "
             "SIGKILL it. Let rq handle SIGTERM (a warm shutdown): do not ignore or override it.", step=1)
    flows.check_pdf_at(s3, bucket, jobs.result(job), 1)


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
             "HerokuWorker's imminent_shutdown_delay under 30 s does that.", step=2)
    # The job's own time after SIGTERM: its work horse's life, which a busy machine does not
    # stretch (a plain Worker's horse dies with the signal); with no horse (the job ran in the
    # worker's own process), the worker's.
    given = seconds if horse_seconds is None else horse_seconds
    if given < CUT_AT_ONCE and not killed:
        fail(f"Stopped the way Heroku stops a dyno, your worker cut a long job off at once: {seconds:.1f} s after "
             f"SIGTERM it had exited, and the job was {state}. Nothing was lost, but a job that could have finished "
             "within Heroku's 30 s would have been cut off too. Let the running job carry on after SIGTERM (rq's "
             "HerokuWorker), and fail or requeue it only near the end of the grace (imminent_shutdown_delay under "
             "30 s).", step=2)
    if state == "failed":
        FailedJobRegistry(job.origin, connection=redis, serializer=job.serializer).requeue(job.id)
    learner.start_worker(env=learner.environment(REPORT_SECONDS="0.2"))
    again = wait_until(lambda: retries.make_everything_due(redis) or jobs.status(job) == "finished", 30)
    if not again:
        fail(f"A job cut off by a shutdown, {state} and then requeued, did not finish on a fresh worker "
             f"(it is {jobs.status(job)}: {flows.job_error_summary(job)}).", step=2)
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


def _answers(client):
    """Whether Redis answers commands (not LOADING, not still starting)."""
    import redis as redis_py

    try:
        return client.ping()
    except redis_py.RedisError:
        return False


@contextmanager
def own_redis():
    """A Redis only this check uses, on a port it keeps, with its data in an
    append-only file, so it can be stopped and started again; with a password, as
    Heroku's (a client rebuilt after the restart must still give it). Yields restart(seconds, until):
    Redis stops, starts again after `seconds` or as soon as until() is true, and
    restart returns until()'s last answer."""
    import redis as redis_py

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
            # The port opens while Redis still replays its append-only file, and every command
            # then gets LOADING: the grader's own commands wait until it has loaded.
            client = redis_py.Redis.from_url(services.loopback_url(port, password))
            wait_until(lambda: _answers(client), 15, 0.05)
            client.close()

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
        env = learner.environment(REDIS_URL=url)
        for trial in range(1, RACE_TRIALS + 1):
            client = redis_py.Redis.from_url(url)
            worker = learner.start_worker(env=env)
            try:
                ride_out(learner, client, worker, url, restart, retry_a_race=trial < RACE_TRIALS)
                return
            except SchedulerRace:
                # The dead scheduler's locks last a minute and would keep the next one from starting.
                redis_py.Redis.from_url(url).flushall()
            finally:
                worker.kill()  # while its Redis is still up: a worker stopped without it would wait for it


# rq's own race: a restart that falls inside the scheduler's heartbeat (after redis-py has
# loaded its Lua script, before the transaction runs) leaves the retried transaction without
# its script on the new Redis (NOSCRIPT), which no client setting retries, and the scheduler
# dies. The learner's retry carried it that far; the check tries again with a new worker.
RACE_TRIALS = 3
RACE_SIGNS = ("NoScriptError", "No matching script")


class SchedulerRace(Exception):
    pass


def ride_out(learner, client, worker, url, restart, retry_a_race):
    import redis as redis_py

    def rode_out_badly():
        if retry_a_race and worker.alive() and any(sign in worker.log() for sign in RACE_SIGNS):
            raise SchedulerRace()
        fail_for_the_restart(worker)

    flows.wait_for_worker(learner, client, worker)
    # Idle, waiting for a job, and its scheduler running (it holds its queues' locks).
    wait_until(lambda: client.keys("rq:scheduler-lock:*"), 3)
    before = wait_until(lambda: scheduler_pids(client), 3) or set()  # it registers just after taking them
    # A worker or scheduler without retries dies at its first command while Redis is down:
    # that is the verdict, and Redis comes back at once instead of after the whole outage.
    if restart(OUTAGE, until=lambda: not worker.alive() or schedulers_died(before)):
        rode_out_badly()
    back = time.monotonic()
    client = redis_py.Redis.from_url(url)
    # A job of the app's own since unit 07, so the worker's allow-list runs it.
    scheduled = json_queue(client, "low").enqueue_in(timedelta(seconds=1), "utils.fetch_section", "north")
    report = jobs.fetch(client, flows.job_id_from(flows.post_report(learner, REDIS_URL=url), 3))

    report_done, died = [], []

    def over():
        retries.make_everything_due(client)  # due now: only the scheduler can still move it
        if not worker.alive():
            return True
        if jobs.status(report) not in jobs.ENDED:
            return False
        report_done[:1] = report_done[:1] or [time.monotonic()]
        if schedulers_died(before):
            died[:1] = [True]  # it did not ride the restart out: no need to wait out the grace
            return True
        return jobs.status(scheduled) in jobs.ENDED or time.monotonic() - report_done[0] > SCHEDULER_GRACE

    wait_until(over, RECOVERY - (time.monotonic() - back))
    if not worker.alive() or died:
        rode_out_badly()
    if jobs.status(report) != "finished":
        fail(f"{RECOVERY} s after Redis came back from a {OUTAGE} s restart, a new report job was "
             f"{jobs.status(report)} on your (still running) worker; it should have finished.", step=3)
    if jobs.status(scheduled) != "finished":
        waited = f"{SCHEDULER_GRACE} s after your worker ran a report again" if report_done else f"{RECOVERY} s"
        fail(f"Redis came back from a {OUTAGE} s restart, and {waited} a job scheduled for 1 s later was "
             f"still {jobs.status(scheduled)}: the worker's scheduler died with the connection. Give `conn` "
             "redis-py's retry (Retry with a backoff, retry_on_error); rq's scheduler copies its settings.",
             step=3)


def fail_for_the_restart(worker):
    """Fail for a worker that exited over the restart, or a scheduler process that did."""
    if not worker.alive():
        fail(f"Redis restarted ({OUTAGE} s down) while your worker waited for jobs, and the worker exited "
             f"({worker.explain_exit()}). On Heroku that is a crashed dyno. Build `conn` with redis-py's "
             "retry (retry=Retry(ExponentialBackoff(...), 20), retry_on_error=[ConnectionError, "
             "TimeoutError]) so it rides out a restart.", step=3)
    fail(f"Redis restarted ({OUTAGE} s down) while your worker waited for jobs, and your worker's scheduler "
         "process exited: the scheduler died with the connection (rq starts another only at the worker's next "
         "clean-up, and jobs scheduled meanwhile wait). Give `conn` redis-py's retry (Retry with a backoff, "
         "retry_on_error); rq's scheduler copies its settings.", step=3)


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
    return bool(before) and all_gone(before)


# A Redis that hangs: the web app's client must give up and answer 503 well before
# Heroku's router gives up on the request (30 s). The lesson's gives up after 2 s,
# redis-py's default after 5 s (socket_timeout); the worker's retrying client, after
# minutes.
PROMPT = 12  # seconds
SOME_ID = "0123456789abcdef0123456789abcdef"


def test_a_hanging_redis_gets_a_prompt_503(learner):
    requests = [("POST /report", "post", "/report"), ("GET /report/<id>", "get", f"/report/{SOME_ID}")]
    with faults.hanging_redis() as url:
        answers = learner.run_probe("side_by_side", requests=requests, within=PROMPT, timeout=PROMPT + 30,
                                    env=learner.environment(REDIS_URL=url),
                                    what="POST /report and GET /report/<id> with a Redis that never answers")["answers"]
    hung = "With a Redis that takes connections and never answers (hung, overloaded, or cut off by the network)"
    late = [route for route, _, _ in requests if route not in answers]
    if late:
        fail(f"{hung}, {' and '.join(late)} had not answered after {PROMPT} s; the page would wait until Heroku's "
             "router gives up at 30 s. Each try at a Redis that hangs waits out the socket timeout, and a client "
             "that retries waits it out again at every try: the worker's client (21 tries) must not serve the "
             "web app, nor any client that retries TimeoutError. Give app.py a client of its own that gives up "
             "after a few seconds (socket_timeout=2, socket_connect_timeout=2) and answer its TimeoutError with "
             "the 503.", step=3)
    for route, _, _ in requests:
        answer = answers[route]
        if answer["status"] != 503:
            raised = f" It raised {answer['error']}." if answer["error"] else ""
            fail(f"{hung}, {route} answered {answer['status']} after {answer['seconds']:.1f} s; it should answer "
                 f"503 with a Retry-After, as for a Redis that is down.{raised} A Redis that hangs raises redis-py's "
                 "TimeoutError, not ConnectionError: answer both with the 503 (an errorhandler for each).",
                 step=3)
        body = answer["body"]
        if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not body["error"].strip():
            fail(f"{hung}, {route} answered 503 but not with JSON holding an error sentence: "
                 f"{answer['text'][:120]!r}. Answer jsonify(error=...), 503.", step=3)
        if not answer["retry_after"]:
            fail(f"{hung}, {route} answered 503 without a Retry-After header; say how many seconds to wait: "
                 "return jsonify(error=...), 503, {\"Retry-After\": \"5\"}.", step=3)


# The status route says "interrupted" for a started job nobody runs any more: its
# worker has sent no heartbeat for several of its rounds (HEARTBEAT seconds each,
# from the environment web and worker share). The grader writes such jobs and
# workers into Redis as rq does, with heartbeats of chosen ages, and asks.
GONE = None  # the worker's record has expired from Redis: silent for minutes
# (HEARTBEAT, seconds since the worker's last heartbeat, what the page must say, why)
SILENCES = [
    (60, 45, "started", "its next heartbeat is not even due"),
    (1, 20, "interrupted", "it has missed 20 heartbeats"),
    (1, 600, "interrupted", "nobody has run it for 10 minutes"),
    (1, GONE, "interrupted", "its record is gone from Redis: it expired, silent for minutes"),
]


def started_job(redis, silent_for):
    """A job that a worker started, the worker's last heartbeat `silent_for` seconds
    ago (GONE: no worker record left), as rq's Worker writes them."""
    from rq import Worker
    from rq.job import Job
    from rq.serializers import JSONSerializer
    from rq.utils import now, utcformat

    job = Job.create("utils.make_report", connection=redis, serializer=JSONSerializer, origin="default")
    job.save()
    worker = Worker(["default"], connection=redis, name=f"course-{uuid.uuid4().hex}", serializer=JSONSerializer)
    worker.register_birth()
    worker.set_state("busy")
    worker.prepare_execution(job)  # what a worker's main process records as it hands a job to its horse,
    worker.prepare_job_execution(job)  # and what the horse records: started, by this worker, heartbeats now
    if silent_for is GONE:
        redis.delete(worker.key)
        silent_for = 600
    beat = utcformat(now() - timedelta(seconds=silent_for))
    redis.hset(job.key, "last_heartbeat", beat)
    if redis.exists(worker.key):
        redis.hset(worker.key, "last_heartbeat", beat)
    return job.id


def test_status_says_interrupted_when_the_worker_is_silent(learner, redis):
    by_heartbeat = {}
    for heartbeat, silent_for, want, why in SILENCES:
        by_heartbeat.setdefault(heartbeat, []).append((started_job(redis, silent_for), silent_for, want, why))
    with ThreadPoolExecutor(len(by_heartbeat)) as pool:  # one probe per HEARTBEAT, side by side
        seen = dict(zip(by_heartbeat, pool.map(lambda heartbeat: flows.get_statuses(
            learner, [f"/report/{job_id}" for job_id, *_ in by_heartbeat[heartbeat]], timeout=30,
            env=learner.environment(HEARTBEAT=heartbeat)), by_heartbeat)))
    verdicts = []
    for heartbeat, asked in by_heartbeat.items():
        for (job_id, silent_for, want, why), answer in zip(asked, seen[heartbeat]):
            verdicts.append(interrupted_problem(heartbeat, silent_for, want, why, answer))
    # The most telling first: an exception, then never saying it at all, then the threshold.
    for problem in sorted((v for v in verdicts if v), key=lambda v: v[0]):
        fail(problem[1], step=4)


def interrupted_problem(heartbeat, silent_for, want, why, answer):
    """(rank, message) of what is wrong with one status answer, or None."""
    setting = f"With HEARTBEAT={heartbeat} (the worker's heartbeat every {heartbeat} s)"
    if silent_for is GONE:
        job = "a started job whose worker's record is gone from Redis"
    else:
        job = f"a started job whose worker last sent a heartbeat {silent_for} s ago"
    body = answer["body"] if isinstance(answer["body"], dict) else {}
    if answer["error"] or answer["status"] != 200:
        raised = f"raised {answer['error']}, so it answered {answer['status']}" if answer["error"] else \
            f"answered {answer['status']} {answer['text'][:100]!r}"
        naive = "offset-naive" in str(answer["error"])
        return (0, f"GET /report/<id> for {job} {raised}: every status request of a running job would. "
                + ("rq's heartbeat times are timezone-aware (UTC), and datetime.utcnow() is naive: compare them "
                   "with rq.utils.now() or datetime.now(timezone.utc)." if naive else
                   "Answer 200 with the job's status, \"interrupted\" when its worker has gone silent."))
    said = body.get("status")
    if said == want:
        return None
    if want == "interrupted" and silent_for in (600, GONE):
        return (1, f"GET /report/<id> for {job} answered status {said!r} ({why}); it should say \"interrupted\", "
                   "so the page does not show a frozen bar until rq's clean-up, minutes later. Compare the "
                   "worker's last heartbeat with the time, and say \"interrupted\" when it is too old.")
    return (2, f"{setting}, GET /report/<id> for {job} answered status {said!r}, not {want!r}: {why}. Derive the "
               "threshold from the HEARTBEAT setting, as the worker does (three heartbeats: "
               "3 * int(os.environ.get(\"HEARTBEAT\", \"10\"))), not a fixed number of seconds.")


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
