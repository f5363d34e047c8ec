"""A grading run that stays up between gradings, for `watch` and `class` (see course.warm).

A grading run spends its first second or two starting: Python, pytest, the
grader's modules, moto and boto3, and the preloaded Python that learner
processes are forked from; the page check starts Playwright and Chromium.
`watch` grades the same unit again at every save, and `class` one student after
another, so they keep a few of these processes up and send each of them the next
grading. Each grading is still a whole pytest session (`pytest.main`): its own
Redis, its own local S3, a new bucket and new learner processes for every check,
a new browser context for every page check. Only the imports, the preloaded
Python and the browser are kept.

No learner code runs in this process, so nothing a learner saves is stale here:
learner files are read, and learner code run, afresh by each check. The grader's
own files are imported once; a host started before `git pull` grades with the
old grader until `watch` starts again.

    python host.py

Requests come on standard input, one JSON line each: {"args": pytest's
arguments, "env": the environment, "output": a file for pytest's output}. The
answer, on the standard output this process started with, is one JSON line:
{"code": pytest's exit code, "swept": how many processes it left running, killed}.
The process ends when its standard input closes.
"""
import gc
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def warm_up(unit_folder):
    """Import what every grading run imports: pytest, the grader (through a collection,
    which also starts the preloaded Python), moto's server and boto3."""
    with open(os.devnull, "w") as nowhere:
        run(["--collect-only", "-q", "-p", "no:cacheprovider", unit_folder], dict(os.environ), nowhere)
    import boto3  # noqa: F401  (the grader's S3 client)
    from moto.server import ThreadedMotoServer  # noqa: F401  (the local S3)


def run(args, env, output):
    """pytest.main(args) with env as the environment and output as its stdout and stderr."""
    import pytest

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = os.dup(1), os.dup(2)
    os.environ.clear()
    os.environ.update(env)
    os.dup2(output.fileno(), 1)
    os.dup2(output.fileno(), 2)
    try:
        return int(pytest.main(args))
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def main():
    os.chdir(ROOT)
    sys.path[0] = str(ROOT)  # as `python -m pytest` from the course folder has it, not this folder
    answers = os.fdopen(os.dup(1), "w", buffering=1)  # pytest's output goes elsewhere
    warm_up(sys.argv[1] if len(sys.argv) > 1 else "tests/unit_01")
    answers.write(json.dumps({"ready": True}) + "\n")
    for count, line in enumerate(sys.stdin, 1):
        request = json.loads(line)
        with open(request["output"], "w") as output:
            code = run(request["args"], request["env"], output)
        if count == 1:  # what the first grading imported as it went (S3's models, rq, the browser's driver) stays too
            gc.collect()
            gc.freeze()
        answers.write(json.dumps({"code": code, "swept": sweep()}) + "\n")
    finish()


def sweep():
    """Kill whatever a grading left running below this process, but the preloaded Python
    and the kept browser: each check stops its own processes and fails on a leak, so this
    finds nothing unless the grader itself slipped; then the next grading must not be
    blamed for it."""
    from grader.browser import kept_processes
    from grader.processes import descendants, kill_all
    from grader.spawning import Preloader

    keep = {os.getpid(), *kept_processes()}
    if Preloader._instance:
        keep.add(Preloader._instance.popen.pid)
    left = descendants([os.getpid()]) - keep
    kill_all(left)
    for pid in left:
        try:
            os.waitpid(pid, 0)  # killed: an orphan this process inherited ends at once
        except ChildProcessError:
            pass  # not a child of this one: its own parent collects it
    return len(left)


def finish(seconds=5):
    """Stop the kept browser, then whatever still runs below this process, and collect
    every exit: what this process leaves uncollected outlives it as a zombie. Orphans of
    the killed come to this process (a subreaper), so it stops everything until none is left."""
    from grader.browser import close
    from grader.processes import descendants, stop_everything

    close()
    deadline = time.monotonic() + seconds
    while descendants([os.getpid()]) - {os.getpid()} and time.monotonic() < deadline:
        stop_everything()
        time.sleep(0.02)

if __name__ == "__main__":
    main()
