"""`class ROSTER_DIR`: grade every student's folder and write one row per
student with the points of each unit (CSV, or JSON when --out ends in .json).

A student folder is either an app folder (it has app.py) or a copy of the
whole course (its starter/ is graded, with the course's Procfile beside it).
"""
import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from course import grading, manifest, ui


def app_folder(student):
    for folder in (student, student / "starter"):
        if (folder / "app.py").is_file():
            return folder
    return None


def grade_student(student, units):
    folder = app_folder(student)
    row = {"student": student.name, "earned": 0, "points": sum(u.points for u in units), "error": ""}
    for unit in units:
        row[f"unit_{unit.code}"] = 0
    if folder is None:
        row["error"] = "no app.py in the folder or its starter/"
        return row, {}
    run = grading.run_grader(units, folder, record=False)
    if not run.units:
        tail = [line for line in run.output.strip().splitlines() if line.strip()][-1:]
        row["error"] = f"the grader did not run: {tail[0] if tail else 'no output'}"
        return row, run.data
    for unit in units:
        result = run.units.get(unit.code)
        row[f"unit_{unit.code}"] = result["earned"] if result else 0
    row["earned"] = round(sum(row[f"unit_{u.code}"] for u in units), 2)
    return row, run.data


def grade_class(roster, out, numbers=None, jobs=1):
    roster = Path(roster)
    if not roster.is_dir():
        ui.warn(f"{roster} is not a folder. Give a folder holding one folder per student.")
        return 2
    students = sorted(p for p in roster.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        ui.warn(f"{roster} holds no student folders.")
        return 2
    units = [manifest.unit(n) for n in numbers] if numbers else list(manifest.units())
    units = [u for u in units if grading.has_grader(u)]
    ui.say(f"Grading {len(students)} students on units {', '.join(u.code for u in units)} ...")
    rows, details = [], {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for student, (row, data) in zip(students, pool.map(lambda s: grade_student(s, units), students)):
            rows.append(row)
            details[student.name] = data
            status = row["error"] or f"{row['earned']:g}/{row['points']} points"
            ui.say(f"  {student.name:<24} {status}")
    out = Path(out)
    if out.suffix == ".json":
        out.write_text(json.dumps({"students": rows, "results": details}, indent=2) + "\n")
    else:
        with out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    ui.say(f"One row per student written to {out}")
    return 0


# ---------------------------------------------------------------- GitHub Classroom files
# Both are made from the manifest by `python3 -m course classroom-files`; a
# self-check proves the committed copies match, so points never drift.

AUTOGRADING_JSON = Path(".github") / "classroom" / "autograding.json"
WORKFLOW_YML = Path(".github") / "workflows" / "classroom.yml"
GRADE_MINUTES = 10  # per unit; the first also installs .venv


def autograding_json():
    """The classic Classroom format: one command test per unit."""
    tests = [{
        "name": f"Unit {u.code}: {u.title}",
        "setup": "",
        "run": f"python3 -m course grade {u.number}",
        "input": "", "output": "", "comparison": "included",
        "timeout": GRADE_MINUTES, "points": u.points,
    } for u in manifest.units()]
    return json.dumps({"tests": tests}, indent=2, ensure_ascii=False) + "\n"


def workflow_yml():
    """The current Classroom format: a workflow with one command-grader step per
    unit and the reporter that sends the points back to Classroom."""
    units = manifest.units()
    lines = [
        "# Made by `python3 -m course classroom-files` from units/*/unit.toml; do not edit by hand.",
        "name: Autograding Tests",
        "\"on\": [push, repository_dispatch, workflow_dispatch]",
        "permissions:",
        "  checks: write",
        "  actions: read",
        "  contents: read",
        "jobs:",
        "  run-autograding-tests:",
        "    runs-on: ubuntu-latest",
        "    if: github.actor != 'github-classroom[bot]'",
        "    steps:",
        "      - uses: actions/checkout@v4",
        "      - uses: actions/setup-python@v5",
        "        with:",
        "          python-version-file: .python-version",
        "      - name: Set up the course",
        "        run: python3 -m course --help",
    ]
    for u in units:
        lines += [
            f"      - name: Unit {u.code}",
            f"        id: unit-{u.code}",
            "        uses: classroom-resources/autograding-command-grader@v1",
            "        with:",
            f"          test-name: \"Unit {u.code}: {u.title}\"",
            f"          command: python3 -m course grade {u.number}",
            f"          timeout: {GRADE_MINUTES}",
            f"          max-score: {u.points}",
        ]
    lines += [
        "      - name: Autograding Reporter",
        "        uses: classroom-resources/autograding-grading-reporter@v1",
        "        env:",
        *[f"          UNIT-{u.code}_RESULTS: \"${{{{steps.unit-{u.code}.outputs.result}}}}\"" for u in units],
        "        with:",
        f"          runners: {','.join(f'unit-{u.code}' for u in units)}",
    ]
    return "\n".join(lines) + "\n"


def classroom_files():
    """{path relative to the repository: content} for both Classroom files."""
    return {AUTOGRADING_JSON: autograding_json(), WORKFLOW_YML: workflow_yml()}
