"""The pictures the pages show: every image a Markdown page links exists, the
report page's pictures in docs/images/ are small PNGs that some page shows, and
the browser check that makes them (`python3 -m course screenshots`) still does."""
import re
import struct

import pytest

from course import ROOT, screenshots

PAGES = sorted(p.relative_to(ROOT).as_posix() for p in
               [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "units").glob("*/README.md")])
IMAGE_FILES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")


def images(text):
    """The relative image paths a Markdown page shows: ![alt](path) and <img src="path">."""
    for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text) + re.findall(r"<img\s[^>]*src=\"([^\"]+)\"", text):
        if not re.match(r"[a-z]+:", target):
            yield target.partition("#")[0]


def png_size(path):
    """(width, height) from a PNG's header; ValueError if it is not a PNG."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize("name", PAGES)
def test_every_image_a_page_shows_exists(name):
    base = (ROOT / name).parent
    for path in images((ROOT / name).read_text()):
        assert (base / path).is_file(), f"{name} shows the image {path}, which does not exist"


def test_the_report_page_pictures_are_small_pngs_a_page_shows():
    shown = {(ROOT / page).parent.joinpath(path).resolve() for page in PAGES for path in images((ROOT / page).read_text())}
    for name in screenshots.NAMES:
        path = screenshots.IMAGES / f"{name}.png"
        assert path.is_file(), f"{path.relative_to(ROOT)} is missing: `python3 -m course screenshots` makes it"
        png_size(path)
        assert path.stat().st_size <= screenshots.MAX_BYTES, (
            f"{path.relative_to(ROOT)} is {path.stat().st_size // 1000} KB, over {screenshots.MAX_BYTES // 1000} KB")
        assert path.resolve() in shown, f"no page shows {path.relative_to(ROOT)}"


def test_the_browser_check_saves_both_pictures_of_the_page(tmp_path):
    """What `python3 -m course screenshots` runs: unit 05's page check on solution/,
    saving the page part-way through a report and once it is finished."""
    from grader.browser import SCREENSHOT_VIEWPORT, chromium

    chromium()  # skipped, saying why, where there is no browser
    code, output = screenshots.take(tmp_path)
    assert code == 0, output[-2000:]
    for name in screenshots.NAMES:
        path = tmp_path / f"{name}.png"
        assert path.is_file(), f"the page check saved no {name}.png\n{output[-1000:]}"
        assert png_size(path) == (SCREENSHOT_VIEWPORT["width"], SCREENSHOT_VIEWPORT["height"])
        assert screenshots.shrink(path, tmp_path / f"small-{name}.png") <= screenshots.MAX_BYTES
