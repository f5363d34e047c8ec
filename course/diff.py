"""`diff N`: what your folder changes against the reference app at the end of
unit N-1, that is, the code you wrote for unit N (and anything else you
changed since). Files the course provides and never asks you to edit are left
out; so are your quiz answers."""
import difflib
from pathlib import Path

from course import manifest, stages, ui
from course.target import display

COLOURS = {"+": "green", "-": "red", "@": "cyan"}


def _text(content):
    return content.read_text() if isinstance(content, Path) else content


def changes(unit, target):
    """[(file name, unified diff lines)] of the learner's and project files that
    differ from the stage of the unit before."""
    target = Path(target)
    before_stage = unit.number - 1
    before = stages.files_at(before_stage) if before_stage >= 1 else {}
    before.update(stages.project_files_at(before_stage) if before_stage >= 1 else {})
    names = sorted(set(manifest.learner_files()) | set(stages.PROJECT_FILES))
    project = stages.project_folder(target)
    found = []
    for name in names:
        path = (project if name in stages.PROJECT_FILES else target) / name
        old = _text(before[name]) if name in before else ""
        new = path.read_text() if path.is_file() else ""
        if old == new:
            continue
        lines = list(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                          f"unit {before_stage:02d}/{name}", f"yours/{name}"))
        found.append((name, lines))
    return found


def run(unit, target):
    found = changes(unit, target)
    if not found:
        ui.say(f"{display(target)} is the reference app at the end of unit {unit.number - 1:02d}: "
               f"nothing of unit {unit.code} is written yet.")
        return 0
    for name, lines in found:
        for line in lines:
            text = line.rstrip("\n")
            kind = "" if line.startswith(("+++", "---")) else line[:1]
            ui.say(ui.paint(text, COLOURS[kind]) if kind in COLOURS else text)
    ui.say(f"\n{len(found)} file(s) differ from the reference app at the end of unit {unit.number - 1:02d}: "
           f"{', '.join(name for name, _ in found)}. `python3 -m course grade {unit.number}` grades them.")
    return 0
