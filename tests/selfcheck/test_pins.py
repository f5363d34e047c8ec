"""Pins agree everywhere: the deployed app's, the course's, and the constraints;
and the deployed app installs nothing at a version the course does not test."""
import re
import shutil

import pytest

from course import ROOT, stages
from grader import requirements

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def pins(text):
    found = {}
    for line in text.splitlines():
        m = PIN.match(line.strip())
        if m:
            found[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return found


def test_the_finished_apps_requirements_use_the_courses_pins():
    course = pins((ROOT / "requirements-course.txt").read_text())
    app = pins(stages.project_files_at(len(stages.manifest.units()))["requirements.txt"])
    differ = {name: (version, course.get(name)) for name, version in app.items() if course.get(name) != version}
    assert not differ, f"solution/requirements.txt and requirements-course.txt disagree (app, course): {differ}"


def test_every_course_pin_is_in_the_constraints_at_the_same_version():
    course = pins((ROOT / "requirements-course.txt").read_text())
    constraints = pins((ROOT / "constraints-course.txt").read_text())
    differ = {name: (version, constraints.get(name)) for name, version in course.items()
              if constraints.get(name) != version}
    assert not differ, f"constraints-course.txt is out of date (pin, constraint): {differ}; regenerate it as its header says"


def test_the_set_up_installer_is_pinned_in_the_constraints():
    """The set-up installs uv into .venv first, at the version the constraints name."""
    from course import bootstrap

    name, version = bootstrap.UV.split("==")
    assert pins((ROOT / "constraints-course.txt").read_text()).get(name) == version, (
        f"constraints-course.txt must pin {bootstrap.UV}, the installer course/bootstrap.py uses")


@pytest.mark.parametrize("stage", range(1, len(stages.manifest.units()) + 1), ids=lambda n: f"unit_{n:02d}")
def test_each_stages_deploy_installs_only_the_tested_versions(stage, tmp_path):
    """What Heroku installs for the app at the end of each unit: the libraries its
    requirements.txt lists and everything they pull in, for a Linux dyno running the
    Python .python-version names. Each must be held by a pin or a constraint at the
    version constraints-course.txt names, or a deploy takes whatever is newest."""
    (tmp_path / "requirements.txt").write_text(stages.project_files_at(stage)["requirements.txt"])
    shutil.copyfile(ROOT / "constraints-course.txt", tmp_path / "constraints-course.txt")
    found = requirements.read(tmp_path / "requirements.txt")
    assert not found.missing, f"unit {stage:02d}'s requirements.txt names files that are not there: {found.missing}"
    python = requirements.python_version_of(ROOT / ".python-version")
    installs = requirements.installs(found.extras, requirements.heroku_environment(python))
    tested = pins((ROOT / "constraints-course.txt").read_text())
    floating = sorted(name for name in installs if not found.pinned(name))
    assert not floating, (f"unit {stage:02d}'s deploy installs {', '.join(floating)} at whatever version is newest: "
                          "requirements.txt holds no version for them")
    differ = {name: (found.pinned(name), tested.get(name)) for name in installs if found.pinned(name) != tested.get(name)}
    assert not differ, f"unit {stage:02d}'s deploy installs versions the course does not test (deploy, tested): {differ}"
