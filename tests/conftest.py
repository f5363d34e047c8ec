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
import signal
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from course import manifest, services
from grader import feedback, jobs, plugin, processes, spawning, storage
from grader.learner import Learner, describe_leaks, syntax_problem
from grader.plugin import UNSCORED, GradingPlugin, with_unit
from grader.target import resolve


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


def pytest_collection_finish(session):
    plugin.freeze_what_lives_on()


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


def start_service(stack, service):
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
        url, problem = start_service(stack, services.redis_server(password=services.new_password()))
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
    """A local S3 (moto's server) on a free loopback port, for the whole grading run; emptied
    at its end, since a warm run's next session (the next student's) gets the same buckets."""
    with ExitStack() as stack:
        endpoint, problem = start_service(stack, services.s3_server())
        if problem:
            pytest.fail(problem, pytrace=False)
        yield endpoint
        services.empty_s3(endpoint)


@pytest.fixture(scope="session")
def s3(s3_endpoint):
    """A boto3 S3 client for the local S3 (one for the run: a client costs tens of
    milliseconds of CPU to build, and no check changes it)."""
    return services.s3_client(s3_endpoint)


@pytest.fixture
def bucket(s3):
    """A new, empty bucket (its name is what S3_BUCKET says); removed after the check."""
    name = f"reports-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    storage.empty(s3, name)  # in one request, not one per object: a grading makes about a hundred
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def app_env(redis_url, s3_endpoint, bucket):
    """What learner code is told, besides an allow-listed few of the grader's own variables
    (see grader.spawning.ALLOWED): the grader's Redis and S3, a short REPORT_SECONDS."""
    env = services.s3_environment(s3_endpoint, bucket)
    env.update(REDIS_URL=redis_url, REPORT_SECONDS="0.3")
    env.update(services.fork_safety_environment())  # macOS: rq's forking worker
    return env


@pytest.fixture(autouse=True)
def unit_files(request, target):
    """A unit's check needs the learner files of its unit and the units before it (each
    unit.toml's `files`): one that is missing fails the check first, naming the unit
    that has the learner create it. The quiz (@pytest.mark.quiz) reads answers.toml only."""
    number = feedback.current_unit()
    if number is None or request.node.get_closest_marker("quiz"):
        return
    target.require(*(name for name, first in manifest.learner_files().items() if first <= number), unit=number)


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


def pytest_configure(config):
    """Make this process a safe grader before any check runs."""
    # No learner data is unpickled in this process: rq's pickle serializer refuses here.
    jobs.guard()
    # Orphans of learner code come to this process (a subreaper, on Linux), so they are found by ancestry.
    processes.contain()
    # Learner processes are forked from a Python that has the course's libraries imported
    # (grader/preload.py); it starts importing now, while Redis and the local S3 start.
    spawning.Preloader.get()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    atexit.register(processes.stop_everything)  # whatever a teardown could not stop
    config.addinivalue_line("markers", f"{UNSCORED}(why): a check reported but worth no points "
                            "(it checks no work the unit asks of the learner)")
    config.addinivalue_line("markers", "quiz: a check that reads only answers.toml (the unit's challenge)")
    config.addinivalue_line("markers", "browser: a check that opens the app's page in a browser")
    config.pluginmanager.register(GradingPlugin(config, batch_plan(config)), GradingPlugin.NAME)
