"""The README's run command: the finished app on this machine, end to end,
and nothing left running once it is stopped."""
import os
import signal
import subprocess
import sys
import uuid

import pytest

from course import ROOT, services
from grader.checks import http, pdf_problem
from grader.learner import marked_processes, wait_until

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
