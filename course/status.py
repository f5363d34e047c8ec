"""`status`: every unit passed / failed / not started, from the last grades."""
import time

from course import ROOT, manifest, progress, ui
from course.grading import has_grader
from course.target import display


def show(target):
    done = progress.grades(target)
    units = manifest.units()
    total = sum(u.points for u in units)
    earned = sum(done[u.code]["earned"] for u in units if u.code in done)
    passed = sum(progress.unit_state(done.get(u.code)) == "passed" for u in units)
    ui.say(f"Progress for {display(target)}")
    ui.say(f"{ui.bar(earned, total)} {earned:g}/{total} points, {passed} of {len(units)} units passed\n")
    note = progress.split_note(target)
    if note:
        ui.say(note + "\n")
    now = time.time()
    skipped = progress.checkpoint(target)
    for unit in units:
        result = done.get(unit.code)
        state = progress.unit_state(result)
        points = f"{result['earned']:g}/{unit.points}" if result else f"-/{unit.points}"
        if result:
            when = f"{state}, graded {ui.ago(now - result.get('graded_at', now))}"
            if state == progress.NOT_FULLY_GRADED:
                when = f"graded {ui.ago(now - result.get('graded_at', now))}, not fully: {_not_run(result)} not run"
        elif unit.number <= skipped:
            when = f"code from checkpoint {skipped:02d}, not graded (its challenge is still yours)"
        else:
            when = "not started" if has_grader(unit) else "not started (no grader yet)"
        ui.say(f"{ui.mark(state)} unit {unit.code} {unit.title:<38} {points:>8} points  {when}")
    ui.say()
    ui.say(next_step(target, done))
    return 0


def next_step(target, done):
    unit = progress.current_unit(target)
    readme = unit.readme.relative_to(ROOT).as_posix()
    result = done.get(unit.code)
    state = progress.unit_state(result)
    if state == "passed":
        return ui.paint("Every unit passes. Deploy it as unit 04 shows, and scale it as unit 11 does.", "green")
    if state == progress.NOT_FULLY_GRADED:
        first = progress.first_failure(result).splitlines()[0]
        return (f"Next: unit {unit.code} is not fully graded ({_not_run(result)} did not run): {first}\n"
                f"  Then `python3 -m course grade {unit.number}`.")
    if state == "failed":
        first = progress.first_failure(result).splitlines()[0]
        return (f"Next: fix unit {unit.code}. {first}\n"
                f"  Then `python3 -m course grade {unit.number}` (or `python3 -m course hint {unit.number}`).")
    return f"Next: unit {unit.code}, {readme}; then `python3 -m course grade {unit.number}`."


def _not_run(result):
    count = sum(c["outcome"] == "skipped" for c in result.get("checks", []))
    return f"{count} check{'s' if count != 1 else ''}"
