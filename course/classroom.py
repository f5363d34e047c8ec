"""`class ROSTER_DIR`: grade every student's folder and write one row per
student with the points of each unit (CSV, or JSON when --out ends in .json).

A student folder is either an app folder (it has app.py) or a copy of the
whole course (its starter/ is graded, with the course's Procfile beside it).
Only the student's own files are taken from it (the learner files, the quiz
answers and the deploy files the units name), copied beside this course's
provided files: a student's tests/ or course/, rigged or not, never runs, and the
roster folder is never written. Each student is graded in the sandbox
(course/sandbox.py: Landlock on Linux, a Seatbelt profile on macOS); where its
file and network layers cannot hold, the command refuses unless told
--container IMAGE (each student graded in a container of its own:
course/container.py) or --unsafe (for a throwaway account).
Students are graded several at once (--jobs), each in a pytest session of their
own, with their own Redis and S3, and a line is printed as each one finishes.
Each job's sessions run one after another in a warm grading run (course/warm.py),
which keeps the grader's imports and its browser between students. A check that
did not run (no browser on this machine) is named in the `not_graded` column:
worth no points, and never counted as failed.
"""
import csv
import json
import queue
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path

from course import ROOT, browser, container, grading, manifest, sandbox, ui, warm


def app_folder(student):
    for folder in (student, student / "starter"):
        if (folder / "app.py").is_file():
            return folder
    return None


def student_copy(folder, into):
    """A copy of the student's own files from app `folder`, beside the course's
    provided files, in `into`; returns the app folder of the copy."""
    app = into / "starter"
    shutil.copytree(ROOT / "starter", app, ignore=shutil.ignore_patterns("__pycache__"))
    units = list(manifest.units())
    own = {manifest.ANSWERS_FILE, *(name for u in units for name in u.files)}
    for name in own:
        (app / name).unlink(missing_ok=True)
        if (folder / name).is_file() and not (folder / name).is_symlink():
            shutil.copyfile(folder / name, app / name)
    for name in {*manifest.STUDENT_DEPLOY_FILES, *(name for u in units for name in u.project_files)}:
        for source in (folder / name, folder.parent / name):
            if source.is_file() and not source.is_symlink():
                shutil.copyfile(source, (app if source.parent == folder else into) / name)
                break
    for name in manifest.COURSE_DEPLOY_FILES:  # the course's, not the student's: its pins are what is tested
        shutil.copyfile(ROOT / name, into / name)
    return app


def empty_row(student, units):
    """A student's row before grading: no points yet, no error."""
    row = {"student": student.name, "earned": 0, "points": sum(u.points for u in units), "error": "",
           "not_graded": ""}
    row.update({f"unit_{u.code}": 0 for u in units})
    return row


def grade_student(student, units, host=None):
    """(row, results) for one student; graded in the warm grading run `host`, if given."""
    folder = app_folder(student)
    row = empty_row(student, units)
    if folder is None:
        row["error"] = "no app.py in the folder or its starter/"
        return row, {}
    with tempfile.TemporaryDirectory(prefix=f"course-class-{student.name}-") as tmp:
        run = grading.run_grader(units, student_copy(folder, Path(tmp)), record=False, host=host)
    if not run.units:
        tail = [line for line in run.output.strip().splitlines() if line.strip()][-1:]
        row["error"] = f"the grader did not run: {tail[0] if tail else 'no output'}"
        return row, run.data
    not_graded = []
    for unit in units:
        result = run.units.get(unit.code)
        row[f"unit_{unit.code}"] = result["earned"] if result else 0
        # A check that did not run (no browser) is neither passed nor failed: named here, worth nothing yet.
        not_graded += [f"unit {unit.code}: {ui.check_name(c['check'])}" for c in (result or {}).get("checks", [])
                       if c["outcome"] == "skipped"]
    row["not_graded"] = "; ".join(not_graded)
    row["earned"] = round(sum(row[f"unit_{u.code}"] for u in units), 2)
    return row, run.data


class WarmGraders:
    """One warm grading run (course/warm.py) per job, each grading one student after
    another: a student's grading then skips the second or so of CPU that starting
    Python, pytest, the grader, the local S3, the preloaded Python and the browser
    costs. Every student still has a pytest session of their own, with their own
    Redis, S3, bucket and learner processes; only the grader's imports, its preloaded
    Python (reachable only through its pipe) and its browser (a fresh context for each
    check) are kept. Off with COURSE_WARM=0."""

    def __init__(self, count, unit_folder):
        self.unit_folder = unit_folder
        self.idle = queue.SimpleQueue()
        for _ in range(count):
            self.idle.put(warm.Host(unit_folder))  # they all warm up at once, in the background

    @contextmanager
    def host(self):
        host = self.idle.get()
        if host.popen.poll() is not None:  # it exited: the next student gets a new one
            host = warm.Host(self.unit_folder)
        try:
            yield host
        finally:
            self.idle.put(host)

    def grade(self, student, units):
        with self.host() as host:
            return grade_student(student, units, host=host)

    def close(self):
        while not self.idle.empty():
            self.idle.get().stop()


def refusal(unsafe):
    """Why others' code may not be graded here ('' if it may)."""
    missing = [sandbox.MEANS[name] for name in ("files", "network") if not sandbox.layers()[name]]
    if not missing or unsafe:
        return ""
    where = ("Unset COURSE_SANDBOX (it turns the sandbox off)" if not sandbox.wanted() else
             "Grade on Linux 6.7 or newer (Landlock with TCP rules; GitHub's ubuntu-24.04 runners have it) or on "
             "macOS (its Seatbelt sandbox)")
    return (f"Not grading others' code here: {'; '.join(missing)}. {where}, or in containers: --container IMAGE "
            "(podman or docker; docs/instructors.md builds the image), or add --unsafe on a throwaway account.")


def container_grader(image, engine):
    """grade(student, units) for --container IMAGE, after saying what holds in it; None if it cannot run."""
    found = container.find_engine(engine)
    if found is None:
        ui.warn(f"No container engine: {engine or 'podman or docker'} is not on PATH. Install podman or docker, "
                f"or name one with --engine or {container.ENGINE_SETTING}.")
        return None
    layers, why = container.probe(found, image)
    if why:
        ui.warn(f"The image {image} does not run: {why}")
        return None
    inside = [name for name, holds in layers.items() if holds]
    ui.say(f"Each student in a container of its own ({Path(found).name}, {image}): {container.HOLDS}. "
           f"The sandbox's layers inside: {', '.join(inside) or 'none'}.")
    return lambda student, units: container.grade_student(student, units, found, image)


def summary_table(rows, units):
    """The rows as a Markdown table (a CI job's summary page)."""
    head = ["student", *(f"unit {u.code}" for u in units), "points", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["student"], *(f"{row[f'unit_{u.code}']:g}" for u in units),
                 f"{row['earned']:g}/{row['points']}", row["error"] or row["not_graded"]]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def grade_class(roster, out, numbers=None, jobs=1, unsafe=False, summary=None, image=None, engine=None):
    refused = "" if image else refusal(unsafe)  # with --container, the container is the boundary
    if refused:
        ui.warn(refused)
        return 2
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
    jobs = max(1, min(jobs, len(students)))
    grade = container_grader(image, engine) if image else grade_student
    if grade is None:
        return 2
    if not image and any(grading.needs_browser(u) for u in units):
        browser.prepare()  # once for the class, not once per student
    graders = WarmGraders(jobs, units[0].tests) if not image and warm.wanted() else None
    try:
        return _grade_all(students, units, graders.grade if graders else grade, jobs, out, summary)
    finally:
        if graders:
            graders.close()


def _grade_all(students, units, grade, jobs, out, summary):
    ui.say(f"Grading {len(students)} students on units {', '.join(u.code for u in units)}, {jobs} at a time ...")
    started = time.monotonic()
    done = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = {pool.submit(grade, student, units): student for student in students}
        for future in as_completed(pending):
            student = pending[future]
            done[student.name] = future.result()
            row = done[student.name][0]
            status = row["error"] or f"{row['earned']:g}/{row['points']} points"
            if row["not_graded"]:
                status += f" (not graded, did not run: {row['not_graded']})"
            ui.say(f"  [{len(done)}/{len(students)}] {student.name:<24} {status}   "
                   f"({time.monotonic() - started:.0f} s so far)")
    rows = [done[s.name][0] for s in students]
    details = {s.name: done[s.name][1] for s in students}
    out = Path(out)
    if out.suffix == ".json":
        out.write_text(json.dumps({"students": rows, "results": details}, indent=2) + "\n")
    else:
        with out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    ui.say(f"One row per student written to {out}")
    if summary:
        with open(summary, "a") as handle:
            handle.write(summary_table(rows, units))
    return 0
