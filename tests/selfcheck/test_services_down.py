"""When a service the grader needs cannot start, the learner gets one clear
sentence saying which and what to do, quickly, not a hang or a traceback."""
import os
import subprocess
import sys
import time

from course import ROOT


def grade_with(env_changes, unit="unit_02"):
    env = {**os.environ, **env_changes}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", f"tests/{unit}", "--target", "solution", "-q", "-x"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - started


def test_a_redis_that_will_not_start_is_named_with_what_to_do():
    done, seconds = grade_with({"REDIS_SERVER": "/bin/false"})
    assert done.returncode != 0
    assert "Redis could not start" in done.stdout and "REDIS_SERVER" in done.stdout, done.stdout[-800:]
    assert "Traceback" not in done.stdout
    assert seconds < 60


def test_no_redis_at_all_says_how_to_get_one():
    done, seconds = grade_with({"REDIS_SERVER": "/no/such/redis-server"})
    assert done.returncode != 0
    assert "No Redis server found" in done.stdout and "apt-get install redis-server" in done.stdout, done.stdout[-800:]
    assert seconds < 60
