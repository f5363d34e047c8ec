"""What the course remembers about a learner folder: the last grade of each
unit (with every check's outcome) and how many hints were shown.

It lives in .course/state.json at the course's top (COURSE_STATE_DIR moves
it), keyed by the learner folder's absolute path, so grading another folder
with --target keeps its own progress.
"""
import json
import os
import tempfile
import time
from pathlib import Path

from course import ROOT, manifest


def state_dir():
    return Path(os.environ.get("COURSE_STATE_DIR") or ROOT / ".course")


def _state_file():
    return state_dir() / "state.json"


def _load():
    try:
        return json.loads(_state_file().read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _save(data):
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    # write then rename: a Ctrl-C mid-write never leaves half a file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=1)
    os.replace(tmp, path)


def _folder(data, target):
    return data.setdefault(str(Path(target).resolve()), {"grades": {}, "hints": {}})


def grades(target):
    """{'03': {earned, points, passed, total, seconds, checks, graded_at}} for the units graded."""
    return _load().get(str(Path(target).resolve()), {}).get("grades", {})


def record_grades(target, units):
    """Store the grader's per-unit results (its --results JSON 'units' part)."""
    data = _load()
    stored = _folder(data, target)["grades"]
    now = time.time()
    for code, result in units.items():
        stored[code] = dict(result, graded_at=now)
    _save(data)


def forget_grades(target, checkpoint=0):
    """After checkpoint/reset the folder changed: old grades no longer describe it.
    `checkpoint` is the unit whose reference code the folder now holds (0: the starter)."""
    data = _load()
    folder = _folder(data, target)
    folder["grades"] = {}
    folder["checkpoint"] = checkpoint
    _save(data)


def checkpoint(target):
    """The unit whose reference code `checkpoint` last put in the folder (0 if none)."""
    return _load().get(str(Path(target).resolve()), {}).get("checkpoint", 0)


def hints_shown(target, unit):
    return _load().get(str(Path(target).resolve()), {}).get("hints", {}).get(unit.code, 0)


def set_hints_shown(target, unit, count):
    data = _load()
    _folder(data, target)["hints"][unit.code] = count
    _save(data)


def unit_state(result):
    if not result:
        return "not started"
    return "passed" if result["total"] and result["passed"] == result["total"] else "failed"


def first_failure(result):
    """The message of the first failing check, without pytest's 'Failed: ' prefix."""
    for check in (result or {}).get("checks", []):
        if check["outcome"] != "passed":
            return clean_message(check.get("message", "")) or f"{check['check']} {check['outcome']}"
    return ""


def clean_message(text):
    return text.removeprefix("Failed: ").strip()


def current_unit(target):
    """The first unit not yet passed after the last checkpoint (the last unit when all pass)."""
    done = grades(target)
    skipped = checkpoint(target)
    for unit in manifest.units():
        if unit.number > skipped and unit_state(done.get(unit.code)) != "passed":
            return unit
    return manifest.units()[-1]
