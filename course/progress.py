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
    data = _load()
    folder = data.get(str(Path(target).resolve()), {})
    if split_old_unit_08(folder):
        _save(data)
    return folder.get("grades", {})


# The course's first layout had one long unit 08 ("Production hardening"); it is
# now units 08-12, each of one sitting. A grade stored for that old unit is
# shared out check by check among the units that now hold its checks, once; the
# new units' quizzes are new, so none of them counts as passed until graded again.
SPLIT_FROM_08 = range(8, 13)


def _check_names(unit):
    import re

    return {name for path in sorted(unit.tests.glob("test_*.py"))
            for name in re.findall(r"(?m)^def (test_\w+)", path.read_text())}


def split_old_unit_08(folder):
    """Share out an old unit 08 grade in `folder` (one learner folder's state) among
    units 08-12, and note that it was done. True if anything changed."""
    old = folder.get("grades", {}).get("08")
    if not old or old.get("split_from") or folder.get("unit_08_split"):
        return False
    units = [u for u in manifest.units() if u.number in SPLIT_FROM_08]
    names = {u.code: _check_names(u) for u in units}
    checks = old.get("checks", [])
    if not {c["check"] for c in checks} & set().union(*(names[u.code] for u in units if u.number != 8)):
        return False  # graded on today's unit 08 already
    for unit in units:
        mine = [c for c in checks if c["check"] in names[unit.code] and c["check"] != "test_challenge"]
        passed = sum(c["outcome"] == "passed" for c in mine)
        total = len(names[unit.code])
        folder["grades"][unit.code] = {
            "earned": round(unit.points * passed / total, 2) if total else 0, "points": unit.points,
            "passed": passed, "total": total, "seconds": 0, "checks": mine,
            "graded_at": old.get("graded_at", 0), "split_from": "08"}
    folder["unit_08_split"] = "unseen"
    return True


def split_note(target):
    """Once per folder after the split: a sentence for `status`, else ''."""
    data = _load()
    folder = data.get(str(Path(target).resolve()), {})
    if folder.get("unit_08_split") != "unseen":
        return ""
    folder["unit_08_split"] = "seen"
    _save(data)
    return ("Unit 08 is now units 08-12, each of one sitting. Your unit 08 grade was shared out check by "
            "check among them; their quizzes are new, so grade each again once you have answered it.")


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


# A unit whose checks all passed but some did not run (no browser): neither passed nor failed.
NOT_FULLY_GRADED = "not fully graded"


def unit_result(unit, checks):
    """A unit's grade from its checks' outcomes (the grader's --results 'units' entry): its
    points shared among its scored checks; a check that did not run earns nothing."""
    scored = [c for c in checks if c.get("scored", True)]
    share = unit.points / len(scored) if scored else 0
    for c in checks:
        c["points"] = round(share, 2) if c.get("scored", True) else 0
        c["earned"] = c["points"] if c["outcome"] == "passed" else 0
    result = {"title": unit.title, "points": unit.points,
              "earned": round(share * sum(c["outcome"] == "passed" for c in scored), 2),
              "passed": sum(c["outcome"] == "passed" for c in checks), "total": len(checks),
              "not_run": sum(c["outcome"] == "skipped" for c in checks),
              "seconds": round(sum(c["seconds"] for c in checks), 2), "checks": checks}
    result["state"] = unit_state(result)
    return result


def unit_line(code, result, seconds=None, paint=lambda word, colour: word):
    """A unit's grade on one line: PASS/FAIL/PART, checks, points, seconds (what the learner
    waited for it when graded alone, else the time its checks took)."""
    state = unit_state(result)
    word = {"passed": paint("PASS", "green"), "failed": paint("FAIL", "red")}.get(state, paint("PART", "yellow"))
    not_run = f" ({state}: {result['not_run']} not run)" if state == NOT_FULLY_GRADED else ""
    return (f"{word}  unit {code} {result['title']:<38} {result['passed']}/{result['total']} checks{not_run}  "
            f"{result['earned']:g}/{result['points']} points  "
            f"{result['seconds'] if seconds is None else seconds:.1f} s")


def unit_state(result):
    """'passed', 'failed', NOT_FULLY_GRADED (every check that ran passed, some did not run),
    or 'not started'."""
    if not result:
        return "not started"
    if result["total"] and result["passed"] == result["total"]:
        return "passed"
    outcomes = [c["outcome"] for c in result.get("checks", [])]
    if outcomes and "skipped" in outcomes and all(o in ("passed", "skipped") for o in outcomes):
        return NOT_FULLY_GRADED
    return "failed"


def first_failure(result):
    """The message of the first failing check (else of the first that did not run), without
    pytest's 'Failed: ' prefix."""
    checks = (result or {}).get("checks", [])
    for check in sorted(checks, key=lambda c: c["outcome"] != "failed"):
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
