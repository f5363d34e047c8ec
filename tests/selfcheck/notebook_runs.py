"""Run the notebooks the way a learner would, in the background: each in a copy of
the course, on its own kernel, on fewer and shorter measurements. They start as soon
as the session's tests are collected and run one after another while other
self-checks do; test_notebooks.py reads what each run did."""
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from course import ROOT
from grader.processes import marked_processes

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


@dataclass
class NotebookRun:
    """What running one notebook did."""
    name: str
    error: str = ""        # set when a cell raised, or the run could not start
    leaked: list = field(default_factory=list)
    images: int = 0
    seconds: float = 0.0


def run(path, folder):
    """Run notebooks/<path.name> in a copy of the course under folder; never raises."""
    import nbformat
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    result = NotebookRun(path.name)
    folder = Path(folder)
    copy = folder / "course-copy"
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        elif source.exists():
            shutil.copy2(source, copy / name)
    # A kernel spec that runs this very interpreter (the course's .venv), given to the
    # kernel manager itself: nothing process-wide changes, so other checks run meanwhile.
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "course (.venv)", "language": "python",
    }))
    manager = KernelManager(kernel_name=KERNEL,
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(folder / "kernels")]))
    manager.connection_file = str(folder / "kernel-connection.json")
    marker = uuid.uuid4().hex
    # The kernel's own environment. The marker goes to the kernel only: other
    # self-checks run child processes from this process at the same time, and
    # they must not inherit it (they would be taken for the notebook's leftovers).
    kernel_env = {name: value for name, value in os.environ.items()
                  # a notebook must start its own services, never use the caller's
                  if not name.startswith(("AWS_", "REDIS_", "S3_", "REPORT_", "JUPYTER_"))}
    kernel_env.update(MPLBACKEND="Agg", IPYTHONDIR=str(folder / "ipython"), **{MARKER: marker})
    started = time.monotonic()
    try:
        notebook = nbformat.read(copy / "notebooks" / path.name, as_version=4)
        made_smaller(notebook, path.stem)
        client = NotebookClient(notebook, km=manager, timeout=120,
                                resources={"metadata": {"path": str(copy / "notebooks")}})
        client.execute(env=kernel_env)
        result.images = sum("image/png" in output.get("data", {})
                            for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)
    except CellExecutionError as error:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # the kernel colours its tracebacks
        result.error = f"{path.name} stopped with an error:\n{plain[-1500:]}"
    except Exception as error:  # the kernel did not start, a changed notebook, ...
        result.error = f"{path.name} could not run: {type(error).__name__}: {error}"
    finally:
        if manager.has_kernel:  # a kernel manager handed in is the caller's to shut down;
            manager.shutdown_kernel()  # asked to, so its atexit stops what a halted notebook started
        result.leaked = leftovers_after(marker)
    result.seconds = time.monotonic() - started
    return result


class Runs:
    """The notebooks of a session, run one after another in a background thread:
    one at a time, since each measures, and the suite runs gradings meanwhile."""

    def __init__(self, paths):
        self.folder = tempfile.mkdtemp(prefix="course-notebooks-")
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notebooks")
        self.futures = {path.name: self.executor.submit(self._run, path) for path in paths}

    def _run(self, path):
        return run(path, Path(tempfile.mkdtemp(prefix=path.stem + "-", dir=self.folder)))

    def result(self, path):
        if path.name not in self.futures:  # not started with the others: run it now
            self.futures[path.name] = self.executor.submit(self._run, path)
        return self.futures[path.name].result()

    def close(self):
        for future in self.futures.values():
            future.cancel()
        self.executor.shutdown(wait=True)
        shutil.rmtree(self.folder, ignore_errors=True)
