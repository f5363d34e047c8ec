"""`checkpoint N` and `reset`: put the learner folder in the reference state
at the end of unit N (reset: the original starter, unit 01), after saving the
learner's own work in .course/saved/<folder>-<time>/ so nothing is lost.

The learner's work includes the Procfile and requirements.txt that go with the
folder (unit 04's work): inside it if it has its own, else the ones beside it
(the repository's top, for starter/). Those beside it are saved too, in the
saved copy's top-level/ folder, and replaced by the stage's."""
import shutil
import time
from pathlib import Path

from course import manifest, ROOT, progress, stages, ui
from course.target import display

SKIPPED = shutil.ignore_patterns("__pycache__", ".pytest_cache")
# Where, inside a saved copy, the project files from beside the folder go.
TOP_LEVEL = "top-level"


class Refused(Exception):
    pass


def _check_safe(target):
    """Only an app folder (or a folder not made yet) is ever replaced."""
    target = Path(target).resolve()
    if target in (stages.SOLUTION.resolve(), stages.SOURCE.resolve()):
        raise Refused(f"{display(target)} is the course's reference app, made from its source; "
                      "point --target at your own folder.")
    if target == ROOT or target in ROOT.parents or target == Path.home():
        raise Refused(f"{target} is not an app folder; point --target at a folder like starter/.")
    if target.exists() and not (target.is_dir() and (target / "app.py").is_file()):
        raise Refused(f"{target} does not look like an app folder (it has no app.py), so it is left alone.")


def save(target, project_dir=None):
    """Copy the folder into the save area, and the project files found in
    project_dir (when they live outside the folder) into its top-level/ folder;
    return where it went (None if there was nothing)."""
    target = Path(target)
    beside = [] if project_dir is None else [project_dir / n for n in stages.PROJECT_FILES
                                             if (project_dir / n).is_file()]
    if not target.exists() and not beside:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = progress.state_dir() / "saved" / f"{target.name}-{stamp}"
    count = 1
    while dest.exists():  # two saves in the same second
        count += 1
        dest = dest.with_name(f"{target.name}-{stamp}-{count}")
    if target.exists():
        shutil.copytree(target, dest, ignore=SKIPPED)
    if beside:
        (dest / TOP_LEVEL).mkdir(parents=True)
        for path in beside:
            shutil.copy2(path, dest / TOP_LEVEL / path.name)
    return dest


def move_to(stage, target, what, skipped_to=None):
    """Save, then write the stage; returns the exit code. The learner's own
    answers.toml is kept: skipping ahead never hands out quiz answers."""
    try:
        _check_safe(target)
    except Refused as why:
        ui.warn(str(why))
        return 2
    target = Path(target)
    # Project files (Procfile, requirements.txt) go where the grader and Heroku
    # look for them: in the folder if it has its own, else beside it.
    project_dir = stages.project_folder(target)
    outside = project_dir.resolve() != target.resolve()
    saved = save(target, project_dir if outside else None)
    answers = target / manifest.ANSWERS_FILE
    own_answers = answers.read_text() if answers.is_file() else None
    stages.write_stage(stage, target, answered=0, project_dest=project_dir)
    if own_answers is not None:
        answers.write_text(own_answers)
    # Mid-unit, the units before it are done; the unit itself is not.
    done = stages.unit_of(stage) - (0 if isinstance(stage, int) else 1)
    progress.forget_grades(target, checkpoint=done if skipped_to is None else skipped_to)
    files = " and ".join(stages.PROJECT_FILES)
    ui.say(f"{display(target)} now holds {what}.")
    where_files = ("at the top of the course" if project_dir.resolve() == ROOT
                   else f"in {display(project_dir)}") if outside else f"in {display(target)}"
    ui.say(f"The {files} {where_files} are unit {stage:02d}'s too." if isinstance(stage, int)
           else f"The {files} {where_files} match that step too.")
    if saved:
        where = display(saved)
        ui.say(f"Your previous work is saved in {where}")
        example = next((n for n in ("worker.py", "utils.py", "app.py") if (saved / n).exists()), "app.py")
        ui.say(f"  (to get a file back: cp {where}{example} {display(target)})")
        if (saved / TOP_LEVEL).is_dir():
            ui.say(f"  (your {files} are saved in its {TOP_LEVEL}/ folder)")
    ui.say(f"Grades for {display(target)} were cleared; `python3 -m course grade N` grades it again.")
    if own_answers is not None and stages.position(stage) > (1, stages.LAST_STEP):
        ui.say("Your quiz answers are as you left them; `python3 -m course quiz N` asks a unit's challenge.")
    return 0
