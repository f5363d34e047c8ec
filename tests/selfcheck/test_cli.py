"""The learner's command, `python3 -m course ...`, used as a learner would:
against temporary copies of learner folders, never starter/ itself.

Only a few checks run a real grader (units 02 and 03, the fast ones); the
rest call the commands directly.
"""
import csv
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from course import cli, grading, manifest, quiz, result_formats, stages, ui
from course import browser, challenge, checkpoint, progress, watch
from course import ROOT

ANSI = "\x1b["


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    """Progress, hint counts and saved copies go to a temporary place, not .course/."""
    folder = tmp_path / "state"
    monkeypatch.setenv("COURSE_STATE_DIR", str(folder))
    monkeypatch.delenv("COURSE_TARGET", raising=False)
    return folder


def stage_copy(tmp_path, stage, name="app"):
    """A learner folder as it stands at the end of unit `stage`."""
    folder = tmp_path / name
    stages.write_stage(stage, folder)
    return folder


def course(*args, stdin="", **settings):
    """Run `python3 -m course ARGS` as a learner would, output to a pipe (not a terminal),
    with these environment settings added."""
    env = dict(os.environ, COURSE_NO_VENV="1", **settings)
    env.pop("NO_COLOR", None)  # no colour must follow from the pipe alone
    for handed_down in (browser.BROWSER_FOUND, browser.BROWSER_MISSING):
        env.pop(handed_down, None)  # a learner's command finds its own browser, as this session's did
    done = subprocess.run([sys.executable, "-m", "course", *map(str, args)], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=180)
    assert ANSI not in done.stdout + done.stderr, "colour codes in output that is not a terminal"
    return done


def with_unit(monkeypatch, unit):
    """Make the manifest return `unit` for its number (a unit with hints or a quiz)."""
    real = manifest.unit
    monkeypatch.setattr(manifest, "unit", lambda n: unit if int(n) == unit.number else real(n))


# ---------------------------------------------------------------- every command

def command_names():
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main([name, "--help"])
    assert exit.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_no_colour_with_NO_COLOR_even_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert ANSI in ui.paint("PASS", "green")
    monkeypatch.setenv("NO_COLOR", "1")
    assert ANSI not in ui.paint("PASS", "green")


def test_an_unknown_unit_is_a_clear_error():
    done = course("hint", "42")
    assert done.returncode != 0
    assert "not a unit" in done.stderr


# ---------------------------------------------------------------- grade and status

def test_grade_3_on_the_starter_names_worker_py_and_the_unit(tmp_path):
    done = course("grade", "3", "--target", stage_copy(tmp_path, 1))
    assert done.returncode == 1, done.stdout
    assert "FAIL  unit 03" in done.stdout
    assert "worker.py is missing" in done.stdout
    assert "Unit 02 (units/02-" in done.stdout  # where the fix is explained
    assert "Traceback" not in done.stdout + done.stderr


def test_grade_3_on_its_own_stage_passes_and_status_shows_it(tmp_path):
    folder = stage_copy(tmp_path, 3)
    results, exercism, summary = tmp_path / "out" / "results.json", tmp_path / "out" / "ex.json", tmp_path / "s.md"
    done = course("grade", "3", "--target", folder, "--results", results, "--exercism", exercism, "--summary", summary)
    data = json.loads(results.read_text())
    tests = json.loads(exercism.read_text())["tests"]
    assert [t["name"].split(": ", 1)[0] for t in tests] == ["Unit 03"] * len(data["units"]["03"]["checks"])
    assert "| 03 Creating the worker and util files |" in summary.read_text()
    checks = data["units"]["03"]["checks"]
    if manifest.unit(3).quiz:
        assert done.returncode == 0, done.stdout
        assert "PASS  unit 03" in done.stdout
    else:  # the unit's challenge is still being written: everything else must pass
        assert [c["check"] for c in checks if c["outcome"] != "passed"] == ["test_challenge"], done.stdout
    status = course("status", "--target", folder)
    assert status.returncode == 0
    line = next(l for l in status.stdout.splitlines() if "unit 03" in l)
    assert "graded just now" in line and "not started" not in line


# ---------------------------------------------------------------- without a browser

BROWSER_CHECK = "test_page_shows_progress_then_the_link"


def test_grade_5_without_a_browser_gives_no_points_for_the_check_that_did_not_run(tmp_path):
    """COURSE_BROWSER=none hides every browser: the finished app graded on unit 05 is not
    fully graded. Its browser check is neither failed nor passed, earns nothing, and says
    why in the summary, the results JSON, the Exercism output and `status`."""
    results, exercism = tmp_path / "results.json", tmp_path / "exercism.json"
    done = course("grade", "5", "--target", ROOT / "solution", "--results", results, "--exercism", exercism,
                  COURSE_BROWSER="none")
    said = done.stdout + done.stderr
    assert done.returncode == 1 and "PART  unit 05" in done.stdout and "FAIL" not in done.stdout, said
    assert "not fully graded" in done.stdout and "Traceback" not in said, said
    assert done.stderr.count("skipped, not graded") == 1, done.stderr  # said once, before grading
    unit = json.loads(results.read_text())["units"]["05"]
    assert unit["state"] == "not fully graded" and unit["not_run"] == 1 and unit["earned"] < unit["points"], unit
    checks = {c["check"]: c for c in unit["checks"]}
    assert checks[BROWSER_CHECK]["outcome"] == "skipped" and checks[BROWSER_CHECK]["earned"] == 0
    assert checks[BROWSER_CHECK]["message"].startswith("not run: no browser"), checks[BROWSER_CHECK]
    assert all(c["outcome"] == "passed" for name, c in checks.items() if name != BROWSER_CHECK), checks
    tests = {t["name"]: t for t in json.loads(exercism.read_text())["tests"]}
    shown = tests[f"Unit 05: {ui.check_name(BROWSER_CHECK)}"]
    assert shown["status"] == "error" and shown["message"].startswith("not run: no browser"), shown
    status = course("status", "--target", ROOT / "solution").stdout
    line = next(l for l in status.splitlines() if "unit 05" in l)
    assert "not fully" in line and "passed" not in line, status
    assert f"0 of {len(manifest.units())} units passed" in status, status  # not done


def test_a_check_that_needs_a_browser_is_skipped_with_its_reason_where_there_is_none():
    """Where there is no browser, pytest counts the browser check as skipped in its last line
    and names the reason (`course test` lists every skip's reason, -rs), exiting 0."""
    env = dict(os.environ, COURSE_BROWSER="none", COURSE_NO_VENV="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/unit_05", "--target", "solution", "-k", BROWSER_CHECK,
                           "-rs", "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and "1 skipped" in lines[-1] and "failed" not in lines[-1], done.stdout
    assert any(l.startswith("SKIPPED") and "not run: no browser" in l for l in lines), done.stdout


if os.environ.get("CI", "").lower() not in ("", "0", "false"):
    def test_ci_grades_the_page_in_a_real_browser():
        """CI proves the browser path too: it must have a browser, found or obtained by the
        course itself, so unit 05's browser check runs there rather than being skipped."""
        from course import browser

        binary, why = browser.find(obtain=False)
        assert binary or os.environ.get("COURSE_BROWSER") == "none", why


def test_grade_of_a_missing_folder_fails_clearly(tmp_path):
    done = course("grade", "2", "--target", tmp_path / "nowhere")
    assert done.returncode == 2
    assert "no app folder" in done.stderr


def test_status_lists_every_unit_and_the_next_step(tmp_path):
    done = course("status", "--target", stage_copy(tmp_path, 1))
    assert done.returncode == 0
    for unit in manifest.units():
        assert f"unit {unit.code} {unit.title}" in done.stdout
    assert "not started" in done.stdout
    assert "Next: unit 01" in done.stdout


def test_status_next_step_quotes_the_first_failure(tmp_path):
    folder = stage_copy(tmp_path, 1)
    message = "Failed: worker.py is missing from app/.\n  -> Unit 02 (units/02-x/README.md)"
    progress.record_grades(folder, {"01": {"earned": 10, "points": 10, "passed": 1, "total": 1, "seconds": 1,
                                           "checks": [{"check": "test_a", "outcome": "passed", "seconds": 1}]},
                                    "02": {"earned": 0, "points": 10, "passed": 0, "total": 1, "seconds": 1,
                                           "checks": [{"check": "test_b", "outcome": "failed", "seconds": 1,
                                                       "message": message}]}})
    done = course("status", "--target", folder)
    assert "Next: fix unit 02. worker.py is missing from app/." in done.stdout
    assert f"10/{sum(u.points for u in manifest.units())} points" in done.stdout


OLD_UNIT_08_CHECKS = ["test_job_payloads_in_redis_are_json", "test_sigterm_lets_the_running_job_finish",
                      "test_cleanup_deletes_only_old_reports", "test_worker_processes_run_reports_side_by_side",
                      "test_the_same_key_twice_makes_one_report_job", "test_challenge"]


def test_a_grade_of_the_old_unit_08_is_shared_out_among_units_08_to_12_once(tmp_path):
    """A learner part-way through when unit 08 was split keeps their progress: each
    check's outcome goes to the unit that now holds it, and status says so once."""
    folder = stage_copy(tmp_path, 12)
    checks = [{"check": name, "outcome": "passed", "seconds": 1} for name in OLD_UNIT_08_CHECKS]
    progress.record_grades(folder, {"08": {"earned": 10, "points": 10, "passed": 6, "total": 6, "seconds": 9,
                                           "checks": checks}})
    first, second = course("status", "--target", folder), course("status", "--target", folder)
    assert "Unit 08 is now units 08-12" in first.stdout
    assert "Unit 08 is now units 08-12" not in second.stdout
    shared = progress.grades(folder)
    for code, name in zip(("08", "09", "10", "11", "12"), OLD_UNIT_08_CHECKS):
        assert [c["check"] for c in shared[code]["checks"]] == [name]
        assert progress.unit_state(shared[code]) == "failed"  # its other checks and new quiz: graded again


# ---------------------------------------------------------------- hint

def test_hint_shows_one_more_each_time_and_never_more_than_exist(tmp_path, monkeypatch, capsys):
    unit = dataclasses.replace(manifest.unit(3), hints=("a nudge", "closer", "nearly there"))
    with_unit(monkeypatch, unit)
    folder = stage_copy(tmp_path, 1)
    shown = []
    for _ in range(5):
        assert cli.main(["hint", "3", "--target", str(folder)]) == 0
        shown.append(capsys.readouterr().out)
    assert "Hint 1 of 3" in shown[0] and "a nudge" in shown[0] and "closer" not in shown[0]
    assert "Hint 2 of 3" in shown[1] and "closer" in shown[1]
    assert "Hint 3 of 3" in shown[2] and "nearly there" in shown[2]
    for later in shown[3:]:
        assert "every hint" in later and "Hint 3 of 3" in later
    other = tmp_path / "other"
    stages.write_stage(1, other)
    cli.main(["hint", "3", "--target", str(other)])
    assert "Hint 1 of 3" in capsys.readouterr().out  # counts are kept per folder


def test_hint_for_a_unit_without_hints_says_so(tmp_path, monkeypatch, capsys):
    with_unit(monkeypatch, dataclasses.replace(manifest.unit(2), hints=()))
    assert cli.main(["hint", "2", "--target", str(stage_copy(tmp_path, 1))]) == 0
    assert "no hints yet" in capsys.readouterr().out


# ---------------------------------------------------------------- quiz

def quiz_unit(number=2):
    """A unit with a two-question challenge whose keys are made here: q1 is 'b', q2 is 'ac'."""
    unit = manifest.unit(number)
    questions = []
    for qid, text, right in (("q1", "Which one?", "b"), ("q2", "Which ones?", "ac")):
        questions.append(manifest.Quiz(
            id=qid, question=text, choices={"a": "first", "b": "second", "c": "third"},
            key=quiz.answer_hash(unit, qid, right),
            explanation=quiz.encrypt(unit, qid, right, f"because {qid}")))
    return dataclasses.replace(unit, quiz=tuple(questions))


def test_quiz_records_answers_keeping_the_file_as_it_was(tmp_path, monkeypatch, capsys):
    unit = quiz_unit()
    with_unit(monkeypatch, unit)
    folder = stage_copy(tmp_path, 1)
    answers = folder / manifest.ANSWERS_FILE
    answers.write_text("# my notes stay\n[unit_01]\nq1 = \"a\"  # a guess\n\n[unit_02]\nq1 = \"\"\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("x\nb\nc, a\n"))
    assert cli.main(["quiz", "2", "--target", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Answer with letters from a, b, c" in out  # 'x' was asked again
    assert "because q1" in out and "because q2" in out
    text = answers.read_text()
    assert text.startswith("# my notes stay\n") and 'q1 = "a"  # a guess' in text
    assert tomllib.loads(text)["unit_02"] == {"q1": "b", "q2": "ac"}
    checked = quiz.check(unit, tomllib.loads(text))
    assert all(right for _, right, _ in checked)


def test_a_wrong_quiz_answer_is_recorded_but_not_explained(tmp_path, monkeypatch, capsys):
    with_unit(monkeypatch, quiz_unit())
    folder = stage_copy(tmp_path, 1)
    (folder / manifest.ANSWERS_FILE).unlink()
    monkeypatch.setattr(sys, "stdin", io.StringIO("a\n"))  # then end of input
    assert cli.main(["quiz", "2", "--target", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "Not right yet" in out and "because" not in out
    assert tomllib.loads((folder / manifest.ANSWERS_FILE).read_text())["unit_02"] == {"q1": "a"}


def test_quiz_on_the_command_line_with_scripted_input(tmp_path):
    folder = stage_copy(tmp_path, 1)
    unit = manifest.unit(2)
    letters = "\n".join(challenge.choices(q)[0][0] for q in unit.quiz) + "\n"
    done = course("quiz", "2", "--target", folder, stdin=letters)
    if not unit.quiz:
        assert done.returncode == 0 and "no challenge questions yet" in done.stdout
        return
    assert done.returncode in (0, 1)
    saved = tomllib.loads((folder / manifest.ANSWERS_FILE).read_text())["unit_02"]
    assert set(saved) == {q.id for q in unit.quiz}


def test_set_answers_adds_missing_sections_and_keys(tmp_path):
    path = tmp_path / "answers.toml"
    path.write_text("# top\n[unit_01]\nq1 = \"a\"\n\n[unit_03]\n")
    challenge.set_answers(path, manifest.unit(3), {"q1": "b"})
    challenge.set_answers(path, manifest.unit(2), {"q2": "c"})
    data = tomllib.loads(path.read_text())
    assert data == {"unit_01": {"q1": "a"}, "unit_03": {"q1": "b"}, "unit_02": {"q2": "c"}}
    assert path.read_text().startswith("# top\n")


# ---------------------------------------------------------------- checkpoint and reset

def test_checkpoint_then_reset_round_trips_and_saves_the_learners_work(tmp_path, state):
    folder = stage_copy(tmp_path, 2)
    (folder / "worker.py").write_text("# my own worker, half done\n")
    (folder / "notes.txt").write_text("mine")
    my_answers = '[unit_01]\nq1 = "d"\n'
    (folder / "answers.toml").write_text(my_answers)
    done = course("checkpoint", "3", "--target", folder)
    assert done.returncode == 0, done.stderr
    # The code is unit 03's reference; the quiz answers stay the learner's own.
    assert stages.differences(3, folder) == ["answers.toml"]
    assert (folder / "answers.toml").read_text() == my_answers
    saved = [p for p in (state / "saved").iterdir()]
    assert len(saved) == 1
    assert (saved[0] / "worker.py").read_text() == "# my own worker, half done\n"
    assert (saved[0] / "notes.txt").read_text() == "mine"
    assert saved[0].name in done.stdout  # the learner is told where

    done = course("reset", "--target", folder)
    assert done.returncode == 0, done.stderr
    assert stages.differences(1, folder) == ["answers.toml"]
    assert (folder / "answers.toml").read_text() == my_answers
    assert len(list((state / "saved").iterdir())) == 2  # the stage-3 copy was saved too


def test_checkpoint_never_replaces_solution_or_a_folder_that_is_not_an_app(tmp_path):
    done = course("checkpoint", "3", "--target", "solution")
    assert done.returncode == 2 and "solution/" in done.stderr
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_text("meow")
    done = course("reset", "--target", other)
    assert done.returncode == 2 and (other / "cat.jpg").exists()


def test_checkpoint_clears_the_old_grades(tmp_path):
    folder = stage_copy(tmp_path, 1)
    progress.record_grades(folder, {"01": {"earned": 10, "points": 10, "passed": 1, "total": 1,
                                           "seconds": 1, "checks": []}})
    assert checkpoint.move_to(2, folder, "unit 02") == 0
    assert progress.grades(folder) == {}


# ---------------------------------------------------------------- watch

@pytest.mark.parametrize("poll", [True, False], ids=["polling", "events"])
def test_watch_notices_a_saved_file(tmp_path, poll):
    folder = stage_copy(tmp_path, 1)
    watcher = watch.watcher_for(folder, poll=poll)
    try:
        assert not watcher.wait(timeout=0.6)
        (folder / "__pycache__").mkdir(exist_ok=True)
        (folder / "__pycache__" / "app.cpython-312.pyc").write_bytes(b"ignored")
        assert not watcher.wait(timeout=0.6)
        (folder / "app.py").write_text((folder / "app.py").read_text() + "\n")
        assert watcher.wait(timeout=5)
    finally:
        watcher.close()


@pytest.mark.parametrize("poll", [True, False], ids=["polling", "events"])
def test_watch_notices_the_project_files_beside_the_app(tmp_path, poll):
    """starter/ has no Procfile of its own: unit 04's Procfile and requirements.txt are the
    repository's, and saving them must re-grade as saving starter/app.py does."""
    folder = stage_copy(tmp_path / "repo", 1, name="starter")
    for name in ("Procfile", "requirements.txt"):
        (folder / name).rename(folder.parent / name)
    (folder.parent / "README.md").write_text("not graded")
    for name in ("Procfile", "requirements.txt"):
        watcher = watch.watcher_for(folder, poll=poll)
        try:
            (folder.parent / "README.md").write_text("still not graded")
            assert not watcher.wait(timeout=0.6)
            path = folder.parent / name
            path.write_text(path.read_text() + "\n")
            assert watcher.wait(timeout=5), f"saving the top-level {name} went unnoticed"
        finally:
            watcher.close()


# ---------------------------------------------------------------- class

def test_class_grades_every_student_folder(tmp_path):
    roster = tmp_path / "roster"
    stages.write_stage(2, roster / "ada")
    stages.write_stage(1, roster / "bob")
    (roster / "cy").mkdir(parents=True)  # submitted nothing
    out = tmp_path / "grades.csv"
    done = course("class", roster, "--units", "2", "--out", out, "-j", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    assert set(rows) == {"ada", "bob", "cy"}
    assert float(rows["ada"]["unit_02"]) > float(rows["bob"]["unit_02"]) == 0
    assert rows["cy"]["error"]
    assert "2 at a time" in done.stdout and "[3/3]" in done.stdout  # a line as each student finishes


def test_class_grades_each_student_afresh_in_a_warm_run(tmp_path):
    """With one job, one warm grading run grades every student in turn: a failing student
    between two passing ones gets their own grade, and each passing one every point."""
    roster = tmp_path / "roster"
    stages.write_stage(2, roster / "ada")
    stages.write_stage(1, roster / "bob")
    stages.write_stage(2, roster / "cy")
    out = tmp_path / "grades.csv"
    done = course("class", roster, "--units", "2", "--out", out, "-j", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["student"]: float(row["unit_02"]) for row in csv.DictReader(out.open())}
    assert rows == {"ada": manifest.unit(2).points, "bob": 0, "cy": manifest.unit(2).points}, done.stdout


def rigged_repository(student):
    """A student's copy of the whole course whose tests/ and course/ were rigged to pass,
    and whose app.py is the untouched starter."""
    shutil.copytree(ROOT / "starter", student / "starter")
    for name in ("Procfile", "requirements.txt", ".python-version", "app.json"):
        shutil.copyfile(ROOT / name, student / name)
    (student / "tests" / "unit_03").mkdir(parents=True)
    (student / "tests" / "conftest.py").write_text(
        "import pytest\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n")
    (student / "tests" / "unit_03" / "test_unit_03.py").write_text("def test_everything():\n    pass\n")
    (student / "course").mkdir()
    (student / "course" / "grading.py").write_text("raise SystemExit('PASS 20/20')\n")
    return student


def finished_repository(student):
    """A student's copy of the course at the end of unit 04, its deploy files at the top."""
    stages.write_stage(4, student / "starter", answered=4, project_dest=student)
    for name in (".python-version", "app.json", "constraints-course.txt"):
        shutil.copyfile(ROOT / name, student / name)
    return student


def test_class_grades_a_rigged_repository_by_its_own_files(tmp_path):
    """A student's copy of the whole course whose tests/ and course/ were rigged to pass,
    and whose app.py is the untouched starter, earns what the starter earns: nothing.
    The roster folder is not written."""
    student = rigged_repository(tmp_path / "roster" / "mallory")
    before = sorted((p.relative_to(student), p.stat().st_mtime_ns) for p in student.rglob("*"))
    out = tmp_path / "grades.json"
    done = course("class", tmp_path / "roster", "--units", "3", "--out", out)
    assert done.returncode == 0, done.stdout + done.stderr
    row = json.loads(out.read_text())["students"][0]
    assert row["unit_03"] == 0 and not row["error"], row
    assert sorted((p.relative_to(student), p.stat().st_mtime_ns) for p in student.rglob("*")) == before


def test_class_gives_a_finished_repository_its_full_points(tmp_path):
    """A student's copy of the course at the end of unit 04 (its deploy files at the top,
    as the course lays them out) earns every point of unit 04 from its copied files."""
    finished_repository(tmp_path / "roster" / "grace")
    out = tmp_path / "grades.json"
    done = course("class", tmp_path / "roster", "--units", "4", "--out", out)
    assert done.returncode == 0, done.stdout + done.stderr
    row = json.loads(out.read_text())["students"][0]
    assert row["unit_04"] == manifest.unit(4).points, json.loads(out.read_text())["results"]


def test_class_refuses_others_code_without_the_sandbox(tmp_path):
    done = course("class", tmp_path, "--units", "2", COURSE_SANDBOX="off")
    assert done.returncode == 2 and "Not grading others' code here" in done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "--unsafe" in said and "Unset COURSE_SANDBOX" in said and "--container IMAGE" in said


FAKE_ENGINE = """#!{python}
# A container engine for the checks: records its arguments, then runs the image's
# entrypoint here, against the folder mounted at /student, with no environment of ours.
import json, os, subprocess, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
inside = args[args.index({image!r}) + 1:]
mounts = [args[i + 1].split(":") for i, a in enumerate(args) if a == "-v"]
student = mounts[0][0] if mounts else ""
if student.endswith("garbage"):
    sys.exit(print("Traceback (most recent call last): something broke"))
if student.endswith("silent"):
    sys.exit(1)
if mounts:
    inside += ["--student", student]
env = {{"PATH": os.environ["PATH"], "HOME": {home!r}, "COURSE_NO_VENV": "1", "COURSE_STATE_DIR": {home!r}}}
sys.exit(subprocess.call([sys.executable, "-m", "course.container", *inside], cwd={root!r}, env=env))
"""


def fake_engine(tmp_path, image):
    """A fake engine's path, and the file where it logs each command line it was given."""
    log, engine = tmp_path / "engine.log", tmp_path / "bin" / "fake-engine"
    engine.parent.mkdir()
    (tmp_path / "home").mkdir()
    engine.write_text(FAKE_ENGINE.format(python=sys.executable, log=str(log), image=image, home=str(tmp_path / "home"),
                                         root=str(ROOT)))
    engine.chmod(0o755)
    return engine, log


def test_class_in_containers_runs_one_locked_down_container_per_student(tmp_path):
    """`--container IMAGE`: one `ENGINE run` per student, with no network, read-only files, a tmpfs
    and none of the instructor's environment; its JSON lands in the CSV, and a container that
    prints garbage or nothing gives that student an error row. The sandbox's refusal does not apply."""
    roster = tmp_path / "roster"
    stages.write_stage(2, roster / "ada")
    stages.write_stage(2, roster / "garbage")
    stages.write_stage(2, roster / "silent")
    engine, log = fake_engine(tmp_path, "course-grader:test")
    out = tmp_path / "grades.csv"
    done = course("class", roster, "--units", "2", "--out", out, "--container", "course-grader:test",
                  COURSE_CONTAINER_ENGINE=str(engine), COURSE_SANDBOX="off", AWS_SECRET_ACCESS_KEY="hunter2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "container of its own" in done.stdout and "Not grading" not in done.stdout + done.stderr
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    assert float(rows["ada"]["unit_02"]) == manifest.unit(2).points and not rows["ada"]["error"], rows["ada"]
    for broken in ("garbage", "silent"):
        assert rows[broken]["error"].startswith("the container gave no results"), rows[broken]
        assert float(rows[broken]["earned"]) == 0
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    students = [args for args in runs if "-v" in args]
    assert len(students) == 3 and len({args[args.index("--name") + 1] for args in students}) == 3
    for args in students:
        assert args[:2] == ["run", "--rm"]
        assert args[args.index("--network") + 1] == "none" and "--read-only" in args
        assert args[args.index("--tmpfs") + 1].startswith("/tmp:")
        source, target, mode = args[args.index("-v") + 1].split(":")
        assert Path(source).parent == roster.resolve() and (target, mode) == ("/student", "ro")
        assert not {"-e", "--env", "--env-file", "--env-host", "--privileged", "--network=host"} & set(args)
        assert "hunter2" not in json.dumps(args)


def test_class_in_containers_needs_an_engine(tmp_path):
    (tmp_path / "ada").mkdir()
    done = course("class", tmp_path, "--container", "course-grader", COURSE_CONTAINER_ENGINE="no-such-engine")
    assert done.returncode == 2 and "No container engine" in done.stdout + done.stderr


@pytest.mark.skipif(not os.environ.get("COURSE_CONTAINER_IMAGE"),
                    reason="no grader image: COURSE_CONTAINER_IMAGE names one built from container/Containerfile")
def test_class_in_real_containers_grades_a_finished_and_a_rigged_repository(tmp_path):
    """A real engine and image: the finished repository earns every point of units 03-04,
    the rigged one nothing, each from a container of its own; the roster is not written."""
    roster = tmp_path / "roster"
    finished_repository(roster / "grace")
    mallory = rigged_repository(roster / "mallory")
    before = sorted((p.relative_to(mallory), p.stat().st_mtime_ns) for p in mallory.rglob("*"))
    out = tmp_path / "grades.json"
    done = course("class", roster, "--units", "3", "4", "--out", out, "-j", "2",
                  "--container", os.environ["COURSE_CONTAINER_IMAGE"])
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["student"]: row for row in json.loads(out.read_text())["students"]}
    assert rows["grace"]["earned"] == manifest.unit(3).points + manifest.unit(4).points, rows["grace"]
    assert rows["mallory"]["unit_03"] == 0 and not rows["mallory"]["error"], rows["mallory"]
    assert sorted((p.relative_to(mallory), p.stat().st_mtime_ns) for p in mallory.rglob("*")) == before


# ---------------------------------------------------------------- grading platforms

def test_the_retired_github_classroom_is_gone():
    """GitHub Classroom was retired on 2026-08-28: nothing may point instructors at it."""
    assert not (ROOT / ".github" / "classroom").exists()
    assert not (ROOT / ".github" / "workflows" / "classroom.yml").exists()
    assert "classroom-files" not in command_names()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        assert "autograding.json" not in text and "for GitHub Classroom" not in text, page.name


def test_the_grading_workflow_runs_the_graders_own_command_on_push():
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "grade.yml").read_text())
    assert "push" in workflow["on"]
    job = workflow["jobs"]["grade"]
    assert "solution/app.py" in job["if"], "the grading job must run only in student copies (no solution/)"
    steps = job["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "python-version-file" in str(steps) and "find_redis_server" in runs
    assert "playwright install" not in runs and "chromium" not in runs.lower(), "the course obtains its browser itself"
    grade = next(step["run"] for step in steps if "course grade all" in step.get("run", ""))
    args = cli.build_parser().parse_args(grade.replace('"$GITHUB_STEP_SUMMARY"', "SUMMARY").split()[3:])
    assert args.results and args.exercism and args.summary == "SUMMARY"
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == str(Path(args.results).parent) + "/"


def test_grades_of_record_come_from_the_instructors_workflow():
    """The template grades with the course at a pinned commit, keeps no credentials,
    gives the grading step no secret, and runs `course class` as the CLI parses it."""
    import yaml

    student = yaml.safe_load((ROOT / ".github" / "workflows" / "grade.yml").read_text())
    assert "self-check" in student["name"].lower() and "not a grade of record" in student["name"]
    workflow = yaml.safe_load((ROOT / "docs" / "workflows" / "grades-of-record.yml").read_text())
    assert workflow["permissions"] == {"contents": "read"}
    assert "course_ref" in workflow["on"]["workflow_dispatch"]["inputs"]
    for job in (student["jobs"]["grade"], *workflow["jobs"].values()):
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout"):
                assert step["with"]["persist-credentials"] is False, step
    steps = workflow["jobs"]["grade"]["steps"]
    course_checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))
    assert course_checkout["with"]["ref"] == "${{ inputs.course_ref }}"
    grade = next(s for s in steps if "course class" in s.get("run", ""))
    assert "secrets." not in str(grade) and "env" not in grade, "the grading step must hold no secret"
    args = cli.build_parser().parse_args(grade["run"].replace('"$GITHUB_STEP_SUMMARY"', "SUMMARY").split()[3:])
    assert args.roster == "../roster" and args.summary == "SUMMARY" and not args.unsafe
    assert "matrix" in workflow["jobs"]["grade"]["strategy"]


def test_exercism_results_follow_version_3():
    unit = manifest.unit(3)
    checks = [{"check": "test_worker_listens_on_high_default_low_in_order", "outcome": "passed", "seconds": 1},
              {"check": "test_route_enqueues_and_answers_at_once", "outcome": "failed", "seconds": 1,
               "message": "POST /report took 3 s.\n  -> Unit 03, step 4"}]
    run = grading.GradeRun(units={"03": {"checks": checks, "earned": 10, "passed": 1, "total": 2, "seconds": 2}})
    data = result_formats.exercism_results(run, [unit, manifest.unit(2)])
    assert data["version"] == 3 and data["status"] == "fail"
    first, second, missing = data["tests"]
    assert first["status"] == "pass" and first["message"] is None and first["task_id"] == 3
    assert first["test_code"].startswith("def test_worker_listens_on_high_default_low_in_order(")
    assert second["status"] == "fail" and "took 3 s" in second["message"] and second["name"].startswith("Unit 03: ")
    assert missing["status"] == "error" and missing["task_id"] == 2
    for test in data["tests"]:
        assert set(test) == {"name", "status", "message", "output", "test_code", "task_id"}
    broken = result_formats.exercism_results(grading.GradeRun(output="ImportError: no module named rq\n"), [unit])
    assert broken["status"] == "error" and "ImportError" in broken["message"] and broken["tests"] == []


# ---------------------------------------------------------------- diff

def test_diff_shows_the_units_own_code_against_the_unit_before(tmp_path):
    """At the end of unit 07, `diff 7` is the code unit 07 has the learner write, and
    `diff 8` says nothing of unit 08 is written yet."""
    folder = stage_copy(tmp_path, 7)
    done = course("diff", "7", "--target", folder)
    assert done.returncode == 0, done.stderr
    assert "+def fetch_section(section):" in done.stdout and "+def merge_status(job):" in done.stdout
    assert "differ from the reference app at the end of unit 06: app.py, utils.py." in done.stdout
    assert "report_pdf.py" not in done.stdout  # provided, never the learner's to change
    later = course("diff", "8", "--target", folder)
    assert "nothing of unit 08 is written yet" in later.stdout
