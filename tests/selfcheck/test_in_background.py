"""Self-checks that mostly wait, in a pytest of their own started in the background
when collection ends (selfcheck/background.py), one module after the other; each
test here reports one of their checks, pass, fail or skip, with its message.

- production_scenarios.py: the finished app survives what production does to it,
  with real processes (Redis restarting mid-job and while idle, a worker killed
  with its work horse, Redis away from the web app, slow clients, signed links).
- local_run_scenarios.py: the README's run command serves the finished app and
  leaves nothing running however it is stopped; its router answers unit 01's 35 s
  report with Heroku's 503 and H12 after 30 s while the report still lands (and
  the page, in a browser, says so), and passes normal requests through; unit 12's
  two clicks with one key make one report.
- dyno_scenarios.py: `course run` stops and restarts each process type as Heroku
  stops a dyno, so a plain Worker loses a job cut into and HerokuWorker finishes it.

In the session's main line they took about 80 s, one after another, mostly waiting."""
import pytest

from selfcheck.background import Background

SCENARIOS = Background("production_scenarios.py", "local_run_scenarios.py", "dyno_scenarios.py")


def prefetch(items):
    SCENARIOS.start(items)


@pytest.fixture(scope="module", autouse=True)
def stop_the_background_run():
    yield
    SCENARIOS.close()


@pytest.mark.parametrize("check", SCENARIOS.checks())
def test_in_background(check):
    SCENARIOS.report(check)
