"""Self-checks that run in a pytest of their own, in the background from the start
of the session.

Some self-checks are mostly waiting: Redis outages of several seconds, a killed
worker's heartbeat running out, `course run` starting and stopping. In the
session's main line they took a minute, one after another, while the pool of
gradings waited on nothing. Their module (say production_scenarios.py, a name
pytest does not collect by itself) runs instead in a child pytest started when
collection ends, and a thin test module reports each of its checks: the same
checks, the same assertions, the same messages. A child pytest also keeps its
real processes (and any orphan of theirs) away from the leak checks of the
session, which run meanwhile.

    SCENARIOS = Background("production_scenarios.py", "local_run_scenarios.py")

    def prefetch(items):                  # the selfcheck conftest calls it
        SCENARIOS.start(items)            # items: the selected tests, each with a `check` parameter

    @pytest.mark.parametrize("check", SCENARIOS.checks())
    def test_in_background(check):
        SCENARIOS.report(check)

That is test_in_background.py.
"""
import ast
import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from course import ROOT, pytest_runs

HERE = Path(__file__).resolve().parent
# Longer than any of the module's own time bounds: this only catches a hang.
WHOLE_SECONDS = 600


class Background:
    """The modules `filenames`, run one after another in one child pytest: side by side,
    their timing checks would also compete with each other for the machine."""

    def __init__(self, *filenames):
        self.paths = [HERE / name for name in filenames]
        self.popen = None
        self.results = None
        self.folder = None

    def checks(self):
        """The modules' test functions, by name, read without importing them."""
        return [node.name for path in self.paths for node in ast.parse(path.read_text()).body
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]

    def start(self, items):
        """Start the child pytest on the checks of `items` (the selected tests that report them)."""
        wanted = [item.callspec.params["check"] for item in items if hasattr(item, "callspec")]
        if self.popen is not None or not wanted:
            return
        self.folder = Path(tempfile.mkdtemp(prefix="course-background-"))
        args = [*(p.relative_to(ROOT) for p in self.paths), "--self-check", "--target", "solution", "-q",
                "-p", "no:cacheprovider", "--junitxml", self.folder / "results.xml", "-k", " or ".join(wanted)]
        with open(self.folder / "output.txt", "w") as output:
            # These self-checks run `course run`, a browser and the lessons' commands as a learner
            # does, on this machine's own loopback: not in a grading run's network of its own.
            self.popen = pytest_runs.start(args, env=dict(os.environ), stdout=output, own_network=False)

    def _results(self):
        """{check: [(outcome, message)]}, once the child pytest is over."""
        if self.results is None:
            if self.popen is None:
                pytest.fail("the background self-checks were never started (prefetch was not called)", pytrace=False)
            try:
                self.popen.wait(WHOLE_SECONDS)
            except subprocess.TimeoutExpired:
                self.close()
                names = ", ".join(p.name for p in self.paths)
                pytest.fail(f"the background self-checks in {names} did not finish within {WHOLE_SECONDS} s",
                            pytrace=False)
            self.results = {}
            xml = self.folder / "results.xml"
            cases = ElementTree.parse(xml).getroot().iter("testcase") if xml.is_file() else []
            for case in cases:
                outcome, message = "passed", ""
                for kind in ("failure", "error", "skipped"):
                    found = case.find(kind)
                    if found is not None:
                        outcome = "skipped" if kind == "skipped" else "failed"
                        message = (found.get("message") or "") + "\n" + (found.text or "")
                        break
                self.results.setdefault(case.get("name").split("[")[0], []).append((outcome, message.strip()))
        return self.results

    def report(self, check):
        """Pass, fail or skip as the check did in the child pytest (every parameter of it)."""
        results = self._results().get(check)
        if not results:
            tail = (self.folder / "output.txt").read_text(errors="replace").strip().splitlines()[-15:]
            pytest.fail(f"{check} did not run in the background pytest (exit code {self.popen.returncode}):\n"
                        + "\n".join(tail), pytrace=False)
        failed = [message for outcome, message in results if outcome == "failed"]
        if failed:
            pytest.fail("\n\n".join(failed), pytrace=False)
        if all(outcome == "skipped" for outcome, _ in results):
            pytest.skip(results[0][1].splitlines()[0] if results[0][1] else "skipped")

    def close(self):
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()  # SIGTERM: the grader's conftest stops what it started
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
