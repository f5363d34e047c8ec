"""`checkpoint N` and `reset` on a copy laid out like the repository: an app
folder with the top-level Procfile and requirements.txt beside it (unit 04's
work). Both are saved with the rest, replaced by the stage's, and the command
says so."""
import os
import subprocess
import sys

import pytest

from course import ROOT, stages

LEARNER_PROCFILE = "web: gunicorn app:app\nworker: python worker.py  # mine\n"
LEARNER_REQUIREMENTS = "flask\nrq\nredis  # mine\n"


@pytest.fixture
def repository(tmp_path, monkeypatch):
    """tmp/course/starter (the stage of unit 04, as a learner has it) with the
    learner's own Procfile and requirements.txt at tmp/course/."""
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path / "state"))
    top = tmp_path / "course"
    stages.write_stage(4, top / "starter", project_dest=top)
    (top / "Procfile").write_text(LEARNER_PROCFILE)
    (top / "requirements.txt").write_text(LEARNER_REQUIREMENTS)
    return top


def course(*args):
    env = dict(os.environ, COURSE_NO_VENV="1", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "course", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("command, stage", [(("checkpoint", "3"), 3), (("reset",), 1)], ids=["checkpoint", "reset"])
def test_the_top_level_files_are_saved_replaced_and_named(repository, tmp_path, command, stage):
    done = course(*command, "--target", repository / "starter")
    assert done.returncode == 0, done.stderr
    # The stage's own versions are in place, beside the folder, as in the repository.
    assert stages.project_differences(stage, repository) == []
    assert not (repository / "starter" / "Procfile").exists()
    # The learner's versions are saved with the rest of their work.
    saved = list((tmp_path / "state" / "saved").iterdir())
    assert len(saved) == 1
    assert (saved[0] / "top-level" / "Procfile").read_text() == LEARNER_PROCFILE
    assert (saved[0] / "top-level" / "requirements.txt").read_text() == LEARNER_REQUIREMENTS
    assert (saved[0] / "worker.py").is_file()
    # ... and the command says both.
    assert f"Procfile and requirements.txt in {repository}/ are unit {stage:02d}'s too" in done.stdout
    assert "Procfile and requirements.txt are saved in its top-level/ folder" in done.stdout
    assert saved[0].name in done.stdout


def test_a_folder_with_its_own_procfile_keeps_it_inside(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path / "state"))
    folder = tmp_path / "app"
    stages.write_stage(4, folder)  # its own Procfile, as solution/ has
    (folder / "Procfile").write_text(LEARNER_PROCFILE)
    done = course("checkpoint", "2", "--target", folder)
    assert done.returncode == 0, done.stderr
    assert stages.project_differences(2, folder) == []
    assert not (tmp_path / "Procfile").exists()  # nothing written beside it
    saved = list((tmp_path / "state" / "saved").iterdir())
    assert (saved[0] / "Procfile").read_text() == LEARNER_PROCFILE
    assert not (saved[0] / "top-level").exists()
    assert f"Procfile and requirements.txt in {folder}/ are unit 02's too" in done.stdout


def test_a_step_checkpoint_is_the_app_right_after_that_step(repository):
    """`checkpoint 7.2`: a learner stuck mid-unit gets the code the lesson has them
    type through that step (a route on the priority's queue, no sections yet)."""
    done = course("checkpoint", "7.2", "--target", repository / "starter")
    assert done.returncode == 0, done.stderr
    assert "right after unit 07's step 2" in done.stdout
    assert stages.differences(stages.Step(7, 2), repository / "starter", answered=4) == []  # answers kept
    app = (repository / "starter" / "app.py").read_text()
    assert "queues[priority]" in app and "enqueue_sectioned_report" not in app


def test_a_step_that_does_not_exist_is_refused_with_the_unit_s_steps(repository):
    done = course("checkpoint", "7.42", "--target", repository / "starter")
    assert done.returncode == 2
    assert "unit 07 has steps 1-" in done.stderr
