"""The notebooks run from a clean checkout: every cell without error, each draws
at least one plot, none is committed with outputs, and none leaves a process behind.
They run in the background from the start of the session (selfcheck/notebook_runs.py)."""
import json

import pytest

from selfcheck.notebook_runs import NOTEBOOKS, Runs

_runs = None


def prefetch(items):
    """Called when the session's tests are collected: the selected notebooks start
    running in the background, one at a time, while other checks run."""
    global _runs
    paths = [item.callspec.params["path"] for item in items
             if item.originalname == "test_notebook_runs_and_draws_a_plot"]
    if paths:
        _runs = Runs(paths)


@pytest.fixture(scope="module")
def notebook_runs():
    """The notebook runs started at collection (or, if none were, started as asked for)."""
    runs = _runs or Runs([])
    yield runs
    runs.close()


def test_there_are_at_least_three_notebooks():
    assert len(NOTEBOOKS) >= 3, f"notebooks/ has {len(NOTEBOOKS)} notebooks; the course promises three"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    dirty = [i for i, cell in enumerate(notebook["cells"])
             if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name} is saved with outputs in cells {dirty}; clear them "
                       "(`jupyter nbconvert --clear-output --inplace`) before committing")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_draws_a_plot(path, notebook_runs):
    run = notebook_runs.result(path)
    if run.error:
        pytest.fail(run.error, pytrace=False)
    assert not run.leaked, (f"{path.name} left {len(run.leaked)} process(es) running (pids {run.leaked}); "
                            "stop them in its last cell")
    assert run.images >= 1, f"{path.name} ran but drew no plot (no image/png output)"
    # A notebook should run in about half a minute alone; it runs here beside the whole
    # suite on 2 cores, which can triple that. The bound catches a runaway, not a busy machine.
    assert run.seconds < 180, f"{path.name} took {run.seconds:.0f} s; keep each notebook to about half a minute"
