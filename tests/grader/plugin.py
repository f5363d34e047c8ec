"""The grader's pytest plugin: it records each check's outcome per unit, prints
the grades at the end, writes --results, and ends the run quickly.

Registered by tests/conftest.py as one object, `GradingPlugin`, whose state
lives on the instance (as pytest-timeout keeps its own). Points are shared by
course.progress.unit_result, the one place that does it for pytest and for
`python3 -m course grade` alike; the PASS/FAIL line is course.progress.unit_line.
"""
import atexit
import gc
import json
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from course import manifest, progress
from grader import feedback
from grader.feedback import LearnerFailure, step_ref
from grader.target import resolve

# A check marked @pytest.mark.unscored("why") checks something the unit does not ask
# the learner to do (the environment, a provided file): reported, worth no points.
UNSCORED = "unscored"


def unit_of(nodeid):
    """'03' for a check of tests/unit_03 (not for self-checks that name a unit)."""
    m = re.match(r"(?:tests/)?unit_(\d\d)/", nodeid)
    return m.group(1) if m else None


def with_unit(message, nodeid):
    """The message and, unless it names one already, the unit whose lesson it is about."""
    unit = unit_of(nodeid)
    return message if unit is None or "-> Unit" in message else f"{message}\n  -> {step_ref(unit)}"


class Results:
    """Each check's outcome, per unit, for the summary and --results."""

    def __init__(self):
        self.checks = defaultdict(list)
        self.started = time.monotonic()

    def add(self, report):
        unit = unit_of(report.nodeid)
        if unit is None:
            return
        failed = report.failed
        entry = {"check": check_name(report), "outcome": "failed" if failed else report.outcome,
                 "seconds": round(report.duration, 2), "scored": UNSCORED not in report.keywords}
        if failed:
            entry["message"] = first_lines(report)
        elif report.skipped:  # did not run (no browser): its reason, in the results too
            entry["message"] = skip_reason(report)
        existing = next((c for c in self.checks[unit] if c["check"] == entry["check"]), None)
        if existing is None:
            self.checks[unit].append(entry)
        else:  # a teardown error (say, a leaked process) turns a passed check into a failed one
            existing["seconds"] = round(existing["seconds"] + entry["seconds"], 2)
            if failed:
                existing.update(outcome="failed", message=entry["message"])

    def summary(self):
        return {code: progress.unit_result(manifest.unit(code), self.checks[code]) for code in sorted(self.checks)}


def check_name(report):
    """The check's name as a learner sees it: with --batch, without the folder's id."""
    name = report.nodeid.split("::")[-1]
    key = getattr(report, "course_target", None)
    if key is None or "[" not in name:
        return name
    base, params = name[:-1].split("[", 1)
    rest = [p for p in params.split("-") if p != key]
    return f"{base}[{'-'.join(rest)}]" if rest else base


def skip_reason(report):
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr or "")
    return text.removeprefix("Skipped: ")


def first_lines(report, count=3):
    text = str(report.longrepr) if report.longrepr else ""
    if hasattr(report.longrepr, "reprcrash") and report.longrepr.reprcrash:
        text = report.longrepr.reprcrash.message
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[:count])


class GradingPlugin:
    """Outcomes in, grades out: one Results for a --target run, one per folder with --batch."""

    NAME = "course-grading"

    def __init__(self, config, plan):
        self.config = config
        self.plan = plan                    # the --batch plan, or None
        self.results = Results()
        self.batch = defaultdict(Results)
        self.session = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session):
        self.session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        feedback.running(item)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_teardown(self, item):
        feedback.running(None)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """A learner's failure as a plain message with its unit, and what the app logged
        behind a bare 500."""
        outcome = yield
        report = outcome.get_result()
        if self.plan is not None and hasattr(item, "callspec"):
            report.course_target = item.callspec.params.get("target")
        if call.excinfo is not None and call.excinfo.errisinstance(LearnerFailure):
            report.longrepr = with_unit(str(call.excinfo.value), item.nodeid)  # already plain: no traceback
        learner = getattr(item, "funcargs", {}).get("learner")
        message = str(report.longrepr)
        if report.failed and call.when == "call" and learner is not None and re.search(r"\b50\d\b", message):
            why = learner.web_error(message)  # a 500 for the request the message names: what the app logged
            said = why.removeprefix("the route raised ").rstrip(".").split(" (")[0]
            if why and said not in message:
                report.longrepr = f"{report.longrepr}\n  The app logged: {why}"

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.failed or report.skipped:
            key = getattr(report, "course_target", None)
            (self.results if key is None else self.batch[key]).add(report)

    def pytest_terminal_summary(self, terminalreporter):
        path = self.config.getoption("--results")
        if self.plan is not None:
            if path:  # per folder of the plan: its units, as one --target run would write them
                data = {key: {"target": entry["target"], "units": self.batch[key].summary()}
                        for key, entry in self.plan.items()}
                Path(path).write_text(json.dumps({"batch": data}, indent=2) + "\n")
            return
        units = self.results.summary()
        if not units:
            return
        target = resolve(self.config.getoption("--target"))
        terminalreporter.section(f"grades for {target.display}")
        for code, unit in units.items():
            terminalreporter.write_line(progress.unit_line(code, unit))
        if path:
            data = {"target": str(target.path), "seconds": round(time.monotonic() - self.results.started, 2),
                    "points": sum(u["points"] for u in units.values()),
                    "earned": round(sum(u["earned"] for u in units.values()), 2), "units": units}
            Path(path).write_text(json.dumps(data, indent=2) + "\n")
            terminalreporter.write_line(f"results written to {path}")

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        """The last thing a grading run does: run the exit handlers (learner processes,
        Redis and temporary folders are stopped and removed by then), flush the output,
        and leave without tearing down the interpreter (unloading moto, boto3 and the
        rest is CPU a learner waits on). Only when pytest is the program
        (`python -m pytest`), never inside another program's pytest.main()."""
        if Path(sys.argv[0]).name not in ("pytest", "py.test", "__main__.py") or "pytest" not in sys.argv[0]:
            return
        status = int(self.session.exitstatus) if self.session is not None else 0
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(status)


_frozen = []  # whether freeze_what_lives_on ran in this process (conftest.py is imported again each session)


def freeze_what_lives_on():
    """Once the checks are first collected, what is alive (pytest, the grader, their imports)
    lives as long as this process, and, in a warm run, serves every grading after it: set it
    aside from Python's cycle collector, whose full passes (pytest runs two at the end of each
    session) would otherwise walk all of it again each time. Once per process: what a later
    session collects is its own and must stay collectable."""
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen.append(True)
