"""The services the grader starts for learner code run outside the sandbox, as the
grader's own user: Redis (course/services.py) must not do for learner code what the
sandbox forbids it. Redis can write its data file anywhere it is told to
(CONFIG SET dir / dbfilename, then SAVE), load a shared library (MODULE LOAD) and
crash or stall on request (DEBUG); the server the course starts refuses all three,
so learner code that reaches it, as every check lets it, gains nothing from it."""
import textwrap

import pytest

from course import services


@pytest.fixture
def redis_url():
    with services.redis_server(password=services.new_password()) as url:
        yield url


@pytest.fixture
def learner(one_module_learner):
    return one_module_learner


def ask_redis(learner, redis_url, *command):
    """Send one command from learner code; what Redis answered, or its error."""
    code = f"""
        import os
        import redis
        try:
            answer = redis.Redis.from_url(os.environ["REDIS_URL"]).execute_command(*{list(command)!r})
            result(refused=False, answer=repr(answer))
        except redis.ResponseError as error:
            result(refused=True, answer=str(error))
    """
    return learner.probe(textwrap.dedent(code), env=learner.environment(REDIS_URL=redis_url), what="the attack")


def test_redis_writes_no_file_where_learner_code_says(learner, redis_url, tmp_path):
    # A folder of the grader's standing for the course's tests/, which learner code may not write.
    conftest = tmp_path / "tests" / "conftest.py"
    conftest.parent.mkdir()
    conftest.write_text("# the course's own\n")
    for command in (("CONFIG", "SET", "dir", str(conftest.parent)), ("CONFIG", "SET", "dbfilename", conftest.name)):
        got = ask_redis(learner, redis_url, *command)
        assert got["refused"], f"Redis took {' '.join(command[:3])} from learner code: {got['answer']}"
    ask_redis(learner, redis_url, "SAVE")
    assert conftest.read_text() == "# the course's own\n", "Redis rewrote a grader's file for learner code"


@pytest.mark.parametrize("command", [("MODULE", "LOAD", "/nonexistent/learner-module.so"), ("DEBUG", "SLEEP", "0")],
                         ids=["module-load", "debug"])
def test_redis_loads_no_code_and_takes_no_debug_command(learner, redis_url, command):
    got = ask_redis(learner, redis_url, *command)
    # Refused as a command, not tried: a module that fails to load is refused too.
    assert got["refused"] and "not allowed" in got["answer"], \
        f"Redis took {command[0]} from learner code: {got['answer']}"
