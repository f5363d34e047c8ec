"""`checkpoint N` and `reset`: put the learner folder in the reference state
at the end of unit N (reset: the original starter, unit 01), after saving the
learner's own work in .course/saved/<folder>-<time>/ so nothing is lost."""
import shutil
import time
from pathlib import Path

from course import manifest, ROOT, progress, stages, ui
from course.target import display

SKIPPED = shutil.ignore_patterns("__pycache__", ".pytest_cache")


class Refused(Exception):
    pass


def _check_safe(target):
    """Only an app folder (or a folder not made yet) is ever replaced."""
    target = Path(target).resolve()
    if target == stages.SOLUTION.resolve():
        raise Refused("solution/ is the course's reference app and the source of every stage; "
                      "point --target at your own folder.")
    if target == ROOT or target in ROOT.parents or target == Path.home():
        raise Refused(f"{target} is not an app folder; point --target at a folder like starter/.")
    if target.exists() and not (target.is_dir() and (target / "app.py").is_file()):
        raise Refused(f"{target} does not look like an app folder (it has no app.py), so it is left alone.")


def save(target):
    """Copy the folder into the save area; return where it went (None if there was nothing)."""
    target = Path(target)
    if not target.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = progress.state_dir() / "saved" / f"{target.name}-{stamp}"
    count = 1
    while dest.exists():  # two saves in the same second
        count += 1
        dest = dest.with_name(f"{target.name}-{stamp}-{count}")
    shutil.copytree(target, dest, ignore=SKIPPED)
    return dest


def move_to(stage, target, what, skipped_to=None):
    """Save, then write the stage; returns the exit code. The learner's own
    answers.toml is kept: skipping ahead never hands out quiz answers."""
    try:
        _check_safe(target)
    except Refused as why:
        ui.warn(str(why))
        return 2
    saved = save(target)
    answers = Path(target) / manifest.ANSWERS_FILE
    own_answers = answers.read_text() if answers.is_file() else None
    # Project files (Procfile, requirements.txt) go where the grader and Heroku
    # look for them: in the folder if it has its own, else beside it.
    stages.write_stage(stage, target, answered=0, project_dest=stages.project_folder(target))
    if own_answers is not None:
        answers.write_text(own_answers)
    progress.forget_grades(target, checkpoint=stage if skipped_to is None else skipped_to)
    ui.say(f"{display(target)} now holds {what}.")
    if saved:
        where = display(saved)
        ui.say(f"Your previous work is saved in {where}")
        example = next((n for n in ("worker.py", "utils.py", "app.py") if (saved / n).exists()), "app.py")
        ui.say(f"  (to get a file back: cp {where}{example} {display(target)})")
    ui.say(f"Grades for {display(target)} were cleared; `python3 -m course grade N` grades it again.")
    if own_answers is not None and stage > 1:
        ui.say("Your quiz answers are as you left them; `python3 -m course quiz N` asks a unit's challenge.")
    return 0
