"""A Python that has already imported the course's libraries and starts learner
processes by forking itself (Linux only; see grader.spawning.spawn).

Each learner process (a worker, gunicorn, a probe) would otherwise spend most of
a second of CPU importing Flask, rq, redis, boto3 and reportlab before its first
line of learner code runs; a unit's checks start dozens of them. A forked copy of
this process starts with those modules imported and runs the learner's code as
`python script.py`, `python -m module`, `rq ...` or `gunicorn ...` would, in a
session of its own, with the environment, working folder, arguments and output
the grader asked for. It imports learner code only after the fork, so no learner
code runs in this process.

Whatever it cannot start that way exactly (another program, a shell line with
more than `cd DIR && exec PROGRAM ARGS` in words of quotes and $VAR or
${VAR:-default}, as a Procfile's are, a learner file named like a preloaded
module, an interpreter option it does not know) it execs instead, in the same
forked process: the plain start, at the plain cost.

    python preload.py FD [padding ...]

FD is one end of a socket pair the grader keeps the other end of: no path names
it, so no other process can ask this one for anything, and every process it
forks closes it. Requests come on it as one message each: JSON {args, cwd, env,
shell, rules} with two descriptors attached, the output file and a socket the
answer goes to: the new process's pid on a line, then "exit CODE" on a line when
it ends. `rules` is the sandbox (course/sandbox.py) the new process is confined
to before any learner code runs. The empty padding arguments leave room in this
process's command line for each forked process to show its own (what `ps` and
the grader's leak messages print).

This file is run as a script, not imported: of the grader it imports only start_plan.py
(how to start a request) beside it, and of the course its sandbox.
"""
import builtins
import ctypes
import gc
import importlib.machinery
import io
import json
import os
import re
import runpy
import selectors
import signal
import socket
import sys
import traceback
import types

STARTUP_MODULES = set(sys.modules)
# The course's sandbox (course/sandbox.py, standard library only); after STARTUP_MODULES, so
# that a learner file named course.py is started plainly, as a preloaded module's namesake is.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from course import sandbox  # noqa: E402
del sys.path[0]
from start_plan import plan, search_path  # noqa: E402  (beside this file)
PRELOAD = ("flask", "werkzeug.serving", "jinja2", "redis", "rq", "rq.worker", "rq.job", "rq.queue",
           "rq.serializers", "rq.registry", "rq.scheduler", "rq.cli", "boto3", "boto3.s3.transfer",
           "botocore.session", "botocore.client", "reportlab.platypus", "reportlab.pdfgen.canvas",
           "reportlab.lib.pagesizes", "reportlab.lib.styles", "json", "uuid", "logging")
# Not gunicorn: its settings read PORT and WEB_CONCURRENCY when it is imported.


def preload():
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # a library the course does not pin here: started plainly when needed
            pass
    # Top-level names a learner file could shadow in a plain start (its folder comes first on sys.path).
    return {name.split(".")[0] for name in sys.modules if name not in STARTUP_MODULES}


def warm_boto3():
    """Load the data a boto3 S3 client or resource is built from (the S3 API, its
    endpoint rules, its resource definitions, the partitions) into boto3's default
    session, the one boto3.client() and boto3.resource() use, and build one throwaway
    client in a session of its own (its first-time set-up is then done): otherwise every
    learner process that makes a client spends 40-70 ms of CPU on it. The default
    session makes no client and nothing is asked of AWS: region, endpoint and
    credentials are still read from the learner's environment when its code makes
    its client, as in a plain start."""
    try:
        import boto3
        import botocore.loaders
        import botocore.session

        core = botocore.session.get_session()
        # The loader a plain start would make, but without reading the AWS config files
        # for a data_path: they are the grader's (this process has no HOME of its own),
        # perhaps with keys in them, and must never be read into a learner's process.
        # A learner process's HOME is an empty folder, so it has none to read either.
        loader = botocore.loaders.create_loader(os.environ.get("AWS_DATA_PATH"))
        core.register_component("data_loader", loader)
        boto3.setup_default_session(botocore_session=core)
        for name in ("endpoints", "partitions", "sdk-default-configuration"):
            loader.load_data(name)
        latest = loader.determine_latest_version("s3", "service-2")
        for kind in ("service-2", "endpoint-rule-set-1", "resources-1"):  # resources-1: boto3.resource's
            # Cached by the call's exact form: by name or by place, None or the version, as callers differ.
            for version in (None, latest):
                loader.load_service_model("s3", kind, api_version=version)
                loader.load_service_model("s3", kind, version)
        throwaway = botocore.session.Session()
        for name in ("config_file", "credentials_file"):  # the grader's HOME: not to be read, as above
            throwaway.set_config_variable(name, os.devnull)
        throwaway.register_component("data_loader", loader)
        throwaway.create_client("s3", region_name="us-east-1", aws_access_key_id="course-warm-up",
                                aws_secret_access_key="course-warm-up")
    except Exception:  # a library the course does not pin here: no warm session
        pass


# ---------------------------------------------------------------- the forked process

def title_area():
    """(start, end) of this process's own command line in its memory, or None. Checked
    once, before any fork: the kernel must report it, it must lie in a writable mapping
    (its stack), and it must hold what this process was started with; else forked
    processes keep this process's command line rather than write blind."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])
        if not 0 < start < end:
            return None
        with open("/proc/self/maps") as f:
            for line in f:
                span, perms = line.split()[:2]
                low, high = (int(x, 16) for x in span.split("-"))
                if low <= start and end <= high and perms.startswith("rw"):
                    break
            else:
                return None
        expected = "\0".join(sys.orig_argv).encode()
        held = ctypes.string_at(start, end - start)
        return (start, end) if held.startswith(expected[:end - start]) else None
    except (OSError, IndexError, ValueError, AttributeError):
        return None


def show_as(area, argv):
    """Rewrite this process's command line (what /proc/PID/cmdline and ps show) in place."""
    if area is not None:
        start, end = area
        text = "\0".join(argv).encode(errors="replace")[:end - start - 1]
        ctypes.memmove(start, text + b"\0" * (end - start - len(text)), end - start)


def take_request(request, out_fd, venv_bin, shadowable, area):
    """In the forked process: take the request's session, output, folder and
    environment; exec a plain start, or return what to run here."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    for fd in (null, out_fd):
        if fd > 2:
            os.close(fd)
    env = dict(request["env"])
    decided = plan(request["args"], request["shell"], request["cwd"], env, venv_bin, shadowable)
    confine(request.get("rules"))
    if decided[0] == "exec":
        _, cwd, argv = decided
        try:
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        except OSError as error:
            os.write(2, f"{argv[0]}: {error.strerror}\n".encode())
            os._exit(127)
    _, cwd, argv, kind, target = decided
    os.chdir(cwd)
    if request["shell"]:  # what bash would have exported on its way to exec
        env.update(PWD=cwd, SHLVL=env.get("SHLVL", "1"), _=argv[0] if kind != "script" else sys.executable)
    os.environ.clear()
    os.environ.update(env)
    sys.path[:1] = search_path(kind, target, cwd, env, venv_bin)
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    if env.get("PYTHONUNBUFFERED"):  # as `python -u` makes them: no buffer below the text layer
        for name in ("stdout", "stderr"):
            old = getattr(sys, name)
            new = io.TextIOWrapper(io.FileIO(old.fileno(), "w", closefd=False), encoding=old.encoding,
                                   errors=old.errors, write_through=True)
            setattr(sys, name, new)
            setattr(sys, f"__{name}__", new)
    shown = [sys.executable, *argv] if kind in ("script",) else (
        [sys.executable, "-m", target, *argv[1:]] if kind == "module" else argv)
    show_as(area, shown)
    sys.argv = list(argv)
    return kind, target


def confine(rules):
    """Enter the sandbox, or end here: learner code never runs outside it."""
    if rules is None:
        return
    try:
        sandbox.apply(rules)
    except OSError as error:
        os.write(2, f"the grader could not confine this process: {error}\n".encode())
        os._exit(126)


def starting_frame(filename):
    """Whether a traceback frame is this file's or runpy's: not there in a plain start."""
    return filename in (__file__, runpy.__file__) or filename.startswith("<frozen runpy")


def run(kind, target):
    """Run the learner's program as the plain start would, at the top of this process."""
    try:
        if kind == "script":  # as the interpreter runs a script: in a fresh __main__, argv as given
            main = types.ModuleType("__main__")
            main.__dict__.update(__file__=target, __cached__=None, __spec__=None, __builtins__=builtins,
                                 __loader__=importlib.machinery.SourceFileLoader("__main__", target))
            sys.modules["__main__"] = main
            with open(target, "rb") as source:
                code = compile(source.read(), target, "exec")
            exec(code, main.__dict__)
        elif kind == "module":
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
            if kind == "rq":
                from rq.cli import main
            else:
                from gunicorn.app.wsgiapp import run as main
            sys.exit(main())
    except SystemExit:
        raise
    except BaseException as error:  # as the interpreter prints it, without this file's frames
        tb = error.__traceback__
        while tb is not None and starting_frame(tb.tb_frame.f_code.co_filename):
            tb = tb.tb_next
        traceback.print_exception(type(error), error, tb)
        sys.stderr.flush()
        if isinstance(error, KeyboardInterrupt):
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        sys.exit(1)


# ---------------------------------------------------------------- the server

def receive(control):
    """One request and its two descriptors (output, answer socket); (None, None, None)
    for a message that is not one; raises EOFError when the grader has gone."""
    data, fds, _flags, _addr = socket.recv_fds(control, 1 << 20, 2)
    if not data and not fds:
        raise EOFError
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        return None, None, None
    try:
        return json.loads(data), fds[0], socket.socket(fileno=fds[1])
    except ValueError:
        for fd in fds:
            os.close(fd)
        return None, None, None


def prepare():
    """Import everything and freeze it; return the names a learner file could shadow.
    Every forked process would otherwise walk all the preloaded objects at each full
    collection and again when it exits, and each walk writes to them (the collector's
    counts), copying the shared pages one by one. Frozen, they are out of the
    collector's sight; the learner's own objects are collected as usual."""
    gc.disable()  # no collections while importing: they would only find live modules
    shadowable = preload()
    warm_boto3()
    gc.freeze()
    gc.enable()
    return shadowable


def report_exits(waiting):
    """Reap the forked processes that ended; tell each one's grader connection its exit code."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = waiting.pop(pid, None)
        if conn is not None:
            try:
                conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            except OSError:
                pass
            conn.close()


def serve(control_fd):
    """Answer requests until the grader that started this process goes. Returns
    only in a forked process, with what that process is to run."""
    parent = os.getppid()
    venv_bin = os.path.dirname(os.path.abspath(sys.executable))
    shadowable = prepare()
    area = title_area()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    control = socket.socket(fileno=control_fd)
    control.sendall(b"ready")  # everything is imported
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    waiting = {}  # pid -> the connection its exit is reported on
    while True:
        for key, _ in selector.select(timeout=1):
            if key.fileobj is control:
                try:
                    request, out_fd, conn = receive(control)
                except (EOFError, ConnectionError):
                    os._exit(0)  # the grader closed its end: it is gone
                except OSError:
                    continue
                if request is None:
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    selector.close()
                    for fd in (control.fileno(), wake_r, wake_w, conn.fileno(),
                               *(c.fileno() for c in waiting.values())):
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                    return take_request(request, out_fd, venv_bin, shadowable, area)
                os.close(out_fd)
                try:
                    conn.sendall(f"{pid}\n".encode())
                except OSError:
                    pass
                waiting[pid] = conn
            else:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
        report_exits(waiting)
        if os.getppid() != parent:  # the grader is gone: so is the reason to be here
            os._exit(0)


if __name__ == "__main__":
    run(*serve(int(sys.argv[1])))
