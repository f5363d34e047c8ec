"""The generated folders and the stages: starter/ (as committed) and solution/
are what `python3 -m course stages` makes from course/source/; provided files
carry no markers; every stage reads as plain code; each unit's grader passes
the stage of its unit and fails the folders from before it, for the reason the
unit is about; the quiz keys match the source's answers.

None of this reads the learner's work in starter/: the untouched starter is
graded from a fresh generation, and the check that the committed starter is
the generated one asks git for the committed files once the working copy has
been changed (see test_starter_is_the_stage_of_unit_01).

What "for the reason" means is written per unit in corpus/unit_NN/stages.toml:

    [starter]     # the untouched starter graded on this unit
    test_name = "text its failure message must hold"
    [previous]    # the stage of the unit before, graded on this unit
    test_name = "..."

A unit without that file (or a section) gets the general rule: at least one
check other than the challenge fails, and every failure is a short message,
not a traceback.
"""
import atexit
import hashlib
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest

from course import ROOT, manifest, quiz, stages
from selfcheck import runner

UNITS = sorted(runner.unit_folders())
CHALLENGE = "test_challenge"
REGENERATE = "Run `python3 -m course stages` to regenerate starter/ and solution/ (never edit them by hand)."


def _fresh_starter():
    """The untouched starter, generated into a folder of its own (with the top-level
    Procfile and requirements.txt beside it, as in the repository): the learner's
    starter/ may hold any amount of their work."""
    top = Path(tempfile.mkdtemp(prefix="course-untouched-"))
    atexit.register(shutil.rmtree, top, ignore_errors=True)
    stages.write_stage(1, top / "starter", answered=0, project_dest=top)
    return top / "starter"


UNTOUCHED_STARTER = _fresh_starter()


def _starter(unit):
    return runner.Grading(unit=unit, base=UNTOUCHED_STARTER, label=f"the untouched starter graded on unit {unit:02d}")


def _previous(unit):
    return runner.Grading(unit=unit, stage=unit - 1,
                          label=f"the stage of unit {unit - 1:02d} graded on unit {unit:02d}")


def _own(unit):
    return runner.Grading(unit=unit, stage=unit, label=f"the stage of unit {unit:02d} graded on unit {unit:02d}")


def _ids(grading):
    return f"unit_{grading.unit:02d}"


def expectations(unit, section):
    path = runner.CORPUS / f"unit_{unit:02d}" / "stages.toml"
    return tomllib.loads(path.read_text()).get(section) if path.is_file() else None


# ---------------------------------------------------------------- starter/, as committed

def generated_starter():
    """{path in the repository: bytes} of starter/ and the top-level project files, as generated."""
    files = {f"starter/{name}": content.read_bytes() if isinstance(content, Path) else content.encode()
             for name, content in stages.starter_files().items()}
    files.update({name: text.encode() for name, text in stages.project_files_at(1).items()})
    return files


def blob_id(data):
    """The id git gives a file with these bytes (what `git hash-object` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def git(*args):
    """git's output, run at the course's top; None if git is missing or says no."""
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def generation_inputs():
    """What the generation reads: the marked source, the units' manifests, the generator."""
    return [p.relative_to(ROOT).as_posix() for p in (stages.SOURCE, ROOT / "units", ROOT / "course" / "stages.py",
                                                     ROOT / "course" / "manifest.py")]


def committed_starter(commit):
    """{path in the repository: blob id} of starter/ and the top-level project files in a commit."""
    prefix = (git("rev-parse", "--show-prefix") or "").strip()
    listing = git("ls-tree", "-r", "--full-name", commit, "--", "starter", *stages.PROJECT_FILES) or ""
    found = {}
    for line in listing.splitlines():
        meta, path = line.split("\t", 1)
        found[path[len(prefix):]] = meta.split()[2]
    return found


def _starter_problem(differ, where):
    return (f"starter/ {where} is not the stage of unit 01 made from {stages.SOURCE.relative_to(ROOT)}/; "
            f"these differ: {', '.join(differ)}. {REGENERATE}")


def test_starter_is_the_stage_of_unit_01():
    """The committed starter/ and top-level Procfile and requirements.txt are the
    generation. When the working copy is the generation, that is all. When it is
    not, it may hold a learner's work (edits, even commits), which is theirs to
    make; then git decides: the files as committed by the last commit that
    changed what the generation reads (the source, units/, the generator) must
    be the generation. Uncommitted changes to those inputs mean a maintainer at
    work, and then the working copy itself must follow. Without git, a changed
    starter cannot be told from a stale one, and the check is skipped, saying so."""
    differ = stages.differences(1, stages.STARTER, answered=0)
    differ += [f"{name} (top level)" for name in stages.project_differences(1, ROOT)]
    if not differ:
        return
    inputs = generation_inputs()
    status = git("status", "--porcelain", "--", *inputs)
    commit = (git("log", "-1", "--format=%H", "--", *inputs) or "").strip()
    if status is None or not commit:
        pytest.skip(f"starter/ differs from the stage of unit 01 ({', '.join(differ)}): a learner's work or a "
                    "stale starter, and without git history there is no telling which. solution/ is still checked.")
    if status.strip():
        pytest.fail(_starter_problem(differ, "in the working copy (the source has uncommitted changes)"),
                    pytrace=False)
    want = {path: blob_id(data) for path, data in generated_starter().items()}
    have = committed_starter(commit)
    wrong = sorted(set(want) ^ set(have)) + sorted(p for p in set(want) & set(have) if want[p] != have[p])
    if wrong:
        pytest.fail(_starter_problem(wrong, f"as committed in {commit[:12]} (the last commit to change the source)"),
                    pytrace=False)


# ---------------------------------------------------------------- solution/ and every stage

def test_solution_is_the_finished_app_made_from_the_source():
    last = stages.last_stage()
    differ = stages.differences(last, stages.SOLUTION) + stages.project_differences(last, stages.SOLUTION)
    if differ:
        pytest.fail(f"solution/ is not the stage of unit {last:02d} made from {stages.SOURCE.relative_to(ROOT)}/; "
                    f"these differ: {', '.join(sorted(differ))}. {REGENERATE}", pytrace=False)


def test_provided_files_carry_no_markers():
    """Provided files are copied as they are into every stage, so a marker in one
    would reach learners. (starter/ and solution/ get byte-identical copies.)"""
    learner_owned = set(manifest.learner_files()) | set(stages.PROJECT_FILES) | {manifest.ANSWERS_FILE}
    marked = [name for name in stages.marked_files(stages.SOURCE) if name not in learner_owned]
    if marked:
        pytest.fail(f"These provided files in {stages.SOURCE.relative_to(ROOT)}/ hold unit markers: "
                    f"{', '.join(marked)}. Only learner files ({', '.join(sorted(learner_owned))}) may.",
                    pytrace=False)


TOP_LEVEL_DEF = re.compile(r"^(async def |def |class |@|if __name__ == )")


def layout_problems(name, text):
    """Where a generated file's blank lines are not those of hand-written code."""
    problems = []
    lines = text.split("\n")
    if not text.endswith("\n") or text.endswith("\n\n"):
        problems.append("it must end with exactly one newline")
    if lines[0].strip() == "":
        problems.append("it starts with a blank line")
    blank = 0
    for number, line in enumerate(lines[:-1], 1):
        if not line.strip():
            blank += 1
            continue
        if blank > 2:
            problems.append(f"line {number}: {blank} blank lines before it")
        if name.endswith(".py") and number > 1 and TOP_LEVEL_DEF.match(line) and \
                not lines[number - 2].startswith(("#", "@")) and blank != 2:
            problems.append(f"line {number}: {blank} blank line(s) before a top-level {line.split()[0]}, not 2")
        blank = 0
    return problems


@pytest.mark.parametrize("stage", [u.number for u in manifest.units()], ids=lambda n: f"unit_{n:02d}")
def test_every_stage_reads_as_plain_code(stage):
    """No marker left, and blank lines as PEP 8 has them."""
    texts = {name: c for name, c in stages.files_at(stage).items() if not isinstance(c, Path)}
    texts.update(stages.project_files_at(stage))
    found = []
    for name, text in texts.items():
        if any(stages.MARKER.match(l) or l.rstrip() == stages.END for l in text.splitlines()):
            found.append(f"{name}: a unit marker is left")
        found += [f"{name}: {p}" for p in layout_problems(name, text)]
    if found:
        pytest.fail(f"The stage of unit {stage:02d} does not read as plain code: " + "; ".join(found[:8])
                    + f". Fix the blank lines around the markers in {stages.SOURCE.relative_to(ROOT)}/.",
                    pytrace=False)


def _fails_for_the_right_reason(outcome, expected):
    if outcome.problem:
        pytest.fail(f"{outcome.problem}.\n{outcome.describe()}", pytrace=False)
    failed = outcome.failed()
    if expected is None:  # the general rule
        if not set(failed) - {CHALLENGE}:
            pytest.fail("Only the challenge failed: this unit's grader does not check the unit's own work.\n"
                        + outcome.describe(), pytrace=False)
        unclear = [n for n, m in failed.items() if "Traceback" in m or len(m.splitlines()) > 3 or not m.strip()]
        if unclear:
            pytest.fail(f"These failures are not short, plain messages: {', '.join(unclear)}.\n"
                        + outcome.describe(), pytrace=False)
        return
    for check, text in expected.items():
        if check not in outcome.checks:
            pytest.fail(f"There is no check {check!r} (named in stages.toml).\n{outcome.describe()}", pytrace=False)
        if check in outcome.not_run():
            continue  # said once the others are proven
        if check not in failed:
            pytest.fail(f"{check} should fail here, but it {outcome.checks[check]['outcome']}.\n"
                        + outcome.describe(), pytrace=False)
        if text not in failed[check]:
            pytest.fail(f"{check} failed, but its message does not say {text!r}.\n{outcome.describe()}",
                        pytrace=False)
    outcome.skip_if_not_run(set(expected))


@pytest.mark.parametrize("grading", [_starter(n) for n in UNITS if n >= 2], ids=_ids)
def test_untouched_starter_fails_the_unit(grading, gradings):
    _fails_for_the_right_reason(gradings.outcome(grading), expectations(grading.unit, "starter"))


@pytest.mark.parametrize("grading", [_previous(n) for n in UNITS if n >= 2], ids=_ids)
def test_stage_of_the_unit_before_fails_the_unit(grading, gradings):
    _fails_for_the_right_reason(gradings.outcome(grading), expectations(grading.unit, "previous"))


@pytest.mark.parametrize("grading", [_own(n) for n in UNITS], ids=_ids)
def test_stage_of_the_unit_passes_it(grading, gradings):
    outcome = gradings.outcome(grading)
    if outcome.problem or outcome.failed() or not outcome.checks:
        pytest.fail(f"The unit's own stage (the finished app as it stands after the unit) must pass every check.\n"
                    + outcome.describe(), pytrace=False)
    outcome.skip_if_not_run()


@pytest.mark.parametrize("unit", [u.number for u in manifest.units()], ids=lambda n: f"unit_{n:02d}")
def test_quiz_keys_match_the_solution_answers(unit):
    """What `python3 -m course quiz-keys` would write, compared without writing it."""
    u = manifest.unit(unit)
    if not u.quiz:
        pytest.fail(f"Unit {u.code} has no challenge questions in its unit.toml yet.", pytrace=False)
    answers = tomllib.loads((stages.SOURCE / manifest.ANSWERS_FILE).read_text()).get(f"unit_{u.code}", {})
    path = stages.SOURCE / quiz.EXPLANATIONS_FILE
    explanations = tomllib.loads(path.read_text()).get(f"unit_{u.code}", {}) if path.is_file() else {}
    stale = []
    for q in u.quiz:
        answer = answers.get(q.id)
        if not answer:
            pytest.fail(f"{stages.SOURCE.relative_to(ROOT)}/answers.toml has no answer for [unit_{u.code}] {q.id}.",
                        pytrace=False)
        if q.key != quiz.answer_hash(u, q.id, answer) or \
                quiz.decrypt(u, q.id, answer, q.explanation) != explanations.get(q.id, ""):
            stale.append(q.id)
    if stale:
        pytest.fail(f"units/{u.folder.name}/keys.toml does not match the source's answers for {', '.join(stale)}. "
                    f"Run `python3 -m course quiz-keys {unit}`.", pytrace=False)
