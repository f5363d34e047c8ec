"""The `python3 -m course` command: one place for everything a learner or a
maintainer runs. Each command has --help and exits non-zero on failure."""
import argparse
import os
import subprocess
import sys

from course import ROOT


def cmd_test(args):
    """The course's whole test suite: every unit graded against solution/,
    plus the self-checks (starter, corpora, stages, quiz keys)."""
    command = [sys.executable, "-m", "pytest", "tests", "--target", "solution", "--self-check", *args.pytest_args]
    return subprocess.call(command, cwd=ROOT)


def cmd_run(args):
    """Run the app locally: Redis, a local S3, the worker and the web app."""
    from course import localrun

    return localrun.run(args.app, args.port)


def cmd_quiz_keys(args):
    """(maintainers) Regenerate the quiz answer keys from solution/."""
    from course import quiz

    for path in quiz.write_keys(set(args.units)):
        print(path.relative_to(ROOT))
    return 0


def cmd_stages(args):
    """(maintainers) Regenerate starter/ from solution/'s unit markers."""
    from course import stages

    stages.write_stage(1, stages.STARTER)
    print("starter/ regenerated from solution/")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python3 -m course",
        description="Background jobs with Flask, RQ, Redis and S3: the course's command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("test", help="run the course's whole test suite (maintainers, CI)",
                       description=cmd_test.__doc__)
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("run", help="run the finished app locally (Redis, S3, worker, web)",
                       description=cmd_run.__doc__)
    p.add_argument("--app", default="solution", help="app folder to run (default: solution; try starter)")
    p.add_argument("--port", type=int, help="web port (default: a free one)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("quiz-keys", help="(maintainers) regenerate quiz answer keys", description=cmd_quiz_keys.__doc__)
    p.add_argument("units", nargs="*", type=int, help="unit numbers (default: all)")
    p.set_defaults(func=cmd_quiz_keys)

    p = sub.add_parser("stages", help="(maintainers) regenerate starter/ from solution/", description=cmd_stages.__doc__)
    p.set_defaults(func=cmd_stages)
    return parser


def main(argv=None):
    if not sys.stdout.isatty() or os.environ.get("NO_COLOR"):
        os.environ.setdefault("NO_COLOR", "1")
    args = build_parser().parse_args(argv)
    return args.func(args)
