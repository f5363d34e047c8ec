"""The step walk: every unit, followed step by step as a learner types it.

For each step of each unit, the course's source gives the app as it stands
right after that step (course/stages.py, markers like `# [unit 07.4+]`). The
walk checks, step after step, from the end of the unit before:

- what the step's code blocks show is in the app after that step (a block may
  not quote code a later step writes);
- every line the step adds is shown in one of its blocks, so a learner who
  types the blocks gets that app and no line is left to guess;
- that app still imports and serves its home page, with only the names this
  step and the ones before it defined (no ImportError for a later step's
  function, no NameError at import);
- every "Try it" the step gives (a bash block the learner runs) does what the
  lesson says it does, run at its step against the app as it stands then.

A maintainer who moves a block to another step, or edits a step's code in the
source, learns here whether a learner can still follow the lesson in order.

Try-it notes. Every bash block of a lesson carries an HTML comment on the line
before its fence (invisible on GitHub), but for grading commands (`python3 -m
course grade N`, `.venv/bin/python -m pytest ...`) and blocks of `heroku`
commands only, which are counted as not run:

    <!-- try: expect 400 "priority must be high, default or low" -->
    <!-- try: needs run log "worker.1 | default: Job OK" -->
    <!-- try: not run: the retries take 100 s; tests/unit_06 checks them -->

- `"text"` the block's output shows it; `~"regex"` a match of it;
- `NNN` one of the block's curl commands got an answer with that HTTP status;
- `log "text"` (or `log ~"regex"`) the output of the running `course run` shows
  it, from the block on, within 30 s;
- `needs run` the block needs a `course run`: if none is running, it starts
  `python3 -m course run --app starter --port 8000`, as the lessons' prose does;
- `needs redis` the block needs the Redis of unit 02 on port 6379;
- `keep` the block's last command is a server: it stays running to the end of
  the unit, once its output shows what the note expects; `until` the same, but
  it is stopped (Ctrl-C) once it has shown it;
- `pause N` N seconds between the block's commands (a learner typing the next);
- `env NAME=VALUE` the block's `course run` gets this setting too, where the
  lesson offers it (a shorter grace);
- `not run: why` the block is not run here, and why (counted, not hidden).

How a block runs: in a scratch copy of the repository (`starter/` the app at
the block's step, the Procfile beside it, `.venv` the course's Python, first on
PATH), one command a line, each within 30 s, each of which must succeed. A line
that starts `python3 -m course run` starts it in the background with `--app`
naming that copy and a local S3 all units share; it runs till the next run, a new
step's app, or the unit's end, and the commands after it get the environment
its `export ...` line prints. Before any run, REDIS_URL names the Redis of port
6379. The lesson's fixed ports, 8000 (the router) and 6379 (unit 02's Redis),
are rewritten to free ones, in the commands and in what the note expects.
`<the job_id>` (or `<id>`) is the last job id a command printed. `heroku` lines
are not run. The units' walks start when collection ends, one unit after
another in a thread (TryItWalk), and each unit's check reports its own.
"""
import ast
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from course import manifest, services, stages
from selfcheck import try_it
from selfcheck.test_lessons import FILE_NOTE, FENCE, STEP, added_lines, first_mismatch, readme_lines, where

UNITS = manifest.units()


def steps_and_blocks(unit):
    """{step number: [(line number, file name, block lines)]} for the blocks a step
    writes: annotated with this unit's own stage."""
    lines = readme_lines(unit)
    found, step, i = {}, None, 0
    while i < len(lines):
        heading = STEP.match(lines[i])
        if heading:
            step = int(heading.group(1))
            found.setdefault(step, [])
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(1)), len(lines))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        note = FILE_NOTE.match(before.strip())
        if note and note.group(2) and int(note.group(2)) == unit.number and step is not None:
            found[step].append((i + 1, note.group(1), [l.rstrip() for l in lines[i + 1:end]]))
        i = end + 1
    return found


def app_at(stage):
    """{file name: text} of the learner's files and project files at a stage."""
    files = {}
    for name, content in stages.files_at(stage).items():
        if name.endswith((".py", "Procfile", ".txt")):
            files[name] = content.read_text() if isinstance(content, Path) else content
    files.update(stages.project_files_at(stage))
    return files


def is_slice(block, text):
    return first_mismatch(block, [l.rstrip() for l in text.splitlines()]) is None


def docstring_lines(name, text):
    """Line numbers (0-based) of a Python file's docstrings: like comments, a
    learner may leave them out, so a step need not show them."""
    if not name.endswith(".py"):
        return set()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.update(range(first.lineno - 1, first.end_lineno))
    return found


def walk(unit):
    """[(step, stage, app files)] from the end of the unit before through each step."""
    steps = sorted(steps_and_blocks(unit))
    return [(k, stages.Step(unit.number, k), app_at(stages.Step(unit.number, k))) for k in steps]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.code)
def test_each_step_shows_exactly_what_it_changes(unit):
    blocks = steps_and_blocks(unit)
    readme = where(unit.readme)
    before = app_at(max(unit.number - 1, 1))  # unit 01 starts from the starter as given
    problems = []
    for step, stage, files in walk(unit):
        for lineno, name, block in blocks[step]:
            if name not in files:
                problems.append(f"{readme}:{lineno}: Step {step} shows {name}, which does not exist yet at that step")
            elif not is_slice(block, files[name]):
                later = not is_slice(block, app_at(unit.number).get(name, ""))
                problems.append(f"{readme}:{lineno}: Step {step}'s block is not {name} as it stands after Step {step}"
                                + ("" if later else " (it is the unit's final code: mark the lines in course/source/ "
                                   "with the step that writes them, or move the block to that step)"))
        shown = {}
        for _, name, block in blocks[step]:
            shown.setdefault(name, set()).update(block)
        for name, text in files.items():
            old = [l.rstrip() for l in before.get(name, "").splitlines()]
            new = [l.rstrip() for l in text.splitlines()]
            for line in added_lines(old, new, skip=docstring_lines(name, text)):
                if line.strip() and not line.strip().startswith("#") and line not in shown.get(name, set()):
                    problems.append(f"{readme}: Step {step} adds to {name} a line none of its blocks shows: "
                                    f"{line.strip()!r}")
        before = files
    if problems:
        pytest.fail(f"{len(problems)} problem(s) walking unit {unit.code} in order; first: "
                    + "\n".join(problems[:8]), pytrace=False)


# Runs in the course's Python: imports the learner's modules from each step's
# folder in turn, as the Procfile's processes do, and asks the app for its home page.
IMPORT_EACH_STEP = r"""
import importlib, json, os, sys
folders = json.loads(sys.argv[1])
results = []
for folder in folders:
    os.chdir(folder)
    sys.path.insert(0, folder)
    for name in ("app", "worker", "utils", "report_data", "report_pdf"):
        sys.modules.pop(name, None)
    problem = None
    try:
        for name in ("worker", "utils", "app"):
            if os.path.exists(name + ".py"):
                importlib.import_module(name)
        if os.path.exists("app.py"):
            response = sys.modules["app"].app.test_client().get("/")
            if response.status_code != 200:
                problem = f"GET / answers {response.status_code}"
    except BaseException as error:
        problem = f"{type(error).__name__}: {error}"
    sys.path.remove(folder)
    results.append(problem)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def redis_url():
    with services.redis_server() as url:
        yield url


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.code)
def test_the_app_runs_after_every_step(unit, redis_url, tmp_path):
    walked = walk(unit)
    folders = []
    for step, stage, _ in walked:
        folder = tmp_path / f"step_{step:02d}"
        stages.write_stage(stage, folder)
        folders.append(str(folder))
    env = {**services.s3_environment("http://127.0.0.1:9", "reports"), "REDIS_URL": redis_url,
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "REPORT_SECONDS": "1"}
    done = subprocess.run([sys.executable, "-c", IMPORT_EACH_STEP, json.dumps(folders)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    problems = [f"after Step {step}: {problem}"
                for (step, _, _), problem in zip(walked, json.loads(done.stdout.splitlines()[-1])) if problem]
    if problems:
        pytest.fail(f"{where(unit.readme)}: a learner who follows the steps in order has an app that does not "
                    f"run {problems[0]}" + (f" (and {len(problems) - 1} more step(s))" if len(problems) > 1 else ""),
                    pytrace=False)


def try_its(unit, folder, s3_endpoint):
    """Run a unit's Try-it blocks at their steps: (what went wrong or None, what ran and what did not)."""
    blocks, problems = try_it.notes(unit)
    readme = where(unit.readme)
    if problems:
        return f"{readme}: " + f"\n{readme}: ".join(problems), ""
    ran, skipped, problem = [], [b for b in blocks if b.not_run], None
    started = time.monotonic()
    session = try_it.Session(unit, folder, s3_endpoint)
    try:
        for block in (b for b in blocks if not b.not_run):
            session.write_app(stages.Step(unit.number, block.step))
            try:
                session.run_block(block)
            except try_it.Failure as failure:
                problem = f"{readme}:{block.line}: Step {block.step}'s Try-it: {failure}"
                break
            ran.append(block)
    finally:
        session.close()
    summary = (f"unit {unit.code}: {len(ran)} Try-it block(s) run in {time.monotonic() - started:.1f} s, "
               f"{len(skipped)} not run"
               + "".join(f"\n    line {b.line} (Step {b.step}) not run: {b.not_run}" for b in skipped))
    return problem, summary


class TryItWalk:
    """The selected units' Try-it walks, one unit after another in a thread started when
    collection ends (`prefetch`): they mostly wait on processes starting, reports
    running and dynos stopping, so that waiting overlaps the session's other checks.
    Their processes carry the self-checks' run marker, so a grading check running
    meanwhile does not take them for processes its learner left behind."""

    def __init__(self):
        self.results, self.thread = {}, None
        self.done = {unit.code: threading.Event() for unit in UNITS}

    def start(self, units):
        if self.thread is None and units:
            self.thread = threading.Thread(target=self._walk, args=(units,), daemon=True)
            self.thread.start()

    def _walk(self, units):
        try:
            with services.s3_server() as s3_endpoint:
                for unit in units:
                    folder = Path(tempfile.mkdtemp(prefix=f"course-try-it-{unit.code}-"))
                    try:
                        self.results[unit.code] = try_its(unit, folder, s3_endpoint)
                    except Exception as error:  # a bug here must fail the check, not hang it
                        self.results[unit.code] = (f"the Try-it walk of unit {unit.code} broke: "
                                                   f"{type(error).__name__}: {error}", "")
                    finally:
                        # Removed before the check hears: the session may end right after the last.
                        shutil.rmtree(folder, ignore_errors=True)
                        self.done[unit.code].set()
        finally:
            for event in self.done.values():
                event.set()

    def result(self, unit):
        if self.thread is None:  # not prefetched (a single check picked by its node id): run it now
            self.start([unit])
        if not self.done[unit.code].wait(TRY_IT_WALK_SECONDS):
            pytest.fail(f"the Try-it walk of unit {unit.code} did not end within {TRY_IT_WALK_SECONDS} s",
                        pytrace=False)
        return self.results.get(unit.code, (f"unit {unit.code}'s Try-it walk was not run", ""))


# Longer than any unit's walk takes: this only catches a hang.
TRY_IT_WALK_SECONDS = 600
TRY_IT_WALK = TryItWalk()


def prefetch(items):
    """Start the Try-it walk of the selected units when collection ends (the selfcheck conftest calls it)."""
    codes = {item.callspec.params["unit"].code for item in items
             if item.originalname == "test_each_try_it_shows_what_the_lesson_says"}
    TRY_IT_WALK.start([unit for unit in UNITS if unit.code in codes])


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.code)
def test_each_try_it_shows_what_the_lesson_says(unit, capsys):
    problem, summary = TRY_IT_WALK.result(unit)
    if summary:
        with capsys.disabled():
            print(f"\n  {summary}")
    if problem:
        pytest.fail(problem, pytrace=False)
