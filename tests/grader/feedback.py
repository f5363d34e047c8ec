"""Failures a learner can act on: what is wrong, and which step fixes it."""
import re

import pytest

from course import ROOT, manifest


class LearnerFailure(Exception):
    """Raised inside the harness with a message that is already learner-ready."""


_running = {"item": None}  # the check being run (set by grader.plugin)


def running(item):
    """Record the check now running (None once it is over)."""
    _running["item"] = item


def require_marker(name):
    """Stop a check that does what marker `name` announces without carrying it: the course
    command plans gradings by markers (which files a check reads, whether it needs a browser)."""
    item = _running["item"]
    if current_unit() is not None and item.get_closest_marker(name) is None:
        raise RuntimeError(f"{item.nodeid} must be marked @pytest.mark.{name} (a grader bug)")


def step_ref(unit, step=None):
    """'Unit 03, step 2 (units/03-.../README.md)'."""
    u = manifest.unit(unit)
    where = u.readme.relative_to(ROOT).as_posix()
    return f"Unit {u.code}, step {step} ({where})" if step else f"Unit {u.code} ({where})"


def current_unit():
    """The number of the unit whose check is running, from its folder (tests/unit_NN), or None."""
    item = _running["item"]
    m = re.match(r"(?:tests/)?unit_(\d\d)/", item.nodeid) if item is not None else None
    return int(m.group(1)) if m else None


def fail(message, unit=None, step=None):
    """Fail the current check with a plain message and the step that fixes it: of `unit`,
    or of the unit whose check this is."""
    text = message.strip()
    unit = current_unit() if unit is None else unit
    if unit is not None:
        text += f"\n  -> {step_ref(unit, step)}"
    pytest.fail(text, pytrace=False)


def attempt(call, *args, **kwargs):
    """(what call returns, None), or (None, the LearnerFailure it raised): a check can then
    report the failure after the except block, so its message is not chained to another
    ("During handling of the above exception...")."""
    try:
        return call(*args, **kwargs), None
    except LearnerFailure as error:
        return None, error
