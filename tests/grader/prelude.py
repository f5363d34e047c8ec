"""Start the learner's worker with a few lines of the grader's own code run first
in its Python: to count what the worker builds, or to slow one of rq's handlers.

`python worker.py` (or a Procfile worker line that only runs it in the app
folder, as the course's does) is run by a script that runs the prelude, then
worker.py as `__main__`; it is forked from the grader's preloaded Python like any
learner script (a sitecustomize would need a plain start, a second or two of
imports). Any other worker line (rq worker-pool, a longer shell line) gets the
prelude as a sitecustomize, which every Python it starts runs first."""
import os
import re
import sys
from pathlib import Path

# `[cd "${APP_DIR:-...}" &&] [exec] python worker.py`: APP_DIR is the app folder.
JUST_WORKER_PY = re.compile(r"""\s*(?:cd\s+("?)\$\{?APP_DIR(?::-[^}"\s]*)?\}?\1\s*&&\s*)?(?:exec\s+)?"""
                            r"""python3?\s+worker\.py\s*""")

# After the prelude: what `python worker.py` does, with the app folder (the
# working folder) first on sys.path instead of this script's folder.
RUN_WORKER_PY = '''
import runpy as _runpy
import sys as _sys

_sys.path[0] = os.getcwd()
_sys.argv = ["worker.py"]
_runpy.run_path("worker.py", run_name="__main__")
'''


def start_worker_with_prelude(learner, folder, prelude, env):
    """Start the learner's worker as learner.start_worker() would, with `prelude`
    (Python source that imports os) run first; `folder` is an empty folder for
    the file that does it. Returns the process."""
    folder = Path(folder)
    name = "`python worker.py`"
    if (learner.target.path / "Procfile").exists() and "worker" in learner.target.procfile():
        command = learner.target.procfile()["worker"]
        if not JUST_WORKER_PY.fullmatch(command):
            (folder / "sitecustomize.py").write_text(prelude)
            env = {**env, "PYTHONPATH": os.pathsep.join([str(folder), env.get("PYTHONPATH", "")])}
            return learner.start_procfile("worker", env=env)
        name = f"the Procfile's worker process ({command!r})"  # as learner.start_procfile names it
    script = folder / "run_worker_py.py"
    script.write_text(prelude + RUN_WORKER_PY)
    return learner.start([sys.executable, str(script)], name=name, env=env)
