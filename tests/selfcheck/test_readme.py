"""The README is the front door: its commands and unit table must match the course."""
import re

from course import ROOT, manifest

README = (ROOT / "README.md").read_text()


def test_readme_lists_every_unit_with_a_link_to_its_lesson():
    for unit in manifest.units():
        link = f"({unit.readme.relative_to(ROOT).as_posix()})"
        row = next((line for line in README.splitlines() if line.startswith(f"| {unit.code} |")), None)
        assert row, f"README.md's unit table has no row for unit {unit.code}"
        assert f"[{unit.title}]{link}" in row, f"README.md's row for unit {unit.code} should link [{unit.title}]{link}"


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"^(python3 -m course \w+)", README, re.MULTILINE)
    assert "python3 -m course test" in commands and "python3 -m course run" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^python3 -m course test\s*$", ci, re.MULTILINE), ".ci/run must run the README's test command"
    # ... and nothing else: whatever CI installed by hand, a learner's fresh machine would lack.
    steps = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    steps = [s for s in steps if not s.startswith(("set ", "cd "))]
    assert steps == ["python3 -m course test"], f".ci/run does more than the README's test command: {steps}"


def test_readme_says_first_where_the_course_runs():
    """A Windows learner must learn about WSL before the first command, not from a traceback."""
    first = README.split("\n## ", 1)[0]
    for words in ("Linux", "macOS", "ARM64", "3.11 to 3.14", "WSL", "wsl --install", "python3-venv", "fork()",
                  "fcntl", ".devcontainer"):
        assert words in first, f"README.md's opening should say {words!r}"
