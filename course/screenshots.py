"""The pictures of the report page in the lessons, made from the real app.

Unit 05's browser check, run against solution/ with COURSE_SCREENSHOTS set,
saves what the page shows while a report is built (the bar part-way) and once
it is finished (the link shown). This copies them into docs/images/ as small
palette PNGs, so a change to the page is one command away from its pictures:

    python3 -m course screenshots
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from course import ROOT

IMAGES = ROOT / "docs" / "images"
NAMES = ("status-in-progress", "status-finished")
CHECK = "tests/unit_05/test_unit_05.py::test_page_shows_progress_then_the_link"
# Flat colours and text: 128 colours keep them sharp at a fraction of the size.
COLOURS = 128
MAX_BYTES = 100_000


def take(folder, app="solution"):
    """Run unit 05's page check on app, saving its screenshots in folder. Returns
    (exit code, pytest's output)."""
    env = dict(os.environ, COURSE_SCREENSHOTS=str(folder))
    done = subprocess.run([sys.executable, "-m", "pytest", CHECK, "--target", app, "-q", "-rs", "-p", "no:cacheprovider"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    return done.returncode, done.stdout + done.stderr


def shrink(source, dest):
    """source as a palette PNG at dest: the same picture, a few times smaller."""
    from PIL import Image

    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=COLOURS).save(dest, optimize=True)
    return dest.stat().st_size


def regenerate(dest=IMAGES, tell=print):
    """Make docs/images/status-*.png afresh from solution/. Returns an exit code."""
    from course import browser

    if not browser.prepare():
        return 2
    with tempfile.TemporaryDirectory(prefix="course-screenshots-") as folder:
        code, output = take(folder)
        missing = [name for name in NAMES if not (Path(folder) / f"{name}.png").is_file()]
        if code or missing:
            tell(output.strip()[-2000:])
            what = f"it did not save {', '.join(missing)}" if missing else f"it exited with code {code}"
            tell(f"course: unit 05's page check ran against solution/, but {what}; nothing was replaced.")
            return 1
        dest.mkdir(parents=True, exist_ok=True)
        for name in NAMES:
            size = shrink(Path(folder) / f"{name}.png", dest / f"{name}.png")
            shown = (dest / f"{name}.png").relative_to(ROOT) if dest.is_relative_to(ROOT) else dest / f"{name}.png"
            tell(f"{shown}: {size / 1000:.0f} KB" + ("" if size <= MAX_BYTES else f", over {MAX_BYTES // 1000} KB"))
    return 0
