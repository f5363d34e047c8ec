"""The grader holds against a hostile learner folder (hostile/, see its README):
no learner data is unpickled in the grader, learner code never sees the grader's
secrets, what it leaves running is found and stopped whatever it does to hide,
pathological output gets a verdict quickly, and a grader stopped with SIGTERM
leaves nothing behind."""
import atexit
import os
import shutil
import signal
import socket
import tempfile
import textwrap
from pathlib import Path

import pytest

from course import sandbox
from grader.processes import command_line, descendants, process_table, wait_until
from selfcheck import runner

HOSTILE = Path(__file__).resolve().parent / "hostile"
VERDICT_SECONDS = 30  # a pathological folder still gets its verdict within this


def hostile(name, unit, check, env=()):
    return runner.Grading(unit=unit, stage=unit, overlay=HOSTILE / name, check=check,
                          label=f"hostile/{name} on unit {unit:02d}", env=tuple(env), alone=True)


def _grader_home():
    """A HOME like an instructor's: AWS credentials in ~/.aws."""
    home = Path(tempfile.mkdtemp(prefix="course-instructor-home-"))
    atexit.register(shutil.rmtree, home, True)
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = AKIA-SELFCHECK\naws_secret_access_key = aws-selfcheck-secret\n")
    return home


SECRETS = {"GITHUB_TOKEN": "ghp_selfcheck_token", "HEROKU_API_KEY": "heroku-selfcheck-key",
           "DATABASE_URL": "postgres://grader:db-selfcheck-password@db.example/grades"}
SECRET_ENV = (*SECRETS.items(), ("HOME", str(_grader_home())))
SECRET_WORDS = (*SECRETS.values(), "aws-selfcheck-secret", "AKIA-SELFCHECK")

FORGED = hostile("forged_grade", 3, "test_worker_runs_the_job_to_a_pdf_in_the_bucket")
ENV_PROBE = hostile("env_leak", 3, "test_route_enqueues_and_answers_at_once", SECRET_ENV)
ENV_PROCFILE = hostile("env_leak", 4, "test_procfile_processes_turn_a_request_into_a_pdf", SECRET_ENV)
DAEMON = hostile("daemon", 3, "test_conn_still_follows_REDIS_URL")
IMPORT_LOOP = hostile("import_loop", 3, "test_conn_still_follows_REDIS_URL")
HUGE_OUTPUT = hostile("huge_output", 3, "test_worker_listens_on_high_default_low_in_order")
LOOPING_JOB = hostile("job_loops_for_ever", 3, "test_worker_runs_the_job_to_a_pdf_in_the_bucket")
MAIN = 'if __name__ == "__main__":'


def on_import(name, code, unit=3, check="test_conn_still_follows_REDIS_URL"):
    """The unit's own worker.py, running `code` when it is imported."""
    edit = ("worker.py", MAIN, textwrap.dedent(code) + "\n\n" + MAIN)
    return runner.Grading(unit=unit, stage=unit, edits=(edit,), check=check,
                          label=f"worker.py that {name} on import, on unit {unit:02d}", alone=True)


FORK_BOMB = on_import("forks 3,000 processes", """
    import time
    for _ in range(3000):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
""")
MEMORY_HOG = on_import("asks for 12 GiB", "hog = bytearray(12 * 2**30)")
DISK_FILL = on_import("writes 300 MiB", """
    import tempfile
    with tempfile.NamedTemporaryFile() as fill:
        for _ in range(300):
            fill.write(b"x" * 2**20)
            fill.flush()
""")


def daemons_alive(tag="course-hostile-daemon"):
    table = process_table()
    return [pid for pid, row in table.items() if row[1] != "Z" and tag in command_line(pid)]


@pytest.mark.parametrize("grading", [FORGED], ids=["forged_grade"])
def test_a_pickled_argument_cannot_rewrite_the_grade(gradings, grading):
    """The route enqueues an argument whose unpickling, in a pytest process, makes
    pytest.fail do nothing; the job uploads text, not a PDF. The check must fail."""
    outcome = gradings.outcome(grading)
    check = outcome.checks.get(grading.check)
    assert check is not None, outcome.describe()
    assert check["outcome"] == "failed", (
        "a wrong answer passed: learner data was unpickled in the grader and rewrote its verdict\n"
        + outcome.describe())
    assert "not a PDF" in check.get("message", ""), outcome.describe()


@pytest.mark.parametrize("grading", [ENV_PROBE, ENV_PROCFILE], ids=["probe", "procfile"])
def test_learner_code_never_sees_the_graders_secrets(gradings, grading):
    """The grading runs with tokens in its environment and AWS keys in its HOME;
    the app, the worker and the Procfile's shell raise if they see any of them."""
    outcome = gradings.outcome(grading)
    leaked = [word for word in SECRET_WORDS if word in outcome.output or word in outcome.describe()]
    assert not leaked, f"the grader's secrets reached learner code and its messages: {leaked}\n{outcome.describe()}"
    assert outcome.checks and not outcome.failed(), (
        "learner code was handed the grader's environment or HOME\n" + outcome.describe())


@pytest.mark.parametrize("grading", [DAEMON], ids=["double_forked_daemons"])
def test_daemons_that_drop_their_environment_are_found_and_stopped(gradings, grading):
    try:
        outcome = gradings.outcome(grading)
        left = daemons_alive()
    finally:
        for pid in daemons_alive():
            os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} daemon(s) outlived the grading run\n" + outcome.describe()
    check = outcome.checks.get(grading.check, {})
    assert check.get("outcome") == "failed" and "left 3 process(es) running after the check" in check.get(
        "message", ""), outcome.describe()
    assert len([line for line in check["message"].splitlines() if not line.lstrip().startswith("->")]) == 1, \
        "a leak is reported in one sentence\n" + outcome.describe()


@pytest.mark.parametrize("grading, expect", [(IMPORT_LOOP, "did not finish within 10 s"),
                                             (HUGE_OUTPUT, "crashed after printing 100 MB")],
                         ids=["import_loop", "huge_output"])
def test_pathological_code_gets_its_verdict_quickly(gradings, grading, expect):
    outcome = gradings.outcome(grading)
    check = outcome.checks.get(grading.check, {})
    assert check.get("outcome") == "failed" and expect in check.get("message", ""), outcome.describe()
    assert check["seconds"] < VERDICT_SECONDS, (
        f"the verdict took {check['seconds']:.0f} s (bound {VERDICT_SECONDS} s)\n" + outcome.describe())
    assert len(check["message"]) < 600, "the message quotes too much of what the code printed\n" + outcome.describe()


@pytest.mark.parametrize("grading, expect, layer", [
    (FORK_BOMB, "limit on processes", "processes"),
    (MEMORY_HOG, "MemoryError", "limits"),
    (DISK_FILL, "no file larger than 256 MiB", "limits")], ids=["fork_bomb", "memory_hog", "disk_fill"])
def test_a_runaway_meets_the_sandbox_limits_and_gets_one_line(gradings, grading, expect, layer):
    """Each worker.py, when imported, forks 3,000 processes, asks for 12 GiB, or writes
    300 MiB: the sandbox's limits stop it, the message says which, and nothing is left."""
    if not sandbox.layers()[layer]:
        pytest.skip(f"the sandbox's {layer} layer does not hold here")
    outcome = gradings.outcome(grading)
    check = outcome.checks.get(grading.check, {})
    assert check.get("outcome") == "failed" and expect in check.get("message", ""), outcome.describe()
    assert check["seconds"] < VERDICT_SECONDS, (
        f"the verdict took {check['seconds']:.0f} s (bound {VERDICT_SECONDS} s)\n" + outcome.describe())
    assert not outcome.leftovers and not outcome.problem, outcome.describe()


@pytest.mark.parametrize("grading", [LOOPING_JOB], ids=["job_loops_for_ever"])
def test_a_job_that_never_ends_is_reported_as_that_not_as_a_leak(gradings, grading):
    """rq runs the job in a work horse, a process group of its own below the worker:
    stopping the worker stops it, and it is not code left running."""
    outcome = gradings.outcome(grading)
    check = outcome.checks.get(grading.check, {})
    message = check.get("message", "")
    assert check.get("outcome") == "failed" and "never returned" in message and "left" not in message, \
        outcome.describe()
    assert not outcome.problem, outcome.describe()


def test_a_grader_stopped_with_sigterm_leaves_nothing_running():
    """SIGTERM the grader while learner code runs: its Redis, its S3 and every
    learner process must be gone once it has exited."""
    seen = set()

    def stop_mid_check(popen):
        def learner_running():
            tree = descendants([popen.pid])
            seen.update(tree)
            return any("probe" in command_line(pid) for pid in tree)

        assert wait_until(learner_running, 60), "the grading never started learner code"
        seen.update(descendants([popen.pid]))
        popen.send_signal(signal.SIGTERM)

    grading = runner.Grading(unit=3, stage=3, overlay=HOSTILE / "import_loop",
                             check="test_conn_still_follows_REDIS_URL", label="stopped with SIGTERM")
    outcome = runner.grade(grading, on_start=stop_mid_check)
    table = process_table()
    left = sorted(pid for pid in seen if table.get(pid, (0, "Z"))[1] != "Z")
    shown = [command_line(pid)[:80] for pid in left] or [cmd[:80] for _pid, cmd in outcome.leftovers]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left and not outcome.leftovers, (
        f"after SIGTERM the grader left {len(shown)} process(es) running: {shown}")


def test_a_run_started_while_a_check_looks_for_leaks_is_not_taken_for_one():
    """The self-checks start grading runs (pytest, its Redis, its preloaded Python) from
    other threads while this session's own checks look for leftovers. A child started
    after a leak scan read the process table must still count as this process's own,
    not as an orphan: taken for one, it and its Redis were killed mid-grading."""
    import subprocess
    import sys

    from grader.processes import strays

    stale = process_table()  # read before the child exists
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)"])
    try:
        assert wait_until(lambda: len(descendants([child.pid])) == 2, 10), "the child did not start its own child"
        strays(stale)  # a leak scan with the table it read before
        found = strays() & descendants([child.pid])
        assert not found, f"a child this process started was taken for an orphan: {sorted(found)}"
    finally:
        for pid in descendants([child.pid]):
            os.kill(pid, signal.SIGKILL)
        child.wait()


NETWORK_ATTACK = """
    import socket
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.sendto(b"reached", ("127.0.0.1", {udp}))
    try:
        socket.create_connection(("127.0.0.1", {tcp}), timeout=2).close()
    except OSError:
        pass
"""


def test_a_grading_run_has_a_network_of_its_own():
    """Importing worker.py sends a UDP datagram and opens a TCP connection to ports on this
    machine's loopback (another student's services, or anything else): the grading run's
    network is its own, so neither arrives, and the check still runs and passes."""
    if not sandbox.layers()["isolation"]:
        pytest.skip("no network namespace here: " + sandbox.MEANS["isolation"])
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    grading = on_import("reaches for the machine's loopback",
                        NETWORK_ATTACK.format(udp=udp.getsockname()[1], tcp=tcp.getsockname()[1]))
    try:
        outcome = runner.grade(grading)
        udp.settimeout(0.2)
        tcp.settimeout(0.2)
        with pytest.raises(socket.timeout):
            udp.recvfrom(64)
        with pytest.raises(socket.timeout):
            tcp.accept()
    finally:
        udp.close()
        tcp.close()
    check = outcome.checks.get(grading.check, {})
    assert check.get("outcome") == "passed", "the attack's worker.py should pass this check\n" + outcome.describe()
