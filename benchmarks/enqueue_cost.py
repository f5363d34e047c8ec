"""Where an enqueue's time goes, and what the enqueueing route costs next to a no-op route.

    .venv/bin/python -m benchmarks.enqueue_cost                 # about a minute
    .venv/bin/python -m benchmarks.enqueue_cost --requests 4000 --rounds 3
    .venv/bin/python -m benchmarks.enqueue_cost --help

1. Round trips and CPU: the app is imported in this process, against a
   throwaway Redis, and POST /report is called through Flask's test client.
   Every time redis-py sends bytes to Redis is one round trip; the commands are
   counted too (Redis's own INFO commandstats, before and after). Then the CPU
   time of this process (time.process_time) per request, and per enqueue call
   alone, over interleaved rounds. Shown for the route as the app has it, as it
   was before (the same code through redis-py's pure-Python reply parser and
   command packer, what redis-py uses without hiredis), and for its first shape
   (a plain queue.enqueue with rq's default TTLs), side by side. Beside them,
   /ping: one PING through the app's client, the least any route that talks to
   Redis costs. Then where a POST /report's CPU goes, timed inside the requests
   (rq's enqueue, redis-py's execute, the rest), because the parts cost more
   inside a request than in a loop of their own.
2. Throughput: the app runs under gunicorn, as its Procfile runs it (2 worker
   processes, gthread), bound to loopback. A small load generator sends a fixed
   number of requests over 4 kept-alive connections to: a no-op route (an empty
   202 answer), /ping, the app's POST /report, and its two earlier shapes, in the same
   gunicorn, interleaved over --rounds rounds. The ratio to the no-op route is
   what the enqueue costs the web process. Each round sends every route over the
   same 4 connections, split evenly between gunicorn's 2 workers (2+2, as many
   clients would spread; --split any keeps whatever split the accepts give): a
   connection stays with the worker that accepted it, and with 1+3 one worker,
   one core at a time, serves three clients, which a route that needs the CPU
   feels far more than the no-op route does.
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
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.report_latency import Processes, base_env, table
from course import services

ROOT = Path(__file__).resolve().parent.parent

LOOPBACK = services.LOOPBACK

# The wrapper gunicorn serves: the app itself, plus a no-op route and the
# route's old shape, so all three run in the same processes.
BENCH_APP = textwrap.dedent('''
    import redis
    from flask import jsonify, request, url_for
    from redis._parsers import _RESP2Parser
    from redis._parsers.encoders import Encoder
    from redis.connection import PythonRespSerializer
    from rq import Queue

    import app as course_app
    from app import app, JOB_TIMEOUT, KEEP, PRIORITIES, RETRY, report_options
    from utils import make_report
    from worker import redis_url


    @app.post("/noop")
    def noop():
        return jsonify(job_id="0" * 36, status_url="/report/" + "0" * 36), 202


    # The floor for a route that talks to Redis: one round trip of one command
    # (PING) through the app's own client, and the same answer as the no-op route.
    @app.post("/ping")
    def ping():
        course_app.conn.ping()
        return jsonify(job_id="0" * 36, status_url="/report/" + "0" * 36), 202


    # The route's earlier shapes talk to Redis through redis-py's pure-Python
    # reply parser and command packer, which is what redis-py uses when hiredis
    # is not installed; the app's own client uses hiredis when it is.
    python_conn = redis.Redis.from_url(
        redis_url, parser_class=_RESP2Parser,  # redis-py picks its RESP3 twin for protocol 3
        command_packer=PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode))
    python_queues = {name: Queue(name, connection=python_conn, serializer=course_app.JSONSerializer)
                     for name in PRIORITIES}


    def enqueue_now(queue, conn):
        """The enqueue of the app's POST /report: one pipeline, one round trip."""
        with conn.pipeline() as pipe:
            job = queue.enqueue(make_report, job_timeout=JOB_TIMEOUT, retry=RETRY, pipeline=pipe, **KEEP)
            pipe.execute()
        return job


    def enqueue_old(queue):
        """The route's first shape: rq's defaults (a failed job kept a year), the
        queue's own round trip to register itself, then the job's writes."""
        return queue.enqueue(make_report, job_timeout=JOB_TIMEOUT, retry=RETRY)


    # The route as it was before the app's Redis client got hiredis: the same
    # code as POST /report, through the pure-Python client.
    @app.post("/report-previous")
    def report_previous():
        request.get_data()
        priority, sections, problem = report_options()
        job = enqueue_now(python_queues[priority], python_conn)
        return jsonify(job_id=job.id, status_url=url_for("report_status", job_id=job.id)), 202


    @app.post("/report-old")
    def report_old():
        job = enqueue_old(python_queues["default"])
        return jsonify(job_id=job.id, status_url=url_for("report_status", job_id=job.id)), 202
''')


# ---------------------------------------------------------------- 1. round trips

ROUTES = ("/report", "/report-previous", "/report-old")
# Not a shape of the route: one round trip of one command, the least any route
# that talks to Redis pays.
FLOOR = ("/ping",)


def parser_names(connection):
    """Which reply parser and command packer a redis-py connection uses."""
    return f"{type(connection._parser).__name__.strip('_')}, {type(connection._command_packer).__name__}"


def in_requests(request, count):
    """CPU microseconds per request spent inside rq's Queue.enqueue (building the
    job, queuing its writes in the pipeline) and inside redis-py's
    Pipeline.execute (packing the commands, the round trip, parsing the
    replies), timed where the route calls them, and in the whole request.
    Timed in place because the parts do not add up when timed apart: a round
    trip right after the route's other work costs more CPU than in a loop of
    round trips alone (caches, and the wake-up after the wait)."""
    from redis.client import Pipeline
    from rq import Queue

    spent = {"enqueue": 0.0, "execute": 0.0}

    def timed(part, method):
        def wrapper(*args, **kwargs):
            started = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                spent[part] += time.process_time() - started
        return wrapper

    originals = Queue.enqueue, Pipeline.execute
    Queue.enqueue, Pipeline.execute = timed("enqueue", Queue.enqueue), timed("execute", Pipeline.execute)
    try:
        started = time.process_time()
        for _ in range(count):
            request()
        total = time.process_time() - started
    finally:
        Queue.enqueue, Pipeline.execute = originals
    return {"request": total * 1e6 / count, **{part: seconds * 1e6 / count for part, seconds in spent.items()}}


def round_trips(app_dir, redis_url, requests, enqueues, rounds):
    """Per route, measured in this process: round trips and commands per request,
    the web process's CPU microseconds per request (Flask's test client, no HTTP)
    and per enqueue (the route's enqueue call alone; for /ping, the PING), and
    its client's parser. For /report, also where its CPU goes inside requests:
    inside_us, from in_requests()."""
    import redis
    from redis.connection import Connection

    os.environ.update(REDIS_URL=redis_url, S3_BUCKET="bench")
    sys.path.insert(0, str(app_dir))
    namespace = {}
    exec(BENCH_APP, namespace)
    course_app = namespace["course_app"]
    client = namespace["app"].test_client()
    admin = redis.Redis.from_url(redis_url)
    enqueue_now, enqueue_old = namespace["enqueue_now"], namespace["enqueue_old"]
    python_queue, python_conn = namespace["python_queues"]["default"], namespace["python_conn"]
    calls = {
        "/ping": course_app.conn.ping,
        "/report": lambda: enqueue_now(course_app.queues["default"], course_app.conn),
        "/report-previous": lambda: enqueue_now(python_queue, python_conn),
        "/report-old": lambda: enqueue_old(python_queue),
    }
    conns = {"/ping": course_app.conn, "/report": course_app.conn, "/report-previous": python_conn,
             "/report-old": python_conn}

    sent = [0]
    original = Connection.send_packed_command

    def counting(self, command, check_health=True):
        sent[0] += 1
        return original(self, command, check_health)

    def commands():
        stats = admin.info("commandstats")
        return sum(v["calls"] for k, v in stats.items() if not k.startswith(("cmdstat_info", "cmdstat_client")))

    paths = ("/noop",) + FLOOR + ROUTES
    rows = {path: {} for path in paths}
    Connection.send_packed_command = counting
    try:
        for path in paths:
            client.post(path)  # the first request: connections made, server version asked
            sent[0], before = 0, commands()
            for _ in range(requests):
                response = client.post(path)
                assert response.status_code == 202, response.get_data(as_text=True)
            rows[path].update(trips=sent[0] / requests, commands=(commands() - before) / requests)
    finally:
        Connection.send_packed_command = original

    # CPU time of this process only (time.process_time): what the web process
    # spends, whatever else the machine is doing. Interleaved rounds, median.
    per_request = {path: [] for path in paths}
    per_enqueue = {path: [] for path in calls}
    insides = []
    for _ in range(rounds):
        for path in paths:
            started = time.process_time()
            for _ in range(enqueues):
                client.post(path)
            per_request[path].append((time.process_time() - started) * 1e6 / enqueues)
            if path not in calls:
                continue
            call = calls[path]
            started = time.process_time()
            for _ in range(enqueues):
                call()
            per_enqueue[path].append((time.process_time() - started) * 1e6 / enqueues)
            if path == "/report":
                insides.append(in_requests(lambda: client.post(path), enqueues))
    rows["/noop"].update(request_us=statistics.median(per_request["/noop"]), enqueue_us=None, parser="-")
    rows["/report"]["inside_us"] = {part: statistics.median(inside[part] for inside in insides) for part in insides[0]}
    for path in calls:
        connection = conns[path].connection_pool.get_connection()
        rows[path].update(request_us=statistics.median(per_request[path]),
                          enqueue_us=statistics.median(per_enqueue[path]), parser=parser_names(connection))
        conns[path].connection_pool.release(connection)
    for queue in course_app.queues.values():
        queue.empty()
    return rows


# ---------------------------------------------------------------- 2. throughput

def post(connection, port, path):
    """One POST over a kept-alive connection: (the connection to use next, got 202)."""
    connection.request("POST", path, body=b"", headers={"Content-Length": "0"})
    response = connection.getresponse()
    response.read()
    if response.getheader("Connection", "").lower() == "close":
        connection.close()
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    return connection, response.status == 202


def load(port, path, requests):
    """Send `requests` POSTs over one kept-alive connection; return how many got 202."""
    connection, ok = http.client.HTTPConnection(LOOPBACK, port, timeout=30), 0
    for _ in range(requests):
        connection, answered = post(connection, port, path)
        ok += answered
    connection.close()
    return ok


def gunicorn_workers(master):
    """The pids of gunicorn's worker processes (Linux, from /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == master:  # fields[1] is the parent's pid
            pids.append(int(stat.parent.name))
    return sorted(pids)


def cpu_seconds(pids):
    """CPU seconds (user + system) used so far by these processes, from /proc
    (Linux); None elsewhere. Unlike req/s, it does not depend on how busy the
    machine is with other work, the load generator included."""
    if not Path("/proc/self/stat").exists():
        return None
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def connection_split(port, master):
    """How many of the clients' open connections each gunicorn worker holds,
    e.g. (2, 2), from /proc (Linux); None elsewhere. A connection stays with the
    worker that accepted it, and a worker's Python runs on one core at a time."""
    if not Path("/proc/net/tcp").exists():
        return None
    established = set()  # socket inodes of the server's side of each connection
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "01":  # 01: ESTABLISHED
            established.add(f"socket:[{fields[9]}]")
    held = []
    for pid in gunicorn_workers(master):
        try:
            held.append(sum(os.readlink(fd) in established for fd in Path(f"/proc/{pid}/fd").iterdir()))
        except OSError:
            held.append(0)
    return tuple(sorted(held))


def client(port, paths, requests, barrier, reconnect, answered):
    """One load generator process: one kept-alive connection, used for every
    path in turn. Between paths it waits for the others (barrier), so each path
    is timed alone; before them it reconnects while `reconnect` is set."""
    try:
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
        while True:
            connection, _ = post(connection, port, "/noop")  # connected and accepted
            barrier.wait()  # the parent looks at the split
            barrier.wait()  # and decides
            if not reconnect.value:
                break
            connection.close()
            connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
        for index, path in enumerate(paths):
            barrier.wait()  # start
            for _ in range(requests):
                connection, ok = post(connection, port, path)
                with answered.get_lock():
                    answered[index] += ok
            barrier.wait()  # done
        connection.close()
    except threading.BrokenBarrierError:
        pass  # the parent or another client gave up; it says why
    except BaseException:
        barrier.abort()  # the parent stops waiting for this client
        raise


def measure_round(port, paths, requests, connections, master, redis_pid, balance):
    """One round: `connections` client processes send `requests` in all to each
    path in turn, over the same connections, so every path meets the same split
    of connections among gunicorn's workers. With `balance`, the clients
    reconnect (up to 50 times) until the split is as even as it can be.
    Returns ({path: (requests per second, gunicorn's CPU ms per request, Redis's)}, split)."""
    context = multiprocessing.get_context("fork")
    barrier, reconnect = context.Barrier(connections + 1), context.Value("b", 0)
    answered = context.Array("l", len(paths))
    share = requests // connections
    clients = [context.Process(target=client, args=(port, paths, share, barrier, reconnect, answered))
               for _ in range(connections)]
    for process in clients:
        process.start()
    try:
        for attempt in range(50):
            barrier.wait()
            held = connection_split(port, master)
            even = held is None or max(held) - min(held) <= 1
            reconnect.value = balance and not even and attempt < 49
            barrier.wait()
            if not reconnect.value:
                break
        results = {}
        for index, path in enumerate(paths):
            barrier.wait()
            workers = gunicorn_workers(master)
            cpu_before, redis_before = cpu_seconds(workers), cpu_seconds([redis_pid])
            started = time.perf_counter()
            barrier.wait()
            seconds = time.perf_counter() - started
            cpu_after, redis_after = cpu_seconds(workers), cpu_seconds([redis_pid])
            if answered[index] != share * connections:
                raise SystemExit(f"{path}: {share * connections - answered[index]} of {share * connections} "
                                 "requests did not get 202.")
            sent = share * connections
            per_request = lambda before, after: None if before is None else (after - before) * 1000 / sent
            results[path] = (sent / seconds, per_request(cpu_before, cpu_after), per_request(redis_before, redis_after))
    except threading.BrokenBarrierError:
        raise SystemExit("A load generator process stopped (its error is above).") from None
    except BaseException:
        barrier.abort()  # the clients stop waiting, and end
        raise
    finally:
        for process in clients:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return results, held


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
    parser.add_argument("--enqueues", type=int, default=1000, help="requests and enqueue calls per route and round, for CPU (1000)")
    parser.add_argument("--split", choices=["even", "any"], default="even",
                        help="even (default): the clients reconnect until each gunicorn worker holds as many "
                             "connections as the other; any: whatever split the workers' accepts give")
    parser.add_argument("--skip", nargs="*", default=[], choices=["trips", "throughput", "workers"])
    args = parser.parse_args()
    app_dir = (ROOT / args.target).resolve()

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="enqueue-bench-") as wrapper:
        wrapper_dir = Path(wrapper)
        (wrapper_dir / "bench_app.py").write_text(BENCH_APP)
        processes = Processes()
        stack.callback(processes.close)
        redis_pids = []
        redis_url = stack.enter_context(services.redis_server(pids=redis_pids))
        endpoint = stack.enter_context(services.s3_server())
        env = base_env(redis_url, endpoint, "bench", 1)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(wrapper_dir), os.environ.get("PYTHONPATH")]))

        if "trips" not in args.skip:
            rows = round_trips(app_dir, redis_url, 200, args.enqueues, args.rounds)
            print(f"1. Redis and CPU per POST /report, in this process (200 requests through Flask's test client, "
                  f"then for CPU {args.enqueues} of each, and {args.enqueues} enqueue calls alone, "
                  f"median of {args.rounds} interleaved rounds)")
            table(["route", "round trips", "commands", "CPU us/request", "CPU us/enqueue", "redis-py parser, packer"],
                  [[path, f"{row['trips']:.1f}", f"{row['commands']:.1f}", f"{row['request_us']:.0f}",
                    "-" if row["enqueue_us"] is None else f"{row['enqueue_us']:.0f}", row["parser"]] for path, row in rows.items()],
                  text_columns=(0, 5))
            now, previous = rows["/report"]["enqueue_us"], rows["/report-previous"]["enqueue_us"]
            print(f"   an enqueue: {now:.0f} us of CPU now, {previous:.0f} us before "
                  f"({previous - now:+.0f} us saved, {1 - now / previous:.0%})")
            inside, noop = rows["/report"]["inside_us"], rows["/noop"]["request_us"]
            rest = inside["request"] - noop - inside["enqueue"] - inside["execute"]
            print(f"   inside {args.enqueues} POST /report requests, timed where the route calls them: "
                  f"{inside['request']:.0f} us each, {noop:.0f} of it as for the no-op route (Flask, the test "
                  f"client), {inside['enqueue']:.0f} in rq's enqueue (the job built, its "
                  f"{rows['/report']['commands']:.0f} commands queued), {inside['execute']:.0f} in redis-py's "
                  f"execute (packed, sent in {rows['/report']['trips']:.0f} round trip, replies parsed), "
                  f"{rest:.0f} the rest (the route's own lines, and Flask's work after the round trip, dearer than "
                  f"in the no-op route)")
            ping = rows["/ping"]
            print(f"   one PING: {ping['enqueue_us']:.0f} us of CPU in a loop of PINGs, "
                  f"{ping['request_us'] - noop:.0f} added to a request (/ping against /noop): a round trip "
                  f"costs the web process more than its command, wherever it is made")
            if rows["/report"]["parser"] == rows["/report-previous"]["parser"]:
                print("   this Python has no hiredis, so /report and /report-previous are the same; "
                      "install requirements-course.txt to compare them")
            print()

        if "throughput" not in args.skip:
            port, master = start_web(processes, app_dir, env, wrapper_dir)
            paths = ("/noop",) + FLOOR + ROUTES
            rates = {path: [] for path in paths}
            cpu = {path: [] for path in paths}
            redis_cpu = {path: [] for path in paths}
            splits = []
            for _ in range(args.rounds):
                results, held = measure_round(port, paths, args.requests, args.connections, master, redis_pids[0],
                                              balance=args.split == "even")
                splits.append("unknown" if held is None else "+".join(map(str, held)))
                for path, (rate, ms, redis_ms) in results.items():
                    rates[path].append(rate)
                    cpu[path].append(ms)
                    redis_cpu[path].append(redis_ms)
            noop = statistics.median(rates["/noop"])
            print(f"2. Throughput, gunicorn (2 workers, gthread), {args.requests} requests x {args.rounds} rounds, "
                  f"{args.connections} connections ({args.split} split among the workers; each round: "
                  f"{', '.join(splits)}), median")
            known = all(None not in values for values in cpu.values())
            rows = []
            for path, r in rates.items():
                row = [path, f"{statistics.median(r):,.0f}", f"{min(r):,.0f}-{max(r):,.0f}",
                       f"{statistics.median(r) / noop:.0%}"]
                if known:
                    row += [f"{statistics.median(cpu[path]):.2f}", f"{statistics.median(redis_cpu[path]):.2f}"]
                rows.append(row)
            # Redis's CPU is spent on the same 2 cores here; in production Redis runs on its own machine.
            table(["route", "req/s", "range", "x no-op"]
                  + (["server CPU ms/request", "Redis CPU ms/request"] if known else []), rows)
            new, previous, old = (statistics.median(rates[path]) for path in ROUTES)
            print(f"   POST /report: {new / noop:.0%} of the no-op route (before: {previous / noop:.0%}, "
                  f"the first shape: {old / noop:.0%}); {new / previous:.2f}x the req/s it had before; "
                  f"one PING per request (/ping): {statistics.median(rates['/ping']) / noop:.0%}")
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
