"""`watch`: re-grade the current unit each time a learner file is saved: first
the checks the saved file can affect (the quiz for answers.toml, the browser
check for the page's files, every code check for a .py file), then, if they
pass, the rest.

It uses watchdog's file-system events; where those cannot start (network
drives, some containers, inotify limits) it falls back to checking file
modification times twice a second.
"""
import threading
import time
from pathlib import Path

from course import checks, grading, manifest, progress, stages, ui, warm
from course.target import display

WATCHED_SUFFIXES = {".py", ".toml", ".txt", ".json", ".html", ".js", ".css", ""}
IGNORED_PARTS = {"__pycache__", ".pytest_cache"}
SETTLE_SECONDS = 0.3  # editors write a file in several steps: wait for them to finish
# The project files the grader reads beside an app folder that has none of its own
# (the repository's top for starter/): unit 04 has the learner edit them.
PROJECT_FILES = ("Procfile", "requirements.txt", ".python-version", "app.json")


def project_files(root):
    """The project files outside `root` that its grading reads (none if it has its own)."""
    folder = stages.project_folder(root)
    if Path(folder).resolve() == Path(root).resolve():
        return []
    return [Path(folder) / name for name in PROJECT_FILES]


def _relevant(path, root):
    rel = Path(path).relative_to(root) if Path(path).is_relative_to(root) else Path(path)
    return not IGNORED_PARTS & set(rel.parts) and rel.suffix in WATCHED_SUFFIXES and not rel.name.startswith(".")


def snapshot(root):
    """{file: mtime} of the files a learner edits."""
    found = {}
    for path in Path(root).rglob("*"):
        if path.is_file() and _relevant(path, root):
            try:
                found[str(path)] = path.stat().st_mtime_ns
            except FileNotFoundError:
                pass
    for path in project_files(root):
        try:
            found[str(path)] = path.stat().st_mtime_ns
        except FileNotFoundError:
            found[str(path)] = None  # created later: a change too
    return found


class PollingWatcher:
    """Change detection by modification times: works on every file system."""

    kind = "polling"

    def __init__(self, root, interval=0.5):
        self.root, self.interval = Path(root), interval
        self.last = snapshot(root)
        self.paths = set()  # what changed, as of the last wait() that returned True

    def wait(self, timeout=None):
        """True once something changed (False if timeout passed first)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            time.sleep(self.interval)
            now = snapshot(self.root)
            if now != self.last:
                self.paths = {p for p in set(now) | set(self.last) if now.get(p) != self.last.get(p)}
                self.last = now
                return True
        return False

    def reset(self):
        """Forget changes made so far (grading itself may touch files)."""
        self.last = snapshot(self.root)

    def close(self):
        pass


class EventWatcher:
    """Change detection by watchdog's file-system events."""

    kind = "events"

    def __init__(self, root):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.root = Path(root)
        self.changed = threading.Event()
        self.pending = set()  # what changed since the last wait()
        self.paths = set()    # what changed, as of the last wait() that returned True
        extras = {str(p) for p in project_files(root)}
        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.event_type in ("opened", "closed_no_write") or event.is_directory:
                    return
                paths = [str(event.src_path), str(getattr(event, "dest_path", "") or "")]
                hits = [p for p in paths
                        if p and (p in extras or (Path(p).is_relative_to(watcher.root) and _relevant(p, watcher.root)))]
                if hits:
                    watcher.pending.update(hits)
                    watcher.changed.set()

        self.observer = Observer()
        self.observer.schedule(Handler(), str(self.root), recursive=True)
        for folder in {str(Path(p).parent) for p in extras}:
            self.observer.schedule(Handler(), folder, recursive=False)  # the project files beside it
        self.observer.start()

    def wait(self, timeout=None):
        if not self.changed.wait(timeout):
            return False
        time.sleep(SETTLE_SECONDS)
        self.changed.clear()
        self.paths, self.pending = set(self.pending), set()
        return True

    def reset(self):
        self.changed.clear()
        self.pending = set()

    def close(self):
        self.observer.stop()
        self.observer.join(5)


def watcher_for(root, poll=False):
    if not poll:
        try:
            return EventWatcher(root)
        except Exception as why:  # OSError (inotify limits), missing backends: poll instead
            ui.say(f"(file events are not available here: {why}; checking for changes by polling)")
    return PollingWatcher(root)


def run(target, unit=None, poll=False, rounds=None):
    """Grade now, then after every save; moves on when the unit passes. Ctrl-C stops."""
    target = Path(target)
    if not target.is_dir():
        ui.warn(f"there is no learner folder at {target}; pass --target with your app folder.")
        return 2
    unit = unit or progress.current_unit(target)
    watcher = watcher_for(target, poll)
    graded = 0
    saved = set()  # the files saved since the last grading: their checks run first
    lanes = warm.WarmLanes() if warm.wanted() else None
    try:
        while True:
            if grading.has_grader(unit):
                first = checks.affected_checks(unit, saved) if saved else None
                code = grading.grade([unit.number], target, first=first, warm_lanes=lanes)
            else:
                ui.say(f"Unit {unit.code} has no grader yet.")
                code = 1
            graded += 1
            if rounds is not None and graded >= rounds:
                return code
            if code == 0 and unit.number < len(manifest.units()):
                unit = manifest.unit(unit.number + 1)
                ui.say(f"Moving on: unit {unit.code}, {unit.title}.")
            watcher.reset()
            if lanes is not None and grading.has_grader(unit):  # they start while the learner edits
                lanes.prepare(grading.planned_lanes([unit], target), unit.tests)
            ui.say(ui.paint(f"\nWatching {display(target)} for saves ({watcher.kind}); Ctrl-C stops.", "dim"))
            watcher.wait()
            saved = set(watcher.paths)
            ui.say()
    except KeyboardInterrupt:
        ui.say("\nStopped watching.")
        return 0
    finally:
        watcher.close()
        if lanes is not None:
            lanes.close()
