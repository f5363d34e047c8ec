"""`python3 -m course test` is the maintainers' suite, and passes whatever state
the learner's starter/ is in. Proved on a copy of the repository (its tracked
files) where a learner has worked through unit 03: the self-checks that used to
read starter/ (or the top-level Procfile) run there and pass.

Two copies: a clone, where the learner committed unit 03's work and then went
on editing without committing (git history tells their work from a stale
starter), and a download without git (the starter check is skipped, saying
why). The notebooks need no copy of their own here: their check already runs
them in a copy that has no starter/ at all (test_notebooks.COPIED).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course import ROOT, stages

STAGES = "tests/selfcheck/test_starter_and_stages.py"
# The self-checks that read starter/ or the top-level Procfile before they were made
# independent of them; the grading of the untouched starter on unit 03 is the one
# that a learner's finished unit 03 would pass.
CHECKS = [
    f"{STAGES}::test_starter_is_the_stage_of_unit_01",
    f"{STAGES}::test_solution_is_the_finished_app_made_from_the_source",
    f"{STAGES}::test_provided_files_carry_no_markers",
    f"{STAGES}::test_untouched_starter_fails_the_unit[unit_03]",
    "tests/selfcheck/test_lessons.py",
]
GIT_ID = ["-c", "user.name=Learner", "-c", "user.email=learner@example.com", "-c", "commit.gpgsign=false"]


def tracked_files():
    done = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("the course is not a git checkout here, so its tracked files are unknown")
    return [name for name in done.stdout.split("\0") if name and (ROOT / name).is_file()]


def copy_of_the_course(dest):
    """The course's tracked files as they are here, except the learner's own:
    starter/ and the top-level Procfile and requirements.txt are put back as the
    course hands them out, since this very suite may run in a learner's copy."""
    for name in tracked_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    stages.write_stage(1, dest / "starter", answered=0, project_dest=dest)
    return dest


def git(folder, *args):
    subprocess.run(["git", *GIT_ID, *args], cwd=folder, check=True, capture_output=True)


def work_through_unit_03(course):
    """What a learner's repository holds after unit 03: starter/ is unit 03's
    stage with the quiz answered so far, as `checkpoint 3` and `quiz` leave it."""
    stages.write_stage(3, course / "starter", answered=3, project_dest=course)


def run_checks(course, checks, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_TARGET", "PYTEST_ADDOPTS")}
    env.update(COURSE_STATE_DIR=str(tmp_path / "state"), COURSE_NO_VENV="1")
    return subprocess.run([sys.executable, "-m", "pytest", *checks, "--self-check", "--target", "solution",
                           "-q", "-p", "no:cacheprovider", "-rs"],
                          cwd=course, env=env, capture_output=True, text=True, timeout=280)


def test_a_clone_where_the_learner_committed_unit_03_and_kept_editing(tmp_path):
    course = copy_of_the_course(tmp_path / "course")
    git(course, "init", "-q")
    git(course, "add", "-A")
    git(course, "commit", "-q", "-m", "The course, as cloned")
    work_through_unit_03(course)
    git(course, "commit", "-q", "-am", "Unit 03: the report runs in a worker")
    # Unit 04 begun, not committed: a worker line in the top-level Procfile, a note in app.py.
    with open(course / "Procfile", "a") as procfile:
        procfile.write('worker: cd "${APP_DIR:-starter}" && exec python worker.py\n')
    with open(course / "starter" / "app.py", "a") as app:
        app.write("# TODO: status route (unit 05)\n")
    assert stages.differences(1, course / "starter", answered=0), "the copy's starter/ should differ now"

    done = run_checks(course, CHECKS, tmp_path)
    assert done.returncode == 0, f"the suite fails on a learner's clone:\n{done.stdout[-3000:]}{done.stderr[-1500:]}"
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]


def test_a_download_without_git_skips_the_starter_check_and_says_why(tmp_path):
    course = copy_of_the_course(tmp_path / "course")
    work_through_unit_03(course)
    done = run_checks(course, [CHECKS[0]], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 skipped" in done.stdout and "without git history" in done.stdout, done.stdout[-2000:]


@pytest.mark.parametrize("committed", [False, True], ids=["source-changed", "source-changed-and-committed"])
def test_a_stale_starter_is_still_caught_in_a_clone(tmp_path, committed):
    """The learner-proof check keeps its teeth: the source changed (committed or
    not) without regenerating, and the check fails, naming the file."""
    course = copy_of_the_course(tmp_path / "course")
    git(course, "init", "-q")
    git(course, "add", "-A")
    git(course, "commit", "-q", "-m", "The course")
    source = course / stages.SOURCE.relative_to(ROOT) / "report_data.py"
    source.write_text(source.read_text() + "# a maintainer's change, not regenerated\n")
    if committed:
        git(course, "commit", "-q", "-am", "Change the source, forget the generation")
    done = run_checks(course, [CHECKS[0]], tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "report_data.py" in done.stdout and "python3 -m course stages" in done.stdout, done.stdout[-2000:]
