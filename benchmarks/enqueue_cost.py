"""Where an enqueue's time goes, and what the enqueueing route costs next to a no-op route.

    .venv/bin/python benchmarks/enqueue_cost.py                 # about a minute
    .venv/bin/python benchmarks/enqueue_cost.py --requests 4000 --rounds 3
    .venv/bin/python benchmarks/enqueue_cost.py --help

1. Round trips: the app is imported in this process, against a throwaway Redis,
   and POST /report is called through Flask's test client. Every time redis-py
   sends bytes to Redis is one round trip; the commands are counted too (Redis's
   own INFO commandstats, before and after). Shown for the route as the app
   has it, and for the route's older shape (a plain queue.enqueue with rq's
   default TTLs), side by side.
2. Throughput: the app runs under gunicorn, as its Procfile runs it (2 worker
   processes, gthread), bound to loopback. A small load generator sends a fixed
   number of requests over 4 kept-alive connections to: a no-op route (an empty
   202 answer), the app's POST /report, and the old shape of it, in the same
   gunicorn, interleaved over --rounds rounds. The ratio to the no-op route is
   what the enqueue costs the web process.
3. Workers: jobs/s of a job that builds a boto3 client per job, and of one
   that uses a client built once per worker process (SimpleWorker, burst).

Nothing leaves the machine: Redis and S3 (moto) are local and on loopback, and
every process started here is stopped when it ends, Ctrl-C included.
"""
import argparse
import http.client
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from course import services  # noqa: E402
from report_latency import Processes, base_env, table  # noqa: E402

LOOPBACK = services.LOOPBACK

# The wrapper gunicorn serves: the app itself, plus a no-op route and the
# route's old shape, so all three run in the same processes.
BENCH_APP = textwrap.dedent('''
    from flask import jsonify, url_for
    from rq import Queue

    import app as course_app
    from app import app, JOB_TIMEOUT, RETRY
    from utils import make_report


    @app.post("/noop")
    def noop():
        return jsonify(job_id="0" * 36, status_url="/report/" + "0" * 36), 202


    # The route before: rq's defaults (a failed job kept a year), the queue's
    # own round trip to register itself, then the job's writes.
    old_queue = Queue("default", connection=course_app.conn, serializer=course_app.JSONSerializer)


    @app.post("/report-old")
    def report_old():
        job = old_queue.enqueue(make_report, job_timeout=JOB_TIMEOUT, retry=RETRY)
        return jsonify(job_id=job.id, status_url=url_for("report_status", job_id=job.id)), 202
''')


# ---------------------------------------------------------------- 1. round trips

def round_trips(app_dir, redis_url, requests):
    """(round trips, commands) per request, for each route, measured in this process."""
    import redis
    from redis.connection import Connection

    os.environ.update(REDIS_URL=redis_url, S3_BUCKET="bench")
    sys.path.insert(0, str(app_dir))
    namespace = {}
    exec(BENCH_APP, namespace)
    client = namespace["app"].test_client()
    admin = redis.Redis.from_url(redis_url)

    sent = [0]
    original = Connection.send_packed_command

    def counting(self, command, check_health=True):
        sent[0] += 1
        return original(self, command, check_health)

    def commands():
        stats = admin.info("commandstats")
        return sum(v["calls"] for k, v in stats.items() if not k.startswith(("cmdstat_info", "cmdstat_client")))

    rows = {}
    Connection.send_packed_command = counting
    try:
        for path in ("/report", "/report-old"):
            client.post(path)  # the first request: connections made, server version asked
            sent[0], before = 0, commands()
            for _ in range(requests):
                response = client.post(path)
                assert response.status_code == 202, response.get_data(as_text=True)
            rows[path] = (sent[0] / requests, (commands() - before) / requests)
    finally:
        Connection.send_packed_command = original
    return rows


# ---------------------------------------------------------------- 2. throughput

def load(port, path, requests):
    """Send `requests` POSTs over one kept-alive connection; return how many got 202."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    ok = 0
    for _ in range(requests):
        connection.request("POST", path, body=b"", headers={"Content-Length": "0"})
        response = connection.getresponse()
        response.read()
        ok += response.status == 202
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
            connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    connection.close()
    return ok


def cpu_seconds(master):
    """CPU seconds (user + system) used so far by gunicorn's worker processes,
    from /proc (Linux); None elsewhere. Unlike req/s, it does not depend on how
    busy the machine is with other work, the load generator included."""
    if not Path("/proc/self/stat").exists():
        return None
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == master:  # fields[1] is the parent's pid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def measure(port, path, requests, connections, master):
    """(requests per second, server CPU ms per request) over `connections`
    client processes sharing `requests`."""
    share = [requests // connections] * connections
    with multiprocessing.get_context("fork").Pool(connections) as pool:
        cpu_before = cpu_seconds(master)
        started = time.perf_counter()
        answered = pool.starmap(load, [(port, path, n) for n in share])
        seconds = time.perf_counter() - started
        cpu_after = cpu_seconds(master)
    if sum(answered) != sum(share):
        raise SystemExit(f"{path}: {sum(share) - sum(answered)} of {sum(share)} requests did not get 202.")
    cpu = None if cpu_before is None else (cpu_after - cpu_before) * 1000 / sum(share)
    return sum(share) / seconds, cpu


def start_web(processes, app_dir, env, wrapper_dir):
    port = services.free_port()
    command = [sys.executable, "-m", "gunicorn", "--chdir", str(app_dir), "--pythonpath", str(wrapper_dir),
               "--bind", f"{LOOPBACK}:{port}", "--workers", "2", "--worker-class", "gthread", "--threads", "8",
               "--timeout", "30", "bench_app:app"]
    process = processes.start(command, env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    services.wait_for_port(port, 30, process, what="gunicorn")
    for _ in range(20):  # both gunicorn workers booted and warm
        load(port, "/noop", 5)
    return port, process.pid


# ---------------------------------------------------------------- 3. workers

SHARED_CLIENT_JOBS = textwrap.dedent('''
    import os
    import boto3

    _s3 = None


    def per_job_client(key):
        s3 = boto3.client("s3")
        s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=b"%PDF-1.4 bench")


    def shared_client(key):
        global _s3
        if _s3 is None:
            _s3 = boto3.client("s3")
        _s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=b"%PDF-1.4 bench")
''')


def worker_rates(redis_url, endpoint, env, wrapper_dir, jobs, rounds):
    import redis
    from rq import Queue

    (wrapper_dir / "s3_jobs.py").write_text(SHARED_CLIENT_JOBS)
    sys.path.insert(0, str(wrapper_dir))
    import s3_jobs

    services.s3_client(endpoint).create_bucket(Bucket="bench")
    conn = redis.Redis.from_url(redis_url)
    queue = Queue("s3bench", connection=conn)
    rates = {"per_job_client": [], "shared_client": []}
    worker_env = dict(env, S3_BUCKET="bench", PYTHONPATH=str(wrapper_dir))
    for _ in range(rounds):
        for name in rates:
            func = getattr(s3_jobs, name)
            enqueued = queue.enqueue_many([Queue.prepare_data(func, args=(f"b/{name}/{i}",)) for i in range(jobs)])
            subprocess.run([sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", redis_url, "-w",
                            "rq.worker.SimpleWorker", "-q", "s3bench"], env=worker_env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=wrapper_dir)
            finished = [job for job in enqueued if job.get_status(refresh=True).value == "finished"]
            if len(finished) != jobs:
                raise SystemExit(f"{name}: only {len(finished)} of {jobs} jobs finished.")
            for job in finished:
                job.refresh()
            first = min(job.started_at for job in finished)
            last = max(job.ended_at for job in finished)
            rates[name].append(jobs / (last - first).total_seconds())
    return {name: statistics.median(values) for name, values in rates.items()}


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="solution", help="the app folder (default: solution)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per route and round (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--connections", type=int, default=4, help="client connections (4)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per worker round (200)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["trips", "throughput", "workers"])
    args = parser.parse_args()
    app_dir = (ROOT / args.target).resolve()

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="enqueue-bench-") as wrapper:
        wrapper_dir = Path(wrapper)
        (wrapper_dir / "bench_app.py").write_text(BENCH_APP)
        processes = Processes()
        stack.callback(processes.close)
        redis_url = stack.enter_context(services.redis_server())
        endpoint = stack.enter_context(services.s3_server())
        env = base_env(redis_url, endpoint, "bench", 1)
        env["PYTHONPATH"] = str(wrapper_dir)

        if "trips" not in args.skip:
            rows = round_trips(app_dir, redis_url, 200)
            print("1. Redis per POST /report (200 requests, Flask test client, after the first)")
            table(["route", "round trips", "commands"],
                  [[path, f"{trips:.1f}", f"{commands:.1f}"] for path, (trips, commands) in rows.items()])
            print()

        if "throughput" not in args.skip:
            port, master = start_web(processes, app_dir, env, wrapper_dir)
            paths = ("/noop", "/report", "/report-old")
            rates = {path: [] for path in paths}
            cpu = {path: [] for path in paths}
            for _ in range(args.rounds):
                for path in paths:
                    rate, ms = measure(port, path, args.requests, args.connections, master)
                    rates[path].append(rate)
                    cpu[path].append(ms)
            noop = statistics.median(rates["/noop"])
            print(f"2. Throughput, gunicorn (2 workers, gthread), {args.requests} requests x {args.rounds} rounds, "
                  f"{args.connections} connections, median")
            known = all(None not in values for values in cpu.values())
            rows = []
            for path, r in rates.items():
                row = [path, f"{statistics.median(r):,.0f}", f"{min(r):,.0f}-{max(r):,.0f}",
                       f"{statistics.median(r) / noop:.0%}"]
                if known:
                    row.append(f"{statistics.median(cpu[path]):.2f}")
                rows.append(row)
            table(["route", "req/s", "range", "x no-op"] + (["server CPU ms/request"] if known else []), rows)
            new, old = statistics.median(rates["/report"]), statistics.median(rates["/report-old"])
            print(f"   POST /report: {new / noop:.0%} of the no-op route (the old shape: {old / noop:.0%}); "
                  f"{new / old:.2f}x the old shape's req/s")
            print()

        if "workers" not in args.skip:
            rates = worker_rates(redis_url, endpoint, env, wrapper_dir, args.jobs, args.rounds)
            print(f"3. Worker, {args.jobs} jobs that each PUT a small object to S3 (moto), SimpleWorker, "
                  f"median of {args.rounds}")
            shared = rates["shared_client"]
            table(["job", "jobs/s", "x per-job client"],
                  [[name, f"{rate:,.0f}", f"{rate / rates['per_job_client']:.1f}"] for name, rate in rates.items()])
            print(f"   a client built once per worker is {shared / rates['per_job_client']:.1f}x "
                  "the jobs/s of one built per job")


if __name__ == "__main__":
    main()
