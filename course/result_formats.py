"""The grader's results in other formats: the Exercism test-runner interface
(version 3) and a Markdown table for a CI job's summary page."""
from course import checks, progress, ui
from course.target import display


def exercism_results(run, units):
    """The grader's results in the Exercism test-runner interface, version 3
    (results.json: status pass/fail/error, one entry per check, task_id = unit)."""
    if not run.units:
        tail = [line for line in run.output.strip().splitlines() if line.strip()][-12:]
        return {"version": 3, "status": "error",
                "message": "The grader stopped before it could grade anything:\n" + "\n".join(tail), "tests": []}
    tests = []
    for unit in units:
        result = run.units.get(unit.code)
        if result is None:
            tests.append({"name": f"Unit {unit.code}: {unit.title}", "status": "error",
                          "message": "Not graded: its checks did not run.", "output": None, "test_code": "",
                          "task_id": unit.number})
            continue
        for check in result["checks"]:
            # Version 3 has no 'skipped': a check that did not run is an error, its message says why.
            status = {"passed": "pass", "failed": "fail"}.get(check["outcome"], "error")
            tests.append({
                "name": f"Unit {unit.code}: {ui.check_name(check['check'])}",
                "status": status,
                "message": check.get("message") if status != "pass" else None,
                "output": None,
                "test_code": checks.check_code(unit, check["check"]),
                "task_id": unit.number,
            })
    status = "pass" if all(t["status"] == "pass" for t in tests) else "fail"
    return {"version": 3, "status": status, "tests": tests}


def markdown_summary(run, units, target):
    """A table of points per unit, for a CI job's summary page."""
    lines = [f"## Grades for {display(target)}", "", "| Unit | | Checks | Points | First thing to fix |",
             "|---|---|---|---|---|"]
    for unit in units:
        result = run.units.get(unit.code)
        if result is None:
            lines.append(f"| {unit.code} {unit.title} | not graded | | 0/{unit.points} | its checks did not run |")
            continue
        fix = "" if progress.unit_state(result) == "passed" else progress.first_failure(result).splitlines()[0].replace("|", "\\|")
        state = {"passed": "pass", "failed": "FAIL"}.get(progress.unit_state(result), progress.NOT_FULLY_GRADED)
        lines.append(f"| {unit.code} {unit.title} | {state} | "
                     f"{result['passed']}/{result['total']} | {result['earned']:g}/{unit.points} | {fix} |")
    earned = sum(r["earned"] for r in run.units.values())
    lines += ["", f"**{earned:g}/{sum(u.points for u in units)} points**", ""]
    return "\n".join(lines) + "\n"
