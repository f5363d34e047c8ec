"""Unit 11: scaling. WORKER_PROCESSES workers run reports side by side as ReportWorkers (JSON, the
allow-list, the shutdown grace), and a SIGTERM lets the pool finish its reports."""
import tempfile
from pathlib import Path

import pytest

from grader import flows, jobs
from grader.feedback import fail
from grader.processes import kill_tree, wait_until
from grader.shutdown import start_worker_with_slow_stop_handler, stop_like_heroku


STEP = 2
PROCESSES = 2
# Long enough that neither report can end before the other starts: a worker
# command that runs one job at a time never shows both started.
LONG_REPORT = 60
# How long two workers of one command get to take the two reports: starting
# them and their first look at the queues take a second or two.
BOTH_STARTED_WITHIN = 10
# How long a pool gets to start a worker in place of one that died: rq's
# WorkerPool looks at its workers every second.
REPLACED_WITHIN = 10
# The shutdown check: each report runs this long, and the worker's grace
# (SHUTDOWN_GRACE) leaves room to spare on a busy machine. rq's stop handler is
# slowed this much (see grader.shutdown), so the pool's SIGINT lands while a
# worker still handles Heroku's SIGTERM; a worker that takes both as warm stops
# cuts its report about that long after the stop, well before the report ends.
SHORT_REPORT = 1
ROOMY_GRACE = 10
STOP_HANDLER_DELAY = 0.25


def json_queue(redis, name="default"):
    from rq import Queue
    from rq.serializers import JSONSerializer

    return Queue(name, connection=redis, serializer=JSONSerializer)


def start_pool(learner, redis, **env):
    """The learner's worker command (python worker.py, or the Procfile's worker line)
    with WORKER_PROCESSES=2; returns it once an rq worker has registered."""
    worker = learner.start_worker(env=learner.environment(WORKER_PROCESSES=PROCESSES, **env))
    flows.wait_for_worker(learner, redis, worker)
    return worker


def workers_of(learner, redis):
    """The rq workers registered in Redis that run in this learner's processes."""
    from rq import Worker

    mine = learner.pids()
    return [w for w in Worker.all(connection=redis) if w.pid in mine]


def both_started(learner, redis, reports, worker):
    """Wait until both reports are started at once; fail, saying what ran, if they never are."""
    def started():
        if not worker.alive():
            fail(f"With WORKER_PROCESSES={PROCESSES}, your worker command stopped: {worker.explain_exit()}",
                 step=STEP)
        states = [jobs.status(job) for job in reports]
        if any(state == "failed" for state in states):
            return "failed"  # it cannot run beside the other any more: say why now, not at the deadline
        return all(state == "started" for state in states)

    if wait_until(started, BOTH_STARTED_WITHIN) is True:
        return
    states = [jobs.status(job) for job in reports]
    ended = next((job for job in reports if jobs.status(job) in jobs.ENDED), None)
    if ended is not None:
        fail(f"With WORKER_PROCESSES={PROCESSES}, a report job ended {jobs.status(ended)} "
             f"({flows.job_error_summary(ended)}) before two ran at once. Every worker must read the JSON "
             "jobs app.py writes (Step 3).", step=STEP)
    count = len(workers_of(learner, redis))
    fail(f"With WORKER_PROCESSES={PROCESSES}, your worker command ran one report at a time: {BOTH_STARTED_WITHIN} s "
         f"after two long reports were queued, {count} rq worker(s) ran in it and the reports were "
         f"{' and '.join(states)}. Read WORKER_PROCESSES in worker.py and, above 1, run that many workers "
         "with rq's WorkerPool (num_workers=WORKER_PROCESSES).", step=STEP)


def test_worker_processes_run_reports_side_by_side(learner, redis, s3, bucket):
    queue = json_queue(redis)
    reports = [queue.enqueue("utils.make_report", job_timeout=600) for _ in range(2)]
    worker = start_pool(learner, redis, REPORT_SECONDS=LONG_REPORT)
    both_started(learner, redis, reports, worker)
    running = workers_of(learner, redis)
    if len(running) < PROCESSES:
        fail(f"With WORKER_PROCESSES={PROCESSES}, two reports ran at once, but only {len(running)} rq worker(s) "
             "of your worker command registered in Redis. Run the workers with rq's WorkerPool, which "
             "registers each one.", step=STEP)
    # A worker that dies (killed for memory, a crash) is replaced; on Heroku nothing else would.
    victim = running[0]
    kill_tree(victim.pid)

    def replaced():
        return len([w for w in workers_of(learner, redis) if w.name != victim.name]) >= PROCESSES

    if not wait_until(replaced, REPLACED_WITHIN):
        fail(f"With WORKER_PROCESSES={PROCESSES}, one of your worker command's workers was killed, and "
             f"{REPLACED_WITHIN} s later no worker had taken its place: the dyno ran on with one worker "
             "fewer, and Heroku restarts a dyno only when its command exits. Run the workers with rq's "
             "WorkerPool, which starts a new worker when one dies.", step=STEP)


def test_pool_workers_keep_json_and_the_allow_list(learner, redis, s3, bucket):
    from rq import Queue

    with tempfile.TemporaryDirectory(prefix="course-pool-", dir=learner.tmp) as folder:
        unpickled = Path(folder) / "ran-code-from-redis"
        named = Path(folder) / "ran-a-function-named-in-redis"
        pickled = Queue("default", connection=redis).enqueue("os.getpid")
        jobs.plant_pickled_payload(redis, pickled, unpickled)
        planted = json_queue(redis).enqueue("os.mkdir", str(named))
        report = json_queue(redis).enqueue("utils.make_report", job_timeout=600)
        worker = start_pool(learner, redis, REPORT_SECONDS="0.2")
        wait_until(lambda: all(jobs.status(job) in jobs.ENDED for job in (pickled, planted, report))
                   or not worker.alive(), 30)
        if unpickled.exists():
            fail(f"With WORKER_PROCESSES={PROCESSES}, a pickled job payload planted in Redis ran code in one of "
                 "your workers: the pool's workers unpickle job data. rq's WorkerPool gives its workers its own "
                 "serializer, pickle unless told: give them JSONSerializer (in your worker class, or "
                 "serializer= to the pool).", step=STEP)
        if named.exists():
            fail(f"With WORKER_PROCESSES={PROCESSES}, a JSON job planted in Redis naming os.mkdir ran on one of your "
                 "workers: the pool's workers run any function a job names. rq's WorkerPool gives its workers its "
                 "own job class, rq's plain Job unless told: give them your allow-list's job class (in your "
                 "worker class, or job_class= to the pool).", step=STEP)
    if jobs.status(report) != "finished":
        fail(f"With WORKER_PROCESSES={PROCESSES}, your workers did not run a report job: it is "
             f"{jobs.status(report)} ({flows.job_error_summary(report)}). Every worker of the pool must use "
             "the serializer of app.py's queues (JSONSerializer) and allow utils.make_report.",
             step=STEP)


def cut_short(worker, error):
    """Why a report was cut short with ShutDownImminentException, in a sentence."""
    if "raising ShutDownImminentException immediately" in worker.log():
        return (f"your workers' grace is 0 s, so a {SHORT_REPORT}-second report was cut short at once ({error}). Set "
                "imminent_shutdown_delay from SHUTDOWN_GRACE in your worker class (unit 09).")
    return (f"a worker cut its {SHORT_REPORT}-second report short ({error}), well inside its "
            f"{ROOMY_GRACE}-second grace: it took Heroku's SIGTERM and the pool's own SIGINT, which reach each "
            "worker at once, as two warm stops, and the second stop signal tells the work horse to give up now "
            "(the grader slows rq's stop handler a little, as a busy CPU can, so the SIGINT lands while the "
            "SIGTERM is being handled). Have your worker class act on the first stop signal only (a flag in "
            "request_stop).")


def test_sigterm_lets_the_pool_finish_its_reports(learner, redis, s3, bucket, tmp_path):
    """Two reports run on a pool stopped the Heroku way, with rq's stop handler slowed
    a little (as a busy dyno may): both must finish within their grace. The workers
    get Heroku's SIGTERM a moment before the pool does, so the pool's SIGINT reaches
    each worker while it handles the SIGTERM, not together with it."""
    queue = json_queue(redis)
    reports = [queue.enqueue("utils.make_report", job_timeout=600) for _ in range(2)]
    env = learner.environment(WORKER_PROCESSES=PROCESSES, REPORT_SECONDS=SHORT_REPORT, SHUTDOWN_GRACE=ROOMY_GRACE)
    worker, handling = start_worker_with_slow_stop_handler(learner, tmp_path, STOP_HANDLER_DELAY, env)
    flows.wait_for_worker(learner, redis, worker)
    both_started(learner, redis, reports, worker)
    workers = {w.pid for w in workers_of(learner, redis)}
    _seconds, killed, _ = stop_like_heroku(learner, grace=15, first=workers, ready=lambda: workers <= handling())
    for job in reports:
        state, error = jobs.status(job), flows.job_error_summary(job)
        if state == "finished":
            continue
        if "ShutDownImminentException" in error:
            fail(f"With WORKER_PROCESSES={PROCESSES}, stopped the way Heroku stops a dyno (SIGTERM to every "
                 f"process), " + cut_short(worker, error), step=STEP)
        fail(f"With WORKER_PROCESSES={PROCESSES}, stopped the way Heroku stops a dyno (SIGTERM to every "
             f"process), your workers did not let a {SHORT_REPORT}-second report finish: it ended {state} "
             f"({error}). rq's WorkerPool makes its workers from the worker_class it is given, rq's plain "
             "Worker unless told, whose work horse dies with SIGTERM: give it a HerokuWorker subclass that "
             "sets imminent_shutdown_delay.", step=STEP)
    if killed:
        fail(f"With WORKER_PROCESSES={PROCESSES}, after SIGTERM your workers finished their reports, but the "
             "worker command was still running 15 s later, so Heroku would SIGKILL it. Let rq's WorkerPool "
             "handle SIGTERM: it stops its workers, and exits once they have.", step=STEP)


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
