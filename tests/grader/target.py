"""The learner app folder being graded (starter/ by default)."""
import re
from pathlib import Path

from course import ROOT, manifest
from course import target as course_target
from grader import feedback
from grader.feedback import fail


class Target:
    def __init__(self, path):
        self.path = Path(path).resolve()

    def __repr__(self):
        return f"Target({self.path})"

    def has(self, name):
        return (self.path / name).is_file()

    def require(self, *names, unit=None):
        """Fail, naming the unit step that creates it, if a learner file is missing
        (`unit`: the unit whose check needs it; by default the one whose check runs)."""
        unit = feedback.current_unit() if unit is None else unit
        created = manifest.learner_files()
        for name in names:
            if not self.has(name):
                origin = created.get(name, unit)
                later = "this unit has you create it" if origin == unit else \
                    f"unit {origin:02d} has you create it; finish that unit first"
                fail(f"{name} is missing from {self.display}: {later}.", unit=origin, step=None)

    @property
    def display(self):
        try:
            return f"{self.path.relative_to(ROOT)}/"
        except ValueError:
            return f"{self.path}/"

    def project_file(self, name):
        """A repository-level file (Procfile, requirements.txt, ...): the app folder's
        own copy if it has one, else the one beside it, at the repository's top."""
        for folder in (self.path, self.path.parent):
            if (folder / name).is_file():
                return folder / name
        return self.path.parent / name

    def procfile(self):
        """{process type: command} from the Procfile."""
        path = self.project_file("Procfile")
        if not path.is_file():
            return {}
        types = {}
        for line in path.read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line.strip())
            if m:
                types[m.group(1)] = m.group(2)
        return types


def resolve(option):
    """The target folder from --target, COURSE_TARGET, or starter/ (as every course command reads it)."""
    return Target(course_target.resolve(option))
