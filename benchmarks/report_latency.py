"""How much the course's change buys, measured on this machine.

    .venv/bin/python -m benchmarks.report_latency            # all three parts
    .venv/bin/python -m benchmarks.report_latency --help

1. Report latency: the starter's and the solution's apps, each under gunicorn
   as the Procfile runs them (the solution with its worker), get the same
   POST /report requests. Prints each app's latency (median, p95), their
   ratio, and for the solution the time until the PDF is really in S3.
2. Worker throughput: a forking rq Worker, a SimpleWorker, a SpawnWorker
   (a fresh interpreter per job, what rq offers for macOS), two forking
   Workers, and a plain function call, on a no-op (or short) job.
3. Grading time: the autograder on solution/, unit by unit, then every unit
   as `python3 -m course grade all` grades them.

Everything runs on loopback: a throwaway Redis and a local S3 (moto). Every
process it starts is stopped when it ends, Ctrl-C included.
"""
import argparse
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path

from course import services, stages

ROOT = Path(__file__).resolve().parent.parent

HERE = Path(__file__).resolve().parent
LOOPBACK = services.LOOPBACK
# Variables that could point the apps at real services are never passed on.
SCRUBBED = re.compile(r"^(AWS_|REDIS_|S3_|APP_DIR$|PORT$|REPORT_|WEB_CONCURRENCY$)")


# ---------------------------------------------------------------- processes

class Processes:
    """Child processes, each in its own process group, all stopped on close()."""

    def __init__(self):
        self.running = []

    def start(self, command, env, cwd=ROOT, shell=False, **kwargs):
        process = subprocess.Popen(command, env=env, cwd=cwd, shell=shell, start_new_session=True,
                                   stdin=subprocess.DEVNULL, **kwargs)
        self.running.append(process)
        return process

    def stop(self, process, grace=10):
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)  # gunicorn and rq shut down cleanly on SIGTERM
                process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        if process in self.running:
            self.running.remove(process)

    def close(self):
        for process in reversed(self.running[:]):
            self.stop(process)


def procfile_command(kind, app_dir):
    """The app's Procfile command for a process type, bound to loopback instead of
    0.0.0.0: solution/'s own Procfile, or the top-level one for starter/."""
    procfile = stages.project_folder(ROOT / app_dir) / "Procfile"
    for line in procfile.read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            return command.strip().replace("0.0.0.0", LOOPBACK)
    raise SystemExit(f"{procfile} has no {kind!r} process type.")


def base_env(redis_url, endpoint, bucket, report_seconds):
    env = {k: v for k, v in os.environ.items() if not SCRUBBED.match(k)}
    env.update(services.s3_environment(endpoint, bucket))
    # .venv's bin/ first, so the Procfile's `gunicorn` and `python` are the pinned ones.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env.update(REDIS_URL=redis_url, REPORT_SECONDS=str(report_seconds), PYTHONUNBUFFERED="1")
    return env


# ---------------------------------------------------------------- numbers

def percentile(values, fraction):
    """Nearest-rank percentile: with 5 samples, p95 is the slowest one."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def table(headers, rows, text_columns=(0,)):
    """Print rows under headers: text columns left-aligned, numbers right-aligned."""
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i in text_columns else str(c).rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


# ---------------------------------------------------------------- 1. report latency

def post_report(port, timeout):
    request = urllib.request.Request(f"http://{LOOPBACK}:{port}/report", data=b"", method="POST")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    seconds = time.perf_counter() - started
    try:
        return status, json.loads(body), seconds
    except ValueError:
        return status, {"raw": body[:200].decode(errors="replace")}, seconds


def warm_up(port, requests=4):
    """A few GET / first: gunicorn opens its port before its workers have
    imported the app, and that boot time is not the route's latency."""
    for _ in range(requests):
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/", timeout=30) as response:
            response.read()


def object_count(s3, bucket):
    return s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0)


def wait_for_pdf(s3, bucket, before, deadline, started):
    """Seconds from `started` until the bucket holds more than `before` objects."""
    while time.perf_counter() < deadline:
        if object_count(s3, bucket) > before:
            return time.perf_counter() - started
        time.sleep(0.02)
    return None


def start_web(processes, app_dir, env):
    port = services.free_port()
    web_env = dict(env, APP_DIR=app_dir, PORT=str(port))
    process = processes.start(procfile_command("web", app_dir), web_env, shell=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        services.wait_for_port(port, 30, process, what=f"gunicorn for {app_dir}/")
    except services.ServiceError as error:
        problem = process.stderr.read().decode(errors="replace")[-800:] if process.poll() is not None else ""
        raise SystemExit(f"{error}\n{problem}")
    return port


def start_worker(processes, app_dir, env, redis_url, timeout=20):
    import redis
    from rq import Worker

    process = processes.start(procfile_command("worker", app_dir), dict(env, APP_DIR=app_dir), shell=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"The {app_dir}/ worker exited at start-up (exit code {process.returncode}).")
        if Worker.all(connection=conn):
            return process
        time.sleep(0.05)
    raise SystemExit(f"The {app_dir}/ worker did not register with Redis within {timeout} s.")


def report_latency(args, processes, redis_url, endpoint):
    s3 = services.s3_client(endpoint)
    results = {}
    request_timeout = args.report_seconds + 60
    for app_dir in ("starter", "solution"):
        bucket = f"bench-{app_dir}"
        s3.create_bucket(Bucket=bucket)
        env = base_env(redis_url, endpoint, bucket, args.report_seconds)
        port = start_web(processes, app_dir, env)
        if app_dir == "solution":
            start_worker(processes, app_dir, env, redis_url)
        warm_up(port)
        latencies, landed = [], []
        for number in range(args.requests):
            before = object_count(s3, bucket)
            started = time.perf_counter()
            status, body, seconds = post_report(port, request_timeout)
            if status not in (200, 202):
                raise SystemExit(f"{app_dir}/: POST /report answered {status}: {body}")
            latencies.append(seconds)
            # Wait for this report to land before the next request, so every
            # request finds an idle worker and the figures do not include queueing.
            arrived = wait_for_pdf(s3, bucket, before, started + request_timeout, started)
            if arrived is None:
                raise SystemExit(f"{app_dir}/: request {number + 1} answered {status} but no PDF reached "
                                 f"the bucket within {request_timeout:.0f} s.")
            landed.append(arrived)
        results[app_dir] = {"status": status, "latency": latencies, "landed": landed}
    return results


def print_latency(args, results):
    print(f"\n1. POST /report, REPORT_SECONDS={args.report_seconds:g}, {args.requests} requests each, "
          "gunicorn (Procfile), sequential")
    rows = []
    for app_dir, r in results.items():
        rows.append([app_dir, r["status"],
                     f"{statistics.median(r['latency']) * 1000:.1f}", f"{percentile(r['latency'], .95) * 1000:.1f}",
                     f"{statistics.median(r['landed']):.2f}", f"{percentile(r['landed'], .95):.2f}"])
    table(["app", "status", "latency p50 ms", "p95 ms", "PDF in S3 p50 s", "p95 s"], rows)
    ratio = statistics.median(results["starter"]["latency"]) / statistics.median(results["solution"]["latency"])
    extra = statistics.median(results["solution"]["landed"]) - statistics.median(results["starter"]["landed"])
    print(f"   the starter's request is {ratio:,.0f}x slower (median); "
          f"the solution's PDF lands {extra:+.2f} s later than the starter's")


# ---------------------------------------------------------------- 2. worker throughput

WORKER_CODE = """
import sys
from redis import Redis
from rq import SimpleWorker, SpawnWorker, Worker
kind, url, queue = sys.argv[1:4]
worker_class = {"fork": Worker, "simple": SimpleWorker, "spawn": SpawnWorker}[kind]
worker_class([queue], connection=Redis.from_url(url), log_job_description=False).work(burst=True, logging_level="WARNING")
"""


def run_workers(processes, conn, redis_url, kind, count, jobs, job_seconds):
    """Enqueue `jobs` jobs, run `count` burst workers of `kind` on them; jobs/s
    from the jobs' own start and end times, so interpreter start-up is not counted."""
    from rq import Queue
    from rq.job import Job

    from benchmarks import noop_jobs

    queue = Queue(f"bench-{kind}-{count}", connection=conn)
    queue.empty()
    func, call_args = (noop_jobs.noop, ()) if job_seconds == 0 else (noop_jobs.pause, (job_seconds,))
    with conn.pipeline() as pipe:
        enqueued = queue.enqueue_many([Queue.prepare_data(func, call_args) for _ in range(jobs)], pipeline=pipe)
        pipe.execute()
    env = {k: v for k, v in os.environ.items() if not SCRUBBED.match(k)}
    workers = [processes.start([sys.executable, "-c", WORKER_CODE, kind, redis_url, queue.name], env, cwd=ROOT)
               for _ in range(count)]
    deadline = time.monotonic() + 120
    for process in workers:
        try:
            process.wait(max(1, deadline - time.monotonic()))
        finally:
            processes.stop(process)
    done = [job for job in Job.fetch_many([j.id for j in enqueued], connection=conn)
            if job is not None and job.get_status() == "finished"]
    if len(done) != jobs:
        raise SystemExit(f"Only {len(done)} of {jobs} jobs finished with {count} {kind} worker(s).")
    span = max(j.ended_at for j in done) - min(j.started_at for j in done)
    return jobs / span.total_seconds()


def direct_calls(jobs, job_seconds):
    from benchmarks import noop_jobs

    started = time.perf_counter()
    for _ in range(jobs):
        noop_jobs.noop() if job_seconds == 0 else noop_jobs.pause(job_seconds)
    return jobs / (time.perf_counter() - started)


WAYS = [  # (name, worker kind, how many workers)
    ("forking Worker", "fork", 1),
    ("SimpleWorker", "simple", 1),
    ("SpawnWorker", "spawn", 1),
    ("2 forking Workers", "fork", 2),
    ("direct call", None, 0),
]


def worker_throughput(args, processes, redis_url):
    import redis

    conn = redis.Redis.from_url(redis_url)
    rates = {name: [] for name, _, _ in WAYS}
    # Rounds interleave the ways, so a busy moment on the machine hits them all alike.
    for _ in range(args.rounds):
        for name, kind, count in WAYS:
            rate = (direct_calls(args.jobs, args.job_seconds) if kind is None
                    else run_workers(processes, conn, redis_url, kind, count, args.jobs, args.job_seconds))
            rates[name].append(rate)
    job = "no-op job" if args.job_seconds == 0 else f"{args.job_seconds * 1000:g} ms job"
    print(f"\n2. Worker throughput, {args.jobs} x {job}, burst workers, median of {args.rounds} rounds")
    forking = statistics.median(rates["forking Worker"])
    rows = []
    for name, values in rates.items():
        rate = statistics.median(values)
        rows.append([name, f"{rate:,.0f}", f"{min(values):,.0f}-{max(values):,.0f}", f"{1000 / rate:.3g}",
                     f"{rate / forking:,.1f}"])
    table(["how", "jobs/s", "range", "ms/job", "x forking Worker"], rows)


# ---------------------------------------------------------------- 3. grading time

def grading_time(args, processes):
    units = sorted(p.name[len("unit_"):] for p in (ROOT / "tests").glob("unit_[0-9][0-9]") if p.is_dir())
    if args.units:
        units = [u for u in units if u in args.units]
    from course import warm

    rows, total, wall_total, split_total, plain_total, warm_total = [], 0.0, 0.0, 0.0, 0.0, 0.0
    lanes = warm.WarmLanes()
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as folder, closing(lanes):
        for unit in units:
            results = Path(folder) / f"unit_{unit}.json"
            started = time.perf_counter()
            process = processes.start(
                [sys.executable, "-m", "pytest", f"tests/unit_{unit}", "--target", args.target, "-q",
                 "--results", str(results)],
                dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                process.wait(args.grading_timeout)
            except subprocess.TimeoutExpired:
                rows.append([unit, "timed out", "", "", "", ""])
                continue
            finally:
                processes.stop(process)
            wall = time.perf_counter() - started
            if not results.exists():
                rows.append([unit, f"no results (exit {process.returncode})", "", "", f"{wall:.1f}", ""])
                continue
            graded = json.loads(results.read_text())["units"].get(unit)
            if graded is None:
                rows.append([unit, "no checks ran", "", "", f"{wall:.1f}", ""])
                continue
            total += graded["seconds"]
            wall_total += wall
            split = split_wall(args, unit)
            split_total += split
            warmed = warm_wall(args, unit, lanes)
            warm_total += warmed
            plain = split_wall(args, unit, preload=False)
            plain_total += plain
            rows.append([unit, graded["title"], f"{graded['passed']}/{graded['total']}",
                         f"{graded['seconds']:.1f}", f"{wall:.1f}", f"{split:.1f}", f"{warmed:.1f}", f"{plain:.1f}"])
        rows.append(["all", "", "", f"{total:.1f}", f"{wall_total:.1f}", f"{split_total:.1f}", f"{warm_total:.1f}",
                     f"{plain_total:.1f}"])
        lanes.close()
        if len(units) > 1:
            row = grade_all(args, processes, units, Path(folder) / "all.json")
            rows.append(row + ["", grade_all(args, processes, units, Path(folder) / "all.json", preload=False)[-1]])
    print(f"\n3. Grading {args.target}/ unit by unit (checks' own seconds, from --results; wall includes "
          "pytest start-up and services): in one pytest run, and as `python3 -m course grade N` grades it "
          "(its checks shared among lanes), and as `python3 -m course watch` grades it after a save (the same "
          "lanes in warm pytest processes); `grade all` grades every unit as `python3 -m course grade all` does. "
          "The last column grades as `grade N` does with every learner process started plainly (COURSE_PRELOAD=0) "
          "instead of forked from the grader's preloaded Python")
    table(["unit", "title", "passed", "graded s", "one run wall s", "grade N wall s", "watch s", "plain starts s"],
          rows, text_columns=(0, 1))


@contextmanager
def preloading(on):
    """Learner processes forked from the grader's preloaded Python (on), or started plainly."""
    before = os.environ.get("COURSE_PRELOAD")
    if on:
        os.environ.pop("COURSE_PRELOAD", None)
    else:
        os.environ["COURSE_PRELOAD"] = "0"
    try:
        yield
    finally:
        os.environ.pop("COURSE_PRELOAD", None)
        if before is not None:
            os.environ["COURSE_PRELOAD"] = before


def split_wall(args, unit, preload=True):
    """Wall seconds to grade one unit as `python3 -m course grade N` does, grades not recorded."""
    from course import grading, manifest

    started = time.perf_counter()
    with preloading(preload):
        grading.run_in_lanes([manifest.unit(int(unit))], Path(args.target), record=False)
    return time.perf_counter() - started


def warm_wall(args, unit, lanes):
    """Wall seconds to grade one unit as `python3 -m course watch` does after a save: in
    warm pytest processes (course.warm), started and warmed up beforehand, as watch
    starts them while the learner edits."""
    from course import grading, manifest

    unit = manifest.unit(int(unit))
    lanes.prepare(grading.planned_lanes([unit], Path(args.target)), unit.tests)
    for host in lanes.hosts:
        host.ready()
    started = time.perf_counter()
    grading.run_in_lanes([unit], Path(args.target), record=False, warm_lanes=lanes)
    return time.perf_counter() - started


def grade_all(args, processes, units, results, preload=True):
    """The row for `python3 -m course grade all`: every unit graded as that command does
    (in lanes, see course.grading.run_in_lanes), its grades not recorded."""
    from course import grading, manifest

    started = time.perf_counter()
    with preloading(preload):
        run = grading.run_in_lanes([manifest.unit(int(unit)) for unit in units], Path(args.target), record=False)
    wall = time.perf_counter() - started
    if not run.units:
        return ["grade all", f"no results (exit {run.returncode})", "", "", f"{wall:.1f}", ""]
    graded = run.units.values()
    passed = f"{sum(u['passed'] for u in graded)}/{sum(u['total'] for u in graded)}"
    return ["grade all", f"every unit, {grading.lanes()} at a time", passed,
            f"{sum(u['seconds'] for u in graded):.1f}", f"{wall:.1f}", f"{wall:.1f}"]


# ---------------------------------------------------------------- main

def parse(argv):
    parser = argparse.ArgumentParser(
        description="Measure the course's claims on this machine: report latency (starter vs solution), "
                    "rq worker throughput, and the autograder's time per unit.")
    parser.add_argument("--report-seconds", type=float, default=2.0,
                        help="REPORT_SECONDS for both apps: how long the slow query takes (default 2)")
    parser.add_argument("--requests", type=int, default=5, help="POST /report requests per app (default 5)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per worker throughput run (default 200)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput rounds; the table shows the median (default 3)")
    parser.add_argument("--job-seconds", type=float, default=0.0,
                        help="each throughput job sleeps this long; 0 is a no-op job (default 0)")
    parser.add_argument("--target", default="solution", help="app folder the grading part grades (default solution)")
    parser.add_argument("--units", nargs="*", metavar="NN", help="grade only these units (default: every tests/unit_NN)")
    parser.add_argument("--grading-timeout", type=float, default=600, help="seconds allowed per unit (default 600)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["latency", "throughput", "grading"],
                        help="parts to leave out")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.jobs < 2 or args.rounds < 1 or args.report_seconds < 0 or args.job_seconds < 0:
        parser.error("--requests and --rounds must be at least 1, --jobs at least 2, and the seconds not negative")
    return args


def main(argv=None):
    args = parse(argv)
    processes = Processes()
    started = time.perf_counter()
    with ExitStack() as stack:
        stack.callback(processes.close)
        try:
            redis_url = stack.enter_context(services.redis_server())
            endpoint = stack.enter_context(services.s3_server())
            print(f"Redis {redis_url}, local S3 {endpoint}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
            if "latency" not in args.skip:
                print_latency(args, report_latency(args, processes, redis_url, endpoint))
                processes.close()  # the apps are done; give the next parts the CPUs
            if "throughput" not in args.skip:
                worker_throughput(args, processes, redis_url)
            if "grading" not in args.skip:
                grading_time(args, processes)
        except services.ServiceError as error:
            print(f"benchmark: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
            print("\ninterrupted: stopping everything this benchmark started", file=sys.stderr)
            return 130
    print(f"\ndone in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
