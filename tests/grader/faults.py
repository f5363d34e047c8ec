"""A local S3 that breaks on demand: an HTTP proxy in front of moto's server.

Learner code gets the proxy's address as AWS_ENDPOINT_URL. Every request
passes through to the real local S3, except object uploads (PUT /bucket/key),
which the proxy can fail with a 5xx S3 error: the next N of them (a short
outage), or all of them until healed (a long one). It counts the uploads it
saw, so a check can tell how many attempts were made. Like real S3 (and unlike
moto), it refuses a DeleteObjects call with more than 1,000 keys.

And a Redis that hangs (hanging_redis): it takes connections and never answers.
"""
import http.client
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection", "proxy-authorization", "proxy-authenticate"}
ERRORS = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("ServiceUnavailable", "Please reduce your request rate."),
}


class FaultPlan:
    """What the proxy does with object uploads; safe to change from any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._fail_next = 0
        self._fail_all = False
        self.status = 503
        self.uploads = 0   # object PUTs seen
        self.failed = 0    # of those, answered with an injected error

    def fail_next(self, count, status=503):
        with self._lock:
            self._fail_next, self._fail_all, self.status = count, False, status

    def fail_always(self, status=503):
        with self._lock:
            self._fail_all, self.status = True, status

    def heal(self):
        with self._lock:
            self._fail_next, self._fail_all = 0, False

    def take_upload(self):
        """Count one upload; return the status to fail it with, or None to pass it on."""
        with self._lock:
            self.uploads += 1
            if self._fail_all or self._fail_next > 0:
                self._fail_next = max(0, self._fail_next - 1)
                self.failed += 1
                return self.status
            return None


# S3's DeleteObjects takes at most 1,000 keys a call; moto takes any number, real S3
# answers 400 MalformedXML. The proxy answers as S3 does.
MAX_DELETE_KEYS = 1000
MALFORMED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>MalformedXML</Code><Message>The XML you '
             b'provided was not well-formed or did not validate against our published schema</Message>'
             b'<RequestId>course-proxy</RequestId></Error>')


def _is_bulk_delete(method, path):
    return method == "POST" and "delete" in urlsplit(path).query.split("&")


def _is_object_upload(method, path):
    # Path-style addressing (the local S3 is an IP address): /bucket/key...
    parts = urlsplit(path).path.strip("/").split("/", 1)
    return method == "PUT" and len(parts) == 2 and parts[1] != ""


def _handler(upstream_host, upstream_port, plan):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: one line per request would drown the grader's output
            pass

        def _body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status, headers, body):
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self):
            body = self._body()
            if _is_bulk_delete(self.command, self.path) and body.count(b"<Object>") > MAX_DELETE_KEYS:
                return self._send(400, [("Content-Type", "application/xml")], MALFORMED)
            if _is_object_upload(self.command, self.path):
                status = plan.take_upload()
                if status:
                    code, message = ERRORS.get(status, ERRORS[503])
                    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                           f"<Message>{message}</Message><RequestId>injected-fault</RequestId></Error>").encode()
                    return self._send(status, [("Content-Type", "application/xml")], xml)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            connection = http.client.HTTPConnection(upstream_host, upstream_port, timeout=30)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self._send(response.status, response.getheaders(), data)
            finally:
                connection.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


@contextmanager
def s3_fault_proxy(upstream):
    """Yield (endpoint URL, FaultPlan) for a proxy in front of the S3 at `upstream`."""
    parts = urlsplit(upstream)
    plan = FaultPlan()
    server = ThreadingHTTPServer((LOOPBACK, 0), _handler(parts.hostname, parts.port, plan))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}", plan
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def hanging_redis():
    """Yield a redis:// URL whose server takes every connection and never answers:
    a Redis that hangs (overloaded, swapping, or cut off by a network that drops
    packets), where a refused connection would be a Redis that is down. A client
    waits for its socket timeout, then redis-py raises TimeoutError."""
    listener = socket.create_server((LOOPBACK, 0))
    listener.settimeout(0.1)
    held, stop = [], threading.Event()

    def take():
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # kept open, never read from or written to
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    try:
        yield f"redis://{LOOPBACK}:{listener.getsockname()[1]}/0"
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for connection in held:
            connection.close()
