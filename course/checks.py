"""A unit's checks, read from its test files without importing them (the course
command runs without pytest): their names, pytest node ids, sources and markers,
and which of them a saved file can affect (`watch` grades those first)."""
import functools
from pathlib import Path

from course import ROOT, manifest


def check_names(unit):
    """The names of a unit's checks (its test functions)."""
    return set(_checks(unit.tests))


def check_nodes(unit):
    """{check name: its pytest node id}, in the order pytest runs them."""
    return {name: node for name, (node, _code, _marks) in _checks(unit.tests).items()}


@functools.cache
def _checks(folder):
    """{check name: (pytest node id, its source, its course markers)} for the test files in
    folder, each read and parsed once per command (grading, lanes and watch all ask).
    Markers are read from the decorators, as pytest would apply them: `quiz` (reads only
    answers.toml) and `browser` (opens the page in a browser)."""
    import ast

    found = {}
    for path in sorted(folder.glob("test_*.py")):
        source = path.read_text()
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found[node.name] = (f"{path.relative_to(ROOT).as_posix()}::{node.name}",
                                    ast.get_source_segment(source, node) or "", _course_markers(node))
    return found


def _course_markers(function):
    """The names of `@pytest.mark.NAME` (or `@pytest.mark.NAME(...)`) decorators on a test function."""
    import ast

    names = set()
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and ast.unparse(target.value) == "pytest.mark":
            names.add(target.attr)
    return frozenset(names)


def markers(unit, check):
    """The markers of one of the unit's checks."""
    return _checks(unit.tests).get(check.split("[")[0], ("", "", frozenset()))[2]


# What a saved file can change, by the check's markers: the quiz reads only answers.toml;
# the page's files reach only checks that open it in a browser. App code and the project
# files (a worker starts from the Procfile) reach every other.


def affected_checks(unit, paths):
    """The names of the unit's checks that a change to `paths` can change the verdict of."""
    found = set()
    for name in check_names(unit):
        marks = markers(unit, name)
        quiz = "quiz" in marks
        for path in map(Path, paths):
            if path.name == manifest.ANSWERS_FILE:
                hit = quiz
            elif {"templates", "static"} & set(path.parts) or path.suffix in (".html", ".js", ".css"):
                hit = "browser" in marks
            else:
                hit = not quiz
            if hit:
                found.add(name)
                break
    return found




def check_code(unit, check):
    """The source of a grader check (the `test_code` Exercism shows beside a result)."""
    return _checks(unit.tests).get(check.split("[")[0], ("", "", frozenset()))[1]
