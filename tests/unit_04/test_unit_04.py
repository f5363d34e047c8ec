"""Unit 04: testing and deploying. The Procfile's web and worker processes, started
as Heroku starts them, turn a request into a PDF in S3; the files Heroku reads
(requirements.txt, .python-version, app.json) are complete."""
import ast
import json
import re
import sys
from importlib import metadata

import pytest

from course import services
from grader import flows
from grader.checks import bucket_keys, http, pdf_problem
from grader.feedback import fail
from grader.learner import wait_until

UNIT = 4
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


@pytest.fixture(autouse=True)
def learner_files(target, request):
    if request.node.name != "test_challenge":  # the quiz needs no code
        target.require("worker.py", "utils.py", "app.py", unit=UNIT)


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(target):
    path = target.project_file("requirements.txt")
    if not path.is_file():
        fail("There is no requirements.txt beside your app; Heroku installs exactly what it lists.", unit=UNIT, step=2)
    pins, loose = {}, []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = PIN.match(line)
        if m:
            pins[canonical(m.group(1))] = m.group(3)
        else:
            loose.append(line)
    return pins, loose


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
    owners = metadata.packages_distributions()
    return {canonical(d) for m in modules for d in owners.get(m, [m])}


def test_requirements_pin_everything_the_app_imports(target):
    pins, loose = pinned_requirements(target)
    if loose:
        fail(f"requirements.txt has unpinned lines ({', '.join(loose[:3])}). Pin each with ==, so Heroku "
             "installs what you tested.", unit=UNIT, step=2)
    needed = imported_distributions(target)
    if "gunicorn" in target.procfile().get("web", ""):
        needed.add("gunicorn")
    missing = sorted(needed - set(pins))
    if missing:
        fail(f"Your app needs {', '.join(missing)}, but requirements.txt does not list it. Heroku would "
             "build a slug without it and the dyno would crash at start.", unit=UNIT, step=2)
    for name in sorted(needed):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if pins[name] != installed:
            fail(f"requirements.txt pins {name}=={pins[name]}, but the course runs and grades your code with "
                 f"{name} {installed}. Pin the version you tested with.", unit=UNIT, step=2)


@pytest.mark.unscored("a provided file: the unit asks you to read it, not to write it")
def test_python_version_file_names_a_supported_python(target):
    path = target.project_file(".python-version")
    if target.project_file("runtime.txt").is_file():
        fail("runtime.txt is deprecated on Heroku; name the version in .python-version instead.", unit=UNIT, step=2)
    if not path.is_file():
        fail("There is no .python-version; Heroku reads the Python version from it (for example 3.12).",
             unit=UNIT, step=2)
    version = path.read_text().strip()
    m = re.fullmatch(r"3\.(\d+)(\.\d+)?", version)
    if not m or int(m.group(1)) < 11:
        fail(f".python-version says {version!r}; name a Python Heroku supports, 3.11 or newer (like 3.12).",
             unit=UNIT, step=2)


@pytest.mark.unscored("a provided file: the unit asks you to read it, not to write it")
def test_app_json_names_redis_and_both_process_types(target):
    path = target.project_file("app.json")
    if not path.is_file():
        fail("There is no app.json; it tells Heroku which add-ons and dynos the app needs.", unit=UNIT, step=3)
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        fail(f"app.json is not valid JSON ({error}).", unit=UNIT, step=3)
    addons = [a if isinstance(a, str) else a.get("plan", "") for a in data.get("addons", [])]
    if not any(str(a).startswith("heroku-redis") for a in addons):
        fail("app.json's addons do not include Heroku's Redis (heroku-redis, for example heroku-redis:mini).",
             unit=UNIT, step=3)
    formation = data.get("formation", {})
    for kind in ("web", "worker"):
        if int(formation.get(kind, {}).get("quantity", 0)) < 1:
            fail(f"app.json's formation does not run a {kind} dyno (quantity 1 or more).", unit=UNIT, step=3)


def test_procfile_processes_turn_a_request_into_a_pdf(learner, target, redis, s3, bucket):
    """web and worker, started from the Procfile with PORT and REDIS_URL as Heroku does."""
    types = target.procfile()
    for kind in ("web", "worker"):
        if kind not in types:
            fail(f"The Procfile has no `{kind}:` line. Heroku starts one dyno per process type; "
                 "you need web and worker.", unit=UNIT, step=1)
    port = services.free_port()
    env = learner.environment(PORT=port)
    web = learner.start_procfile("web", env=env)
    worker = learner.start_procfile("worker", env=env)
    try:
        services.wait_for_port(port, 20, web.popen, what="web process")
        listening = True
    except services.ServiceError:
        listening = False
    if not listening:
        why = web.explain_exit() if not web.alive() else "bind to 0.0.0.0:$PORT"
        fail(f"The Procfile's web process did not listen on $PORT ({port}) within 20 s: {why}", unit=UNIT, step=1)
    flows.wait_for_worker(learner, redis, worker)
    status, body, _ = http("POST", f"http://127.0.0.1:{port}/report", body={})
    if status not in (200, 202):
        fail(f"POST /report on the web process answered {status}: {str(body)[:160]}", unit=UNIT, step=1)
    keys = wait_until(lambda: bucket_keys(s3, bucket), 40, interval=0.2)
    if not keys:
        fail("40 s after POST /report no PDF had reached the bucket. Look at the worker's output "
             "(`python3 -m course run`) for errors.", unit=UNIT, step=1)
    data = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    problem = pdf_problem(data)
    if problem:
        fail(f"The Procfile's processes uploaded {keys[0]}, but {problem}.", unit=UNIT, step=1)


def test_challenge(target):
    flows.check_quiz(target, UNIT)
