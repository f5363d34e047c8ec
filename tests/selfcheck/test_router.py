"""The local router (course/router.py) in front of a small app, in this process:
what passes through unchanged, and what the router does when the app is slow.

`course run` itself, with the router in front of the real starter, is checked in
local_run_scenarios.py."""
import http.client
import threading
import time

import pytest
from flask import Flask, Response, request
from werkzeug.serving import make_server

from course import router, services
from grader.processes import wait_until

SHORT_TIMEOUT = 0.5  # seconds: the router's window for these checks


@pytest.fixture
def web():
    """A small app on a free loopback port (what the web process is to the router)."""
    app = Flask(__name__)
    app.finished = threading.Event()

    @app.route("/echo", methods=["GET", "POST", "PUT", "DELETE", "PROPFIND"])
    def echo():
        return Response(request.method.encode() + b" " + request.get_data(), status=201,
                        headers={"X-Seen-Request-Id": request.headers.get("X-Request-Id", ""),
                                 "X-Seen-Forwarded-For": request.headers.get("X-Forwarded-For", "")})

    @app.get("/stream")
    def stream():
        def parts():
            for number in range(3):
                yield f"part {number}\n"
                time.sleep(0.2)
        return Response(parts(), mimetype="text/plain")

    @app.post("/slow")
    def slow():
        time.sleep(SHORT_TIMEOUT * 3)
        app.finished.set()
        return "too late"

    server = make_server("127.0.0.1", services.free_port(), app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    yield app, server.server_port
    server.shutdown()
    server.server_close()


@pytest.fixture
def routed(web):
    """(the app, a keep-alive connection to a router in front of it, the router's log lines)."""
    app, web_port = web
    lines = []
    port = services.free_port()
    with router.running(port, web_port, lines.append, timeout=SHORT_TIMEOUT):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        yield app, connection, lines
        connection.close()


def _logged(lines, count):
    """The router's log lines once it has written `count` of them: it writes a
    request's line when the answer is sent, a moment after the client has read it."""
    wait_until(lambda: len(lines) >= count, 5)
    return lines


def _ask(connection, method, path, **kwargs):
    connection.request(method, path, **kwargs)
    response = connection.getresponse()
    return response, response.read()


def test_requests_pass_through_on_one_kept_alive_connection(routed):
    _, connection, lines = routed
    response, body = _ask(connection, "POST", "/echo", body=b"x" * 300_000)
    assert (response.status, body) == (201, b"POST " + b"x" * 300_000)
    sock = connection.sock
    response, body = _ask(connection, "PROPFIND", "/echo", body=iter([b"in ", b"chunks"]), encode_chunked=True,
                          headers={"Transfer-Encoding": "chunked"})
    assert (response.status, body) == (201, b"PROPFIND in chunks")
    response, body = _ask(connection, "GET", "/nowhere")
    assert response.status == 404 and b"Not Found" in body
    assert connection.sock is sock, "the router closed the browser's connection between requests"
    _logged(lines, 3)
    assert len(lines) == 3 and all(line.startswith("at=info method=") for line in lines), lines
    assert 'method=POST path="/echo"' in lines[0] and "status=201" in lines[0] and "dyno=web.1" in lines[0]
    assert 'path="/nowhere"' in lines[2] and "status=404" in lines[2]


def test_the_app_sees_heroku_s_request_headers(routed):
    _, connection, lines = routed
    response, _ = _ask(connection, "GET", "/echo", headers={"X-Request-Id": "a-request-id-of-my-own-42"})
    assert response.getheader("X-Seen-Request-Id") == "a-request-id-of-my-own-42"
    assert response.getheader("X-Seen-Forwarded-For") == "127.0.0.1"
    assert "request_id=a-request-id-of-my-own-42" in _logged(lines, 1)[0]


def test_a_streamed_answer_arrives_in_parts(routed):
    _, connection, _ = routed
    connection.request("GET", "/stream")
    response = connection.getresponse()
    started = time.monotonic()
    first = response.readline()
    first_seconds = time.monotonic() - started
    rest = response.read()
    assert first + rest == b"part 0\npart 1\npart 2\n"
    assert first_seconds < 0.3, f"the first part came after {first_seconds:.1f} s: the router held the answer back"


def test_no_first_byte_in_time_is_a_503_and_an_h12_while_the_app_goes_on(routed):
    app, connection, lines = routed
    started = time.monotonic()
    response, body = _ask(connection, "POST", "/slow")
    seconds = time.monotonic() - started
    assert response.status == 503 and b"Application error" in body
    assert SHORT_TIMEOUT <= seconds < SHORT_TIMEOUT + 0.4, f"the 503 came after {seconds:.2f} s"
    _logged(lines, 1)
    assert lines and lines[-1].startswith('at=error code=H12 desc="Request timeout" method=POST path="/slow"'), lines
    assert "status=503 bytes=0" in lines[-1]
    assert not app.finished.is_set()
    assert app.finished.wait(SHORT_TIMEOUT * 5), "the app's request stopped when the router gave up"
    response, body = _ask(connection, "GET", "/echo")  # the browser's connection is still usable
    assert (response.status, body) == (201, b"GET ")


def test_the_window_is_heroku_s_30_s_unless_a_check_shortens_it():
    assert router.timeout_seconds({}) == 30
    assert router.timeout_seconds({router.TIMEOUT_FOR_TESTS: "2.5"}) == 2.5
