"""docs/maintainers.md's "Adding a unit" works as written: on a copy of the course,
its blocks are written, appended and run in order, and the new unit grades the
reference solution as passing and its wrong answer as failing."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from course import ROOT

PAGE = ROOT / "docs" / "maintainers.md"
BLOCK = re.compile(r"<!-- recipe: (write|append|run)(?: ([^\n]*?))? -->\n```\w*\n(.*?)```", re.S)
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", ".course", "__pycache__", "notebooks", "*.pyc")


def recipe():
    """The (kind, argument, body) blocks of the "Adding a unit" section, in order."""
    lines, inside, fenced = [], False, False
    for line in PAGE.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            inside = line == "## Adding a unit"
        if inside:
            lines.append(line)
    return BLOCK.findall("\n".join(lines) + "\n")


def run(copy, commands, expect):
    """Run the block's lines as a maintainer would, in the copy, with the course's venv."""
    env = dict(os.environ, COURSE_NO_VENV="1", PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                                                       os.environ.get("PATH", "")]))
    env.pop("COURSE_TARGET", None)
    for line in commands.strip().splitlines():
        done = subprocess.run(["bash", "-c", line], cwd=copy, env=env, capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"`{line}` exited with {done.returncode}:\n{output[-3000:]}"
    if expect:
        assert expect in output, f"`{line}` did not print {expect!r}:\n{output[-3000:]}"


def test_adding_a_unit_as_the_maintainers_page_says(tmp_path):
    steps = recipe()
    assert [kind for kind, _, _ in steps].count("write") >= 4, "the recipe lost its blocks"
    copy = tmp_path / "course"
    shutil.copytree(ROOT, copy, ignore=LEFT_OUT)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    for kind, argument, body in steps:
        if kind == "write":
            path = copy / argument.strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        elif kind == "append":
            with open(copy / argument.strip(), "a") as handle:
                handle.write("\n" + body)
        else:
            m = re.fullmatch(r'(?:expect "(.*)")?', argument.strip())
            assert m, f"a run note says {argument!r}; it may only say expect \"...\""
            run(copy, body, m.group(1))
