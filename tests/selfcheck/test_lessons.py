"""The lessons must agree with what is graded: every unit README has the course's
sections, its annotated code is a real slice of the app at that unit's stage
(generated from the course's source, never read from the learner's starter/),
every step a grader message cites exists, and its challenge shows the quiz.

A code block is tied to a file by an HTML comment on the line before its fence:

    <!-- file: worker.py stage: 03 -->   a learner or app file, as at the end of unit 03
    <!-- file: Procfile stage: 04 -->    a project file (Procfile, requirements.txt) at a stage
    <!-- file: app.json -->              another file at the top of the repository, as it is

The learner edits the top-level Procfile and requirements.txt (unit 04), so a
block quoting them must name a stage.
"""
import ast
import re
from pathlib import Path

import pytest

from course import ROOT, manifest, stages

UNITS = manifest.units()
STEP = re.compile(r"^## Step (\d+): \S")
FILE_NOTE = re.compile(r"^<!--\s*file:\s*(\S+)(?:\s+stage:\s*(\d+))?\s*-->\s*$")
FENCE = re.compile(r"^(`{3,}|~{3,})")


def where(path):
    return path.relative_to(ROOT).as_posix()


def readme_lines(unit):
    """The unit's README as lines; fails (with the path) if there is none."""
    if not unit.readme.is_file():
        pytest.fail(f"{where(unit.readme)} is missing: every unit needs a lesson.", pytrace=False)
    return unit.readme.read_text().splitlines()


def step_numbers(lines):
    return [int(m.group(1)) for m in map(STEP.match, lines) if m]


def section(lines, title):
    """The lines under `## title` up to the next `## ` heading (None if absent)."""
    for i, line in enumerate(lines):
        if line.strip() == f"## {title}":
            rest = lines[i + 1:]
            end = next((j for j, l in enumerate(rest) if l.startswith("## ")), len(rest))
            return rest[:end]
    return None


def code_blocks(lines):
    """(line number of the fence, the note before it or None, the block's lines)."""
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m.group(1), i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), len(lines))
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        blocks.append((start + 1, FILE_NOTE.match(before.strip()), lines[start + 1:end]))
        i = end + 1
    return blocks


def source_text(name, stage):
    """The text a note points at: a file of the app at a stage, or a top-level file."""
    if stage is not None and name in stages.PROJECT_FILES:
        return stages.project_files_at(stage)[name]
    if stage is None:
        path = ROOT / name
        return path.read_text() if path.is_file() and name not in stages.PROJECT_FILES else None
    content = stages.files_at(stage).get(name)
    if isinstance(content, Path):
        return content.read_text()
    return content


def first_mismatch(block, source):
    """None if block is a contiguous run of source's lines, else the first block line
    that the best-matching run does not have."""
    best = 0
    for start in range(len(source)):
        n = 0
        while n < len(block) and start + n < len(source) and source[start + n] == block[n]:
            n += 1
        if n == len(block):
            return None
        best = max(best, n)
    return block[best]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.code)
def test_readme_has_the_course_sections(unit):
    lines = readme_lines(unit)
    readme = where(unit.readme)
    for title in ("Objectives", "Resources", "Challenge"):
        if section(lines, title) is None:
            pytest.fail(f"{readme} has no '## {title}' section.", pytrace=False)
    steps = step_numbers(lines)
    if not steps:
        pytest.fail(f"{readme} has no steps; number them as '## Step 1: ...' headings.", pytrace=False)
    if steps != list(range(1, len(steps) + 1)):
        pytest.fail(f"{readme} numbers its steps {steps}; they must run 1, 2, 3, ... in order.", pytrace=False)


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.code)
def test_lesson_code_is_a_slice_of_its_stage(unit):
    lines = readme_lines(unit)
    readme = where(unit.readme)
    last = UNITS[-1].number
    for lineno, note, block in code_blocks(lines):
        if not note:
            continue
        name, stage = note.group(1), note.group(2) and int(note.group(2))
        if stage is not None and not 1 <= stage <= last:
            pytest.fail(f"{readme}:{lineno}: the block names stage {stage:02d}, but units run 1-{last}.", pytrace=False)
        text = source_text(name, stage)
        at = f"{name} at stage {stage:02d}" if stage else f"the repository's {name}"
        if stage is None and name in stages.PROJECT_FILES:
            pytest.fail(f"{readme}:{lineno}: a block quoting {name} must name a stage (<!-- file: {name} stage: NN -->):"
                        " the learner edits the top-level one.", pytrace=False)
        if text is None:
            pytest.fail(f"{readme}:{lineno}: the block is annotated as {at}, which does not exist.", pytrace=False)
        wanted = [l.rstrip() for l in block]
        missing = first_mismatch(wanted, [l.rstrip() for l in text.splitlines()])
        if missing is not None and stage == unit.number and any(
                first_mismatch(wanted, [l.rstrip() for l in (source_text(name, stages.Step(stage, k)) or "").splitlines()])
                is None for k in step_numbers(lines)):
            continue  # the unit's code as one step writes it, later changed: the step walk checks it
        if missing is not None:
            pytest.fail(f"{readme}:{lineno}: the code block is not a slice of {at}; "
                        f"this line differs or is missing: {missing.strip()!r}", pytrace=False)


def grader_signatures():
    """{function name: (index of `unit`, index of `step`)} for tests/grader's helpers
    that take both, so positional calls like check_pdf_at(s3, b, key, UNIT, 2) count."""
    found = {}
    for path in (ROOT / "tests" / "grader").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                names = [a.arg for a in node.args.args]
                if "unit" in names and "step" in names:
                    found[node.name] = (names.index("unit"), names.index("step"))
    found.setdefault("fail", (None, None))
    return found


def cited_steps(path, signatures):
    """[(line, unit, step)] for every call in a test file that names a unit and a step
    as int literals or module-level int constants (UNIT = 3)."""
    tree = ast.parse(path.read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, int)
        for target in node.targets if isinstance(target, ast.Name)
    }

    def value(expr):
        if isinstance(expr, ast.Constant) and isinstance(expr.value, int):
            return expr.value
        if isinstance(expr, ast.Name):
            return constants.get(expr.id)
        return None

    cited = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if callee not in signatures:
            continue
        args = {k.arg: k.value for k in node.keywords if k.arg in ("unit", "step")}
        for key, index in zip(("unit", "step"), signatures[callee]):
            if index is not None and key not in args and index < len(node.args):
                args[key] = node.args[index]
        unit, step = value(args.get("unit")), value(args.get("step"))
        if unit is not None and step is not None:
            cited.append((node.lineno, unit, step))
    return cited


GRADER_FILES = sorted((ROOT / "tests").glob("unit_*/test_*.py"))


@pytest.mark.parametrize("path", GRADER_FILES, ids=lambda p: p.parent.name)
def test_grader_messages_cite_steps_that_exist(path):
    signatures = grader_signatures()
    numbers = {u.number: u for u in UNITS}
    for lineno, number, step in cited_steps(path, signatures):
        here = f"{where(path)}:{lineno}"
        unit = numbers.get(number)
        if unit is None:
            pytest.fail(f"{here} cites unit {number}, which does not exist.", pytrace=False)
        if not unit.readme.is_file():
            pytest.fail(f"{here} cites unit {unit.code} step {step}, but {where(unit.readme)} is missing.",
                        pytrace=False)
        if step not in step_numbers(unit.readme.read_text().splitlines()):
            pytest.fail(f"{here} cites unit {unit.code} step {step}, but {where(unit.readme)} has no "
                        f"'## Step {step}: ...' heading.", pytrace=False)


def squashed(text):
    return " ".join(text.split())


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.code)
def test_challenge_shows_every_quiz_question(unit):
    lines = readme_lines(unit)
    challenge = section(lines, "Challenge")
    if challenge is None:
        pytest.fail(f"{where(unit.readme)} has no '## Challenge' section.", pytrace=False)
    shown = squashed("\n".join(challenge))
    for q in unit.quiz:
        if squashed(q.question) not in shown:
            pytest.fail(f"{where(unit.readme)}'s Challenge does not show {q.id} from unit.toml: "
                        f"{q.question!r}", pytrace=False)


def added_lines(old, new, skip=()):
    """The lines of `new` that are not carried over from `old` (a diff's inserted lines),
    but for those whose line numbers are in `skip`."""
    import difflib

    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return [new[j] for tag, _, _, j1, j2 in matcher.get_opcodes() if tag in ("insert", "replace")
            for j in range(j1, j2) if j not in skip]


def stage_text(name, stage):
    if stage < 1:
        return ""
    text = source_text(name, stage)
    return text or ""


@pytest.mark.parametrize("unit", UNITS[1:], ids=lambda u: u.code)
def test_lesson_shows_every_line_the_unit_adds(unit):
    """A learner who copies the lesson's code gets the whole unit: every code line the
    unit adds to a learner file (imports included) is in one of its annotated blocks."""
    lines = readme_lines(unit)
    shown = {}
    for _, note, block in code_blocks(lines):
        if note and note.group(2) and int(note.group(2)) == unit.number:
            shown.setdefault(note.group(1), set()).update(l.rstrip() for l in block)
    names = list(manifest.learner_files()) + list(stages.PROJECT_FILES)
    missing = []
    for name in names:
        old = [l.rstrip() for l in stage_text(name, unit.number - 1).splitlines()]
        new = [l.rstrip() for l in stage_text(name, unit.number).splitlines()]
        for line in added_lines(old, new):
            if line.strip() and not line.strip().startswith("#") and line not in shown.get(name, set()):
                missing.append(f"{name}: {line.strip()}")
    if missing:
        pytest.fail(f"{where(unit.readme)} does not show {len(missing)} line(s) unit {unit.code} adds, so copying "
                    f"the lesson leaves them out; first: " + "; ".join(missing[:6]), pytrace=False)


RQ_COMMAND = re.compile(r"\brq (?:worker|info|requeue|empty|suspend|resume)\b[^`\n]*")
RQ_URL = re.compile(r"(?:-u|--url)\s+(['\"]?)(\S+?)\1(?:\s|$)")


def rq_command_lines():
    """[(where, command, its --url value or None, for Heroku?)] for every `rq` command a
    lesson gives to run (a line that names a URL, runs on Heroku, or is a Procfile line)."""
    found = []
    for unit in UNITS:
        for number, line in enumerate(readme_lines(unit), 1):
            for match in RQ_COMMAND.finditer(line):
                start = line.rfind("`", 0, match.start()) + 1
                command = line[start:match.end()].strip()
                heroku = "heroku run" in command or "worker:" in command
                if not (heroku or RQ_URL.search(command)):
                    continue  # prose naming the command, not a line to run
                url = RQ_URL.search(command)
                found.append((f"{where(unit.readme)}:{number}", command, url and url.group(2), heroku))
    return found


def test_every_rq_command_line_names_a_url_that_works_where_it_runs(tmp_path):
    """The `rq` command builds its Redis client from the URL alone. On Heroku that is
    rediss:// with a self-signed certificate, so the URL must carry ?ssl_cert_reqs=none;
    on a local redis:// URL that query is refused. Each URL form is tried for real:
    Heroku's against a TLS front with a self-signed certificate, the local one plain."""
    import subprocess
    import sys
    from contextlib import ExitStack

    from course import services

    lines = rq_command_lines()
    assert lines, "no lesson gives an rq command line; this check looks in the wrong place"
    forms = {}
    for here, command, url, heroku in lines:
        if not url or "$REDIS_URL" not in url:
            pytest.fail(f"{here}: `{command}` names no --url built from $REDIS_URL, so rq would use "
                        "localhost:6379 instead of the app's Redis.", pytrace=False)
        if heroku != ("ssl_cert_reqs=none" in url):
            why = ("runs on Heroku, whose rediss:// certificate is self-signed: end the URL with ?ssl_cert_reqs=none"
                   if heroku else "runs locally on a redis:// URL, which refuses ?ssl_cert_reqs=none")
            pytest.fail(f"{here}: `{command}` {why}.", pytrace=False)
        forms.setdefault((url, heroku), here)
    rq = Path(sys.executable).with_name("rq")
    with ExitStack() as stack:
        # With a password, as Heroku's Redis has: a URL form that drops it fails here too.
        plain = stack.enter_context(services.redis_server(password=services.new_password()))
        tls, _ = stack.enter_context(services.tls_front(plain))
        for (url, heroku), here in forms.items():
            real = url.replace("$REDIS_URL", tls if heroku else plain)
            done = subprocess.run([str(rq), "info", "--url", real], capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                tail = ((done.stderr + done.stdout).strip().splitlines() or ["(no output)"])[-1]
                pytest.fail(f"{here}: with REDIS_URL={'rediss' if heroku else 'redis'}://..., `rq info --url {url}` "
                            f"fails: {tail}", pytrace=False)
