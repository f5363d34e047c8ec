"""The unit manifest: one `unit.toml` in each folder of units/.

Everything that needs to know the course's shape (the grader, the course
command, the stage generator, the self-checks, the README table) reads it
from here, so adding a unit is one folder with its unit.toml.
"""
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from course import ROOT

UNITS_DIR = ROOT / "units"
# Files in a learner's app folder that the learner writes. Everything else in
# starter/ is provided and identical in solution/.
ANSWERS_FILE = "answers.toml"
# Deploy files at the top of a learner's repository: those the learner may change, and
# the course's own (its pins are what the course tests).
STUDENT_DEPLOY_FILES = ("Procfile", "requirements.txt", "app.json", ".python-version", "runtime.txt")
COURSE_DEPLOY_FILES = ("constraints-course.txt",)


@dataclass(frozen=True)
class Quiz:
    id: str
    question: str
    choices: dict
    key: str = ""          # sha256 of the normalised right answer
    explanation: str = ""  # encrypted with the right answer


@dataclass(frozen=True)
class Unit:
    number: int
    slug: str
    title: str
    folder: Path
    files: tuple = ()
    project_files: tuple = ()
    points: int = 10
    hints: tuple = ()
    quiz: tuple = field(default=())

    @property
    def code(self):
        """'03' for unit 3: folder names and the grader's test folders use it."""
        return f"{self.number:02d}"

    @property
    def readme(self):
        return self.folder / "README.md"

    @property
    def tests(self):
        return ROOT / "tests" / f"unit_{self.code}"


def _load(folder):
    data = tomllib.loads((folder / "unit.toml").read_text())
    keys_path = folder / "keys.toml"  # generated: see course/quiz.py
    keys = tomllib.loads(keys_path.read_text()) if keys_path.exists() else {}
    quiz = tuple(Quiz(**q, **keys.get(q["id"], {})) for q in data.pop("quiz", []))
    return Unit(
        number=data["number"],
        slug=folder.name.split("-", 1)[1],
        title=data["title"],
        folder=folder,
        files=tuple(data.get("files", ())),
        project_files=tuple(data.get("project_files", ())),
        points=data.get("points", 10),
        hints=tuple(data.get("hints", ())),
        quiz=quiz,
    )


@cache
def units():
    """All units, in order."""
    found = [_load(d) for d in sorted(UNITS_DIR.iterdir()) if (d / "unit.toml").is_file()]
    numbers = [u.number for u in found]
    if numbers != list(range(1, len(found) + 1)):
        raise ValueError(f"units/ must hold units 1..{len(found)} in order, found {numbers}")
    return tuple(found)


def unit(number):
    """One unit by number (int or '03')."""
    number = int(number)
    for u in units():
        if u.number == number:
            return u
    raise KeyError(f"there is no unit {number}; the course has units 1-{len(units())}")


def learner_files():
    """{file name: the unit that creates it}, from the units' `files` lists."""
    created = {}
    for u in units():
        for name in u.files:
            created.setdefault(name, u.number)
    return created
