"""Failures a learner can act on: what is wrong, and which step fixes it."""
import pytest

from course import ROOT, manifest


class LearnerFailure(Exception):
    """Raised inside the harness with a message that is already learner-ready."""


def step_ref(unit, step=None):
    """'Unit 03, step 2 (units/03-.../README.md)'."""
    u = manifest.unit(unit)
    where = u.readme.relative_to(ROOT).as_posix()
    return f"Unit {u.code}, step {step} ({where})" if step else f"Unit {u.code} ({where})"


def fail(message, unit=None, step=None):
    """Fail the current check with a plain message and, if given, the step that fixes it."""
    text = message.strip()
    if unit is not None:
        text += f"\n  -> {step_ref(unit, step)}"
    pytest.fail(text, pytrace=False)
