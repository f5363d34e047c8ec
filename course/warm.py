"""Warm grading runs for `watch` and `class`: pytest processes kept up between gradings.

A grading run spends its first second or two starting (Python, pytest, the
grader, moto, boto3 and the preloaded Python learner processes are forked from),
and the page check another two or three starting Playwright and Chromium.
`watch` grades again at every save, and `class` grades one student after another,
so they keep these processes up (tests/grader/host.py) and send each of them the
next grading: the grade comes that much sooner. Each grading is still a whole
pytest session, with its own Redis, local S3, bucket and learner processes per
check, and a fresh browser context per page check; only the imports, the preloaded
Python and the browser are kept. For `watch`, the hosts start in the background
once a grading is over, while the learner edits, and stop with `watch`.
"""
import json
import os
import subprocess
import threading

from course import ROOT, pytest_runs

HOST = ROOT / "tests" / "grader" / "host.py"
READY_WITHIN = 60   # seconds for a host to import everything, on a busy machine
STOP_WITHIN = 10    # seconds for a host to stop its services and exit


class HostGone(RuntimeError):
    """A host exited or stopped answering: grade in a run of its own instead."""


class Host:
    """One warm pytest process. Not thread-safe: one grading at a time."""

    def __init__(self, unit_folder):
        self.popen = pytest_runs.start([unit_folder], script=HOST, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True)
        # In watch's process group: Ctrl-C reaches it too, and stops its grading as it stops a run of its own.
        self._ready = False
        self.swept = 0  # what the last grading left running, killed after it

    def _answer(self, seconds):
        """The host's next JSON line, or HostGone if it exits or says nothing within seconds."""
        line = []
        reader = threading.Thread(target=lambda: line.append(self.popen.stdout.readline()), daemon=True)
        reader.start()
        reader.join(seconds)
        if not line or not line[0]:
            self.stop()
            raise HostGone("the warm grading run exited or stopped answering")
        return json.loads(line[0])

    def ready(self):
        if not self._ready:
            self._ready = bool(self._answer(READY_WITHIN).get("ready"))
        return self._ready

    def run(self, args, env, output, timeout=None):
        """pytest's exit code for `pytest ARGS`, its output written to the file `output`."""
        if self.popen.poll() is not None or not self.ready():
            raise HostGone("the warm grading run is not running")
        try:
            self.popen.stdin.write(json.dumps({"args": args, "env": env, "output": str(output)}) + "\n")
            self.popen.stdin.flush()
        except OSError:
            self.stop()
            raise HostGone("the warm grading run exited") from None
        answer = self._answer(timeout)
        self.swept = answer.get("swept", 0)
        return int(answer["code"])

    def stop(self):
        """Close its input (it stops its services and exits), then make sure it is gone."""
        if self.popen.poll() is None:
            try:
                self.popen.stdin.close()
                self.popen.wait(STOP_WITHIN)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.popen.poll() is None:
            self.popen.terminate()  # the grader stops its services and learner processes on SIGTERM
            try:
                self.popen.wait(STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class WarmLanes:
    """Hosts for `count` lanes, started ahead of the grading that needs them."""

    def __init__(self):
        self.hosts = []
        self.lock = threading.Lock()

    def prepare(self, count, unit_folder):
        """Have `count` hosts starting or up (they warm up in the background)."""
        with self.lock:
            self.hosts = [h for h in self.hosts if h.popen.poll() is None]
            while len(self.hosts) < count:
                self.hosts.append(Host(unit_folder))

    def host(self, index):
        with self.lock:
            return self.hosts[index] if index < len(self.hosts) else None

    def close(self):
        with self.lock:
            hosts, self.hosts = self.hosts, []
        for host in hosts:
            host.stop()


def wanted():
    """Warm runs unless COURSE_WARM=0 (then every grading is a run of its own)."""
    return os.environ.get("COURSE_WARM", "") != "0"
