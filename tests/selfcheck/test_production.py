"""The finished app (solution/) survives what production does to it, with real
processes: Redis restarting mid-job and while idle, a worker killed with its
work horse, Redis away from the web app, slow clients, and links signed the
way AWS wants. The faults are the ones benchmarks/faults.py counts."""
import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack

import pytest

from course import ROOT, services

sys.path.insert(0, str(ROOT / "benchmarks"))
import faults  # noqa: E402

SOLUTION = ROOT / "solution"
RECOVERY = 15  # seconds: worker and scheduler working again after Redis is back


@pytest.fixture(scope="module")
def app_and_redis():
    with faults.running_app(SOLUTION, report_seconds=4) as (app, redis):
        yield app, redis


def test_redis_restart_mid_job_loses_nothing(app_and_redis):
    app, redis = app_and_redis
    result = faults.restart_mid_job(app, redis, outage=5)
    assert not result["worker_exited"], f"the worker exited when Redis restarted under a running job: {result}"
    assert result["outcome"] == "finished", f"the job running when Redis restarted was {result['outcome']}: {result}"
    assert result["recovery"] <= RECOVERY, f"the job took {result['recovery']:.1f} s after Redis came back"


def test_redis_restart_while_idle_keeps_worker_and_scheduler(app_and_redis):
    app, redis = app_and_redis
    result = faults.restart_idle(app, redis, outage=5)
    assert not result["worker_exited"], f"the idle worker exited when Redis restarted: {result}"
    assert result["scheduler_ok"], f"the worker's scheduler did not run a scheduled job after the restart: {result}"
    assert result["outcome"] == "finished", f"a report after the restart was {result['outcome']}: {result}"
    assert result["recovery"] <= RECOVERY, f"worker and scheduler took {result['recovery']:.1f} s to work again"


def test_redis_down_answers_503_json_and_recovers(app_and_redis):
    app, redis = app_and_redis
    result = faults.redis_down(app, redis, outage=0)
    for answer in result["answers"]:
        assert answer["status"] == 503 and answer["json"] and answer["retry_after"], answer
        assert answer["seconds"] < 10, f"the app took {answer['seconds']:.1f} s to say Redis is down"
    assert result["recovery"] is not None and result["recovery"] < 10, result


def test_killed_worker_and_horse_is_shown_interrupted_then_finishes(app_and_redis):
    app, redis = app_and_redis
    result = faults.kill_worker(app, redis, outage=0)
    assert result["interrupted_after"] is not None and result["interrupted_after"] <= 60, (
        f"the status route did not say 'interrupted' within 60 s of the worker's death: {result}")
    assert result["outcome"] == "finished", f"the job of a killed worker was {result['outcome']} after 150 s: {result}"


PAGE_STATE = """() => ({
  message: document.getElementById("message").textContent,
  linkShown: !document.getElementById("download").hidden,
})"""


def test_the_page_keeps_polling_through_a_redis_outage(app_and_redis):
    from grader.browser import open_page

    app, redis = app_and_redis
    faults.wait_for_worker(redis)
    with open_page(f"http://{services.LOOPBACK}:{app.port}/") as page:
        page.click("#start")
        deadline = time.monotonic() + 15
        while "Building" not in page.evaluate(PAGE_STATE)["message"] and time.monotonic() < deadline:
            time.sleep(0.1)
        redis.stop()
        try:
            deadline = time.monotonic() + 15
            said = ""
            while time.monotonic() < deadline:
                said = page.evaluate(PAGE_STATE)["message"]
                if "unavailable" in said:
                    break
                time.sleep(0.1)
            assert "unavailable" in said and "Trying again" in said, f"with Redis down the page said {said!r}"
        finally:
            redis.start()
        deadline = time.monotonic() + 60
        state = {}
        while time.monotonic() < deadline:
            state = page.evaluate(PAGE_STATE)
            if state["linkShown"]:
                break
            time.sleep(0.2)
        assert state.get("linkShown"), f"after Redis came back the page said {state.get('message')!r}, with no link"


def test_slow_clients_do_not_block_others():
    """Six clients that send their headers and then nothing: with gunicorn's sync
    workers (2 processes) the seventh waits for the 30 s timeout; with threads it does not."""
    port = services.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "AWS_", "S3_"))}
    env.update(APP_DIR=str(SOLUTION), PORT=str(port), REDIS_URL=f"redis://{services.LOOPBACK}:1/0", S3_BUCKET="b",
               PATH=os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")]))
    processes = faults.Processes()
    try:
        web = processes.start(faults.procfile_command("web", SOLUTION), env, shell=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        services.wait_for_port(port, 30, web, what="web process")
        assert faults.http(port, "GET", "/")[0] == 200
        slow = []
        with ExitStack() as stack:
            for _ in range(6):
                sock = stack.enter_context(socket.create_connection((services.LOOPBACK, port)))
                sock.sendall(b"POST /report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 100\r\n\r\n{")  # and the other 99 bytes never come
                slow.append(sock)
            time.sleep(0.5)  # let the server take them
            started = time.monotonic()
            status, _, _ = faults.http(port, "GET", "/", timeout=20)
            waited = time.monotonic() - started
        assert status == 200 and waited < 3, (
            f"with 6 slow clients connected, GET / took {waited:.1f} s (status {status}): the web command "
            "serves one request per process at a time")
    finally:
        processes.close()


SIGN = """
from utils import download_url
print(download_url("reports/example.pdf"))
"""


def test_presigned_links_are_sigv4_in_the_buckets_region():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    env.update(AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret", AWS_DEFAULT_REGION="eu-west-1",
               S3_BUCKET=f"reports-{uuid.uuid4().hex[:8]}")
    done = subprocess.run([sys.executable, "-c", SIGN], cwd=SOLUTION, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-800:]
    url = done.stdout.strip()
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "eu-west-1" in url, url
    assert "AWSAccessKeyId=" not in url and "Signature=" not in url.replace("X-Amz-Signature=", ""), url


def test_course_run_keeps_its_redis_data_in_an_append_only_file():
    import inspect

    import redis

    from course import localrun

    assert "redis_server(appendonly=True" in inspect.getsource(localrun), (
        "`course run` should start its Redis with an append-only file, so a restart keeps the session's jobs")
    with services.redis_server(appendonly=True) as url:
        client = redis.Redis.from_url(url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
