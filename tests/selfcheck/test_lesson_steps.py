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
  function, no NameError at import).

A maintainer who moves a block to another step, or edits a step's code in the
source, learns here whether a learner can still follow the lesson in order.
"""
import ast
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from course import manifest, services, stages
from selfcheck.test_lessons import FILE_NOTE, FENCE, STEP, readme_lines, where

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
    source = [l.rstrip() for l in text.splitlines()]
    n = len(block)
    return any(source[i:i + n] == block for i in range(len(source) - n + 1))


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


def added_lines(old, new, skip=()):
    """The lines of `new` a diff from `old` inserts, but for line numbers in `skip`."""
    import difflib

    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return [new[j] for tag, _, _, j1, j2 in matcher.get_opcodes() if tag in ("insert", "replace")
            for j in range(j1, j2) if j not in skip]


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
                                   f"with the step that writes them, or move the block to that step)"))
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
