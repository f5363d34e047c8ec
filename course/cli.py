"""The `python3 -m course` command: one place for everything a learner or a
maintainer runs. Each command has --help and exits non-zero on failure.

Commands that act on a learner folder take --target PATH (or COURSE_TARGET);
the default is starter/."""
import argparse
import os
import subprocess
import sys

from course import ROOT

# A grading waits on the learner's processes and jobs in bursts: one student's takes
# 62 s and about 0.7 of a core on the finished app. Three per core keep every core
# busy; more only add contention (benchmarks/README.md, "Grading a class").
CLASS_JOBS = 3 * (os.cpu_count() or 1)


def cmd_test(args):
    """The course's whole test suite: every unit graded against solution/,
    plus the self-checks (generated stages, corpora, quiz keys, lessons,
    notebooks). It never grades your starter/: whatever state your work is in,
    the suite's verdict is the course's, not yours (`grade` is for your work).
    Where no browser can be had, the checks that need one are skipped, each
    with its reason listed at the end."""
    from course import browser

    browser.prepare()
    command = [sys.executable, "-m", "pytest", "tests", "--target", "solution", "--self-check", "-rs",
               *args.pytest_args]
    return subprocess.call(command, cwd=ROOT)


def cmd_run(args):
    """Run the app locally: Redis, a local S3, the worker and the web app."""
    from course import localrun

    return localrun.run(args.app, args.port, args.worker, args.web_only, args.heroku_redis)


def cmd_quiz_keys(args):
    """(maintainers) Regenerate the quiz answer keys from course/source/answers.toml."""
    from course import quiz

    for path in quiz.write_keys(set(args.units)):
        print(path.relative_to(ROOT))
    return 0


def cmd_restart(args):
    """Restart a process type of the running `course run` (every one if you name
    none), as `heroku ps:restart --process-type TYPE` does on Heroku: SIGTERM to
    every process of the dyno, SIGKILL 30 s later to any still running, then it
    starts again. Run it in a second terminal while `course run` runs."""
    from course import restart

    return restart.restart(args.type, args.port)


def cmd_stages(args):
    """(maintainers) Regenerate starter/, solution/ and the top-level Procfile and
    requirements.txt from the marked source in course/source/."""
    from course import stages

    try:
        written = stages.write_all()
        print(f"regenerated from {stages.SOURCE.relative_to(ROOT)}/: {', '.join(written)}")
    except stages.SolutionEdited as why:
        print(f"course: {why}", file=sys.stderr)
        return 2
    return 0


def cmd_screenshots(args):
    """(maintainers) Regenerate the pictures of the report page in docs/images/
    (status-in-progress.png, status-finished.png): unit 05's browser check runs
    against solution/ and saves what the page shows part-way through a report
    and once it is finished. Needs a browser, as that check does."""
    from course import screenshots

    return screenshots.regenerate()


# ---------------------------------------------------------------- learner commands

def _unit(value):
    from course import manifest

    try:
        return manifest.unit(value)
    except (KeyError, ValueError):
        count = len(manifest.units())
        raise argparse.ArgumentTypeError(f"{value!r} is not a unit; the course has units 1-{count}")


def _checkpoint(value):
    """A unit (N: its end) or one of its steps (N.K: right after step K)."""
    from course import stages

    number, _, step = str(value).partition(".")
    unit = _unit(number)
    if not step:
        return unit, unit.number
    steps = stages.step_numbers(unit)
    if not step.isdigit() or int(step) not in steps:
        raise argparse.ArgumentTypeError(f"unit {unit.code} has steps {steps[0]}-{steps[-1]}; "
                                         f"{value!r} names none of them")
    return unit, stages.Step(unit.number, int(step))


def _units(value):
    from course import manifest

    if value == "all":
        return list(manifest.units())
    return [_unit(value)]


def _target(args):
    from course.target import resolve

    return resolve(args.target)


def cmd_status(args):
    """Every unit: passed, failed or not started (from your last grades), your
    points, and the next step to take."""
    from course import status

    return status.show(_target(args))


def cmd_grade(args):
    """Grade your folder on a unit (or all units) and print a short summary:
    what passed, the first thing to fix, and the unit step that explains it.
    Exits 0 only when every graded unit passes."""
    from course import grading

    target = _target(args)
    if not target.is_dir():
        print(f"course: there is no app folder at {target}; pass --target with your folder.", file=sys.stderr)
        return 2
    return grading.grade([u.number for u in args.unit], target, verbose=args.verbose, results_path=args.results,
                         exercism_path=args.exercism, summary_path=args.summary)


def cmd_hint(args):
    """One more hint for a unit each time you ask, from a nudge to a near-answer."""
    from course import hints

    return hints.show(args.unit, _target(args))


def cmd_watch(args):
    """Re-grade the current unit (the first one not passed yet) every time you
    save a file in your folder. Ctrl-C stops."""
    from course import watch

    return watch.run(_target(args), unit=args.unit, poll=args.poll)


def cmd_quiz(args):
    """Answer a unit's challenge questions here; the answers go into your
    folder's answers.toml, where the grader reads them."""
    from course import challenge

    return challenge.run(args.unit, _target(args))


def cmd_checkpoint(args):
    """Skip ahead: put your folder in the reference state at the end of unit N,
    or, with N.K, right after step K of unit N (the code the lesson has you
    type up to that step). Your current files are saved first in
    .course/saved/ (the command says where)."""
    from course import checkpoint

    unit, stage = args.unit
    what = (f"the reference app at the end of unit {unit.code}" if isinstance(stage, int)
            else f"the reference app right after unit {unit.code}'s step {stage.step}")
    return checkpoint.move_to(stage, _target(args), what)


def cmd_diff(args):
    """Show what your folder changes against the reference app at the end of
    the unit before N: the code you wrote for unit N, as a diff."""
    from course import diff

    return diff.run(args.unit, _target(args))


def cmd_reset(args):
    """Start over: put the original starter back in your folder. Your current
    files are saved first in .course/saved/ (the command says where)."""
    from course import checkpoint

    return checkpoint.move_to(1, _target(args), "the original starter app", skipped_to=0)


def cmd_class(args):
    """(instructors) Grade every student folder in ROSTER_DIR and write one row
    per student with the points of each unit."""
    from course import classroom

    numbers = [u.number for u in args.units] if args.units else None
    return classroom.grade_class(args.roster, args.out, numbers, jobs=args.jobs, unsafe=args.unsafe,
                                 summary=args.summary, image=args.container, engine=args.engine)


def _learner_parser():
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--target", metavar="PATH",
                        help="your app folder (default: $COURSE_TARGET or starter/)")
    return shared


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python3 -m course",
        description="Background jobs with Flask, RQ, Redis and S3: the course's command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    learner = _learner_parser()

    p = sub.add_parser("status", parents=[learner], help="your progress through the units, and what to do next",
                       description=cmd_status.__doc__)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("grade", parents=[learner], help="grade your folder on unit N (or all)",
                       description=cmd_grade.__doc__)
    p.add_argument("unit", type=_units, metavar="N|all", help="a unit number, or all")
    p.add_argument("--verbose", "-v", action="store_true", help="show the grader's (pytest's) own output too")
    p.add_argument("--results", metavar="PATH", help="write the results as JSON (points per unit and per check)")
    p.add_argument("--exercism", metavar="PATH",
                   help="also write them as an Exercism test-runner results.json (version 3; task_id = unit)")
    p.add_argument("--summary", metavar="PATH",
                   help="append a Markdown table of points per unit (CI: $GITHUB_STEP_SUMMARY)")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("hint", parents=[learner], help="one more hint for unit N", description=cmd_hint.__doc__)
    p.add_argument("unit", type=_unit, metavar="N", help="a unit number")
    p.set_defaults(func=cmd_hint)

    p = sub.add_parser("watch", parents=[learner], help="re-grade the current unit whenever you save",
                       description=cmd_watch.__doc__)
    p.add_argument("--unit", type=_unit, metavar="N", help="the unit to start with (default: the first not passed)")
    p.add_argument("--poll", action="store_true", help="check modification times instead of file-system events")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("quiz", parents=[learner], help="answer unit N's challenge questions",
                       description=cmd_quiz.__doc__)
    p.add_argument("unit", type=_unit, metavar="N", help="a unit number")
    p.set_defaults(func=cmd_quiz)

    p = sub.add_parser("checkpoint", parents=[learner], help="skip ahead: your folder as at the end of unit N "
                       "(or after its step K: N.K)", description=cmd_checkpoint.__doc__)
    p.add_argument("unit", type=_checkpoint, metavar="N[.K]", help="a unit number, or unit.step (7.3)")
    p.set_defaults(func=cmd_checkpoint)

    p = sub.add_parser("diff", parents=[learner], help="your changes against the reference app before unit N",
                       description=cmd_diff.__doc__)
    p.add_argument("unit", type=_unit, metavar="N", help="a unit number")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("reset", parents=[learner], help="start over from the original starter",
                       description=cmd_reset.__doc__)
    p.set_defaults(func=cmd_reset)

    p = sub.add_parser("class", help="(instructors) grade every student folder; one row per student",
                       description=cmd_class.__doc__)
    p.add_argument("roster", metavar="ROSTER_DIR", help="a folder holding one folder per student")
    p.add_argument("--out", default="results.csv", help="where the rows go: .csv (default results.csv) or .json")
    p.add_argument("--units", type=_unit, nargs="+", metavar="N", help="only these units (default: all)")
    p.add_argument("--jobs", "-j", type=int, default=CLASS_JOBS,
                   help=f"grade this many students at once (default here {CLASS_JOBS}: three per core, which keeps "
                        "every core busy; more only add contention)")
    p.add_argument("--summary", metavar="FILE", help="also append the rows to FILE as a Markdown table")
    p.add_argument("--unsafe", action="store_true",
                   help="grade even where the sandbox cannot hold (only on a throwaway account)")
    p.add_argument("--container", metavar="IMAGE",
                   help="grade each student in a container of its own, from this image (container/Containerfile): "
                        "no network, files read-only; for where the sandbox cannot hold")
    p.add_argument("--engine", metavar="NAME",
                   help="the container engine (default: $COURSE_CONTAINER_ENGINE, else podman or docker on PATH)")
    p.set_defaults(func=cmd_class)

    p = sub.add_parser("test", help="run the course's whole test suite (maintainers, CI)",
                       description=cmd_test.__doc__)
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("run", help="run the finished app locally (Redis, S3, worker, web)",
                       description=cmd_run.__doc__)
    p.add_argument("--app", default="solution", help="app folder to run (default: solution; try starter)")
    p.add_argument("--port", type=int, help="web port (default: a free one)")
    p.add_argument("--worker", action="store_true",
                   help="also run worker.py when the Procfile has no worker yet (unit 03)")
    p.add_argument("--web-only", action="store_true",
                   help="run only the web process; start workers yourself, in another terminal")
    p.add_argument("--heroku-redis", action="store_true",
                   help="reach Redis as on Heroku: REDIS_URL is rediss://:<password>@127.0.0.1:<port>, TLS with a "
                        "self-signed certificate and a password (default: a plain redis:// URL, no password)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("restart", help="restart the worker (or web) dyno of the running `course run`",
                       description=cmd_restart.__doc__)
    p.add_argument("type", nargs="?", metavar="TYPE", help="the process type: worker or web (default: every one)")
    p.add_argument("--port", type=int, help="which `course run`, by its web port, if several are running")
    p.set_defaults(func=cmd_restart)

    p = sub.add_parser("quiz-keys", help="(maintainers) regenerate quiz answer keys", description=cmd_quiz_keys.__doc__)
    p.add_argument("units", nargs="*", type=int, help="unit numbers (default: all)")
    p.set_defaults(func=cmd_quiz_keys)

    p = sub.add_parser("stages", help="(maintainers) regenerate starter/ and solution/ from course/source/",
                       description=cmd_stages.__doc__)
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser("screenshots", help="(maintainers) regenerate the report page's pictures in docs/images/",
                       description=cmd_screenshots.__doc__)
    p.set_defaults(func=cmd_screenshots)
    return parser


def main(argv=None):
    if not sys.stdout.isatty() or os.environ.get("NO_COLOR"):
        os.environ.setdefault("NO_COLOR", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\ncourse: stopped.", file=sys.stderr)
        return 130
