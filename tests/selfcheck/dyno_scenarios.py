"""`course run` stops and restarts each Procfile process type as Heroku stops a
dyno: SIGTERM to every process in it (an rq work horse, in a process group of
its own, included), SIGKILL to those left after the grace; `course restart
TYPE` does it to one process type mid-run and starts it again. So a plain rq
Worker loses the job it runs, as it does on Heroku, and HerokuWorker finishes it.

Run in a pytest of its own, in the background, by test_in_background.py."""
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
import redis

from course import ROOT, services, stages
from grader.web import http, wait_for_app
from grader.processes import wait_until
from selfcheck.local_run_scenarios import leftovers as run_leftovers

MARKER = "COURSE_DYNO_CHECK"
# Named here, not imported, so the checks also run (and fail) on a `course run` without dynos.
GRACE_ENV = "COURSE_TEST_DYNO_GRACE_SECONDS"
# Shorter than Heroku's 30 s, so a check that goes wrong ends sooner; longer than a
# report of REPORT_SECONDS and than unit 09's worker needs to record it.
GRACE = 15
REPORT_SECONDS = "5"


def course_env(tmp_path, marker, **extra):
    """The environment of a `course run` of this check, and of the `course restart` that talks to it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_", "S3_", "REPORT_"))}
    env.update({MARKER: marker, "COURSE_STATE_DIR": str(tmp_path / "state"), GRACE_ENV: str(GRACE)}, **extra)
    return env


def leftovers(marker, seconds):
    return run_leftovers(marker, seconds, MARKER)


@contextmanager
def course_run(app, env, log, port=None):
    """`course run --app app` with its output in `log`; at the end, stopped with
    Ctrl-C (its terminal's SIGINT) if still running, and nothing of it left."""
    args = ["--app", str(app)] + (["--port", str(port)] if port else [])
    run = subprocess.Popen([sys.executable, "-m", "course", "run", *args], cwd=ROOT, env=env,
                           stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if port:
            services.wait_for_port(port, 60, run, what="`course run`")
        yield run
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
            try:
                run.wait(GRACE + 30)
            except subprocess.TimeoutExpired:
                run.kill()
        left = leftovers(env[MARKER], 20)
        assert not left, f"`course run` left {len(left)} processes running: {left}"


def restart(env, kind):
    done = subprocess.run([sys.executable, "-m", "course", "restart", kind], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"`course restart {kind}` failed: {(done.stdout + done.stderr).strip()[-600:]}"
    return done


def said(log, text, seconds, count=1):
    """Wait until the run's output has said `text` `count` times."""
    return wait_until(lambda: log.read_text(errors="replace").count(text) >= count, seconds, interval=0.1)


# ---------------------------------------------------------------- the dyno, without rq

# A worker that notes every SIGTERM and carries on, with a child in a process group
# of its own (as rq's work horse is), that does the same.
STUBBORN_WORKER = textwrap.dedent("""\
    import os, signal, sys, time

    def note(what):
        with open(sys.argv[1], "a") as notes:
            notes.write(f"{os.getpid()} {what} {time.time()}\\n")

    signal.signal(signal.SIGTERM, lambda *_: note("SIGTERM"))
    if os.fork() == 0:
        os.setpgrp()
        note("horse")
    else:
        note("worker")
    while True:
        time.sleep(1)
""")


def notes_of(path):
    """[(pid, what, time)] from the stubborn worker's notes."""
    if not path.exists():
        return []
    return [(int(pid), what, float(when)) for pid, what, when in
            (line.split() for line in path.read_text().splitlines() if line.count(" ") == 2)]


def alive(pid):
    try:
        return (open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]) != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="watches processes through /proc (Linux)")
@pytest.mark.parametrize("how", ["ctrl-c", "restart"])
def test_a_dyno_stop_sends_sigterm_to_every_process_then_sigkill_after_the_grace(how, tmp_path):
    """Ctrl-C of `course run`, or `course restart worker`: SIGTERM reaches the worker and its
    child in another process group alike; both ignore it, and SIGKILL comes after the grace,
    not before. After a restart the worker runs again."""
    app, notes = tmp_path / "app", tmp_path / "notes.txt"
    app.mkdir()
    (app / "app.py").write_text("")
    (app / "stubborn.py").write_text(STUBBORN_WORKER)
    (app / "Procfile").write_text(f'worker: cd "$APP_DIR" && exec python stubborn.py {notes}\n')
    grace = 4
    # REDIS_URL and a real-S3 bucket named: `course run` starts neither, and this worker uses neither.
    env = course_env(tmp_path, uuid.uuid4().hex, REDIS_URL="redis://127.0.0.1:9/0", S3_BUCKET="unused",
                     **{GRACE_ENV: str(grace)})
    log = tmp_path / "run.log"
    with course_run(app, env, log) as run:
        assert wait_until(lambda: len(notes_of(notes)) >= 2 or run.poll() is not None, 60) and run.poll() is None, (
            f"the worker did not start:\n{log.read_text()}")
        first = {what: pid for pid, what, _ in notes_of(notes)}
        if how == "ctrl-c":
            os.killpg(run.pid, signal.SIGINT)
        else:
            restart(env, "worker")
        assert wait_until(lambda: sum(what == "SIGTERM" for _, what, _ in notes_of(notes)) >= 2, 10), (
            f"SIGTERM did not reach every process of the worker dyno (its notes: {notes_of(notes)})\n{log.read_text()}")
        termed = {pid: when for pid, what, when in notes_of(notes) if what == "SIGTERM"}
        assert set(first.values()) <= set(termed), f"SIGTERM reached {sorted(termed)}, not the horse {first['horse']}"
        assert wait_until(lambda: not any(alive(pid) for pid in first.values()), grace + 10, interval=0.02)
        died = time.time()
        lived = died - max(termed.values())
        assert grace - 0.5 <= lived <= grace + 3, (
            f"the processes that ignored SIGTERM got SIGKILL {lived:.1f} s after it, not after the {grace} s grace")
        if how == "restart":
            assert wait_until(lambda: sum(what == "worker" for _, what, _ in notes_of(notes)) >= 2, 30), (
                f"the worker did not start again after `course restart worker`:\n{log.read_text()}")
            assert run.poll() is None, "`course run` stopped when one of its dynos restarted"
        else:
            run.wait(30)
            assert run.returncode == 0, log.read_text()[-1500:]


# ---------------------------------------------------------------- rq workers mid-job

def job_field(conn, job_id, name):
    value = conn.hget(f"rq:job:{job_id}", name)
    return value.decode() if value is not None else None


def post_report(port):
    assert wait_for_app(f"http://127.0.0.1:{port}", 60), "the app behind course run's router never answered"
    status, body, _ = http("POST", f"http://127.0.0.1:{port}/report", body={})
    assert status == 202, (status, body)
    return body["job_id"]


def ended_at(conn, job_id):
    return datetime.strptime(job_field(conn, job_id, "ended_at"), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


@contextmanager
def app_running(stage, tmp_path):
    """The app at the end of unit `stage`, run by `course run` on a Redis of this check's
    own (whose jobs outlive the run): (run, its log, Redis client, web port, environment)."""
    app = stages.write_stage(stage, tmp_path / f"unit{stage:02d}")
    port = services.free_port()
    with services.redis_server() as redis_url:
        env = course_env(tmp_path, uuid.uuid4().hex, REDIS_URL=redis_url, REPORT_SECONDS=REPORT_SECONDS)
        log = tmp_path / "run.log"
        with course_run(app, env, log, port) as run:
            assert said(log, "Listening on", 60), f"the worker did not start:\n{log.read_text()[-2000:]}"
            yield run, log, redis.Redis.from_url(redis_url), port, env


WORKERS = [(4, "failed"), (9, "finished")]
WORKER_IDS = ["unit-04-plain-Worker-loses-it", "unit-09-HerokuWorker-finishes-it"]


@pytest.mark.parametrize("stage, outcome", WORKERS, ids=WORKER_IDS)
def test_a_worker_restarted_mid_job(stage, outcome, tmp_path):
    """`course restart worker` while a report runs: unit 04's plain Worker loses the job (its
    work horse dies with the dyno's SIGTERM), unit 09's HerokuWorker finishes it in the grace.
    Either way the worker starts again and runs the next report."""
    with app_running(stage, tmp_path) as (run, log, conn, port, env):
        job_id = post_report(port)
        assert wait_until(lambda: job_field(conn, job_id, "status") == "started", 30), (
            f"the report never started:\n{log.read_text()[-2000:]}")
        asked = time.time()
        restart(env, "worker")
        assert said(log, "dyno: Restarting", 10), f"the worker dyno did not restart:\n{log.read_text()[-2000:]}"
        ended = wait_until(lambda: job_field(conn, job_id, "status") in ("finished", "failed"), GRACE + 10)
        status = job_field(conn, job_id, "status")
        assert ended and status == outcome, (
            f"unit {stage:02d}'s worker, restarted mid-job, left the job {status}, not {outcome}:\n"
            + log.read_text()[-2500:])
        if outcome == "failed":
            assert "Work-horse terminated unexpectedly" in log.read_text(), log.read_text()[-2500:]
        else:
            assert ended_at(conn, job_id) > asked, "the job ended before the restart: it was not cut into"
        assert said(log, "Listening on", GRACE + 30, count=2), (
            f"the worker did not start again after the restart:\n{log.read_text()[-2500:]}")
        next_job = post_report(port)
        assert wait_until(lambda: job_field(conn, next_job, "status") == "finished", 60), (
            f"the restarted worker did not run the next report:\n{log.read_text()[-2500:]}")
        assert run.poll() is None, "`course run` stopped when its worker dyno restarted"


@pytest.mark.parametrize("stage, outcome", WORKERS, ids=WORKER_IDS)
def test_ctrl_c_mid_job(stage, outcome, tmp_path):
    """Ctrl-C of `course run` while a report runs stops every dyno the same way: unit 04's
    plain Worker loses the job, unit 09's HerokuWorker finishes it before it exits."""
    with app_running(stage, tmp_path) as (run, log, conn, port, env):
        job_id = post_report(port)
        assert wait_until(lambda: job_field(conn, job_id, "status") == "started", 30), (
            f"the report never started:\n{log.read_text()[-2000:]}")
        os.killpg(run.pid, signal.SIGINT)
        run.wait(GRACE + 30)
        status = job_field(conn, job_id, "status")
        assert status == outcome, (
            f"unit {stage:02d}'s worker, stopped with Ctrl-C mid-job, left the job {status}, not {outcome}:\n"
            + log.read_text()[-2500:])
        assert run.returncode == 0, log.read_text()[-1500:]


def test_restart_says_when_no_course_run_is_running(tmp_path):
    env = course_env(tmp_path, uuid.uuid4().hex)
    done = subprocess.run([sys.executable, "-m", "course", "restart", "worker"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "no `python3 -m course run` is running" in done.stderr, done.stderr
