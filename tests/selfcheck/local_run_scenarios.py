"""The README's run command: the finished app on this machine, end to end,
and nothing left running once it is stopped.

Run in a pytest of its own, in the background, by test_in_background.py."""
import os
import re
import signal
import socket
import subprocess
import sys
import uuid

import pytest

from course import ROOT, services
from grader.checks import http, pdf_problem
from grader.learner import command_line, marked_processes, wait_until

MARKER = "COURSE_RUN_CHECK"


@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_serves_the_finished_app_and_stops_everything(stop_with, tmp_path):
    port, marker = services.free_port(), uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_", "S3_", "REPORT_"))}
    env.update(REPORT_SECONDS="0.5", **{MARKER: marker})
    log = tmp_path / "run.log"  # a file, not a pipe: processes it leaks would hold a pipe open
    run = subprocess.Popen([sys.executable, "-m", "course", "run", "--port", str(port)], cwd=ROOT, env=env,
                           stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        services.wait_for_port(port, 60, run, what="`course run`")
        status, body, _ = http("POST", f"http://127.0.0.1:{port}/report", body={})
        assert status == 202, (status, body)
        status_url = f"http://127.0.0.1:{port}{body['status_url']}"
        done = wait_until(lambda: http("GET", status_url)[1].get("status") in ("finished", "failed") and
                          http("GET", status_url)[1], 60, interval=0.2)
        assert done and done["status"] == "finished", done
        import urllib.request

        with urllib.request.urlopen(done["url"], timeout=10) as response:
            assert pdf_problem(response.read()) == ""
    finally:
        run.send_signal(stop_with)
        try:
            run.wait(30)
        except subprocess.TimeoutExpired:
            run.kill()
        output = log.read_text()
        gone = wait_until(lambda: not marked_processes(marker, MARKER), 10)
        left = [] if gone else marked_processes(marker, MARKER)
        for pid in left:  # stopped here even when the check fails, so no run leaves them behind
            os.kill(pid, signal.SIGKILL)
    assert run.returncode == 0, output[-1500:]
    assert "stopped web, worker, Redis and the local S3" in output
    assert not left, f"`course run` left {len(left)} processes running"


def start_run(marker, temp=None, **popen):
    """`course run` in its own process group, as a terminal starts a pipeline; its temporary
    folders in `temp`, if given."""
    port = services.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_", "S3_", "REPORT_"))}
    env.update(REPORT_SECONDS="0.5", **{MARKER: marker})
    if temp is not None:
        temp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(temp)
    run = subprocess.Popen([sys.executable, "-m", "course", "run", "--port", str(port)], cwd=ROOT, env=env,
                           start_new_session=True, **popen)
    services.wait_for_port(port, 60, run, what="`course run`")
    assert wait_until(lambda: len(marked_processes(marker, MARKER)) >= 3, 30), "web and worker did not start"
    return run


def redis_port_of(run_output):
    return int(re.search(r"Redis +redis://127\.0\.0\.1:(\d+)", run_output).group(1))


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def leftovers(marker, seconds):
    """What is still running after `seconds` (stopped here, so no check leaves them behind)."""
    gone = wait_until(lambda: not marked_processes(marker, MARKER), seconds)
    left = [] if gone else marked_processes(marker, MARKER)
    described = [command_line(pid) for pid in left]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return described


def test_ctrl_c_with_the_output_piped_leaves_nothing_running():
    """`python3 -m course run | tee run.log`, then Ctrl-C: the terminal's SIGINT reaches every
    process of the pipeline, tee goes first, and run must still stop all it started."""
    marker = uuid.uuid4().hex
    run = start_run(marker, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    said = ""
    while "Open http" not in said:
        said += run.stdout.readline().decode()
    try:
        run.stdout.close()  # the reader (tee) is gone
        os.killpg(run.pid, signal.SIGINT)
        run.wait(30)
    finally:
        left = leftovers(marker, 20)
        if run.poll() is None:
            run.kill()
    assert not left, f"`course run | tee` stopped with Ctrl-C left {len(left)} processes running: {left}"
    assert not port_open(redis_port_of(said)), "`course run | tee` stopped with Ctrl-C left Redis running"


def test_a_killed_run_takes_its_processes_with_it(tmp_path):
    """The terminal closed, the IDE's stop button, the OOM killer: `course run` gets SIGKILL
    and cannot clean up, so its children must notice and stop on their own."""
    marker = uuid.uuid4().hex
    # Killed, it cannot remove its temporary folders either: they go where the test's own do.
    run = start_run(marker, temp=tmp_path / "tmp", stdout=(tmp_path / "run.log").open("w"), stderr=subprocess.STDOUT)
    redis_port = redis_port_of((tmp_path / "run.log").read_text())
    os.kill(run.pid, signal.SIGKILL)
    run.wait(10)
    left = leftovers(marker, 20)
    assert not left, f"a SIGKILLed `course run` left {len(left)} processes running: {left}"
    assert wait_until(lambda: not port_open(redis_port), 10), "a SIGKILLed `course run` left Redis running"
