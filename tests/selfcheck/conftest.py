"""Fixtures for the course's own checks (collected only with --self-check)."""
import pytest

from selfcheck import runner

_pool = None


def pytest_collection_finish(session):
    """Start every grading the selected self-checks will ask for as soon as
    collection ends, so they run while other tests (the units graded against
    solution/, the CLI, the notebooks) do."""
    global _pool
    wanted = []
    for item in session.items:
        for value in getattr(getattr(item, "callspec", None), "params", {}).values():
            grading = value.grading if isinstance(value, runner.Case) else value
            if isinstance(grading, runner.Grading) and grading not in wanted:
                wanted.append(grading)
    if wanted:
        _pool = runner.Pool()
        # In about the order the checks will ask for them, batched by unit: each check then
        # waits about as long as its own batch takes, well inside the per-test time bound.
        _pool.submit_all(wanted)


def pytest_sessionfinish(session):
    if _pool is not None:
        _pool.close()


@pytest.fixture(scope="session")
def gradings():
    """The pool running this session's gradings, two batches at a time; a check waits only for its own batch."""
    return _pool or runner.Pool()
