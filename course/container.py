"""`course class ROSTER --container IMAGE`: each student graded in a container of
its own, built from container/Containerfile (the course and its set-up baked in).

Host side: one `ENGINE run` per student (podman or docker) with no network, a
read-only file system, a tmpfs /tmp, the student's folder mounted read-only at
/student and none of the instructor's environment; its standard output is one
JSON document, turned into the same row as `course class` writes without a
container. Students never share a container, a network or a file.

Container side (`python -m course.container`, the image's entrypoint): copies
the student's own files from /student beside the course's provided files in
/tmp, grades them as `course class` does, and prints the JSON.

Standard library only on the host side: `course class` may run outside the venv.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

ENGINES = ("podman", "docker")
ENGINE_SETTING = "COURSE_CONTAINER_ENGINE"
MOUNT = "/student"
SECONDS_PER_STUDENT = 1800  # every unit takes a few minutes; this only stops a runaway
# The container is the boundary: it is given nothing it does not need.
BOUNDARY = ["--network", "none", "--read-only", "--tmpfs", "/tmp:rw,exec,size=2g", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--pids-limit", "1024", "--memory", "6g"]
HOLDS = ("no network but its own loopback, the course's and the student's files read-only, a /tmp of its own, "
         "none of your environment, its own processes only")


def find_engine(named=None):
    """The engine to run: the one named (--engine, or COURSE_CONTAINER_ENGINE), else
    podman or docker from PATH. None if there is none."""
    wanted = named or os.environ.get(ENGINE_SETTING)
    for name in [wanted] if wanted else ENGINES:
        found = shutil.which(name)
        if found:
            return found
    return None


def run_command(engine, image, student, units, name):
    """The command that grades one student's folder on `units` in a new container."""
    return [engine, "run", "--rm", "--name", name, *BOUNDARY, "-v", f"{Path(student).resolve()}:{MOUNT}:ro",
            image, "--units", *(str(u.number) for u in units)]


def run_container(command, name, engine):
    """(stdout, stderr, returncode) of one container run; the container is removed if it overstays."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS_PER_STUDENT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        subprocess.run([engine, "rm", "--force", name], capture_output=True, timeout=120)
        return "", f"stopped after {SECONDS_PER_STUDENT} s", -1
    return done.stdout, done.stderr, done.returncode


def parse_output(stdout, student, units):
    """(row, results) from a container's standard output; a row with an error if it is not ours."""
    from course.classroom import empty_row  # classroom imports this module

    row = empty_row(student, units)
    try:
        found = json.loads(stdout)
        theirs, results = found["row"], found["results"]
        assert isinstance(theirs, dict) and isinstance(results, dict)
    except (ValueError, KeyError, TypeError, AssertionError):
        return row, {}
    for key in row.keys() - {"student", "points"}:  # only the columns a row has, whatever else was printed
        if key in theirs:
            row[key] = theirs[key]
    return row, results


def last_line(text):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def grade_student(student, units, engine, image):
    """(row, results) for one student, graded in a container of its own."""
    if ":" in str(Path(student).resolve()):
        from course.classroom import empty_row

        row = empty_row(student, units)
        row["error"] = "the folder's path holds a ':', which a container mount cannot name"
        return row, {}
    name = f"course-class-{uuid.uuid4().hex[:12]}"
    stdout, stderr, code = run_container(run_command(engine, image, student, units, name), name, engine)
    row, results = parse_output(stdout, student, units)
    if not results and not row["error"]:
        row["error"] = f"the container gave no results (exit {code}): {last_line(stderr)}"
    return row, results


def probe(engine, image):
    """(layers of the course's sandbox that hold inside the container, None) or (None, why it cannot run)."""
    command = [engine, "run", "--rm", *BOUNDARY, image, "--layers"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        return json.loads(done.stdout), None
    except subprocess.TimeoutExpired:
        return None, f"`{' '.join(command)}` did not answer in 300 s"
    except ValueError:
        return None, f"`{' '.join(command)}` failed: {last_line(done.stderr)}"


# ---------------------------------------------------------------- inside the container

def grade_mounted(folder, numbers):
    """The JSON document for the student folder mounted at `folder`."""
    from course import browser, classroom, grading, manifest, sandbox

    units = [manifest.unit(n) for n in numbers] if numbers else list(manifest.units())
    units = [u for u in units if grading.has_grader(u)]
    if any(grading.needs_browser(u) for u in units):
        browser.prepare()
    row, results = classroom.grade_student(Path(folder), units)
    return {"row": row, "results": results, "layers": sandbox.layers()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course.container",
                                     description="Grade the student folder mounted read-only; print JSON.")
    parser.add_argument("--units", type=int, nargs="*", help="unit numbers (default: all)")
    parser.add_argument("--student", default=MOUNT, help=f"the student's folder (default {MOUNT})")
    parser.add_argument("--layers", action="store_true", help="print the sandbox's layers that hold here")
    args = parser.parse_args(argv)
    results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever grading prints goes to stderr: stdout carries the JSON alone
    sys.stdout = sys.stderr
    if args.layers:
        from course import sandbox

        document = sandbox.layers()
    else:
        document = grade_mounted(args.student, args.units)
    with results:
        json.dump(document, results)
        results.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
