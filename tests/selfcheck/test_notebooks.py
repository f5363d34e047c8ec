"""The notebooks run from a clean checkout: every cell without error, each draws
at least one plot, none is committed with outputs, and none leaves a process behind."""
import json
import os
import re
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from course import ROOT
from grader.learner import marked_processes

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# What a notebook needs from the repository; it runs in a copy, so nothing it writes lands here.
# Not starter/: that is the learner's work, in any state; a notebook that wants the
# original starter makes its own from the course's source (course.stages, which reads units/).
COPIED = ("course", "units", "solution", "notebooks", "Procfile")
KERNEL = "course-notebooks"
# Each run's processes carry this variable, so leftovers can be found even once orphaned.
MARKER = "COURSE_NOTEBOOK_RUN"


# The self-check runs each notebook's code as committed, on fewer and shorter
# measurements: what it proves is that every cell runs and draws, not the figures.
# Each text must be in the notebook as it is (a notebook edited past it fails here).
SMALLER = {
    "01-why-the-request-blocks": [("SECONDS = [0.25, 0.5, 1.0, 2.0]", "SECONDS = [0.1, 0.3]")],
    "02-exploring-rq": [("enqueue(demo_jobs.in_steps, 10, 0.1)", "enqueue(demo_jobs.in_steps, 5, 0.1)")],
    "03-worker-throughput": [("demo_jobs.noop, 60", "demo_jobs.noop, 20"),
                             ("calls_per_second(demo_jobs.noop, 100_000)", "calls_per_second(demo_jobs.noop, 10_000)"),
                             ("utils.make_report, 6", "utils.make_report, 2")],
}


def made_smaller(notebook, name):
    for old, new in SMALLER.get(name, ()):
        cells = [cell for cell in notebook.cells if cell.cell_type == "code" and old in cell.source]
        assert cells, f"{name}.ipynb no longer contains {old!r}: update SMALLER in {Path(__file__).name}"
        for cell in cells:
            cell.source = cell.source.replace(old, new)


def test_there_are_at_least_three_notebooks():
    assert len(NOTEBOOKS) >= 3, f"notebooks/ has {len(NOTEBOOKS)} notebooks; the course promises three"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    dirty = [i for i, cell in enumerate(notebook["cells"])
             if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name} is saved with outputs in cells {dirty}; clear them "
                       "(`jupyter nbconvert --clear-output --inplace`) before committing")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A kernel spec that runs this very interpreter (the course's .venv), found through JUPYTER_PATH."""
    jupyter = tmp_path_factory.mktemp("jupyter")
    spec = jupyter / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "course (.venv)", "language": "python",
    }))
    return jupyter


def leftovers_after(marker, grace=10):
    """Processes of the run still alive after grace seconds; they are killed, then returned."""
    if not Path("/proc/self/environ").exists():
        return []
    deadline = time.monotonic() + grace
    while (alive := marked_processes(marker, MARKER)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return alive


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_draws_a_plot(path, tmp_path, kernel, monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    copy = tmp_path / "course-copy"
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        elif source.exists():
            shutil.copy2(source, copy / name)
    marker = uuid.uuid4().hex
    # Where Jupyter finds the kernel and writes its connection file: read by this process.
    monkeypatch.setenv("JUPYTER_PATH", str(kernel))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    # The kernel's own environment. The marker goes to the kernel only: other
    # self-checks run child processes from this process at the same time, and
    # they must not inherit it (they would be taken for the notebook's leftovers).
    kernel_env = {name: value for name, value in os.environ.items()
                  # a notebook must start its own services, never use the caller's
                  if not name.startswith(("AWS_", "REDIS_", "S3_", "REPORT_"))}
    kernel_env.update(MPLBACKEND="Agg", IPYTHONDIR=str(tmp_path / "ipython"), **{MARKER: marker})

    notebook = nbformat.read(copy / "notebooks" / path.name, as_version=4)
    made_smaller(notebook, path.stem)
    client = NotebookClient(notebook, timeout=120, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(copy / "notebooks")}})
    started = time.monotonic()
    try:
        client.execute(env=kernel_env)
    except CellExecutionError as error:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # the kernel colours its tracebacks
        pytest.fail(f"{path.name} stopped with an error:\n{plain[-1500:]}", pytrace=False)
    finally:
        leaked = leftovers_after(marker)
    seconds = time.monotonic() - started

    assert not leaked, f"{path.name} left {len(leaked)} process(es) running (pids {leaked}); stop them in its last cell"
    images = sum("image/png" in output.get("data", {})
                 for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)
    assert images >= 1, f"{path.name} ran but drew no plot (no image/png output)"
    assert seconds < 90, f"{path.name} took {seconds:.0f} s; keep each notebook under half a minute"
