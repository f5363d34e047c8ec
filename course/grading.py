"""`grade`: run a unit's grader (pytest tests/unit_NN) on a learner folder and
turn its --results JSON into a short summary: a line per unit, and for a
failure the first failing check's message, which names the unit step."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from course import ROOT, manifest, progress, ui
from course.target import display


def has_grader(unit):
    return unit.tests.is_dir() and any(unit.tests.glob("test_*.py"))


@dataclass
class GradeRun:
    units: dict = field(default_factory=dict)   # '03' -> the grader's per-unit result
    data: dict = field(default_factory=dict)    # the grader's whole --results JSON
    returncode: int = 0
    output: str = ""
    seconds: float = 0.0


def run_grader(units, target, verbose=False, record=True):
    """Grade `units` on `target` in one pytest run (one Redis, one S3 for all)."""
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        results = Path(tmp) / "results.json"
        command = [sys.executable, "-m", "pytest", *(str(u.tests.relative_to(ROOT)) for u in units),
                   "--target", str(target), "--results", str(results)]
        command += ["-v"] if verbose else ["-q", "--no-header"]
        env = {k: v for k, v in os.environ.items() if k != "COURSE_TARGET"}
        if not ui.colour_on():
            env["NO_COLOR"] = "1"
        started = time.monotonic()
        if verbose:
            code = subprocess.call(command, cwd=ROOT, env=env)
            output = ""
        else:
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            code, output = done.returncode, done.stdout + done.stderr
        run = GradeRun(returncode=code, output=output, seconds=time.monotonic() - started)
        if results.is_file():
            run.data = json.loads(results.read_text())
            run.units = run.data.get("units", {})
    if record and run.units:
        progress.record_grades(target, run.units)
    return run


def passed(result):
    return progress.unit_state(result) == "passed"


def _unit_line(unit, result):
    word = ui.paint("PASS", "green") if passed(result) else ui.paint("FAIL", "red")
    text = (f"{word}  unit {unit.code} {unit.title:<38} "
            f"{result['passed']}/{result['total']} checks  {result['earned']:g}/{unit.points} points  "
            f"{result['seconds']:.1f} s")
    return text


def _indent(text, prefix="    "):
    return "\n".join(prefix + line.strip() for line in text.splitlines())


def report_unit(unit, result, detailed):
    """Print one unit's grade; detailed adds a line per check."""
    ui.say(_unit_line(unit, result))
    if detailed:
        for check in result["checks"]:
            ui.say(f"    {ui.mark(check['outcome'])} {ui.check_name(check['check'])}")
    if not passed(result):
        ui.say(ui.paint("  First thing to fix:", "bold"))
        ui.say(_indent(progress.first_failure(result)))


def report_broken_run(run):
    """The grader itself did not produce results (a crash before any check ran)."""
    ui.warn("the grader stopped before it could grade anything. Its last lines:")
    tail = [line for line in run.output.strip().splitlines() if line.strip()][-12:]
    for line in tail:
        print("  " + line, file=sys.stderr)


def grade(numbers, target, verbose=False, results_path=None, record=True):
    """`grade N` / `grade all`: returns the exit code (0 only if every graded unit passes)."""
    units = [manifest.unit(n) for n in numbers]
    gradable = [u for u in units if has_grader(u)]
    missing = [u for u in units if not has_grader(u)]
    if not gradable:
        names = ", ".join(u.code for u in missing)
        ui.warn(f"unit {names} has no grader yet (tests/unit_{missing[0].code}/ is empty), so there is nothing "
                "to grade. Work through its README; grading arrives with the next course update.")
        return 2
    what = f"unit {gradable[0].code} ({gradable[0].title})" if len(units) == 1 else f"{len(gradable)} units"
    ui.say(f"Grading {display(target)} on {what} ...")
    run = run_grader(gradable, target, verbose=verbose, record=record)
    if results_path:
        Path(results_path).write_text(json.dumps(run.data, indent=2) + "\n")
    if not run.units:
        report_broken_run(run)
        return run.returncode or 1
    failed = 0
    for unit in units:
        result = run.units.get(unit.code)
        if unit in missing:
            ui.say(f"----  unit {unit.code} {unit.title:<38} no grader yet")
        elif result is None:
            ui.say(f"{ui.paint('FAIL', 'red')}  unit {unit.code} {unit.title:<38} not graded: its checks did not run")
            failed += 1
        else:
            report_unit(unit, result, detailed=len(units) == 1)
            failed += not passed(result)
    if len(units) > 1:
        earned = sum(r["earned"] for r in run.units.values())
        points = sum(u.points for u in gradable)
        ungraded = f" (units with a grader; the course has {sum(u.points for u in units)})" if missing else ""
        ui.say(f"\n{earned:g}/{points} points{ungraded}, graded in {run.seconds:.0f} s")
    if results_path:
        ui.say(f"Results (points per unit and per check) written to {results_path}")
    _next_step(units, run, failed)
    return 1 if failed else 0


def _next_step(units, run, failed):
    if len(units) != 1:
        return
    unit = units[0]
    if failed:
        hint = f" or `python3 -m course hint {unit.number}`" if unit.hints else ""
        first = progress.first_failure(run.units.get(unit.code))
        where = ("the step named above" if re.search(r"-> Unit \d+, step \d+", first)
                 else "the unit named above" if "-> Unit" in first else f"unit {unit.code}'s lesson")
        ui.say(f"\nStuck? Re-read {where}{hint}. "
               f"`python3 -m course grade {unit.number} --verbose` shows the grader's own output.")
        return
    later = [u for u in manifest.units() if u.number > unit.number]
    if later:
        ui.say(f"\n{ui.paint('Unit ' + unit.code + ' passes.', 'green')} Next: unit {later[0].code}, "
               f"{later[0].readme.relative_to(ROOT).as_posix()}")
    else:
        ui.say(f"\n{ui.paint('Unit ' + unit.code + ' passes: that was the last unit.', 'green')}")
