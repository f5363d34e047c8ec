"""Self-checks that mostly wait, each module in a pytest of its own started in the
background when collection ends (selfcheck/background.py); each test here reports
one of their checks, pass, fail or skip, with its message.

- production_scenarios.py: the finished app survives what production does to it,
  with real processes (Redis restarting mid-job and while idle, a worker killed
  with its work horse, Redis away from the web app, slow clients, signed links).
- local_run_scenarios.py: the README's run command serves the finished app and
  leaves nothing running however it is stopped.

In the session's main line they took about 80 s, one after another, mostly waiting."""
import pytest

from selfcheck.background import Background

MODULES = {name: Background(f"{name}.py") for name in ("production_scenarios", "local_run_scenarios")}


def prefetch(items):
    for name, module in MODULES.items():
        module.start([item for item in items if item.callspec.params["module"] == name])


@pytest.fixture(scope="module", autouse=True)
def stop_the_background_runs():
    yield
    for module in MODULES.values():
        module.close()


@pytest.mark.parametrize("module,check", [(name, check) for name, module in MODULES.items() for check in module.checks()],
                         ids=lambda value: value)
def test_in_background(module, check):
    MODULES[module].report(check)
