"""Make the learner's app as it stands at the end of any unit, from the
course's marked source (course/source/).

course/source/ is the one source of every stage: the whole reference app
(provided files included), its Procfile and requirements.txt, and the quiz's
reference answers and explanations. Its learner files carry unit markers:

    # [unit 03+]       lines from unit 03 on (live code in the source)
    # [unit 01-02]     lines for units 01-02 only, kept commented out ("# ")
    # [unit 07.4+]     lines from step 4 of unit 07 on
    # [unit 03-07.5]   lines from unit 03 through step 5 of unit 07
    # [end]

A stage is the app at the end of a unit (N) or right after one step of it
(Step(N, k)). A block that names a unit without a step starts at that unit's
first step and ends with its last. A learner file exists from the first
stage that gives it a line. The stage keeps the blocks whose range
holds it, uncomments the ones that were commented out, and drops the marker
lines. The lessons' step walk (tests/selfcheck/test_lesson_steps.py) builds
the app after every step and checks that it runs and that the step's code
blocks are what changed. Three folders are
generated from it and committed, never edited by hand
(`python3 -m course stages` writes them all):

- starter/: the stage of unit 01 with no quiz answered, and the top-level
  Procfile and requirements.txt beside it (the learner completes those in
  unit 04);
- solution/: the stage of the last unit with every answer, its own Procfile
  and requirements.txt: the finished app learners read, with no markers;
- (any other stage on demand: `python3 -m course checkpoint N`).

The source lives under course/ because learners never need to read it: what
they open to compare is solution/, plain code.
"""
import re
import shutil
import tomllib
from pathlib import Path

from course import ROOT
from course import manifest

SOLUTION = ROOT / "solution"
STARTER = ROOT / "starter"
SOURCE = ROOT / "course" / "source"
MARKER = re.compile(r"^# \[unit (\d+)(?:\.(\d+))?(\+|-(\d+)(?:\.(\d+))?)\]\s*$")
LAST_STEP = 10**6  # "the end of the unit": after any step it has


class Step(tuple):
    """A stage inside a unit: the app right after step `step` of unit `unit`."""

    def __new__(cls, unit, step):
        return super().__new__(cls, (unit, step))

    unit = property(lambda self: self[0])
    step = property(lambda self: self[1])

    def __repr__(self):
        return f"Step({self[0]}, {self[1]})"


def position(stage):
    """(unit, step) of a stage: an int N is the end of unit N."""
    return tuple(stage) if isinstance(stage, tuple) else (stage, LAST_STEP)


def unit_of(stage):
    return position(stage)[0]
END = "# [end]"
# Only in the source: the reference answers' explanations never reach an app folder.
SOURCE_ONLY = {"quiz_explanations.toml"}
# Files Heroku reads from the top of the repository. Their marked sources are in
# the source; a learner's copies sit beside the app folder (at the repository's
# top for starter/), and unit 04 has the learner complete them. solution/ has its own.
PROJECT_FILES = ("Procfile", "requirements.txt")
IGNORED = {"__pycache__", ".pytest_cache"}


class MarkerError(ValueError):
    pass


def render(text, stage, last, name="<text>"):
    """The text of one learner file at the end of unit `stage`."""
    out, block, uncomment = [], None, False
    here = position(stage)
    for lineno, line in enumerate(text.splitlines(keepends=True), 1):
        m = MARKER.match(line)
        if m:
            if block is not None:
                raise MarkerError(f"{name}:{lineno}: a block opens inside another")
            first = (int(m.group(1)), int(m.group(2) or 1))
            end = (last, LAST_STEP) if m.group(3) == "+" else (int(m.group(4)), int(m.group(5) or LAST_STEP))
            if end < first:
                raise MarkerError(f"{name}:{lineno}: the block ends before it starts")
            block = (first, end)
            uncomment = end < (last, LAST_STEP)  # blocks that end before the last unit are stored commented out
            continue
        if line.rstrip() == END:
            if block is None:
                raise MarkerError(f"{name}:{lineno}: [end] without a block")
            block = None
            continue
        if block is not None:
            if not block[0] <= here <= block[1]:
                continue
            if uncomment:
                if line.startswith("# "):
                    line = line[2:]
                elif line.rstrip("\n") == "#":
                    line = line[1:]
                else:
                    raise MarkerError(f"{name}:{lineno}: a line in a past-unit block must start with '# '")
        out.append(line)
    if block is not None:
        raise MarkerError(f"{name}: a block is not closed with {END}")
    return "".join(out)


def render_answers(stage):
    """answers.toml with the reference answers of units 1..stage and blanks for
    the rest (explanations are not copied). Stage 0 is all blanks: the starter."""
    answers = tomllib.loads((SOURCE / manifest.ANSWERS_FILE).read_text())
    lines = [
        "# Your answers to each unit's challenge. Letters, e.g. q1 = \"b\" or, where",
        "# several choices are right, q1 = \"ac\". `python3 -m course quiz N` fills this in.",
    ]
    for unit in manifest.units():
        section = f"unit_{unit.code}"
        if not unit.quiz:
            continue
        lines += ["", f"[{section}]"]
        for q in unit.quiz:
            value = answers.get(section, {}).get(q.id, "") if unit.number <= stage else ""
            lines.append(f'{q.id} = "{value}"')
    return "\n".join(lines) + "\n"


def files_at(stage, answered=None):
    """{relative path: text or Path} of the whole app folder at the end of unit
    `stage`, with quiz answers through unit `answered` (default: `stage`)."""
    units = manifest.units()
    last = units[-1].number
    created = manifest.learner_files()
    result = {}
    for path in sorted(SOURCE.rglob("*")):
        rel = path.relative_to(SOURCE)
        if path.is_dir() or IGNORED & set(rel.parts) or rel.name in SOURCE_ONLY:
            continue
        name = rel.as_posix()
        if name in PROJECT_FILES:
            continue  # see project_files_at()
        if name == manifest.ANSWERS_FILE:
            if answered is None:  # inside a unit, its quiz is not answered yet
                answered = stage if isinstance(stage, int) else unit_of(stage) - 1
            result[name] = render_answers(answered)
        elif name in created:
            text = render(path.read_text(), stage, last, name) if created[name] <= unit_of(stage) else ""
            if text.strip():  # a learner file exists from the step that writes its first line
                result[name] = text
        else:
            result[name] = path  # provided: copied as it is
    return result


def project_files_at(stage):
    """{name: text} of the top-level project files at the end of unit `stage`."""
    last = manifest.units()[-1].number
    return {name: render((SOURCE / name).read_text(), stage, last, name) for name in PROJECT_FILES}


def starter_files():
    """starter/ as it must be committed: unit 01's code, no quiz answered yet."""
    return files_at(1, answered=0)


def write_stage(stage, dest, answered=None, project_dest=None):
    """Write the app folder at the end of unit `stage` into dest (emptied first),
    and the project files (Procfile, requirements.txt) into project_dest (only
    those files are replaced there), or into dest itself if not given."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    for name, content in files_at(stage, answered).items():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_text(content)
    project_dest = Path(project_dest) if project_dest else dest
    for name, text in project_files_at(stage).items():
        (project_dest / name).write_text(text)
    return dest


def project_folder(app_folder):
    """Where an app folder's project files live: in it if it has its own
    Procfile, else beside it (the repository's top, for starter/)."""
    app_folder = Path(app_folder)
    return app_folder if (app_folder / "Procfile").is_file() else app_folder.parent


STEP_HEADING = re.compile(r"^## Step (\d+): \S", re.MULTILINE)


def step_numbers(unit):
    """The step numbers of a unit's lesson, from its `## Step K: ...` headings."""
    return [int(n) for n in STEP_HEADING.findall(unit.readme.read_text())] if unit.readme.is_file() else []


def last_stage():
    return manifest.units()[-1].number


def write_starter():
    """starter/ and the top-level Procfile and requirements.txt: the stage of unit 01."""
    write_stage(1, STARTER, answered=0, project_dest=ROOT)


class SolutionEdited(RuntimeError):
    """solution/ holds marked text: edits meant for the source, which regenerating would lose."""


def marked_files(folder):
    """Files under folder that hold unit markers (a marked source, not a generated app)."""
    folder = Path(folder)
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not IGNORED & set(path.relative_to(folder).parts):
            try:
                text = path.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            if any(MARKER.match(line) or line.rstrip() == END for line in text.splitlines()):
                found.append(path.relative_to(folder).as_posix())
    return found


def write_solution():
    """solution/: the finished app (the last stage, every quiz answered, its own
    Procfile and requirements.txt), with no markers. Never overwrites marked text."""
    marked = marked_files(SOLUTION) if SOLUTION.is_dir() else []
    if marked:
        raise SolutionEdited(f"solution/ holds unit markers ({', '.join(marked)}): those are edits to the marked "
                       f"source made in solution/. Carry them into {SOURCE.relative_to(ROOT)}/ by hand, "
                       "then run this again (it would overwrite them).")
    write_stage(last_stage(), SOLUTION)


def write_all():
    """Everything generated from the source: starter/, the top-level Procfile and
    requirements.txt, and solution/. Returns what was written, for a message."""
    write_solution()
    write_starter()
    return ["starter/", "Procfile", "requirements.txt", "solution/"]


def project_differences(stage, folder):
    """Project files in `folder` that differ from the stage of unit `stage`."""
    folder = Path(folder)
    return [name for name, text in project_files_at(stage).items()
            if not (folder / name).is_file() or (folder / name).read_text() != text]


def differences(stage, folder, answered=None):
    """Paths where `folder` differs from the stage of unit `stage` (empty if identical)."""
    folder = Path(folder)
    expected = files_at(stage, answered)
    actual = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not IGNORED & set(p.relative_to(folder).parts)
    } - set(PROJECT_FILES)  # compared by project_differences()
    diffs = sorted(actual - set(expected)) + sorted(set(expected) - actual)
    for name in sorted(actual & set(expected)):
        want = expected[name]
        want = want.read_bytes() if isinstance(want, Path) else want.encode()
        if (folder / name).read_bytes() != want:
            diffs.append(name)
    return diffs
