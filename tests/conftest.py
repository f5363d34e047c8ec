"""The autograder's fixtures and options.

    pytest tests/unit_03                      grade starter/ on unit 03
    pytest tests --target solution            grade another app folder on every unit
    COURSE_TARGET=path pytest tests/unit_05   the same, from the environment
    pytest tests ... --results results.json   machine-readable results, points per unit

Each fixture starts what it needs on free loopback ports and stops it after:
a real Redis server, a local S3 (moto's server), a fresh bucket per check.
"""
import atexit
import json
import os
import re
import signal
import sys
import time
import uuid
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

import pytest

from course import manifest, progress, services
from grader import jobs, processes, spawning
from grader.feedback import LearnerFailure, step_ref
from grader.learner import Learner, describe_leaks, syntax_problem
from grader.target import resolve

# No learner data is unpickled in this process: rq's pickle serializer refuses here.
jobs.guard()
# Orphans of learner code come to this process (a subreaper, on Linux), so they are found by ancestry.
processes.contain()
# Learner processes are forked from a Python that has the course's libraries imported
# (grader/preload.py); it starts importing now, while Redis and the local S3 start.
spawning.Preloader.get()


def _stop(signum, frame):
    """SIGTERM or SIGHUP: stop as Ctrl-C does (fixtures stop Redis, S3 and learner processes);
    a second one kills everything below this process at once."""
    def again(signum, frame):
        processes.stop_everything()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, again)
    raise KeyboardInterrupt


for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _stop)
atexit.register(processes.stop_everything)  # whatever a teardown could not stop


def pytest_addoption(parser):
    group = parser.getgroup("course", "the course's autograder")
    group.addoption("--target", help="the app folder to grade (default: $COURSE_TARGET or starter/)")
    group.addoption("--self-check", action="store_true",
                    help="also run the course's own checks (solution, starter, answer corpora)")
    group.addoption("--results", metavar="PATH", help="write machine-readable results (JSON) to PATH")
    group.addoption("--batch", metavar="PLAN", help="(self-checks) grade several app folders in one run, sharing "
                    "its Redis and S3: PLAN is a JSON list of {id, target, check}; check null means every check")


def batch_plan(config):
    """The --batch plan as {id: {"target", "check"}}, or None for one --target."""
    if not hasattr(config, "_course_plan"):
        path = config.getoption("--batch")
        config._course_plan = {e["id"]: e for e in json.loads(Path(path).read_text())} if path else None
    return config._course_plan


def selects(expression, name):
    """Whether a -k expression ("test_a or test_b") selects the check of this name, as -k would."""
    from _pytest.mark.expression import Expression

    return Expression.compile(expression).evaluate(lambda word, **_: word.lower() in name)


def pytest_generate_tests(metafunc):
    """With --batch, every check that grades a target runs once per app folder of the plan
    that asks for it (all checks, or the one named). The target is a session fixture, so
    pytest runs one folder's checks together, then the next's; Redis and S3 are shared."""
    plan = batch_plan(metafunc.config)
    if plan is None or "target" not in metafunc.fixturenames:
        return
    name = metafunc.function.__name__.lower()
    ids = [key for key, entry in plan.items() if not entry.get("check") or selects(entry["check"], name)]
    metafunc.parametrize("target", ids, indirect=True, scope="session", ids=ids)


def pytest_collection_modifyitems(config, items):
    """With --self-check: grade solution/ first, then the self-checks that work in this
    process, and last those that only read the graded folders' outcomes. The gradings
    start when collection ends and run in the background all along, so the work here
    and theirs overlap, and this process waits for them only once it has nothing else to do."""
    if config.getoption("--self-check"):
        items.sort(key=lambda item: ("selfcheck" in item.path.parts, "gradings" in item.fixturenames))
    if batch_plan(config) is not None:  # a check no folder of the plan asks for is not run
        keep = [item for item in items if "target" in getattr(getattr(item, "callspec", None), "params", {})]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep


def pytest_ignore_collect(collection_path, config):
    if collection_path.name == "selfcheck" and not config.getoption("--self-check"):
        return True
    return None


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def target(request):
    """The learner app folder being graded (with --batch, each of the plan's in turn)."""
    plan = batch_plan(request.config)
    found = resolve(plan[request.param]["target"] if plan is not None else request.config.getoption("--target"))
    if not found.path.is_dir():
        pytest.fail(f"There is no app folder at {found.path}. Pass --target with a folder laid out like starter/.",
                    pytrace=False)
    return found


def started(stack, service):
    """(what the service yields, None), or (None, its plain message) if it cannot start.
    The failure is raised by the caller, outside this except, so it prints once."""
    try:
        return stack.enter_context(service), None
    except services.ServiceError as error:
        return None, str(error)


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis server on a free loopback port, for the whole grading run. Like
    Heroku's, it has a password (a new one each run), and the URL carries it: a
    connection that drops it fails here, not first on Heroku."""
    with ExitStack() as stack:
        url, problem = started(stack, services.redis_server(password=services.new_password()))
        if problem:
            pytest.fail(problem, pytrace=False)
        yield url


@pytest.fixture
def redis(redis_url):
    """A client for the grader's Redis, emptied before the check."""
    import redis as redis_py

    client = redis_py.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3_endpoint():
    """A local S3 (moto's server) on a free loopback port, for the whole grading run."""
    with ExitStack() as stack:
        endpoint, problem = started(stack, services.s3_server())
        if problem:
            pytest.fail(problem, pytrace=False)
        yield endpoint


@pytest.fixture
def s3(s3_endpoint):
    """A boto3 S3 client for the local S3."""
    return services.s3_client(s3_endpoint)


@pytest.fixture
def bucket(s3):
    """A new, empty bucket (its name is what S3_BUCKET says); removed after the check."""
    name = f"reports-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    for obj in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def app_env(redis_url, s3_endpoint, bucket):
    """What learner code is told, besides an allow-listed few of the grader's own variables
    (see grader.spawning.ALLOWED): the grader's Redis and S3, a short REPORT_SECONDS."""
    env = services.s3_environment(s3_endpoint, bucket)
    env.update(REDIS_URL=redis_url, REPORT_SECONDS="0.3")
    env.update(services.fork_safety_environment())  # macOS: rq's forking worker
    return env


@pytest.fixture
def learner(target, app_env, request):
    """Runs the learner's code in child processes; after the check, stops them all
    and fails the check if any process was left behind. A learner file that does
    not parse fails the check first, naming the file and line."""
    problem = syntax_problem(target.path)
    if problem:
        pytest.fail(with_unit(problem, request.node.nodeid), pytrace=False)
    attempts = len(jobs.UNPICKLING_ATTEMPTS)
    runner = Learner(target, app_env)
    yield runner
    leftovers = runner.close()
    if leftovers:
        pytest.fail(with_unit(describe_leaks(leftovers), request.node.nodeid), pytrace=False)
    if len(jobs.UNPICKLING_ATTEMPTS) > attempts:
        pytest.fail("The grader tried to unpickle job data in its own process and refused (a grader bug: "
                    "please report it); read jobs through grader.jobs.", pytrace=False)


def with_unit(message, nodeid):
    """The message and, unless it names one already, the unit whose lesson it is about."""
    unit = unit_of(nodeid)
    return message if unit is None or "-> Unit" in message else f"{message}\n  -> {step_ref(unit)}"


# ---------------------------------------------------------------- reporting

def unit_of(nodeid):
    m = re.match(r"(?:tests/)?unit_(\d\d)/", nodeid)  # a unit's own checks, not self-checks naming one
    return m.group(1) if m else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if batch_plan(item.config) is not None and hasattr(item, "callspec"):
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


# A check marked @pytest.mark.unscored("why") checks something the unit does not ask
# the learner to do (the environment, a provided file): reported, worth no points.
UNSCORED = "unscored"


class Results:
    """Collects each check's outcome, per unit, for the summary and --results."""

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
        # Points are shared by the checks of the unit's own work; an unscored check
        # (the environment, a provided file) is reported but earns nothing.
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
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return "\n".join(lines[:count])


def pytest_configure(config):
    config.addinivalue_line("markers", f"{UNSCORED}(why): a check reported but worth no points "
                            "(it checks no work the unit asks of the learner)")
    config._course_results = Results()
    config._course_batch = defaultdict(Results)  # with --batch: one Results per folder of the plan


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """The last thing a grading run does: run the exit handlers (learner processes,
    Redis and temporary folders are stopped and removed by then), flush the output, and
    leave without tearing down the interpreter: unloading moto, boto3 and the rest took
    0.6 s of CPU at the end of every run, and a learner waits on it. Only when pytest is
    the program (`python -m pytest`), never inside another program's pytest.main()."""
    if Path(sys.argv[0]).name not in ("pytest", "py.test", "__main__.py") or "pytest" not in sys.argv[0]:
        return
    session = getattr(config, "_course_session", None)
    status = int(session.exitstatus) if session is not None else 0
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(status)


def pytest_runtest_logreport(report):
    results = getattr(pytest_runtest_logreport, "results", None)
    if results is not None and (report.when == "call" or report.failed or report.skipped):
        key = getattr(report, "course_target", None)
        (results if key is None else pytest_runtest_logreport.batch[key]).add(report)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    session.config._course_session = session
    pytest_runtest_logreport.results = session.config._course_results
    pytest_runtest_logreport.batch = session.config._course_batch


def pytest_terminal_summary(terminalreporter, config):
    plan = batch_plan(config)
    if plan is not None:
        path = config.getoption("--results")
        if path:  # per folder of the plan: its units, as one --target run would write them
            data = {key: {"target": entry["target"], "units": config._course_batch[key].summary()}
                    for key, entry in plan.items()}
            Path(path).write_text(json.dumps({"batch": data}, indent=2) + "\n")
        return
    units = config._course_results.summary()
    if not units:
        return
    target = resolve(config.getoption("--target"))
    terminalreporter.section(f"grades for {target.display}")
    for code, unit in units.items():
        mark = {"passed": "PASS", "failed": "FAIL"}.get(unit["state"], "PART")
        not_run = f" ({unit['not_run']} not run)" if unit["not_run"] else ""
        terminalreporter.write_line(
            f"{mark}  unit {code} {unit['title']:<38} {unit['passed']}/{unit['total']} checks{not_run}, "
            f"{unit['earned']:g}/{unit['points']} points, graded in {unit['seconds']:.1f} s")
    path = config.getoption("--results")
    if path:
        data = {"target": str(target.path), "seconds": round(time.monotonic() - config._course_results.started, 2),
                "points": sum(u["points"] for u in units.values()),
                "earned": round(sum(u["earned"] for u in units.values()), 2), "units": units}
        Path(path).write_text(json.dumps(data, indent=2) + "\n")
        terminalreporter.write_line(f"results written to {path}")
