"""A local stand-in for Heroku's router, in front of `course run`'s web process.

On Heroku every request passes through the router before it reaches a web dyno.
The router waits 30 seconds for the first byte of the response; if none comes, it
answers the browser 503, logs an H12 "Request timeout", and drops the connection to
the dyno, where the app's code goes on running for nobody. This module does the
same on this machine, so the starter's 35 s report shows what it would on Heroku:

    at=error code=H12 desc="Request timeout" method=POST path="/report" ... status=503

Every other request passes through as it came (any method, any body, streamed both
ways) and gets an `at=info` line like Heroku's router logs. The browser's
connection is kept alive between requests, as Heroku's Router 2.0 does; each
request opens its own connection to the web process. Also as on Heroku:
- a web process that is (re)starting is waited for, within the same window (H20
  when it never comes up; Heroku waits 75 s for a booting dyno);
- a connection the app closes without answering is a 503 and H13;
- after the first byte, 55 s without another byte end the response (H15), and an
  app that stops mid-response is an H18.

The 30 s are Heroku's and fixed. The course's own checks shorten them with the
environment variable TIMEOUT_FOR_TESTS names; nothing else should.
"""
import http.client
import os
import re
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from course.services import LOOPBACK, ServiceError

TIMEOUT_FOR_TESTS = "COURSE_TEST_ROUTER_TIMEOUT_SECONDS"
HEROKU_TIMEOUT_SECONDS = 30.0
ROLLING_WINDOW_SECONDS = 55.0  # after the first byte: Heroku's H15 idle window
CLIENT_IDLE_SECONDS = 90.0  # how long a kept-alive browser connection may sit idle
CHUNK = 64 * 1024
DYNO = "web.1"

# Headers about one connection, not the message: never passed on (RFC 9110, section 7.6.1).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
              "proxy-authenticate", "proxy-authorization"}
# Heroku keeps a client's X-Request-ID when it looks like this, and makes one otherwise.
REQUEST_ID = re.compile(r"^[A-Za-z0-9+=/-]{20,200}$")

ERROR_PAGE = (b"<!doctype html>\n<html><head><title>Application error</title></head><body>\n"
              b"<h1>Application error</h1>\n<p>The router gave up waiting for the app "
              b"(see the router's log line for the error code).</p>\n</body></html>\n")

ERRORS = {
    "H12": "Request timeout",
    "H13": "Connection closed without response",
    "H15": "Idle connection",
    "H18": "Server Request Interrupted",
    "H20": "App boot timeout",
    "H27": "Client Request Interrupted",
}


def timeout_seconds(env=os.environ):
    """Heroku's 30 s, unless a check of the course shortened it."""
    value = env.get(TIMEOUT_FOR_TESTS)
    return float(value) if value else HEROKU_TIMEOUT_SECONDS


class _ClientGone(Exception):
    """The browser closed its connection: nobody is left to answer."""


class _Failed(Exception):
    """The request ended in one of Heroku's router errors (`code`)."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


class Router(ThreadingHTTPServer):
    """Listens on `port` (all interfaces, as the web process did before) and passes
    requests to the web process on loopback `web_port`; `log` takes each log line."""

    daemon_threads = True  # a request the app never answers must not hold up the stop
    allow_reuse_address = True  # the connections of a run just stopped do not hold the port
    allow_reuse_port = False  # and a second run cannot share it (some Pythons' HTTPServer allowed that)

    def __init__(self, port, web_port, log, timeout=None):
        self.web_port, self.log = web_port, log
        self.timeout_seconds = timeout_seconds() if timeout is None else timeout
        super().__init__(("0.0.0.0", port), _Handler)

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]  # one line in the run's output, not a traceback between the app's lines
        self.log(f'at=error desc="the local router failed: {type(error).__name__}: {error}"')


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive to the browser
    timeout = CLIENT_IDLE_SECONDS

    def __getattr__(self, name):
        if name.startswith("do_"):  # any method, WebDAV's and made-up ones too, is the app's to judge
            return self._pass_on
        raise AttributeError(name)

    def log_message(self, format, *args):
        pass  # the router writes its own lines, in Heroku's format

    def _pass_on(self):
        router = self.server
        self.sent_bytes, self.status = 0, None
        self.request_id = self._request_id()
        started = time.monotonic()
        connect_ms, code = 0, None
        upstream = None
        try:
            upstream, connect_ms = self._connect(started + router.timeout_seconds)
            self._send_request(upstream)
            forwarded = time.monotonic()
            response = self._first_byte(upstream, forwarded + router.timeout_seconds)
            try:
                self._relay(response)
            finally:
                response.close()
        except _Failed as failure:
            code = failure.code
            if self.status is None and code != "H27":
                self._answer_error()
            else:
                self.close_connection = True  # the answer is cut short: only closing tells the browser
        finally:
            if upstream is not None:
                upstream.close()  # after an H12 the app goes on, writing to nobody
        service_ms = round((time.monotonic() - started) * 1000) - connect_ms
        self._log(code, connect_ms, service_ms)

    # ---------------------------------------------------------------- towards the web process

    def _connect(self, deadline):
        started = time.monotonic()
        while True:
            upstream = http.client.HTTPConnection(LOOPBACK, self.server.web_port, timeout=5)
            try:
                upstream.connect()
                return upstream, round((time.monotonic() - started) * 1000)
            except OSError:
                upstream.close()
                if time.monotonic() >= deadline:
                    self._skip_request_body()
                    raise _Failed("H20")
                time.sleep(0.1)  # the web process is starting or restarting

    def _send_request(self, upstream):
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in HOP_BY_HOP and not name.lower().startswith("x-forwarded-") \
                    and name.lower() not in ("x-request-id", "x-request-start"):
                upstream.putheader(name, value)
        earlier = self.headers.get("X-Forwarded-For")
        upstream.putheader("X-Forwarded-For", f"{earlier}, {self.client_address[0]}" if earlier else self.client_address[0])
        upstream.putheader("X-Forwarded-Proto", "http")
        upstream.putheader("X-Forwarded-Port", str(self.server.server_address[1]))
        upstream.putheader("X-Request-Id", self.request_id)
        upstream.putheader("X-Request-Start", str(round(time.time() * 1000)))
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if chunked:
            upstream.putheader("Transfer-Encoding", "chunked")
        upstream.putheader("Connection", "close")
        upstream.endheaders()
        try:
            for piece in (self._chunked_body() if chunked else self._sized_body()):
                upstream.send(piece)
        except OSError:
            # The app answered (or closed) before taking the whole body; what is left of
            # it in the browser's connection cannot be told from the next request.
            self.close_connection = True

    def _sized_body(self):
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            piece = self._read(min(CHUNK, left))
            left -= len(piece)
            yield piece

    def _chunked_body(self):
        """The browser's chunked body, passed on chunk by chunk, re-framed for the app."""
        while True:
            size_line = self._readline()
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self._readline() not in (b"\r\n", b"\n"):  # trailers, dropped
                    pass
                yield b"0\r\n\r\n"
                return
            data = self._read(size)
            self._readline()
            yield b"%x\r\n%s\r\n" % (size, data)

    def _skip_request_body(self):
        if self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # unread: it would be taken for the next request

    def _read(self, size):
        try:
            data = self.rfile.read(size)
        except OSError:
            data = b""
        if len(data) < size:
            raise _Failed("H27")
        return data

    def _readline(self):
        try:
            line = self.rfile.readline(65537)
        except OSError:
            line = b""
        if not line.endswith(b"\n"):
            raise _Failed("H27")
        return line

    def _first_byte(self, upstream, deadline):
        """The app's status line and headers, or an H12 once `deadline` passes without a byte."""
        sock = upstream.sock  # the response keeps reading from it after the connection lets go
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            response = upstream.getresponse()
        except TimeoutError:
            raise _Failed("H12")
        except (http.client.HTTPException, OSError):
            raise _Failed("H13")
        sock.settimeout(ROLLING_WINDOW_SECONDS)
        return response

    # ---------------------------------------------------------------- towards the browser

    def _relay(self, response):
        self.status = response.status
        sized = response.getheader("Content-Length") is not None and not response.chunked
        bodiless = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP and (sized or bodiless or name.lower() != "content-length"):
                self.send_header(name, value)
        rechunk = not sized and not bodiless and self.request_version == "HTTP/1.1"
        if rechunk:
            self.send_header("Transfer-Encoding", "chunked")
        elif not sized and not bodiless:
            self.close_connection = True  # an HTTP/1.0 browser: the end of the body is the end of the connection
        if self.close_connection:
            self.send_header("Connection", "close")
        self._write_headers()
        while not bodiless:
            try:
                piece = response.read1(CHUNK)
            except TimeoutError:
                raise _Failed("H15")
            except (http.client.HTTPException, OSError):
                raise _Failed("H18")
            if not piece:
                if sized and response.length:
                    raise _Failed("H18")  # the app closed before the Content-Length it promised
                break
            self._write(b"%x\r\n%s\r\n" % (len(piece), piece) if rechunk else piece, len(piece))
        if rechunk:
            self._write(b"0\r\n\r\n", 0)

    def _write_headers(self):
        data = b"".join(self._headers_buffer) + b"\r\n"
        self._headers_buffer = []
        self._write(data, len(data))

    def _write(self, data, counted):
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            raise _Failed("H27")
        self.sent_bytes += counted

    def _answer_error(self):
        """Heroku's answer when the app gave none: 503 and an error page (its bytes are the router's)."""
        try:
            self.send_response_only(503, "Service Unavailable")
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(ERROR_PAGE)))
            self.send_header("Cache-Control", "no-cache, no-store")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(ERROR_PAGE)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    # ---------------------------------------------------------------- the log line

    def _request_id(self):
        given = self.headers.get("X-Request-Id", "")
        return given if REQUEST_ID.match(given) else str(uuid.uuid4())

    def _log(self, code, connect_ms, service_ms):
        status = self.status if code is None or self.status is not None else 503
        if code == "H27" and self.status is None:
            status = 499  # Heroku's status for a browser that left before the answer
        fields = [f"at={'info' if code is None else 'error'}"]
        if code is not None:
            fields += [f"code={code}", f'desc="{ERRORS[code]}"']
        fields += [f"method={self.command}", f'path="{self.path}"', f"host={self.headers.get('Host', '')}",
                   f"request_id={self.request_id}", f'fwd="{self.client_address[0]}"', f"dyno={DYNO}",
                   f"connect={connect_ms}ms", f"service={service_ms}ms", f"status={status}",
                   f"bytes={self.sent_bytes}", "protocol=http"]
        self.server.log(" ".join(fields))


def printer(process_names):
    """A `log` for Router that prints each line as honcho prints the Procfile's processes'
    (time, name, bar), named `router`, to the output of `course run`."""
    width = max(len("system"), len("router"), *(len(f"{name}.1") for name in process_names))
    lock = threading.Lock()
    stream = [sys.stdout]

    def log(line):
        with lock:
            try:
                stream[0].write(f"{time.strftime('%H:%M:%S')} {'router'.ljust(width)} | {line}\n")
                stream[0].flush()
            except (OSError, ValueError):  # the reader is gone (`course run | tee`, after Ctrl-C)
                stream[0] = open(os.devnull, "w")

    return log


@contextmanager
def running(port, web_port, log, timeout=None):
    """A Router on `port` in front of the web process on `web_port`, serving from a
    thread until the block ends. A port taken meanwhile is a ServiceError."""
    try:
        router = Router(port, web_port, log, timeout)
    except OSError as error:
        raise ServiceError(f"the router could not listen on port {port} ({error.strerror}); "
                           "choose another with --port") from None
    serving = threading.Thread(target=router.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    serving.start()
    try:
        yield router
    finally:
        router.shutdown()
        router.server_close()
