"""`watch`'s warm grading runs (course.warm): pytest processes kept up between
gradings must grade exactly as a run of their own would, see every save, stand in
for nothing when they die, and leave nothing running when `watch` stops."""
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from course import ROOT, grading, manifest, services, stages, warm
from course import browser as course_browser
from grader.processes import command_line, descendants



def outcomes(run):
    return {(code, c["check"]): c["outcome"] for code, unit in run.units.items() for c in unit["checks"]}


@pytest.fixture
def lanes():
    held = warm.WarmLanes()
    yield held
    held.close()


def ready_host(lanes, unit=None):
    """One warm run, warmed up on `unit`'s checks (unit 01's if none is named)."""
    lanes.prepare(1, (unit or manifest.unit(1)).tests)
    host = lanes.host(0)
    assert host.ready()
    return host


def test_a_warm_run_sees_each_save_and_grades_as_a_run_of_its_own(tmp_path, lanes):
    """The starter fails unit 02; saving unit 02's files into the same folder makes it
    pass. A warm run sees both, and its verdicts are a cold run's, check by check."""
    unit, folder = manifest.unit(2), tmp_path / "app"
    stages.write_stage(1, folder)
    lanes.prepare(1, unit.tests)
    before = grading.run_in_lanes([unit], folder, record=False, count=1, warm_lanes=lanes)
    assert before.units and not grading.passed(before.units["02"]), before.output
    stages.write_stage(2, tmp_path / "saved")
    shutil.copytree(tmp_path / "saved", folder, dirs_exist_ok=True)  # the learner saves unit 02's work
    after = grading.run_in_lanes([unit], folder, record=False, count=1, warm_lanes=lanes)
    cold = grading.run_in_lanes([unit], folder, record=False, count=1)
    assert outcomes(after) == outcomes(cold), after.output
    assert grading.passed(after.units["02"]), after.output
    assert [h.popen.pid for h in lanes.hosts] == [lanes.host(0).popen.pid]  # the same process graded both


def test_a_warm_run_that_died_is_replaced_by_a_run_of_its_own(tmp_path, lanes):
    unit, folder = manifest.unit(1), tmp_path / "app"
    shutil.copytree(ROOT / "solution", folder, ignore=shutil.ignore_patterns(*stages.IGNORED))
    lanes.prepare(1, unit.tests)
    host = lanes.host(0)
    assert host.ready()
    # Its preloaded Python's socket folder: a process killed outright cannot remove it.
    folders = {Path(arg).parent for pid in descendants([host.popen.pid])
               for arg in command_line(pid).split() if arg.endswith("/socket")}
    host.popen.kill()
    host.popen.wait()
    try:
        run = grading.run_grader([unit], folder, record=False, checks={"test_challenge"}, host=host)
    finally:
        for socket_folder in folders:
            shutil.rmtree(socket_folder, ignore_errors=True)
    assert outcomes(run) == {("01", "test_challenge"): "passed"}, run.output


def test_closing_the_warm_runs_leaves_nothing_running(lanes):
    lanes.prepare(2, manifest.unit(1).tests)
    assert all(h.ready() for h in lanes.hosts)
    below = descendants([h.popen.pid for h in lanes.hosts])
    assert {h.popen.pid for h in lanes.hosts} <= below  # and, on Linux, each one's preloaded Python
    lanes.close()
    assert not descendants(below), "processes outlived the warm runs"


def test_a_warm_run_kills_what_a_grading_left_behind(tmp_path, lanes):
    """Each check stops its own processes; should one ever be left, the warm run kills it
    after the grading, so the next grading is not blamed for it."""
    host = ready_host(lanes)
    test = tmp_path / "test_leave_one.py"
    test.write_text("import subprocess\n"
                    "def test_leaves_a_process():\n"
                    "    subprocess.Popen(['sleep', '60'])\n")
    output = tmp_path / "output.txt"
    assert host.run([str(test), "-q", "-p", "no:cacheprovider"], dict(os.environ), output) == 0, output.read_text()
    assert host.swept == 1
    below = descendants([host.popen.pid]) - {host.popen.pid}
    assert all("preload.py" in command_line(pid) for pid in below), "only its preloaded Python is left"


def serve_a_page():
    """A plain page on a free loopback port, in a thread; returns (its URL, the server)."""
    server = http.server.ThreadingHTTPServer((services.LOOPBACK, 0), PlainPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://{services.LOOPBACK}:{server.server_port}/", server


class PlainPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>a student's page</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_kept_browser_gives_each_check_a_context_of_its_own():
    """The browser stays up between checks (and between students, in a warm run); what one
    student's page stored (a cookie, local storage) must not be there for the next."""
    from grader import browser

    browser.chromium()  # skipped, saying why, where there is none
    url, server = serve_a_page()
    try:
        with browser.open_page(url) as page:
            page.evaluate("document.cookie = 'student=ada; path=/'; localStorage.setItem('student', 'ada')")
            assert page.evaluate("document.cookie") == "student=ada"
            kept = browser._Kept.browser
        with browser.open_page(url) as page:
            left = page.evaluate("[document.cookie, localStorage.getItem('student')]")
        assert browser._Kept.browser is kept, "the browser was started again for the second check"
        assert left == ["", None], f"the second check's page found the first one's {left}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_warm_run_keeps_its_browser_between_gradings_and_stops_it_at_the_end(tmp_path, lanes):
    """Unit 05's page check in one warm run twice: both pass, in the same browser (not
    started again: that is the second or so it saves), nothing is swept as left behind, and
    closing the run leaves no browser process running."""
    binary, why = course_browser.find(obtain=False)
    if binary is None:
        pytest.skip(why)
    unit, folder = manifest.unit(5), tmp_path / "app"
    shutil.copytree(ROOT / "solution", folder, ignore=shutil.ignore_patterns(*stages.IGNORED))
    host = ready_host(lanes, unit)

    def grade_and_find_the_browser():
        run = grading.run_grader([unit], folder, record=False, checks={"test_page_shows_progress_then_the_link"},
                                 host=host)
        assert outcomes(run) == {("05", "test_page_shows_progress_then_the_link"): "passed"}, run.output
        assert host.swept == 0, "the warm run swept up processes after the grading"
        return {pid for pid in descendants([host.popen.pid]) if "run-driver" in command_line(pid)}

    first = grade_and_find_the_browser()
    assert first, "no browser driver runs below the warm run after a page check"
    assert grade_and_find_the_browser() == first
    below = descendants([host.popen.pid])
    lanes.close()
    assert not descendants(below), "the browser outlived the warm run"


def test_a_warm_run_gives_each_grading_an_empty_s3(tmp_path, lanes):
    """moto keeps buckets in the process, not the server: a warm run's next grading (the
    next student's, in `course class`) must not find the buckets the last one left."""
    host = ready_host(lanes)
    test = tmp_path / "test_leave_a_bucket.py"
    test.write_text("def test_count_and_leave_one(s3):\n"
                    "    print('BUCKETS', len(s3.list_buckets()['Buckets']))\n"
                    "    s3.create_bucket(Bucket='left-by-the-last-student')\n")
    seen = []
    for n in range(2):
        output = tmp_path / f"output-{n}.txt"
        # The grader's conftest.py (already imported in the warm run) as a plugin: its s3 fixture.
        code = host.run([str(test), "-q", "-s", "-p", "no:cacheprovider", "-p", "conftest", "--target", "solution"],
                        dict(os.environ), output)
        assert code == 0, output.read_text()
        seen += [line for line in output.read_text().splitlines() if line.startswith("BUCKETS")]
    assert seen == ["BUCKETS 0", "BUCKETS 0"], seen
