"""`grade`: run a unit's grader (pytest tests/unit_NN) on a learner folder and
turn its --results JSON into a short summary: a line per unit, and for a
failure the first failing check's message, which names the unit step."""
import json
import math
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from course import ROOT, browser, manifest, progress, pytest_runs, result_formats, sandbox, ui, warm
from course.checks import check_names, check_nodes, markers
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


def run_grader(units, target, verbose=False, record=True, checks=None, nodes=None, host=None):
    """Grade `units` on `target` in one pytest run (one Redis, one S3 for all);
    only the checks named in `checks`, or the pytest node ids in `nodes`, if given.
    With `host` (a course.warm.Host), in that warm process, unless it has gone."""
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        results = Path(tmp) / "results.json"
        args = [*(nodes or (str(u.tests.relative_to(ROOT)) for u in units)),
                "--target", str(target), "--results", str(results)]
        if checks:
            args += ["-k", " or ".join(sorted(checks))]
        args += ["-v"] if verbose else ["-q", "--no-header"]
        env = pytest_runs.environment(**({} if ui.colour_on() else {"NO_COLOR": "1"}))
        started = time.monotonic()
        code, output = None, ""
        if host is not None and not verbose:
            try:
                code = host.run(args, env, Path(tmp) / "output.txt")
                output = (Path(tmp) / "output.txt").read_text(errors="replace")
            except warm.HostGone:
                code = None  # graded in a run of its own instead
        if code is None and verbose:
            code, _ = pytest_runs.run(args, env=env)
        elif code is None:
            with open(Path(tmp) / "output.txt", "w") as out:
                code, _ = pytest_runs.run(args, env=env, output=out)
            output = (Path(tmp) / "output.txt").read_text(errors="replace")
        run = GradeRun(returncode=code, output=output, seconds=time.monotonic() - started)
        if results.is_file():
            run.data = json.loads(results.read_text())
            run.units = run.data.get("units", {})
    if record and run.units:
        progress.record_grades(target, run.units)
    return run


# A pytest run of its own costs about a second of CPU before its first check (Python,
# pytest, the local S3 and the preloaded Python starting): worth it only for checks
# that wait longer than that between them.
SECONDS_PER_LANE = 6


def lanes(seconds=None):
    """How many pytest runs `grade` shares checks among: 1 on one core; else one per
    SECONDS_PER_LANE of checks (by their last grading), at least two and at most
    four, since a check mostly waits on learner processes and jobs (the figures
    behind these bounds are in benchmarks/README.md). COURSE_GRADE_LANES=N sets it."""
    wanted = os.environ.get("COURSE_GRADE_LANES", "")
    if wanted.isdigit() and int(wanted) >= 1:
        return int(wanted)
    cores = os.cpu_count() or 1
    if cores == 1:
        return 1
    most = min(4, cores + 2)
    return most if seconds is None else min(most, max(2, math.ceil(seconds / SECONDS_PER_LANE)))


def run_in_lanes(units, target, record=True, count=None, checks=None, warm_lanes=None):
    """Grade `units` with their checks shared among `count` pytest runs at once (each
    with its own Redis and S3), check by check, not unit by unit: most checks wait
    on processes and jobs, not the CPU, and one long unit no longer sets the time of
    its lane. The slowest checks go first, each to the lane with the least to do.
    Only the checks named in `checks`, if given. With `warm_lanes` (course.warm.WarmLanes),
    each lane runs in a warm pytest process. One run's results."""
    nodes = {(unit.code, name): node for unit in units for name, node in check_nodes(unit).items()
             if checks is None or name in checks}
    cost = _costs(units, target, nodes)
    count = count or lane_count(cost)
    if warm_lanes is not None:
        warm_lanes.prepare(count, units[0].tests)
    if count == 1:
        return run_grader(units, target, record=record, nodes=list(nodes.values()) if checks else None,
                          host=warm_lanes and warm_lanes.host(0))
    groups, load = [[] for _ in range(count)], [0.0] * count
    for key in sorted(nodes, key=lambda k: -cost[k]):
        lane = load.index(min(load))
        groups[lane].append(key)
        load[lane] += cost[key]
    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:  # each lane in the course's order
        runs = list(pool.map(lambda lane, group: run_grader(units, target, record=False,
                                                            nodes=[nodes[k] for k in nodes if k in group],
                                                            host=warm_lanes and warm_lanes.host(lane)),
                             *zip(*[(i, g) for i, g in enumerate(groups) if g])))
    run = runs[0]
    for other in runs[1:]:
        run = merge_runs(run, other, units)
    if run.units:  # a lane that stopped early must not leave a unit passing on the checks that ran
        ran = {(code, c["check"]) for code, result in run.units.items() for c in result["checks"]}
        lost = [key for key in nodes if key not in ran and key[0] in run.units]
        if lost:
            missing = GradeRun(returncode=1, output="", seconds=0)
            for code, name in lost:
                missing.units.setdefault(code, {"checks": []})["checks"].append(
                    {"check": name, "outcome": "failed", "seconds": 0, "scored": True,
                     "message": "This check did not run: the grader stopped first. `python3 -m course grade "
                                f"{int(code)} --verbose` shows its output."})
            run = merge_runs(run, missing, units)
    run.seconds = time.monotonic() - started
    if run.units:  # units and their checks in the course's order, as one run lists them
        order = {key: i for i, key in enumerate(nodes)}
        run.units = {unit.code: run.units[unit.code] for unit in units if unit.code in run.units}
        for code, result in run.units.items():
            result["checks"].sort(key=lambda c: order.get((code, c["check"]), len(order)))
        run.data.update(seconds=round(run.seconds, 2), units=run.units,
                        points=sum(r["points"] for r in run.units.values()),
                        earned=round(sum(r["earned"] for r in run.units.values()), 2))
    if record and run.units:
        progress.record_grades(target, run.units)
    return run


def _costs(units, target, keys):
    """{(unit code, check): seconds} for keys: each check's last grading here, else a
    guess from what it does."""
    graded = progress.grades(target)
    last = {(code, c["check"]): c.get("seconds", 0) for code, result in graded.items()
            for c in result.get("checks", [])}
    by_code = {unit.code: unit for unit in units}
    return {key: last[key] if key in last else _guess_seconds(by_code[key[0]], key[1]) for key in keys}


def lane_count(cost):
    """How many lanes run_in_lanes shares checks of these costs among."""
    count = lanes(sum(cost.values()))
    return 1 if count < 2 or len(cost) < 4 else count


def planned_lanes(units, target):
    """How many lanes grading every check of `units` on `target` takes (`watch` starts
    that many warm processes ahead of the next grading)."""
    keys = [(unit.code, name) for unit in units for name in check_nodes(unit)]
    return lane_count(_costs(units, target, keys))


def needs_browser(unit):
    """Whether a unit has a check that opens the page in a browser."""
    return any("browser" in markers(unit, name) for name in check_names(unit))


def _guess_seconds(unit, name):
    marks = markers(unit, name)
    return 0.1 if "quiz" in marks else 5.0 if "browser" in marks else 2.0


def merge_runs(first, second, units):
    """One GradeRun from two runs of different checks of the same units: each unit's
    checks together, its points shared again among all its scored checks."""
    run = GradeRun(returncode=first.returncode or second.returncode, output=first.output + second.output,
                   seconds=first.seconds + second.seconds)
    for unit in units:
        parts = [r.units[unit.code] for r in (first, second) if unit.code in r.units]
        if not parts:
            continue
        checks = [dict(c) for part in parts for c in part["checks"]]
        run.units[unit.code] = progress.unit_result(unit, checks)
    run.data = {**first.data, "units": run.units}
    return run


def passed(result):
    return progress.unit_state(result) == "passed"


def _indent(text, prefix="    "):
    return "\n".join(prefix + line.strip() for line in text.splitlines())


def report_unit(unit, result, detailed, seconds=None):
    """Print one unit's grade; detailed adds a line per check."""
    ui.say(progress.unit_line(unit.code, result, seconds, ui.paint))
    if detailed:
        for check in result["checks"]:
            ui.say(f"    {ui.mark(check['outcome'])} {ui.check_name(check['check'])}")
    if progress.unit_state(result) == progress.NOT_FULLY_GRADED:
        ui.say(ui.paint("  Not fully graded: the points of a check that did not run are not given.", "bold"))
        ui.say(_indent(progress.first_failure(result)))
    elif not passed(result):
        ui.say(ui.paint("  First thing to fix:", "bold"))
        ui.say(_indent(progress.first_failure(result)))


def report_broken_run(run):
    """The grader itself did not produce results (a crash before any check ran)."""
    ui.warn("the grader stopped before it could grade anything. Its last lines:")
    tail = [line for line in run.output.strip().splitlines() if line.strip()][-12:]
    for line in tail:
        print("  " + line, file=sys.stderr)


def grade(numbers, target, verbose=False, results_path=None, record=True, exercism_path=None, summary_path=None,
          first=None, warm_lanes=None):
    """`grade N` / `grade all`: returns the exit code (0 only if every graded unit passes).
    `first`, a set of check names: run those first, and the rest only if they all pass
    (`watch`, after a save: the checks the saved file can affect). `warm_lanes`
    (`watch`): grade in warm pytest processes (course.warm)."""
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
    sandbox_note = sandbox.note()
    if sandbox_note:  # fine for a learner's own code; `course class` refuses others' code without files and network
        ui.say(f"  ({sandbox_note})")
    if any(needs_browser(u) for u in gradable):
        browser.prepare()
    run = _grade_changed_first(gradable, target, first, verbose, record, warm_lanes) if first else None
    if run is None and not verbose:
        run = run_in_lanes(gradable, target, record=record, warm_lanes=warm_lanes)
    if run is None:
        run = run_grader(gradable, target, verbose=verbose, record=record)
    _write_results(run, gradable, target, results_path, exercism_path, summary_path)
    if not run.units:
        report_broken_run(run)
        return run.returncode or 1
    failed = _report(units, gradable, missing, run)
    for path, what in ((results_path, "Results (points per unit and per check)"),
                       (exercism_path, "Results in the Exercism test-runner format")):
        if path:
            ui.say(f"{what} written to {path}")
    _next_step(units, run, failed)
    return 1 if failed else 0


def _grade_changed_first(gradable, target, first, verbose, record, warm_lanes):
    """Grade the checks in `first` (those a saved file can affect), then, if they all pass,
    the others; None if that split means nothing (all or none of the checks are in it)."""
    names = set().union(*(check_names(u) for u in gradable))
    first, rest = names & set(first), names - set(first)
    if not (first and rest):
        return None
    ui.say(f"  first the {len(first)} check(s) your change can affect, then the other {len(rest)}")

    def grade_checks(checks):
        if warm_lanes is not None and not verbose:
            return run_in_lanes(gradable, target, record=False, checks=checks, warm_lanes=warm_lanes)
        return run_grader(gradable, target, verbose=verbose, record=False, checks=checks)

    run = grade_checks(first)
    if run.units and all(passed(r) for r in run.units.values()):
        run = merge_runs(run, grade_checks(rest), gradable)
        if record and run.units:  # every check ran: the unit's grade
            progress.record_grades(target, run.units)
    elif run.units:
        ui.say(f"  (the other {len(rest)} check(s) run once these pass)")
    return run


def _write_results(run, gradable, target, results_path, exercism_path, summary_path):
    for path in filter(None, (results_path, exercism_path, summary_path)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if results_path:
        Path(results_path).write_text(json.dumps(run.data, indent=2) + "\n")
    if exercism_path:
        Path(exercism_path).write_text(json.dumps(result_formats.exercism_results(run, gradable), indent=2) + "\n")
    if summary_path:  # appended: GitHub's $GITHUB_STEP_SUMMARY collects every step's
        with open(summary_path, "a") as summary:
            summary.write(result_formats.markdown_summary(run, gradable, target))


def _report(units, gradable, missing, run):
    """Print each unit's grade (and the total for several); return how many failed."""
    failed = 0
    for unit in units:
        result = run.units.get(unit.code)
        if unit in missing:
            ui.say(f"----  unit {unit.code} {unit.title:<38} no grader yet")
        elif result is None:
            ui.say(f"{ui.paint('FAIL', 'red')}  unit {unit.code} {unit.title:<38} not graded: its checks did not run")
            failed += 1
        else:
            report_unit(unit, result, detailed=len(units) == 1, seconds=run.seconds if len(units) == 1 else None)
            failed += not passed(result)
    if len(units) > 1:
        earned = sum(r["earned"] for r in run.units.values())
        points = sum(u.points for u in gradable)
        ungraded = f" (units with a grader; the course has {sum(u.points for u in units)})" if missing else ""
        ui.say(f"\n{earned:g}/{points} points{ungraded}, graded in {run.seconds:.0f} s")
    return failed


def _next_step(units, run, failed):
    if len(units) != 1:
        return
    unit = units[0]
    if progress.unit_state(run.units.get(unit.code)) == progress.NOT_FULLY_GRADED:
        ui.say(f"\nEvery check that ran passes; grade again once the checks that did not run can "
               f"(`python3 -m course grade {unit.number}`).")
        return
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
