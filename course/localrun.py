"""`python3 -m course run`: the whole app on this machine, as Heroku runs it.

Starts what the environment does not already name (a Redis server unless
REDIS_URL is set, reached as Heroku's is with --heroku-redis; a local S3 with
the bucket made unless S3_BUCKET is set without AWS_ENDPOINT_URL), then the
Procfile's web and worker processes with honcho. Ctrl-C stops everything it
started.
"""
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from course import ROOT, dyno, restart, router, services, stages

LOCAL_BUCKET = "reports"


def _use_real_s3(env):
    return bool(env.get("S3_BUCKET")) and not env.get("AWS_ENDPOINT_URL")


def _port_is_free(port):
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the router binds: a listener blocks, TIME_WAIT does not
        try:
            probe.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def _stop(signum, frame):
    raise KeyboardInterrupt  # Ctrl-C, an IDE's stop button or `kill`: stop everything the same way


def _say(text):
    """print, that survives a reader gone (`course run | tee` after Ctrl-C)."""
    try:
        print(text, flush=True)
    except OSError:
        sys.stdout = open(os.devnull, "w")


def _become_subreaper():
    """On Linux, orphans of the processes started here (a worker's detached child, a
    daemon) re-parent to this process instead of init, so _sweep() finds them."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def _sweep():
    """Kill every process still running below this one, found by ancestry: whatever
    the Procfile's processes left behind, even if it changed its session or environment."""
    parents = {}
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc").is_dir() else ():
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            if fields[0] != b"Z":
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    todo, found = list(parents.get(os.getpid(), ())), []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, ()))
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for pid in found:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return found


def _shown(path):
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


# What another terminal needs to reach the same Redis and S3 (a worker run by hand, rq info).
SHARED = ("REDIS_URL", "S3_BUCKET", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
          "AWS_DEFAULT_REGION", "REPORT_SECONDS", "REPORT_BROKEN_SECTIONS")


def run(app_dir="solution", port=None, with_worker=False, web_only=False, heroku_redis=False):
    app_path = (ROOT / app_dir).resolve() if not Path(app_dir).is_absolute() else Path(app_dir)
    if not (app_path / "app.py").exists():
        print(f"course: {app_path} has no app.py; name an app folder such as solution or starter.", file=sys.stderr)
        return 2
    port = int(port or os.environ.get("PORT") or services.free_port())
    if not _port_is_free(port):
        print(f"course: port {port} is in use (on macOS, AirPlay takes 5000). Choose another with --port, "
              "or leave it out to get a free one.", file=sys.stderr)
        return 2
    # The app's own Procfile (solution/ has one), else the one beside it: yours.
    procfile = stages.project_folder(app_path) / "Procfile"
    commands = dict(re.findall(r"^(web|worker):\s*(.+)$", procfile.read_text(), re.MULTILINE))
    if web_only:
        commands.pop("worker", None)
        print("course: --web-only: start workers yourself, in a terminal with the settings below.")
    elif "worker" not in commands and with_worker and (app_path / "worker.py").exists():
        commands["worker"] = 'cd "$APP_DIR" && exec python worker.py'
        print(f"course: {_shown(procfile)} has no worker yet (unit 04 adds it): --worker runs `python worker.py`.")
    elif "worker" not in commands:
        print(f"course: {_shown(procfile)} has no worker process yet, so only the web process runs"
              + (" (add --worker to run worker.py beside it)." if (app_path / "worker.py").exists() else "."))
    # Set both: a process started in the background may inherit SIGINT ignored.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    env = dict(os.environ)
    _become_subreaper()
    try:
        return _serve(env, commands, app_path, procfile, port, heroku_redis)
    finally:
        _sweep()


def _serve(env, commands, app_path, procfile, port, heroku_redis=False):
    redis_pids = []
    with ExitStack() as stack:
        try:
            if env.get("REDIS_URL"):
                print("course: using Redis from REDIS_URL" + (" (so --heroku-redis starts none)" if heroku_redis else ""))
            elif heroku_redis:
                env["REDIS_URL"] = _heroku_like_redis(stack, redis_pids)
            else:
                # Append-only: a job queued before Redis restarts is still there after it.
                env["REDIS_URL"] = stack.enter_context(services.redis_server(appendonly=True, pids=redis_pids))
                print(f"course: Redis   {env['REDIS_URL']} (append-only file: its data lasts the session)")
            if _use_real_s3(env):
                print(f"course: using the S3 bucket {env['S3_BUCKET']} on AWS")
            else:
                endpoint = env.get("AWS_ENDPOINT_URL") or stack.enter_context(services.s3_server())
                bucket = env.get("S3_BUCKET", LOCAL_BUCKET)
                env.update(services.s3_environment(endpoint, bucket))
                client = services.s3_client(endpoint)
                if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                    client.create_bucket(Bucket=bucket)
                print(f"course: S3      {endpoint} (local; bucket {bucket})")
            # As on Heroku, a router takes the browser's requests and passes them to the web process.
            web_port = services.free_port()
            stack.enter_context(router.running(port, web_port, router.printer(commands)))
            print(f"course: router  port {port} -> web on port {web_port} ({router.timeout_seconds():g} s to the first byte, as on Heroku)")
        except services.ServiceError as error:
            print(f"course: {error}", file=sys.stderr)
            return 1
        env["APP_DIR"] = str(app_path)
        env["PORT"] = str(web_port)
        env.setdefault("REPORT_SECONDS", "35")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(services.fork_safety_environment())  # macOS: rq's forking worker (see unit 03)
        # .venv's bin/ first, so the Procfile's `gunicorn` and `python` are the pinned ones.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
        print(f"course: app     {_shown(app_path)} (REPORT_SECONDS={env['REPORT_SECONDS']})")
        print(f"\n  Open http://127.0.0.1:{port}/   (Ctrl-C stops everything)\n")
        shared = " ".join(f"{name}={shlex.quote(env[name])}" for name in SHARED if env.get(name))
        print(f"  Another terminal reaches the same Redis and S3 after:\n  export {shared}\n", flush=True)
        print(f"  Another terminal restarts a process type as Heroku restarts a dyno:\n"
              f"  python3 -m course restart {'worker' if 'worker' in commands else 'web'}\n", flush=True)
        # honcho reads the processes from a Procfile of exactly what runs, each as a dyno (dyno.py).
        run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="course-run-")))
        dynos = stack.enter_context(restart.registered(port))  # where `course restart` finds them
        (run_dir / "Procfile").write_text("".join(f"{kind}: {dyno.procfile_command(kind, command, dynos)}\n"
                                                  for kind, command in commands.items()))
        honcho = dyno.honcho_command(["start", "--no-colour", "-f", str(run_dir / "Procfile"),
                                      "-d", str(procfile.parent)])
        guard = subprocess.Popen([sys.executable, "-m", "course.localrun", *map(str, redis_pids), "--", *honcho],
                                 env=env, stdin=subprocess.PIPE)
        try:
            return guard.wait()
        except KeyboardInterrupt:
            _stop_guard(guard)
            _say(f"\ncourse: stopped {', '.join(commands)}, Redis and the local S3.")
            return 0


def _heroku_like_redis(stack, redis_pids):
    """A local Redis reached as Heroku's is: a password, and TLS with a self-signed
    certificate in front (rediss://:<password>@host:port). Returns its URL."""
    plain = stack.enter_context(services.redis_server(appendonly=True, pids=redis_pids,
                                                      password=services.new_password()))
    url, _ca = stack.enter_context(services.tls_front(plain))
    print(f"course: Redis   {url} (as Heroku's: TLS with a self-signed certificate, and a password; "
          "append-only file: its data lasts the session)")
    # The rq command builds its client from the URL alone, and checks the certificate.
    print("course: for `rq info --url`, end the URL with ?ssl_cert_reqs=none, as on Heroku")
    return url


def _stop_guard(guard):
    try:
        guard.stdin.write(STOP)
        guard.stdin.close()
    except OSError:
        pass
    try:
        guard.wait(dyno.stop_seconds() + 15)
    except subprocess.TimeoutExpired:
        guard.kill()
        guard.wait()


# ---------------------------------------------------------------- the guard
# `course run` starts honcho through a small guard process. It passes honcho's
# output on (and keeps reading it when nobody reads ours any more: `run | tee`
# after Ctrl-C), and it holds a pipe from `course run`: a stop request stops
# honcho; the pipe closing without one means `course run` was killed, so the
# guard stops honcho (which stops the Procfile's processes) and Redis itself.
# That works on every POSIX system, where a parent-death signal is Linux's alone.

STOP = b"stop\n"


def _forward(source):
    out = sys.stdout.buffer
    for line in iter(source.readline, b""):
        try:
            out.write(line)
            out.flush()
        except OSError:  # our reader is gone: keep draining, so honcho never blocks or fails
            out = open(os.devnull, "wb")


def guard(redis_pids, command):
    import threading
    import time

    # A terminal's Ctrl-C, or a SIGTERM to the whole group, is `course run`'s to handle: it
    # then asks for a stop. The guard itself ends only when its pipe from `course run` does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    honcho = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # sets its own handlers
    forward = threading.Thread(target=_forward, args=(honcho.stdout,), daemon=True)
    forward.start()
    said = []
    lifeline = threading.Thread(target=lambda: said.append(sys.stdin.buffer.read()), daemon=True)
    lifeline.start()
    while honcho.poll() is None and lifeline.is_alive():
        time.sleep(0.1)
    asked = said == [STOP]
    if honcho.poll() is None:
        honcho.send_signal(signal.SIGINT if asked else signal.SIGTERM)
        try:
            honcho.wait(dyno.stop_seconds() + 10)  # each dyno: SIGTERM, then SIGKILL after the grace
        except subprocess.TimeoutExpired:
            honcho.kill()
            honcho.wait()
    forward.join(5)
    if said and not asked:  # `course run` is gone without a word, and cannot stop Redis itself
        for pid in redis_pids:
            if services.process_alive(pid):
                os.kill(pid, signal.SIGTERM)
    return honcho.returncode


if __name__ == "__main__":
    split = sys.argv.index("--")
    code = guard([int(p) for p in sys.argv[1:split]], sys.argv[split + 1:])
    sys.stdout.flush()
    # Not SystemExit: the lifeline thread may still be reading stdin (honcho ended by itself), and
    # the interpreter's shutdown then aborts with "Fatal Python error: _enter_buffered_busy".
    os._exit(code if 0 <= code < 256 else 1)
