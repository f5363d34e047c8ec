"""Pins agree everywhere: the deployed app's, the course's, and the constraints."""
import re

from course import ROOT, stages

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
