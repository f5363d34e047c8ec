"""The README's run command: the finished app on this machine, end to end,
and nothing left running once it is stopped; the router in front of its web
process, as unit 01 shows it.

Run in a pytest of its own, in the background, by test_in_background.py."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from course import ROOT, services
from grader.storage import pdf_problem
from grader.web import http, wait_for_app
from grader.processes import command_line, marked_processes, wait_until

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
        assert wait_for_app(f"http://127.0.0.1:{port}", 60), "the app behind course run's router never answered"
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
    services.wait_for_port(port, 60, run, what="`course run`")  # the router's: it listens before honcho starts
    assert wait_until(lambda: web_and_worker_started(marker), 30), "web and worker did not start"
    return run


def web_and_worker_started(marker):
    commands = [command_line(pid) or "" for pid in marked_processes(marker, MARKER)]
    return any("gunicorn" in command for command in commands) and any("worker.py" in command for command in commands)


def redis_port_of(run_output):
    return int(re.search(r"Redis +redis://127\.0\.0\.1:(\d+)", run_output).group(1))


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def leftovers(marker, seconds, variable=MARKER):
    """What is still running after `seconds` (stopped here, so no check leaves them behind),
    among the processes whose environment has `variable` set to `marker`."""
    gone = wait_until(lambda: not marked_processes(marker, variable), seconds)
    left = [] if gone else marked_processes(marker, variable)
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


# ---------------------------------------------------------------- the router in front of the web process

H12_LINE = re.compile(r'router +\| at=error code=H12 desc="Request timeout" method=POST path="/report" host=\S+ '
                      r'request_id=\S+ fwd="127\.0\.0\.1" dyno=web\.1 connect=\d+ms service=(\d+)ms status=503 bytes=0 '
                      r'protocol=http')


def run_unit_01_app(tmp_path, marker, **settings):
    """`course run` on the app as unit 01 hands it out (its Procfile: the web process only),
    with `settings` in its environment; (the run, its port, its output file)."""
    return run_app(1, tmp_path, marker, **settings)


def run_app(stage, tmp_path, marker, **settings):
    """`course run` on the app as it stands at `stage`, with `settings` in its environment,
    once its web process (and its worker, if its Procfile has one) is ready; (the run, its
    port, its output file)."""
    from course import stages

    app = stages.write_stage(stage, tmp_path / "app")
    port = services.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_", "S3_", "REPORT_", "COURSE_TEST_"))}
    env.update(settings, **{MARKER: marker})
    log = tmp_path / "run.log"
    run = subprocess.Popen([sys.executable, "-m", "course", "run", "--app", str(app), "--port", str(port)], cwd=ROOT,
                           env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    services.wait_for_port(port, 60, run, what="`course run`")
    # The router listens before the web process does: ask until the web process answers.
    assert wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/", timeout=60)[0] == 200, 60, interval=0.5), \
        "the web process never answered GET /:\n" + log.read_text()[-1500:]
    if "only the web process runs" not in log.read_text():
        assert wait_until(lambda: "Listening on" in log.read_text(), 60), \
            "the worker never started:\n" + log.read_text()[-1500:]
    return run, port, log


def lesson_block(unit_number, containing):
    """The commands of the lesson's bash block that has a line holding `containing`, as a
    learner types them: a check that runs them follows the lesson when it changes."""
    from course import manifest
    from selfcheck import try_it

    blocks, _ = try_it.notes(manifest.unit(unit_number))
    found = [b.commands for b in blocks if any(containing in command for command in b.commands)]
    assert len(found) == 1, f"unit {unit_number:02d}'s lesson has {len(found)} bash blocks with {containing!r}, not one"
    return found[0]


def in_second_terminal(command, port, env):
    """A lesson's command, run as in a second terminal (8000 is the run's port); its output."""
    command = re.sub(r"\b8000\b", str(port), command)
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    return done.stdout


def stop_run(run, marker):
    """Ctrl-C, as the learner stops it; what it left running (stopped here, so no check leaves it behind)."""
    run.send_signal(signal.SIGINT)
    try:
        run.wait(30)
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait()
    return leftovers(marker, 10)


def test_the_starter_s_report_gets_the_router_s_503_after_30_s_and_lands_later(tmp_path):
    """Unit 01, Step 3, as the learner does it: the default 35 s query, Heroku's 30 s router window."""
    from grader.storage import bucket_keys

    marker = uuid.uuid4().hex
    run, port, log = run_unit_01_app(tmp_path, marker)
    try:
        endpoint = re.search(r"S3 +(http://127\.0\.0\.1:\d+)", log.read_text()).group(1)
        s3 = services.s3_client(endpoint)
        status, body, seconds = http("POST", f"http://127.0.0.1:{port}/report", timeout=60)
        assert status == 503, f"POST /report answered {status} after {seconds:.1f} s, not the router's 503: {body}"
        assert abs(seconds - 30) <= 1, f"the router's 503 came after {seconds:.1f} s, not 30 s"
        answered = time.monotonic()
        # The lesson's own listing, in a second terminal after the run's export line.
        terminal = {**os.environ, **exported(log.read_text())}
        listing = lesson_block(1, "$AWS_ENDPOINT_URL/reports")
        shown = "".join(in_second_terminal(command, port, terminal) for command in listing)
        assert shown == "", f"right after the 503 the lesson's listing printed {shown!r}, not nothing"
        assert bucket_keys(s3, "reports") == [], "the report was in the bucket before its 35 s query ended"
        h12 = wait_until(lambda: H12_LINE.search(log.read_text()), 5)
        assert h12, "the output has no H12 line:\n" + log.read_text()[-1500:]
        # The app's request goes on without the browser: its 35 s end about 5 s after the 503.
        shown = wait_until(lambda: "".join(in_second_terminal(command, port, terminal) for command in listing), 30,
                           interval=0.5)
        later = time.monotonic() - answered
        assert shown and "<Key>reports/" in shown, \
            f"the lesson's listing showed no report within 30 s of the router's 503: {shown!r}"
        assert 2 <= later <= 15, f"the report landed {later:.1f} s after the 503, not about 5 s after it"
        keys = bucket_keys(s3, "reports")
        assert len(keys) == 1 and f"<Key>{keys[0]}</Key>" in shown, (keys, shown)
        pdf = s3.get_object(Bucket="reports", Key=keys[0])["Body"].read()
        assert pdf_problem(pdf) == "", pdf_problem(pdf)
    finally:
        left = stop_run(run, marker)
    assert not left, f"`course run` left {len(left)} processes running: {left}"


def test_the_starter_s_page_says_working_then_the_router_s_503(tmp_path):
    """Unit 01, Step 2, in a real browser: a click on the starter's button shows "Working..."
    for the router's whole window, then "The server answered 503." (A short window, a check's,
    never a learner's: the test above times Heroku's 30 s.)"""
    from grader.browser import open_page

    window = 4
    marker = uuid.uuid4().hex
    run, port, log = run_unit_01_app(tmp_path, marker, REPORT_SECONDS=str(window + 4),
                                     COURSE_TEST_ROUTER_TIMEOUT_SECONDS=str(window))
    try:
        with open_page(f"http://127.0.0.1:{port}/") as page:
            page.click("#start")
            clicked = time.monotonic()
            said = lambda: page.inner_text("#message")
            assert said() == "Working...", f"right after the click the page says {said()!r}, not 'Working...'"
            page.wait_for_function("document.getElementById('message').innerText !== 'Working...'",
                                   timeout=(window + 15) * 1000)
            seconds = time.monotonic() - clicked
            assert said() == "The server answered 503.", f"after the router's window the page says {said()!r}"
        assert window - 0.5 <= seconds <= window + 3, (
            f"the page said so {seconds:.1f} s after the click, not once the router's {window} s were up")
    finally:
        left = stop_run(run, marker)
    assert not left, f"`course run` left {len(left)} processes running: {left}"


def test_the_router_passes_normal_requests_through_with_their_status_and_body(tmp_path):
    """With a short router window (a check's, never a learner's) and a quick query: what the web
    process answers is what the browser gets, on one kept-alive connection, each request logged."""
    import http.client

    marker = uuid.uuid4().hex
    run, port, log = run_unit_01_app(tmp_path, marker, REPORT_SECONDS="0.5", COURSE_TEST_ROUTER_TIMEOUT_SECONDS="5")
    try:
        behind = re.search(r"router +port \d+ -> web on port (\d+)", log.read_text())
        assert behind, "`course run` says nothing of a router in front of the web process:\n" + log.read_text()[-1500:]
        web_port = int(behind.group(1))
        assert web_port != port
        browser = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        direct = http.client.HTTPConnection("127.0.0.1", web_port, timeout=30)
        sock = None
        for method, path in [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/nowhere"), ("POST", "/report")]:
            answers = []
            for connection in (browser, direct):
                response = ask(connection, method, path, again=connection is direct)
                answers.append((response.status, response.getheader("Content-Type"), response.read()))
            (status, kind, body), (web_status, web_kind, web_body) = answers
            assert (status, kind) == (web_status, web_kind), f"{method} {path}: {status} {kind} through the router, " \
                                                             f"{web_status} {web_kind} from the web process"
            if path == "/report":  # each makes its own report
                assert status == 200 and json.loads(body)["key"].startswith("reports/"), body
            else:
                assert body == web_body, f"{method} {path}: the router changed the body"
            sock = sock or browser.sock
            assert browser.sock is sock, f"the router closed the browser's connection after {method} {path}"
        said = wait_until(lambda: len(re.findall(r"router +\| at=info ", log.read_text())) >= 4 and log.read_text(), 5)
        assert said, "the output has no at=info line per request:\n" + log.read_text()[-1500:]
        for method, path, status in [("GET", "/", 200), ("GET", "/nowhere", 404), ("POST", "/report", 200)]:
            assert re.search(rf'at=info method={method} path="{path}" .* status={status} ', said), (method, path)
    finally:
        left = stop_run(run, marker)
    assert not left, f"`course run` left {len(left)} processes running: {left}"


def ask(connection, method, path, again):
    """One request on a kept-alive connection. With `again`, a connection the server closed
    between requests (the web process's own keep-alive, not the router's) is opened anew once."""
    import http.client

    try:
        connection.request(method, path, body=b"{}" if method == "POST" else None,
                           headers={"Content-Type": "application/json"})
        return connection.getresponse()
    except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
        if not again:
            raise
        connection.close()
        return ask(connection, method, path, again=False)


# ---------------------------------------------------------------- unit 12: one click, one report

def test_unit_12_s_two_clicks_with_one_key_make_one_report(tmp_path):
    """Unit 12, Step 1, as the learner does it: the lesson's `course run` with a short report,
    and its two POSTs with one Idempotency-Key in a second terminal. Both answers name one
    job; the worker runs it once and the run's (fresh) bucket holds one report, even after
    a second run of the job, had there been one, would have ended."""
    from grader.storage import bucket_keys
    from selfcheck.try_it import COURSE_RUN

    commands = lesson_block(12, "Idempotency-Key: try-1")
    start = next(command for command in commands if COURSE_RUN.match(command))
    settings = dict(re.findall(r"([A-Z_]+)=(\S*)\s", start.split("python3")[0]))
    seconds = float(settings.get("REPORT_SECONDS", "35"))
    marker = uuid.uuid4().hex
    run, port, log = run_app(12, tmp_path, marker, **settings)
    try:
        terminal = {**os.environ, **exported(log.read_text())}
        answers = [in_second_terminal(command, port, terminal) for command in commands if command != start]
        ids = [json.loads(answer).get("job_id") for answer in answers]
        assert len(ids) == 2 and ids[0] == ids[1] == "report-try-1", \
            f"the lesson's two POSTs with one key were answered with jobs {ids}, not report-try-1 twice"
        built = lambda: re.findall(r"default: Job OK \((\S+)\)", log.read_text())
        assert wait_until(built, seconds + 30), "the worker never finished the report:\n" + log.read_text()[-1500:]
        # A second run would start as the first ends: wait as long as one more report takes.
        wait_until(lambda: len(built()) > 1, seconds + 10)
        started = re.findall(r"default: utils\.make_report\(\) \((\S+)\)", log.read_text())
        assert started == built() == ["report-try-1"], \
            f"two POSTs with one key: the worker started {started} and finished {built()}, not report-try-1 once"
        keys = bucket_keys(services.s3_client(terminal["AWS_ENDPOINT_URL"]), terminal["S3_BUCKET"])
        assert len(keys) == 1, f"two POSTs with one key left {len(keys)} reports in the bucket, not one: {keys}"
    finally:
        left = stop_run(run, marker)
    assert not left, f"`course run` left {len(left)} processes running: {left}"


# ---------------------------------------------------------------- Heroku's Redis, locally

def exported(output):
    """{name: value} of the `export` line `course run` prints for another terminal."""
    import shlex

    line = next(line for line in output.splitlines() if line.strip().startswith("export "))
    return dict(word.split("=", 1) for word in shlex.split(line)[1:])


def test_heroku_redis_serves_the_finished_app_over_rediss_with_a_password(tmp_path):
    """`course run --heroku-redis`: REDIS_URL is rediss://:<password>@127.0.0.1:<port>, as
    Heroku's, in the export line too; the finished app makes a report through it end to
    end; a client that drops the password is refused, one that keeps it gets in."""
    import redis
    from urllib.parse import urlsplit

    marker, port = uuid.uuid4().hex, services.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_", "S3_", "REPORT_"))}
    env.update(REPORT_SECONDS="0.5", **{MARKER: marker})
    log = tmp_path / "run.log"
    run = subprocess.Popen([sys.executable, "-m", "course", "run", "--port", str(port), "--heroku-redis"], cwd=ROOT,
                           env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        services.wait_for_port(port, 60, run, what="`course run --heroku-redis`")
        assert wait_until(lambda: "export " in log.read_text(), 10), log.read_text()[-1500:]
        url = exported(log.read_text()).get("REDIS_URL", "")
        assert re.fullmatch(r"rediss://:[0-9a-f]{32}@127\.0\.0\.1:\d+", url), \
            f"the export line's REDIS_URL is {url!r}, not Heroku's rediss://:<password>@host:port"
        assert wait_for_app(f"http://127.0.0.1:{port}", 60), "the app behind course run's router never answered"
        status, body, _ = http("POST", f"http://127.0.0.1:{port}/report", body={})
        assert status == 202, (status, body)
        status_url = f"http://127.0.0.1:{port}{body['status_url']}"
        done = wait_until(lambda: http("GET", status_url)[1].get("status") in ("finished", "failed") and
                          http("GET", status_url)[1], 60, interval=0.2)
        assert done and done["status"] == "finished", done
        parts = urlsplit(url)
        dropped = redis.Redis(host=parts.hostname, port=parts.port, ssl=True, ssl_cert_reqs=None)
        try:
            dropped.ping()
            refused = None
        except redis.exceptions.AuthenticationError as error:
            refused = error
        finally:
            dropped.close()
        assert refused is not None, "a client without the URL's password was let in"
        kept = redis.Redis.from_url(url, ssl_cert_reqs=None)
        try:
            assert kept.ping() and kept.exists(f"rq:job:{body['job_id']}"), "the job is not in the Redis REDIS_URL names"
        finally:
            kept.close()
    finally:
        left = stop_run(run, marker)
    assert run.returncode == 0, log.read_text()[-1500:]
    assert not left, f"`course run --heroku-redis` left {len(left)} processes running: {left}"
