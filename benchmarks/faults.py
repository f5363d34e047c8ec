"""What production does to the finished app, done to it on this machine.

    .venv/bin/python -m benchmarks.faults                    # every fault, 2 trials each, 4-6 minutes
    .venv/bin/python -m benchmarks.faults --trials 1 --faults restart-mid-job bad-input
    .venv/bin/python -m benchmarks.faults --target path/to/app

Runs the app as its Procfile does (gunicorn web, `python worker.py`) against a
Redis this script can stop and start again (append-only file, so a restart
keeps its data) and a local S3 (moto), all on loopback. Then, N times each:

  restart-mid-job   Redis stops for --outage seconds while a report is running
  restart-idle      the same while the worker waits; then a report and a
                    scheduled job (rq's scheduler) must both run
  kill-worker       the worker and its work horse are killed outright (SIGKILL,
                    a lost dyno); a new worker starts at once
  redis-down        Redis is down: what POST /report and GET /report/<id> answer
  bad-input         the bad-request set (deep JSON, broken chunked bodies,
                    10 MB values, odd ids and priorities, damaged job records)

and prints, per fault: jobs finished / failed and visible (the status route
says failed, with an error) / lost (neither, within the time allowed), how
often the worker had to be started again by hand, and the seconds from the
end of the fault to the job finishing. Every process it starts is stopped
when it ends, Ctrl-C included.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

from benchmarks.report_latency import Processes, base_env, procfile_command, table
from course import services

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

LOOPBACK = services.LOOPBACK
FAULTS = ("restart-mid-job", "restart-idle", "kill-worker", "redis-down", "bad-input")


# ---------------------------------------------------------------- Redis that can restart

class RestartableRedis:
    """A Redis on one loopback port and one folder, which stop() and start() can
    take down and bring back: the append-only file keeps its data across."""

    def __init__(self, folder):
        self.binary = services.find_redis_server()
        if not self.binary:
            raise SystemExit(services.NO_REDIS)
        self.folder = folder
        self.port = services.free_port()
        self.process = None
        self.url = f"redis://{LOOPBACK}:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", LOOPBACK, "--dir", str(self.folder),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True)
        services.wait_for_port(self.port, 15, self.process, what="Redis server")
        client = self.client()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the append-only file is loaded before Redis answers
            try:
                client.ping()
                return
            except Exception:  # noqa: BLE001  (LOADING, or not up yet)
                time.sleep(0.05)

    def stop(self):
        """A clean stop (SIGTERM: Redis writes its file and exits), as a restart or failover does."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)


# ---------------------------------------------------------------- the app

class App:
    """The app's web and worker processes, from its Procfile, on a free port."""

    def __init__(self, stack, target, redis, endpoint, bucket, report_seconds, extra_env=None):
        self.logs = Path(tempfile.mkdtemp(prefix="course-faults-"))
        stack.callback(shutil.rmtree, self.logs, True)  # after the processes writing there stop
        self.processes = Processes()
        stack.callback(self.processes.close)
        self.target = Path(target).resolve()
        self.port = services.free_port()
        self.env = base_env(redis.url, endpoint, bucket, report_seconds)
        self.env.update(APP_DIR=str(self.target), PORT=str(self.port), **(extra_env or {}))
        self.web = self.processes.start(procfile_command("web", self.target), self.env, shell=True,
                                        stdout=open(self.logs / "web.log", "ab"), stderr=subprocess.STDOUT)
        self.worker = None
        self.worker_starts = 0
        self.start_worker()
        services.wait_for_port(self.port, 30, self.web, what="web process")

    def start_worker(self):
        self.worker = self.processes.start(procfile_command("worker", self.target), self.env, shell=True,
                                           stdout=open(self.logs / "worker.log", "ab"), stderr=subprocess.STDOUT)
        self.worker_starts += 1
        return self.worker

    def worker_alive(self):
        return self.worker is not None and self.worker.poll() is None

    def kill_worker(self):
        """SIGKILL to the worker, its work horse and its scheduler at once, as when a
        dyno is lost. rq puts the horse in a session of its own, so the worker's
        process group alone would miss it: every descendant is killed."""
        for pid in [self.worker.pid] + descendants(self.worker.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.worker.wait()
        self.processes.running.remove(self.worker)

    def request(self, method, path, body=b"", headers=None, timeout=30):
        return http(self.port, method, path, body, headers, timeout)


def descendants(pid):
    """The ids of every process below pid (Linux: from /proc)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def http(port, method, path, body=b"", headers=None, timeout=30, raw=None):
    """(status, headers dict, body bytes) from one HTTP/1.1 request on a fresh
    connection; status 0 if the server gave no answer. raw: send these bytes as is."""
    headers = {"Host": f"{LOOPBACK}:{port}", "Connection": "close", **(headers or {})}
    if raw is None:
        if "Transfer-Encoding" not in headers:
            headers.setdefault("Content-Length", str(len(body)))
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        raw = head.encode("latin-1") + body
    data = b""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            # Sent from a thread while this one reads: a server may answer (413) and
            # close before it has taken a large body, and the answer must not be missed.
            sender = threading.Thread(target=_send, args=(sock, raw), daemon=True)
            sender.start()
            while chunk := sock.recv(65536):
                data += chunk
            sender.join(timeout)
    except OSError:
        pass
    if not data:
        return 0, {}, b""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return 0, {}, data
    answer_headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if answer_headers.get("transfer-encoding", "").lower() == "chunked":
        rest = dechunk(rest)
    return status, answer_headers, rest


def _send(sock, raw):
    try:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def dechunk(data):
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


def as_json(body):
    try:
        return json.loads(body)
    except ValueError:
        return None


def post_report(app, timeout=60):
    """Start a report; retry while the app answers 503 (Redis away). (job_id, status_url) or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, body = app.request("POST", "/report", b'{"priority": "default"}',
                                      {"Content-Type": "application/json"})
        answer = as_json(body) or {}
        if status == 202 and answer.get("job_id"):
            return answer["job_id"], answer.get("status_url") or f"/report/{answer['job_id']}"
        time.sleep(0.25)
    return None


def read_status(app, status_url):
    status, _, body = app.request("GET", status_url, timeout=10)
    answer = as_json(body)
    return (answer if isinstance(answer, dict) else {}), status


def follow(app, status_url, timeout, until=("finished", "failed"), seen=None):
    """Poll the status route until the job's status is in `until` or timeout;
    the last answer (or {}). seen: a dict status -> first second it was seen."""
    started = time.monotonic()
    answer = {}
    while time.monotonic() - started < timeout:
        answer, code = read_status(app, status_url)
        if seen is not None and answer.get("status") and answer["status"] not in seen:
            seen[answer["status"]] = time.monotonic()
        if answer.get("status") in until:
            return answer
        time.sleep(0.2)
    return answer


def wait_for_status(app, status_url, wanted, timeout):
    return follow(app, status_url, timeout, until=(wanted, "finished", "failed")).get("status") == wanted


def outcome(answer):
    if answer.get("status") == "finished":
        return "finished"
    if answer.get("status") == "failed" and answer.get("error"):
        return "failed"
    return "lost"


def wait_for_worker(redis, timeout=30):
    """True once a worker has registered with Redis (it is ready to take jobs)."""
    client = redis.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.smembers("rq:workers"):
                return True
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------- the faults

def restart_mid_job(app, redis, outage):
    job = post_report(app)
    if job is None:
        return {"outcome": "lost", "note": "no job could be started"}
    _, url = job
    wait_for_status(app, url, "started", 30)
    time.sleep(0.5)
    worker_pid = app.worker.pid
    redis.stop()
    time.sleep(outage)  # the outage itself
    redis.start()
    back = time.monotonic()
    answer = follow(app, url, 60)
    done = time.monotonic()
    result = {"outcome": outcome(answer), "recovery": done - back if outcome(answer) == "finished" else None,
              "worker_exited": not app.worker_alive() or app.worker.pid != worker_pid}
    return result


def restart_idle(app, redis, outage):
    from rq import Queue
    from rq.serializers import JSONSerializer

    wait_for_worker(redis)
    time.sleep(1)
    worker_pid = app.worker.pid
    redis.stop()
    time.sleep(outage)
    redis.start()
    back = time.monotonic()
    # A scheduled job only the worker's scheduler can run, and a report only the worker can.
    scheduled = Queue("low", connection=redis.client(), serializer=JSONSerializer).enqueue_in(
        timedelta(seconds=1), "utils.delete_old_reports", max_age_seconds=10 ** 9)
    job = post_report(app)
    answer = follow(app, job[1], 60) if job else {}
    report_done = time.monotonic()
    deadline = back + 60
    while time.monotonic() < deadline and scheduled.get_status(refresh=True).value not in ("finished", "failed"):
        time.sleep(0.2)
    scheduled_state = scheduled.get_status(refresh=True).value
    scheduler_ok = scheduled_state == "finished"
    state = outcome(answer)
    recovery = max(report_done, time.monotonic()) - back if state == "finished" and scheduler_ok else None
    # Two jobs: the report, and the scheduled job (failed counts as visible: rq's failed registry).
    return {"outcome": state, "outcomes": [state, scheduled_state if scheduled_state in ("finished", "failed")
                                           else "lost"],
            "recovery": recovery, "scheduler_ok": scheduler_ok,
            "worker_exited": not app.worker_alive() or app.worker.pid != worker_pid}


def kill_worker(app, redis, outage):
    job = post_report(app)
    if job is None:
        return {"outcome": "lost", "note": "no job could be started"}
    _, url = job
    wait_for_status(app, url, "started", 30)
    time.sleep(0.5)
    app.kill_worker()
    killed = time.monotonic()
    app.start_worker()
    seen = {}
    answer = follow(app, url, 150, seen=seen)
    state = outcome(answer)
    interrupted = seen.get("interrupted")
    return {"outcome": state, "recovery": time.monotonic() - killed if state == "finished" else None,
            "interrupted_after": None if interrupted is None else interrupted - killed, "worker_exited": True}


def redis_down(app, redis, outage):
    job = post_report(app)
    url = job[1] if job else "/report/00000000-0000-0000-0000-000000000000"
    redis.stop()
    try:
        answers = []
        for method, path, body in (("POST", "/report", b"{}"), ("GET", url, b"")):
            started = time.monotonic()
            status, headers, raw = app.request(method, path, body, {"Content-Type": "application/json"})
            answer = as_json(raw)
            answers.append({"status": status, "seconds": time.monotonic() - started,
                            "json": isinstance(answer, dict) and bool(answer.get("error")),
                            "retry_after": "retry-after" in headers})
    finally:
        redis.start()
    back = time.monotonic()
    again = post_report(app, timeout=30)
    return {"answers": answers, "recovery": time.monotonic() - back if again else None}


# ---------------------------------------------------------------- bad input

HUGE = 10 * 1024 * 1024
ODD_PRIORITIES = [
    None, True, False, 0, 1, -1, 1.5, 1e308, "", " ", "HIGH", "High", " high", "high ", "high\n", "high\x00",
    "urgent", "medium", "normal", "lowest", "défaut", "高", "😀", "<script>alert(1)</script>", "'; DROP TABLE--",
    "${jndi:ldap://x}", "../low", "high,low", "x" * 300, "x" * 5000, [], ["high"], {}, {"name": "high"},
    [["high"]], "null", "None", "0", "\\u0000", "high\r\nX-Injected: 1",
]
ODD_IDS = [
    "a" * 129, "a" * 500, "a" * 3000, "not%20an%20id", "%00", "caf%C3%A9", "rq:job:abc", "..", "%2e%2e",
    "..%2F..%2Fetc%2Fpasswd", "%2F", "a%2Fb", "*", "%2A", "%3F", "abc%0D%0AX-Injected:%201", "%FF%FE",
    "%E2%80%AE", "id;rm", "{id}", "%7B%7D", "null", "undefined", "-", "_", "0", "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff", "A" * 128, "-" * 128, "%20", "%09", "a%00b", "a.b", "a+b", "~",
    "%u0041", "%C0%AE", "%25", "rq:queue:default",
]
ODD_PATHS = ["/report/", "/report//", "/reports", "/report/a/b", "/static/../app.py", "/%00", "/report?x=" + "y" * 3000]
METHODS = [("GET", "/report"), ("PUT", "/report"), ("DELETE", "/report"), ("PATCH", "/report"),
           ("DELETE", "/report/abc"), ("PUT", "/report/abc"), ("POST", "/report/abc"), ("OPTIONS", "/report"),
           ("TRACE", "/report"), ("PROPFIND", "/report")]
BROKEN_CHUNKS = [
    b"zz\r\n{}\r\n0\r\n\r\n",                 # not a hexadecimal size
    b"5\r\n{}\r\n0\r\n\r\n",                   # size larger than the data
    b"2\r\n{}0\r\n\r\n",                       # no CRLF after the data
    b"-2\r\n{}\r\n0\r\n\r\n",                  # negative size
    b"ffffffffffffffff\r\n{}\r\n0\r\n\r\n",    # absurd size
    b"2;" + b"x" * 5000 + b"\r\n{}\r\n0\r\n\r\n",  # a huge chunk extension
    b"2\r\n{}\r\n",                            # never ends (no last chunk)
    b"2\r\n{}\r\n0\r\n",                       # last chunk, no final CRLF
    b"\r\n\r\n",                               # empty size line
    b"2 \r\n{}\r\n0\r\n\r\n",                  # a space after the size
    b"0x2\r\n{}\r\n0\r\n\r\n",                 # 0x prefix
    b"2\r\n{}\r\n1\r\n",                       # truncated mid-chunk
]
CORRUPTIONS = {  # a job record in Redis, damaged one way or another
    "status-garbage": {"status": b"exploded"},
    "status-empty": {"status": b""},
    "meta-garbage": {"meta": b"\x80\x04not json"},
    "meta-list": {"meta": b"[1, 2]"},
    "data-garbage": {"data": b"\x00\x01\x02"},
    "data-json-wrong-shape": {"data": b'{"a": 1}'},
    "created-garbage": {"created_at": b"yesterday"},
    "started-garbage": {"status": b"started", "started_at": b"soon", "worker_name": b"\xff\xfe"},
    "enqueued-garbage": {"enqueued_at": b"\xff"},
    "timeout-garbage": {"timeout": b"forever"},
    "result-ttl-garbage": {"result_ttl": b"1e999"},
    "deps-garbage": {"status": b"deferred", "dependency_ids": b"not,a,list"},
    "finished-no-result": {"status": b"finished"},
    "failed-no-result": {"status": b"failed"},
    "worker-gone": {"status": b"started", "worker_name": b"no-such-worker"},
    "only-status": None,   # a hash with one field
    "wrong-type-string": "string",
    "wrong-type-list": "list",
    "wrong-type-set": "set",
    "retries-garbage": {"retries_left": b"many", "retry_intervals": b"{{{"},
}


def nested(depth, kind):
    return (b"[" * depth + b"]" * depth) if kind == "list" else (b'{"a":' * depth + b"1" + b"}" * depth)


def bad_requests(redis_client=None):
    """The bad-request set: (label, method, path, body, headers, raw). raw, if set,
    is sent as is (broken chunked bodies). With redis_client, damaged job
    records are planted and their ids asked about."""
    cases = []
    json_type = {"Content-Type": "application/json"}
    for depth in (10, 100, 500, 1000, 3000, 5000, 7000, 10000, 50000, 100000):
        for kind in ("list", "dict"):
            cases.append((f"nested {kind} {depth}", "POST", "/report", nested(depth, kind), json_type, None))
            if depth >= 1000:
                body = b'{"priority": ' + nested(depth, kind) + b"}"
                cases.append((f"priority nested {kind} {depth}", "POST", "/report", body, json_type, None))
    for i, chunks in enumerate(BROKEN_CHUNKS):
        head = (f"POST /report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
        cases.append((f"broken chunked {i}", "POST", "/report", b"", {}, head + chunks))
    for size in (20 * 1024, 1024 * 1024, HUGE):
        value = b"x" * size
        cases.append((f"json value {size}", "POST", "/report", b'{"priority": "' + value + b'"}', json_type, None))
        cases.append((f"form value {size}", "POST", "/report", b"priority=" + value,
                      {"Content-Type": "application/x-www-form-urlencoded"}, None))
        cases.append((f"multipart {size}", "POST", "/report",
                      b"--b\r\nContent-Disposition: form-data; name=\"priority\"\r\n\r\n" + value + b"\r\n--b--\r\n",
                      {"Content-Type": "multipart/form-data; boundary=b"}, None))
        head = (b"POST /report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        body = b'{"priority": "' + value + b'"}'
        cases.append((f"chunked value {size}", "POST", "/report", b"", {},
                      head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"))
    cases.append(("content-length lies", "POST", "/report", b"", {},
                  b"POST /report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\nConnection: close\r\n\r\n{}"))
    for value in ODD_PRIORITIES:
        cases.append((f"json priority {str(value)[:20]!r}", "POST", "/report", json.dumps({"priority": value}).encode(),
                      json_type, None))
        if isinstance(value, str):
            from urllib.parse import urlencode
            cases.append((f"form priority {value[:20]!r}", "POST", "/report", urlencode({"priority": value}).encode(),
                          {"Content-Type": "application/x-www-form-urlencoded"}, None))
    for body, kind in ((b"{not json", "application/json"), (b"[1, 2]", "application/json"), (b'"high"', "application/json"),
                       (b"\xff\xfe\x00garbage", "application/json"), (b"null", "application/json"),
                       (b'{"priority": "high"', "application/json"), (b"{}" * 100, "application/json"),
                       (b'{"priority": "high", "sections": {"a": 1}, "priority": 5}', "application/json"),
                       (b"\xef\xbb\xbf{}", "application/json"), (b"%%%", "application/x-www-form-urlencoded"),
                       (b"--nope", "multipart/form-data"), (b"{}", "application/json; charset=utf-32"),
                       (b"{}", "application/json; charset=nope"), (b"NaN", "application/json"),
                       (b'{"priority": NaN}', "application/json"), (b'{"priority": Infinity}', "application/json")):
        cases.append((f"body {body[:16]!r} as {kind}", "POST", "/report", body, {"Content-Type": kind}, None))
    for job_id in ODD_IDS:
        cases.append((f"id {job_id[:24]}", "GET", f"/report/{job_id}", b"", {}, None))
    for path in ODD_PATHS:
        cases.append((f"path {path[:24]}", "GET", path, b"", {}, None))
    for method, path in METHODS:
        cases.append((f"{method} {path}", method, path, b"", {}, None))
    if redis_client is not None:
        for name, fields in CORRUPTIONS.items():
            job_id = f"damaged-{name}-{uuid.uuid4().hex[:8]}"
            key = f"rq:job:{job_id}"
            if fields == "string":
                redis_client.set(key, b"\x80garbage")
            elif fields == "list":
                redis_client.rpush(key, b"a", b"b")
            elif fields == "set":
                redis_client.sadd(key, b"a")
            elif fields is None:
                redis_client.hset(key, "status", b"queued")
            else:
                base = {"status": b"queued", "created_at": b"2026-01-01T00:00:00.000000Z", "data": b"",
                        "origin": b"default", "description": b"x"}
                redis_client.hset(key, mapping={**base, **fields})
            cases.append((f"damaged job {name}", "GET", f"/report/{job_id}", b"", {}, None))
    return cases


def send_bad_input(app, redis_client):
    """Send the whole bad-request set; one row per request: (label, status, json error?, echoed?)."""
    rows = []
    for label, method, path, body, headers, raw in bad_requests(redis_client):
        status, _, answer = http(app.port, method, path, body, headers, timeout=30, raw=raw)
        parsed = as_json(answer)
        has_error = isinstance(parsed, dict) and isinstance(parsed.get("error"), str) and 0 < len(parsed["error"]) < 300
        rows.append((label, status, has_error, len(answer) > 10000 or b"x" * 1000 in answer))
    return rows


# ---------------------------------------------------------------- running it

@contextmanager
def running_app(target, report_seconds, extra_env=None):
    """(app, redis): the app from its Procfile, its Redis, a local S3; all stopped on exit."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="course-faults-redis-")))
        redis = RestartableRedis(folder)
        redis.start()
        stack.callback(redis.stop)
        endpoint = stack.enter_context(services.s3_server())
        bucket = f"reports-{uuid.uuid4().hex[:8]}"
        services.s3_client(endpoint).create_bucket(Bucket=bucket)
        app = App(stack, target, redis, endpoint, bucket, report_seconds, extra_env)
        wait_for_worker(redis)
        yield app, redis


TRIALS = {"restart-mid-job": restart_mid_job, "restart-idle": restart_idle, "kill-worker": kill_worker,
          "redis-down": redis_down}


def seconds(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default=str(ROOT / "solution"), help="the app folder (default: solution)")
    parser.add_argument("--trials", type=int, default=2, help="trials of each fault (kill-worker: at most 1)")
    parser.add_argument("--outage", type=float, default=5, help="seconds Redis stays down (default 5)")
    parser.add_argument("--report-seconds", type=float, default=4, help="REPORT_SECONDS of each report (default 4)")
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    job_rows, web_rows, input_rows = [], [], []
    with running_app(args.target, args.report_seconds) as (app, redis):
        for fault in args.faults:
            if fault == "bad-input":
                rows = send_bad_input(app, redis.client())
                codes = [status for _, status, _, _ in rows]
                input_rows.append(("bad-input", len(rows), sum(400 <= c < 500 for c in codes),
                                   sum(c >= 500 for c in codes), sum(c == 0 for c in codes),
                                   sum(400 <= s < 500 and not j for _, s, j, _ in rows), sum(e for *_, e in rows)))
                for label, status, has_error, echoed in rows:
                    if status >= 500 or status == 0 or (400 <= status < 500 and not has_error) or echoed:
                        print(f"  bad-input: {label} answered {status or 'nothing'}"
                              f"{'' if has_error else ' without a JSON error'}{' echoed' if echoed else ''}",
                              file=sys.stderr)
                continue
            results = []
            for trial in range(1 if fault == "kill-worker" else args.trials):
                if not app.worker_alive():
                    app.start_worker()  # a worker that exited in the last trial: started again by hand
                    wait_for_worker(redis)
                result = TRIALS[fault](app, redis, args.outage)
                results.append(result)
                print(f"  {fault} trial {trial + 1}: {result}", file=sys.stderr)
            if fault == "redis-down":
                answers = [a for r in results for a in r["answers"]]
                web_rows.append((fault, len(answers), sum(a["status"] == 503 for a in answers),
                                 sum(a["status"] >= 500 and a["status"] != 503 for a in answers),
                                 sum(a["json"] for a in answers), sum(a["retry_after"] for a in answers),
                                 f"{max(a['seconds'] for a in answers):.1f}", seconds(r["recovery"] for r in results)))
                continue
            outcomes = [o for r in results for o in r.get("outcomes", [r["outcome"]])]
            extra = ""
            if fault == "restart-idle":
                extra = (f"a report and a scheduled job each trial; scheduler ran "
                         f"{sum(r['scheduler_ok'] for r in results)}/{len(results)}")
            if fault == "kill-worker":
                extra = "interrupted shown after " + seconds(r.get("interrupted_after") for r in results) + " s"
            job_rows.append((fault, len(results), outcomes.count("finished"), outcomes.count("failed"),
                             outcomes.count("lost"), sum(r.get("worker_exited", False) for r in results)
                             if fault != "kill-worker" else "-", seconds(r.get("recovery") for r in results), extra))
    print(f"\n{Path(args.target).name}: Redis outages of {args.outage:.0f} s, reports of {args.report_seconds:g} s")
    if job_rows:
        print()
        table(["fault", "trials", "jobs finished", "failed, visible", "lost", "worker exited",
               "recovery s (median / max)", "notes"], job_rows, text_columns=(0, 7))
    if web_rows:
        print()
        table(["Redis down", "requests", "503", "other 5xx", "JSON error", "Retry-After", "slowest s",
               "POST works again after s"], web_rows)
    if input_rows:
        print()
        table(["input", "requests", "4xx", ">= 500", "no answer", "4xx not JSON", "echoed"], input_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
