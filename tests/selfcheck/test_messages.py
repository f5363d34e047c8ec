"""The grader's messages tell the truth: one or two sentences that name the
learner's file, never the grader's own probe, never a chained traceback, never
a shell's message or a print called an exception, never a log line from another
request. Odd folders (hostile/) are graded for real; the diagnosis itself is also
fed outputs a learner's code can produce."""
import time
from pathlib import Path

import pytest

from grader import diagnose
from grader.learner import describe_leaks
from selfcheck import runner

HOSTILE = Path(__file__).resolve().parent / "hostile"


def odd(name, unit, check):
    return runner.Grading(unit=unit, stage=unit, overlay=HOSTILE / name, check=check, label=f"hostile/{name}")


PRINTS = odd("print_without_newline", 3,
             "test_route_enqueues_and_answers_at_once or test_conn_still_follows_REDIS_URL")
# (grading, the check, words its message must hold, words it must not)
CASES = [
    (odd("syntax_error_elsewhere", 3, "test_conn_still_follows_REDIS_URL"), "test_conn_still_follows_REDIS_URL",
     ["utils.py, line 11: SyntaxError", "Python cannot even read the file"], ["Traceback"]),
    (odd("no_app_object", 3, "test_route_enqueues_and_answers_at_once"), "test_route_enqueues_and_answers_at_once",
     ["cannot import name 'app'"], ["probe", "During handling"]),
    (odd("procfile_cd_fails", 4, "test_procfile_processes_turn_a_request_into_a_pdf"),
     "test_procfile_processes_turn_a_request_into_a_pdf", ["No such file or directory", "last thing it printed"],
     ["raised"]),
    (odd("worker_prints_and_exits", 3, "test_worker_listens_on_high_default_low_in_order"),
     "test_worker_listens_on_high_default_low_in_order",
     ["stopped at start-up", "'Error: no queues configured, giving up'"], ["raised", "Error: no queues configured, giving up."]),
]


@pytest.mark.parametrize("grading", [PRINTS], ids=["print_without_newline"])
def test_a_print_without_a_newline_does_not_break_a_right_answer(gradings, grading):
    outcome = gradings.outcome(grading)
    assert len(outcome.checks) == 2 and not outcome.failed() and not outcome.problem, outcome.describe()


@pytest.mark.parametrize("grading, check, words, never", CASES, ids=[c[0].label.split("/")[-1] for c in CASES])
def test_a_failure_says_what_is_true_in_a_sentence_or_two(gradings, grading, check, words, never):
    outcome = gradings.outcome(grading)
    result = outcome.checks.get(check, {})
    assert result.get("outcome") == "failed", outcome.describe()
    message = result.get("message", "")
    missing = [w for w in words if w not in message]
    wrong = [w for w in never if w in message]
    assert not missing and not wrong, (f"the message lacks {missing} or says {wrong}\n" + outcome.describe())
    sentences = [s for s in message.replace("\n", " ").split(". ") if s.strip() and not s.lstrip().startswith("->")]
    assert len(sentences) <= 3, "more than two sentences (plus the step)\n" + outcome.describe()


# ---------------------------------------------------------------- the diagnosis, fed directly

PROBE_TRACEBACK = '''Traceback (most recent call last):
  File "/tmp/course-probe-1/course_probe.py", line 6, in <module>
    from app import app
ImportError: cannot import name 'app' from 'app' (/home/me/starter/app.py)
'''
CHAINED = '''Traceback (most recent call last):
  File "/home/me/starter/utils.py", line 12, in make_report
    upload()
ValueError: upload failed

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/tmp/course-probe-1/course_probe.py", line 7, in <module>
    make_report()
  File "/home/me/starter/utils.py", line 14, in make_report
    raise RuntimeError("no report")
RuntimeError: no report
'''


def test_the_graders_probe_is_never_named():
    said = diagnose.explain(PROBE_TRACEBACK, what="POST /report")
    assert "probe" not in said and "cannot import name 'app'" in said, said


def test_a_chained_traceback_gives_its_last_exception_once():
    said = diagnose.explain(CHAINED, what="utils.make_report()")
    assert said == "utils.make_report() raised RuntimeError: no report (utils.py, line 14).", said


@pytest.mark.parametrize("output", ["bash: line 1: cd: /app/nowhere: No such file or directory\n",
                                    "Starting... Error: no queues configured\n",
                                    "app.py:3: DeprecationWarning: old API\n  warnings.warn(\nready\n"],
                         ids=["shell", "print", "warning"])
def test_only_an_exception_is_called_raised(output):
    said = diagnose.explain(output, what="it")
    assert "raised" not in said and "Warning" not in said, said


def test_a_huge_line_is_diagnosed_in_linear_time():
    output = "x" * 100_000_000 + "\nTraceback (most recent call last):\n  File \"/a/worker.py\", line 3\nRuntimeError: boom\n"
    started = time.monotonic()
    said = diagnose.explain(output, what="it")
    assert time.monotonic() - started < 5, "diagnosing 100 MB took more than 5 s"
    assert "RuntimeError: boom (worker.py, line 3)" in said, said


WEB_LOG = '''[2026-11-23 10:00:00 +0000] [12] [ERROR] Exception on /report/abc [GET]
Traceback (most recent call last):
  File "/home/me/starter/app.py", line 40, in report_status
    job = Job.fetch(job_id)
KeyError: 'abc'
127.0.0.1 - - "GET /report/abc HTTP/1.1" 500
[2026-11-23 10:00:01 +0000] [12] [ERROR] Exception on /report [POST]
Traceback (most recent call last):
  File "/home/me/starter/app.py", line 30, in create_report
    queue.enqueue(make_report)
ValueError: no queue
'''


def test_a_500_is_explained_by_its_own_request_only():
    assert "KeyError: 'abc' (app.py, line 40)" in diagnose.logged_error(
        [WEB_LOG], [], "GET /report/abc answered 500 with '<html>'")
    assert "ValueError: no queue" in diagnose.logged_error([WEB_LOG], [], "POST /report answered 500")
    assert diagnose.logged_error([WEB_LOG], [], "GET /report/other answered 500") == ""


def test_a_leak_is_one_sentence():
    said = describe_leaks([(1, "python -c 'import time\nwhile True: time.sleep(1)'"), (2, "rq worker")])
    assert said.count(". ") == 0 and said.endswith(".") and "\n" not in said, said
