"""Which learner folder a command acts on: --target, else COURSE_TARGET, else starter/."""
import os
from pathlib import Path

from course import ROOT


def resolve(option=None):
    value = option or os.environ.get("COURSE_TARGET") or "starter"
    path = Path(value).expanduser()
    if not path.is_absolute():
        # as the grader does: relative to where you are if it exists there, else to the course
        path = Path.cwd() / path if (Path.cwd() / path).exists() else ROOT / path
    return path.resolve()


def display(path):
    """'starter/' inside the course, the full path elsewhere."""
    path = Path(path)
    try:
        return f"{path.relative_to(ROOT)}/"
    except ValueError:
        return f"{path}/"
