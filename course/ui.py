"""How the course command prints: colour only on a terminal (and never with
NO_COLOR set), marks and a progress bar that fall back to ASCII when the
output cannot encode them."""
import os
import sys

_CODES = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1"}


def colour_on(stream=None):
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def paint(text, colour):
    if not colour_on():
        return text
    return f"\x1b[{_CODES[colour]}m{text}\x1b[0m"


def _unicode_ok():
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower()
    return encoding.replace("-", "") in {"utf8", "utf16", "utf32"}


def mark(state):
    """A one-character mark for passed / failed / not fully graded / not started."""
    fancy = _unicode_ok()
    if state == "passed":
        return paint("✓" if fancy else "+", "green")
    if state == "failed":
        return paint("✗" if fancy else "x", "red")
    if state == "not fully graded":
        return paint("◐" if fancy else "~", "yellow")
    return paint("·" if fancy else "-", "dim")


def bar(done, total, width=30):
    """[#########---------] for done out of total."""
    filled = round(width * done / total) if total else 0
    full, empty = ("█", "░") if _unicode_ok() else ("#", "-")
    return "[" + paint(full * filled, "green") + empty * (width - filled) + "]"


def say(text=""):
    print(text, flush=True)


def warn(text):
    """A problem the learner can act on, on stderr, as `course: ...`."""
    print(f"course: {text}", file=sys.stderr, flush=True)


def check_name(name):
    """'test_conn_reaches_the_redis_named_by_REDIS_URL' -> 'conn reaches the redis named by REDIS_URL'."""
    if name == "test_challenge":
        return "challenge (quiz)"
    words = name.removeprefix("test_").split("_")
    text = words[0]
    for before, word in zip(words, words[1:]):
        # keep names like REDIS_URL and S3_BUCKET whole
        joined = before.isupper() and word.isupper()
        text += ("_" if joined else " ") + word
    return text


def ago(seconds):
    if seconds < 90:
        return "just now"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"
