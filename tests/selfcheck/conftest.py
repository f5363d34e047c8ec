"""Fixtures for the course's own checks (collected only with --self-check)."""
import pytest

from grader.learner import Learner
from grader.plugin import GradingPlugin
from course import checks as course_checks, manifest, stages
from grader.target import Target, resolve
from selfcheck import runner

_pool = None
# Gradings this session does anyway, answered from its own results.
_graded_here = set()


def pytest_collection_finish(session):
    """Start every grading the selected self-checks will ask for as soon as
    collection ends, so they run while other tests (the units graded against
    solution/, the CLI, the notebooks) do."""
    global _pool
    # A test module may start slow, mostly waiting work of its own now: its `prefetch`
    # function, given the module's selected tests (the notebooks, the package index).
    selected = {}
    for item in session.items:
        if hasattr(item, "module"):
            selected.setdefault(item.module, []).append(item)
    for module, items in selected.items():
        if callable(getattr(module, "prefetch", None)):
            module.prefetch(items)
    wanted = []
    for item in session.items:
        for value in getattr(getattr(item, "callspec", None), "params", {}).values():
            grading = value.grading if isinstance(value, runner.Case) else value
            if isinstance(grading, runner.Grading) and grading not in wanted:
                wanted.append(grading)
    last = _last_stage_graded_here(session, wanted)
    if last is not None:
        _graded_here.add(last)
        wanted.remove(last)
    if wanted:
        _pool = runner.Pool()
        # In about the order the checks will ask for them, batched by unit: each check then
        # waits about as long as its own batch takes, well inside the per-test time bound.
        _pool.submit_all(wanted)


def _last_stage_graded_here(session, wanted):
    """The grading of the last unit's stage on that unit, when this session grades
    solution/ on every check of that unit anyway and solution/ is that stage, file
    for file (as test_solution_is_the_finished_app_made_from_the_source requires):
    the same folder graded twice is a whole unit of the suite's time."""
    last = stages.last_stage()
    own = next((g for g in wanted if g.unit == last and g.stage == last and g.base is None and g.overlay is None
                and not g.edits and not g.delete and not g.check and not g.env), None)
    if own is None or resolve(session.config.getoption("--target")).path.resolve() != stages.SOLUTION.resolve():
        return None
    graded = {item.name for item in session.items
              if "selfcheck" not in item.path.parts and item.path.parent.name == f"unit_{last:02d}"}
    if graded != set(course_checks.check_nodes(manifest.unit(last))):
        return None
    if stages.differences(last, stages.SOLUTION) or stages.project_differences(last, stages.SOLUTION):
        return None
    return own


class Gradings:
    """A grading's outcome: from the pool, or, for one this session did itself, from its results."""

    def __init__(self, pool, config):
        self.pool, self.config = pool, config

    def outcome(self, grading):
        done_here = grading in _graded_here
        checks = self.config.pluginmanager.get_plugin(GradingPlugin.NAME).results.checks.get(f"{grading.unit:02d}", []) if done_here else []
        if not checks:
            return self.pool.outcome(grading)
        outcome = runner.Outcome(grading, seconds=sum(c["seconds"] for c in checks))
        outcome.checks = {c["check"]: dict(c) for c in checks}
        return outcome


def pytest_sessionfinish(session):
    if _pool is not None:
        _pool.close()


@pytest.fixture(scope="session")
def gradings(request):
    """The session's gradings: each runs in the pool, batches of them side by side, and a
    check waits only for its own batch; solution/ on the last unit is this session's own."""
    return Gradings(_pool or runner.Pool(), request.config)



@pytest.fixture
def one_module_learner(tmp_path):
    """A learner app folder of one module (student-a/app.py), run by the grader's own
    harness: for a self-check that runs learner code as an attack would."""
    app = tmp_path / "student-a"
    app.mkdir()
    (app / "app.py").write_text("VALUE = 1\n")
    learner = Learner(Target(app), {})
    yield learner
    learner.close()
