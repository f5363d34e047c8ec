"""Unit 04: testing and deploying. The Procfile's web and worker processes, started
as Heroku starts them, turn a request into a PDF in S3; the files Heroku reads
(requirements.txt, .python-version, app.json) are complete."""
import ast
import json
import re
import sys
import time
from contextlib import contextmanager
from importlib import metadata

import pytest

from course import services
from grader import flows, heroku, jobs, requirements
from grader.feedback import LearnerFailure, attempt, fail
from grader.storage import bucket_keys, pdf_problem
from grader.web import http, wait_for_app
from grader.processes import wait_until

# Heroku Key-Value Store's plans today: mini, and the premium, private and shield tiers
# (premium-0 ... premium-14 and so on). hobby-dev, hobby-basic and the old names are gone.
CURRENT_REDIS_PLAN = re.compile(r"heroku-redis(:(mini|(premium|private|shield)-\d{1,2}))?")


canonical = requirements.canonical


def locate(name, including, target):
    """A file requirements.txt names with -r or -c: beside the file that names it, as pip
    finds it; for an app folder with its own requirements.txt (solution/), also beside the
    folder, where the other project files are. Only inside the repository (the folder that
    holds the app folder): Heroku builds from nothing else, and the grader reads nothing else."""
    top = target.path.parent.resolve()
    folders = [including.parent] + ([target.path.parent] if including.parent == target.path else [])
    found = [(folder / name).resolve() for folder in folders]
    return next((path for path in found if path.is_file() and path.is_relative_to(top)), None)


def read_requirements(target):
    path = target.project_file("requirements.txt")
    if not path.is_file():
        fail("There is no requirements.txt beside your app; Heroku installs exactly what it lists.", step=2)
    return requirements.read(path, lambda name, including: locate(name, including, target))


def pinned_requirements(target):
    found = read_requirements(target)
    return found.pins, found.loose


def imported_distributions(target):
    """The installed distributions the app folder's Python files import."""
    local = {p.stem for p in target.path.glob("*.py")}
    modules = set()
    for path in target.path.rglob("*.py"):
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    modules -= local | set(sys.stdlib_module_names)
    owners = requirements.installed_owners()
    return {canonical(d) for m in modules for d in owners.get(m, [m])}


def test_requirements_pin_everything_the_app_imports(target):
    pins, loose = pinned_requirements(target)
    if loose:
        fail(f"requirements.txt has unpinned lines ({', '.join(loose[:3])}). Pin each with ==, so Heroku "
             "installs what you tested.", step=2)
    needed = imported_distributions(target)
    if "gunicorn" in target.procfile().get("web", ""):
        needed.add("gunicorn")
    missing = sorted(needed - set(pins))
    if missing:
        fail(f"Your app needs {', '.join(missing)}, but requirements.txt does not list it. Heroku would "
             "build a slug without it and the dyno would crash at start.", step=2)
    for name in sorted(needed):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if pins[name] != installed:
            fail(f"requirements.txt pins {name}=={pins[name]}, but the course runs and grades your code with "
                 f"{name} {installed}. Pin the version you tested with.", step=2)


def test_requirements_pin_everything_the_app_installs(target):
    """The libraries requirements.txt lists pull in others (boto3 pulls in botocore). Each
    package Heroku's pip installs must be held at the version the course runs: by a pin,
    or by a constraints file the requirements name with -c."""
    found = read_requirements(target)
    for option, name in found.missing:
        fail(f"requirements.txt names {name} with {option}, but there is no {name} beside it in the repository: "
             f"pip, and so Heroku's build, stops at that line. Keep the line as `-c constraints-course.txt`, "
             f"the course's file at the top of the repository.", step=2)
    python = requirements.python_version_of(target.project_file(".python-version"))
    installed = requirements.installs(found.extras, requirements.heroku_environment(python))
    for name in sorted(set(found.pins) & set(found.constraints)):
        if found.pins[name] != found.constraints[name]:
            fail(f"requirements.txt pins {name}=={found.pins[name]}, but its constraints say "
                 f"{name}=={found.constraints[name]}: pip stops with a conflict. Pin the version the "
                 f"constraints name.", step=2)
    floating = sorted(name for name in installed if not found.pinned(name))
    if floating:
        more = f" (and {len(floating) - 4} more)" if len(floating) > 4 else ""
        fail(f"requirements.txt pins what your app imports, but not what those libraries install in turn: "
             f"{', '.join(floating[:4])}{more}. Heroku's pip would take the newest release of each, not the "
             f"one you tested (a clean install once got botocore 1.44.18 where the course runs 1.44.5). Keep "
             f"the line `-c constraints-course.txt` near the top of requirements.txt: it holds every package "
             f"at the version the course runs.", step=2)
    for name, version in sorted(installed.items()):
        if version and found.pinned(name) != version:
            via = "pins" if name in found.pins else "holds, through its constraints,"
            fail(f"requirements.txt {via} {name}=={found.pinned(name)}, but the course runs and grades your "
                 f"code with {name} {version}. Heroku would install a version you never tested.",
                 step=2)


@pytest.mark.unscored("a provided file: the unit asks you to read it, not to write it")
def test_python_version_file_names_a_supported_python(target):
    path = target.project_file(".python-version")
    if target.project_file("runtime.txt").is_file():
        fail("runtime.txt is deprecated on Heroku; name the version in .python-version instead.", step=2)
    if not path.is_file():
        fail("There is no .python-version; Heroku reads the Python version from it (for example 3.12).",
             step=2)
    version = path.read_text().strip()
    m = re.fullmatch(r"3\.(\d+)(\.\d+)?", version)
    if not m or int(m.group(1)) < 11:
        fail(f".python-version says {version!r}; name a Python Heroku supports, 3.11 or newer (like 3.12).",
             step=2)


@pytest.mark.unscored("a provided file: the unit asks you to read it, not to write it")
def test_app_json_names_redis_and_both_process_types(target):
    path = target.project_file("app.json")
    if not path.is_file():
        fail("There is no app.json; it tells Heroku which add-ons and dynos the app needs.", step=3)
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        fail(f"app.json is not valid JSON ({error}).", step=3)
    addons = [a if isinstance(a, str) else a.get("plan", "") for a in data.get("addons", [])]
    redis_plans = [str(a) for a in addons if str(a).startswith("heroku-redis")]
    if not redis_plans:
        fail("app.json's addons do not include Heroku's Redis (heroku-redis, for example heroku-redis:mini).",
             step=3)
    retired = [plan for plan in redis_plans if not CURRENT_REDIS_PLAN.fullmatch(plan)]
    if retired:
        fail(f"app.json asks for {retired[0]!r}, a Heroku Redis plan that no longer exists (hobby plans were "
             "retired; there is no free tier since November 2022), so creating the app fails. Ask for a current "
             "Key-Value Store plan: heroku-redis:mini (or a premium-N/private-N one).", step=3)
    formation = data.get("formation", {})
    for kind in ("web", "worker"):
        if int(formation.get(kind, {}).get("quantity", 0)) < 1:
            fail(f"app.json's formation does not run a {kind} dyno (quantity 1 or more).", step=3)
    for kind, dynos in sorted(formation.items()):
        size = str(dynos.get("size", "")) if isinstance(dynos, dict) else ""
        if not size:
            continue  # Heroku picks the account's default size
        if size.lower() in heroku.RETIRED_SIZES or not heroku.CURRENT_SIZES.fullmatch(size):
            gone = "a dyno size Heroku no longer has (free and hobby dynos were retired in November 2022)" \
                if size.lower() in heroku.RETIRED_SIZES else "not a Heroku dyno size"
            fail(f"app.json's formation asks for {kind} dynos of size {size!r}, {gone}, so creating the app fails. "
                 "Ask for a current size: basic (or eco, standard-1x, standard-2x, performance-m, performance-l).",
                 step=3)
        quantity = int(dynos.get("quantity", 1))
        if size.lower() in heroku.SINGLE_DYNO_SIZES and quantity > 1:
            fail(f"app.json's formation asks for {quantity} {kind} dynos of size {size!r}, but {size} dynos run "
                 "one dyno per process type. Ask for 1, or for a size that scales out, like standard-1x.",
                 step=3)


# A web process that listens on other ports, and not on $PORT, for this long has
# chosen its port: it will not open $PORT later.
OTHER_PORT_GRACE = 2


def wait_for_web_port(web, port, timeout):
    """None once the web process accepts connections on port; the ports it listens
    on instead, once it has listened only there for OTHER_PORT_GRACE s. Raises
    LearnerFailure if it exits first or timeout passes."""
    deadline = time.monotonic() + timeout
    elsewhere_since = None
    while True:
        try:
            services.wait_for_port(port, 0.3, web.popen, what="web process")
            return None
        except services.ServiceError as error:
            if time.monotonic() >= deadline or web.popen.poll() is not None:
                raise LearnerFailure(str(error)) from None
        ports = web.listening_ports()
        if ports and port not in ports:
            elsewhere_since = elsewhere_since or time.monotonic()
            if time.monotonic() - elsewhere_since >= OTHER_PORT_GRACE:
                return ports
        else:
            elsewhere_since = None


def heroku_layout(target, tmp_path):
    """(folder the Procfile's lines run from, APP_DIR), in a copy of the repository laid
    out as the slug Heroku builds: what git pushes, so nothing .gitignore leaves out
    (no .venv), and nothing outside the repository."""
    return heroku.build_slug(target, target.project_file("Procfile"), tmp_path / "slug")


def start_line(learner, kind, command, top, env, label):
    return learner.start(command, name=f"the Procfile's {kind} process ({label})", shell=True, env=env, cwd=top)


def cause(process):
    """What a Procfile process that stopped printed, as a sentence."""
    return process.explain_exit() if not process.alive() else ""


def not_importable(text):
    """The learner module a process or job could not import ('app', 'utils', 'worker'), or None.
    Python says "No module named 'utils'" (`python -m worker`: without quotes); rq, for a
    job's function, "Invalid attribute name: utils.make_report"."""
    m = re.search(r"No module named '?(app|utils|worker)\b|Invalid attribute name: (app|utils|worker)\.", text)
    return (m.group(1) or m.group(2)) if m else None


def venv_program(command):
    """The program a Procfile line runs by its path in a virtual environment (like
    ../.venv/bin/python), or None."""
    m = re.search(r"""[^\s"'=;&|]*venv[^\s"'/]*/(bin|Scripts)/[\w.+-]+""", command)
    return m.group(0) if m else None


def no_venv(kind, program):
    alone = "`gunicorn ... app:app`" if kind == "web" else "`python worker.py`"
    return (f"The Procfile's {kind} line runs {program}, but a dyno has no .venv: git leaves it out (.gitignore), "
            "so the slug Heroku builds never holds it. The buildpack installs requirements.txt into the dyno's own "
            f"Python, with python, gunicorn and rq on PATH: name the program alone ({alone}).")


NO_PYTHONPATH = ("Heroku (and `python3 -m course run`) set no PYTHONPATH and run each line from the top of the "
                 "repository, so the line must reach the app folder itself: `cd \"${APP_DIR:-starter}\" && ...` "
                 "(or gunicorn's `--chdir`).")


def wait_for_workers(redis, workers, command, timeout=20):
    """Wait until every worker process has registered an rq worker; fail naming the first that stopped
    (`workers`: (process, the kind of REDIS_URL it was given))."""
    kinds = {process: url_kind for process, url_kind in workers}
    found = flows.registered_or_stopped(redis, list(kinds), timeout)
    if found is not True and found is not False:
        process, url_kind = found, kinds[found]
        log = process.log()
        if "CERTIFICATE_VERIFY_FAILED" in log or "certificate verify failed" in log:
            fail(f"With Heroku's {url_kind} REDIS_URL (TLS, self-signed certificate) the Procfile's worker stopped "
                 "at start-up: it failed the certificate check. `rq worker --url` builds its client from the URL "
                 "alone: add `?ssl_cert_reqs=none` to a rediss:// URL, or run `python worker.py`, whose conn "
                 "already handles it (unit 02).", step=1)
        module = not_importable(log)
        if module:
            fail(f"The Procfile's worker stopped at start-up: it cannot import {module}.py. {NO_PYTHONPATH}",
                 step=1)
        if venv_program(command):
            fail(no_venv("worker", venv_program(command)), step=1)
        fail(f"With a {url_kind} REDIS_URL, {process.name} stopped at start-up: {process.explain_exit()}",
             step=1)
    if not found:
        fail(f"The Procfile's worker kept running, but no rq worker registered with the Redis named by REDIS_URL "
             f"within {timeout} s.", step=1)


@contextmanager
def stopped_on_failure(learner):
    """On a failure, stop every process and wait until they are all gone: a gunicorn
    stopped while it still boots its workers takes a moment to go, and is not a leak."""
    try:
        yield
    except BaseException:
        for process in learner.processes:
            process.terminate(grace=5)
        wait_until(lambda: not learner.still_running(), 3)
        raise


def check_the_router_reaches(port):
    """Fail unless the web process at port is one Heroku's router can reach and may use:
    bound to an address outside the dyno's loopback, and a production server."""
    if heroku.only_on_loopback(port):
        fail(f"The Procfile's web process listens on $PORT ({port}) only on the dyno's loopback (127.0.0.1, localhost): "
             "Heroku's router connects from outside the dyno, so no request would ever reach it, and Heroku stops "
             "a web dyno that has not bound $PORT within 60 s (R10, boot timeout). Bind to 0.0.0.0:$PORT.",
             step=1)
    server = heroku.server_software(f"http://127.0.0.1:{port}/")
    if server.startswith("Werkzeug/"):
        fail(f"The Procfile's web process is Flask's development server (it answers `Server: {server}`), which "
             "`flask run` and app.run() start and which Flask itself says not to use in a production deployment. "
             "Run the app with gunicorn: `web: exec gunicorn --chdir \"${APP_DIR:-starter}\" --bind \"0.0.0.0:$PORT\" "
             "app:app`.", step=1)


def test_procfile_processes_turn_a_request_into_a_pdf(learner, target, redis, redis_url, s3, bucket, tmp_path):
    """web and worker, started from the Procfile as Heroku does: from the top of a copy of
    the repository as git pushes it (no .venv), with PORT and Heroku's rediss:// REDIS_URL
    (self-signed certificate) and no PYTHONPATH. A second worker gets the plain redis://
    URL `python3 -m course run` gives. The web process must answer from outside the
    machine's loopback, as the router reaches a dyno, and not be Flask's dev server."""
    types = target.procfile()
    for kind in ("web", "worker"):
        if kind not in types:
            fail(f"The Procfile has no `{kind}:` line. Heroku starts one dyno per process type; "
                 "you need web and worker.", step=1)
    top, app_dir = heroku_layout(target, tmp_path)
    port = services.free_port()
    with services.tls_front(redis_url) as (tls_url, _ca), stopped_on_failure(learner):
        heroku = learner.environment(PORT=port, REDIS_URL=tls_url, PYTHONPATH=None, APP_DIR=app_dir)
        local = learner.environment(PORT=port, PYTHONPATH=None, APP_DIR=app_dir)
        web = start_line(learner, "web", types["web"], top, heroku, repr(types["web"]))
        workers = [(start_line(learner, "worker", types["worker"], top, heroku, "rediss:// REDIS_URL"), "rediss://"),
                   (start_line(learner, "worker", types["worker"], top, local, "redis:// REDIS_URL"), "redis://")]
        elsewhere, error = attempt(wait_for_web_port, web, port, 20)
        if elsewhere:
            fail(f"The Procfile's web process did not listen on $PORT ({port}): it listens on port "
                 f"{', '.join(map(str, sorted(elsewhere)))} instead, and Heroku sends requests only to $PORT. "
                 "Bind to 0.0.0.0:$PORT.", step=1)
        if error:
            why = cause(web)
            if venv_program(types["web"]):
                fail(no_venv("web", venv_program(types["web"])), step=1)
            if not_importable(web.log()):
                fail(f"The Procfile's web process did not start: {why} {NO_PYTHONPATH}", step=1)
            fail(f"The Procfile's web process did not listen on $PORT ({port}) within 20 s: "
                 f"{why or 'bind to 0.0.0.0:$PORT'}", step=1)
        wait_for_workers(redis, workers, types["worker"])
        # The POST's 10 s are the route's, not the app's import on a busy machine.
        if wait_for_app(f"http://127.0.0.1:{port}", 30,
                        give_up=lambda: web.popen.poll() is not None or not_importable(web.log())):
            check_the_router_reaches(port)
        answer, error = attempt(http, "POST", f"http://127.0.0.1:{port}/report", body={})
        if error:  # gunicorn opens the port before its workers import the app
            if not_importable(web.log()):
                fail(f"The Procfile's web process opened its port, but its workers cannot import app.py. "
                     f"{NO_PYTHONPATH}", step=1)
            fail(f"{error} {cause(web)}".strip(), step=1)
        status, body, _ = answer
        if status not in (200, 202):
            fail(f"POST /report on the web process answered {status}: {str(body)[:160]}", step=1)
        job = jobs.fetch(redis, body["job_id"]) if isinstance(body, dict) and body.get("job_id") else None
        if job is not None and wait_until(lambda: jobs.status(job) in ("finished", "failed"), 40) \
                and jobs.status(job) == "failed":
            error = flows.job_error_summary(job)
            hint = f" {NO_PYTHONPATH}" if not_importable(error) else ""
            fail(f"The Procfile's worker took the report job and it failed: {error}.{hint}", step=1)
        keys = wait_until(lambda: bucket_keys(s3, bucket), 10 if job is not None else 40, interval=0.2)
    if not keys:
        fail("After POST /report no PDF reached the bucket. Look at the worker's output "
             "(`python3 -m course run`) for errors.", step=1)
    data = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    problem = pdf_problem(data)
    if problem:
        fail(f"The Procfile's processes uploaded {keys[0]}, but {problem}.", step=1)


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
