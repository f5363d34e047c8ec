"""Grading a class: how long `course class` takes for N students, at each --jobs
given, side by side in one run, with the CPU spent meanwhile (on Linux, the
whole machine's: run it on a machine doing nothing else).

    .venv/bin/python -m benchmarks.class_grading                      # 30 students, the default --jobs
    .venv/bin/python -m benchmarks.class_grading --students 6 --jobs 1 6 --units 05 09

Every student is a copy of the finished app (--target), so each should earn every
point: the script says how many did not, since a machine too busy for the
grader's time bounds shows up there first. Each run writes its rows to a
temporary folder that is removed at the end."""
import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from course import ROOT
from course.cli import CLASS_JOBS


def make_roster(folder, target, students):
    """`students` copies of the target app, one folder each, as a cloned class would be."""
    for n in range(1, students + 1):
        shutil.copytree(target, folder / f"student-{n:02d}", ignore=shutil.ignore_patterns("__pycache__"))


def cpu_seconds():
    """CPU time spent so far: the whole machine's where the kernel says (Linux's
    /proc/stat), else this process's waited-for children's. A grading's processes are
    killed and reaped at many levels, and the children's count misses about half."""
    try:
        with open("/proc/stat") as stat:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime


def grade_class(roster, out, jobs, units):
    """(wall seconds, CPU seconds spent meanwhile, rows)."""
    before, started = cpu_seconds(), time.monotonic()
    command = [sys.executable, "-m", "course", "class", str(roster), "--out", str(out), "--jobs", str(jobs)]
    subprocess.run(command + (["--units", *units] if units else []), cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    wall, cpu = time.monotonic() - started, cpu_seconds() - before
    with open(out, newline="") as handle:
        return wall, cpu, list(csv.DictReader(handle))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30, help="how many students (default 30)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[CLASS_JOBS],
                        help=f"one run per value of --jobs (default: the command's default here, {CLASS_JOBS})")
    parser.add_argument("--units", nargs="+", metavar="N", help="only these units (default: all)")
    parser.add_argument("--target", default=str(ROOT / "solution"), help="the app each student hands in")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="course-class-bench-") as tmp:
        roster = Path(tmp) / "roster"
        make_roster(roster, Path(args.target), args.students)
        print(f"{args.students} students, each a copy of {args.target}, units {' '.join(args.units or ['all'])}")
        print(f"{'jobs':>5} {'wall s':>8} {'s/student':>10} {'CPU s':>8} {'CPU/wall':>9}  not full marks")
        for jobs in args.jobs:
            wall, cpu, rows = grade_class(roster, Path(tmp) / f"jobs-{jobs}.csv", jobs, args.units)
            short = [r["student"] for r in rows if float(r["earned"]) < float(r["points"]) or r["error"]]
            print(f"{jobs:>5} {wall:>8.0f} {wall / args.students:>10.1f} {cpu:>8.0f} {cpu / wall:>9.2f}  "
                  f"{len(short)}{': ' + ', '.join(short) if short else ''}", flush=True)


if __name__ == "__main__":
    main()
