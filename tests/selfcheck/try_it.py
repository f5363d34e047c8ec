"""Run a lesson's Try-it blocks as a learner would, and check what they show.

The notes that mark the blocks, and what they promise, are described at the
top of test_lesson_steps.py, which runs them at their steps. This module reads
the notes (`notes`) and runs the blocks (`Session`): one per unit, so the
services it starts (a Redis on the lesson's port 6379, `course run`) serve all
of the unit's blocks and are stopped at its end. The local S3 is the caller's,
shared by every unit.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from course import ROOT, services, stages
from selfcheck.runner import RUN_MARKER
from selfcheck.test_lessons import FENCE, STEP, readme_lines

TRY_NOTE = re.compile(r"^<!--\s*try:\s*(.*?)\s*-->\s*$")
NOT_RUN = re.compile(r"^not run:\s*(\S.*)$")
# A command that grades, or tests the learner's work: the unit's own checks cover these.
GRADING = re.compile(r"^(python3 -m course (grade|quiz)|\.venv/bin/python -m pytest)\b")
COURSE_RUN = re.compile(r"^(?:[A-Z_]+=\S*\s+)*python3 -m course run\b")
HEROKU = re.compile(r"^heroku\b")
# The fixed ports a lesson names: the router of `course run`, and the Redis of unit 02.
LESSON_PORTS = ("8000", "6379")
# `<the job_id>`, `<the job id>`, `<id>`: the last job id an earlier command printed.
JOB_PLACEHOLDER = re.compile(r"<(?:the )?(?:job[ _])?id>")
JOB_ID = re.compile(r'"job_id"\s*:\s*"([^"]+)"')
HTTP_STATUS = re.compile(r"^HTTP/[\d.]+ (\d{3})", re.MULTILINE)
# Each command of a block, and each promise about a log, gets this long.
SECONDS = 30
# What a `course run` gets to stop by itself after its Ctrl-C, before the rest is killed.
STOP_SECONDS = 3
VENV = Path(sys.prefix)


class NoteError(ValueError):
    pass


@dataclass
class Expect:
    text: str
    regex: bool = False
    in_log: bool = False  # the output of what runs in the background, not the block's own
    status: bool = False  # an HTTP status code some curl of the block received

    def found_in(self, text, statuses=()):
        if self.status:
            return self.text in statuses
        return re.search(self.text, text, re.MULTILINE) is not None if self.regex else self.text in text

    def __str__(self):
        shown = f"HTTP {self.text}" if self.status else (f"~{self.text!r}" if self.regex else repr(self.text))
        return f"the log shows {shown}" if self.in_log else f"the output shows {shown}" if not self.status else shown


@dataclass
class Block:
    step: int
    line: int  # of the fence, 1-based
    commands: list
    mode: str = "run"  # run | keep | until
    expects: list = field(default_factory=list)
    needs: set = field(default_factory=set)
    pause: float = 0.0
    settings: dict = field(default_factory=dict)  # for its `course run`, where the lesson offers them
    not_run: str = ""  # why it is not run here


def parse_note(text):
    """(mode, expects, needs, pause, settings, not_run) from the text of a try: note."""
    skipped = NOT_RUN.match(text)
    if skipped:
        return "run", [], set(), 0.0, {}, skipped.group(1)
    mode, expects, needs, pause, settings = "run", [], set(), 0.0, {}
    words = shlex.split(text, posix=True)
    in_log = False
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("keep", "until"):
            mode = word
        elif word == "needs" and i + 1 < len(words):
            needs.add(words[i + 1])
            i += 1
        elif word == "env" and i + 1 < len(words) and "=" in words[i + 1]:
            name, value = words[i + 1].split("=", 1)
            settings[name] = value
            i += 1
        elif word == "pause" and i + 1 < len(words):
            pause = float(words[i + 1])
            i += 1
        elif word == "log":
            in_log = True
            i += 1
            continue
        elif word == "expect":
            pass
        elif re.fullmatch(r"\d{3}", word):
            expects.append(Expect(word, status=True))
        elif word.startswith("~"):
            expects.append(Expect(word[1:], regex=True, in_log=in_log))
        else:
            expects.append(Expect(word, in_log=in_log))
        in_log = False
        i += 1
    if needs - {"run", "redis"}:
        raise NoteError(f"unknown need(s) {sorted(needs - {'run', 'redis'})}: a block needs run or redis")
    return mode, expects, needs, pause, settings, ""


def commands_of(lines):
    """The block's commands: one a line, a trailing backslash joins the next."""
    commands, current = [], ""
    for line in lines:
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip() and not current.strip().startswith("#"):
            commands.append(current.strip())
        current = ""
    return commands


def notes(unit):
    """(blocks, problems): every bash block of the unit's lesson with its try: note, and
    the blocks that have none (all but grading commands and Heroku's need one)."""
    lines = readme_lines(unit)
    blocks, problems, step, i = [], [], None, 0
    while i < len(lines):
        heading = STEP.match(lines[i])
        if heading:
            step = int(heading.group(1))
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(1)), len(lines))
        language = lines[i].strip()[len(fence.group(1)):].strip()
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        note = TRY_NOTE.match(before.strip())
        commands = commands_of(lines[i + 1:end])
        if language in ("bash", "sh", "shell") and commands and step is not None:
            block = Block(step, i + 1, commands)
            if note:
                try:
                    (block.mode, block.expects, block.needs, block.pause, block.settings,
                     block.not_run) = parse_note(note.group(1))
                except (NoteError, ValueError) as error:
                    problems.append(f"line {i + 1}: its try: note does not read: {error}")
            if all(HEROKU.match(c) for c in commands):
                block.not_run = block.not_run or "Heroku's CLI needs a Heroku app"
            if note or all(HEROKU.match(c) for c in commands):
                blocks.append(block)
            elif not all(GRADING.match(c) for c in commands):
                problems.append(f"line {i + 1}: a bash block with no try: note (say what it shows, or "
                                "`<!-- try: not run: why -->`)")
        elif note:
            problems.append(f"line {i + 1}: a try: note before a block that is not a bash block")
        i = end + 1
    return blocks, problems


class Failure(AssertionError):
    pass


def _wait_for(predicate, seconds, interval=0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Background:
    """A process a block leaves running (Redis, `course run`, a worker), its output in a file."""

    def __init__(self, command, cwd, env, log):
        self.log = log
        self.process = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def output(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig=signal.SIGINT, seconds=STOP_SECONDS):
        """Stop as Ctrl-C in its terminal does; what is still running `seconds` later (a
        worker's horse finishing its report within its grace) is killed, with every
        process below it, so nothing is left and no check waits for a grace."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except OSError:
                pass
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                pass
        for pid in [*_descendants(self.process.pid), self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # anything of its group still there
        except OSError:
            pass
        self.process.wait()


def _descendants(pid):
    """Every live process below pid (by the parent ids in /proc; none elsewhere)."""
    children = {}
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc").is_dir() else ():
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], list(children.get(pid, ()))
    while todo:
        found.append(todo.pop())
        todo.extend(children.get(found[-1], ()))
    return found


class Session:
    """The services and scratch repository of one unit's Try-it blocks.

    The scratch folder plays the learner's repository: `starter/` is the app as it
    stands at the block's step, the Procfile and requirements.txt beside it, `.venv`
    the course's Python, `course` its tooling. Blocks run there, as from the top
    of the repository."""

    def __init__(self, unit, folder, s3_endpoint):
        self.unit = unit
        self.s3 = s3_endpoint  # one local S3 for every unit: moto starts once
        self.folder = Path(folder)
        self.repo = self.folder / "repo"
        self.repo.mkdir(parents=True)
        for name, target in ((".venv", VENV), ("course", ROOT / "course"), ("units", ROOT / "units")):
            (self.repo / name).symlink_to(target)
        self.ports = {"8000": services.free_port(), "6379": services.free_port()}
        self.stage = None
        self.cwd = self.repo  # a `cd` in a block lasts to the end of its step: one terminal a step
        self.kept = []  # what `keep` blocks left running, till the unit ends
        self.run = None  # the running `course run`
        self.exported = {}  # what its export line says
        self.job_id = None
        self.stopping = []  # runs being stopped, each in a thread of its own
        self.logs = 0
        shim = self.folder / "bin"
        shim.mkdir()
        system_path = "/usr/local/bin:/usr/bin:/bin"
        # curl as given, with the response headers on stderr, so a block's HTTP statuses can be read
        curl = shutil.which("curl", path=system_path) or "curl"
        (shim / "curl").write_text(f'#!/bin/sh\nexec {shlex.quote(curl)} -D /dev/stderr "$@"\n')
        (shim / "curl").chmod(0o755)
        self.env = {"PATH": os.pathsep.join([str(shim), str(VENV / "bin"), system_path]),
                    "HOME": str(self.folder), "LANG": "C.UTF-8", "COURSE_VENV": str(VENV),
                    "COURSE_STATE_DIR": str(self.folder / "state"),
                    # Marks them as a self-check's own, not a grading check's leftovers (grader.processes).
                    RUN_MARKER: f"try-it-{unit.code}", "TMPDIR": str(self._made("tmp"))}

    def _made(self, name):
        path = self.folder / name
        path.mkdir(exist_ok=True)
        return path

    # ------------------------------------------------------------ services

    def start_redis(self):
        """A Redis where the lesson's port 6379 is, unless a block left one running there."""
        port = self.ports["6379"]
        if not _port_open(port):
            binary = services.find_redis_server()
            redis = self._background(f"exec {shlex.quote(binary)} --port {port} --bind 127.0.0.1 --save ''",
                                     self.repo, self.env)
            self.kept.append(redis)
            services.wait_for_port(port, 10, redis.process, what="Redis")

    def _background(self, command, cwd, env):
        self.logs += 1
        return Background(command, cwd, env, self.folder / f"background-{self.logs}.log")

    def write_app(self, stage):
        """The app as it stands at `stage`; a `course run` of another stage's app is stopped first."""
        if stage != self.stage:
            self.stop_run()
            self.cwd = self.repo
            stages.write_stage(stage, self.repo / "starter", project_dest=self.repo)
            self.stage = stage

    def block_env(self):
        env = dict(self.env)
        if self.run is not None:
            env.update(self.exported)
        else:
            env["REDIS_URL"] = f"redis://localhost:{self.ports['6379']}"
        return env

    def start_run(self, command, cwd, settings=None):
        """`course run` as the line says, on a free port for 8000 and with the step's app;
        ready once the router answers the home page and the worker (if any) listens."""
        self.stop_run()
        self.ports["8000"] = services.free_port()  # the run before may still hold its port while it stops
        lesson, command = command, self.rewrite(command)
        command = re.sub(r"--app\s+starter\b", f"--app {shlex.quote(str(self.repo / 'starter'))}", command)
        env = dict(self.env)
        env.update(services.s3_environment(self.s3, "reports"))  # the bucket `course run` makes
        env.update(settings or {})
        self.run = self._background(command, cwd, env)
        said = lambda: "Another terminal reaches the same Redis and S3 after:" in self.run.output() \
            and "restart" in self.run.output()
        if not _wait_for(lambda: said() or self.run.process.poll() is not None, SECONDS):
            raise Failure(f"`{lesson}` did not print its export line within {SECONDS} s:\n{self.run.output()[-1500:]}")
        if self.run.process.poll() is not None:
            raise Failure(f"`{lesson}` ended at start (exit code {self.run.process.returncode}):\n"
                          f"{self.run.output()[-1500:]}")
        line = re.search(r"^\s*export (.+)$", self.run.output(), re.MULTILINE).group(1)
        self.exported = dict(item.split("=", 1) for item in shlex.split(line))
        port = int(re.search(r"Open http://127\.0\.0\.1:(\d+)/", self.run.output()).group(1))
        if not _wait_for(lambda: _home_page(port) == 200, SECONDS, 0.2):
            raise Failure(f"`{lesson}`: the home page did not answer 200 within {SECONDS} s:\n"
                          f"{self.run.output()[-1500:]}")
        if "only the web process runs" not in self.run.output() \
                and not _wait_for(lambda: "Listening on" in self.run.output(), SECONDS):
            raise Failure(f"`{lesson}`: the worker did not start within {SECONDS} s:\n{self.run.output()[-1500:]}")

    def stop_run(self):
        """Stop the running `course run` while the next block goes on (it is all waiting)."""
        if self.run is not None:
            stopping = threading.Thread(target=self.run.stop, daemon=True)
            stopping.start()
            self.stopping.append(stopping)
            self.run, self.exported = None, {}

    def close(self):
        self.stop_run()
        for kept in self.kept:
            kept.stop(signal.SIGTERM, 5)
        for stopping in self.stopping:
            stopping.join()

    # ------------------------------------------------------------ blocks

    def rewrite(self, text):
        for port in LESSON_PORTS:
            text = re.sub(rf"\b{port}\b", str(self.ports[port]), text)
        return text

    def run_block(self, block):
        """Run one block at its step; raise Failure saying what it did not show."""
        if "redis" in block.needs:
            self.start_redis()
        if "run" in block.needs and self.run is None:
            self.start_run("python3 -m course run --app starter --port 8000", self.repo)
        cwd, output, statuses = self.cwd, "", []
        log_from = len(self.run.output()) if self.run else 0
        kept = None
        for n, command in enumerate(block.commands):
            if COURSE_RUN.match(command):
                self.start_run(command, cwd, block.settings)
                log_from = 0
                continue
            lesson, command = command, self.rewrite(command)
            if JOB_PLACEHOLDER.search(command):
                if not self.job_id:
                    raise Failure(f"`{lesson}` names a job id, and no command before it printed one")
                command = JOB_PLACEHOLDER.sub(self.job_id, command)
            if n and block.pause:
                time.sleep(block.pause)
            moved = re.fullmatch(r"cd\s+(\S+)", command)
            if moved:
                cwd = self.cwd = (cwd / moved.group(1)).resolve()
                continue
            if HEROKU.match(command):
                continue  # Heroku's CLI needs a Heroku app: the block's other commands still run
            last = n == len(block.commands) - 1
            if block.mode in ("keep", "until") and last:
                kept = self._background(command, cwd, self.block_env())
                continue
            try:
                done = subprocess.run(["bash", "-c", command], cwd=cwd, env=self.block_env(), capture_output=True,
                                      text=True, timeout=SECONDS, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise Failure(f"`{lesson}` did not end within {SECONDS} s") from None
            statuses += HTTP_STATUS.findall(done.stderr)
            shown = done.stdout + _without_headers(done.stderr)
            output += shown
            self.job_id = (JOB_ID.findall(shown) or [self.job_id])[-1]
            if done.returncode != 0:
                raise Failure(f"`{lesson}` exited with code {done.returncode}:\n{shown[-1500:]}")
        expects = [Expect(self.rewrite(e.text), e.regex, e.in_log, e.status) for e in block.expects]
        if kept is not None:
            own = [e for e in expects if not e.in_log]
            seen = _wait_for(lambda: all(e.found_in(kept.output()) for e in own) or kept.process.poll() is not None,
                             SECONDS)
            output += kept.output()
            if block.mode == "until" or not seen or kept.process.poll() is not None:
                kept.stop()  # Ctrl-C, as the lesson says; or it failed
            else:
                self.kept.append(kept)
        missing = [e for e in expects if not e.in_log and not e.found_in(output, statuses)]
        logged = [e for e in expects if e.in_log]
        if logged:
            if self.run is None:
                raise Failure("a log promise, and no `course run` is running")
            log = lambda: as_shown(self.run.output()[log_from:])
            _wait_for(lambda: all(e.found_in(log()) for e in logged), SECONDS, 0.2)
            missing += [e for e in logged if not e.found_in(log())]
        if missing:
            shown = log()[-1500:] if any(e.in_log for e in missing) else output[-1500:]
            got = f" (HTTP statuses: {', '.join(statuses) or 'none'})" if any(e.status for e in missing) else ""
            raise Failure(f"not as the lesson says: {'; '.join(map(str, missing))}{got}. It showed:\n{shown}")


# A line of `course run`'s output, as honcho prints it: its time, the process padded, a bar,
# and (rq's lines) rq's own time. The lessons show it as "worker.1 | message".
RUN_LINE = re.compile(r"^(?:\d\d:\d\d:\d\d )?(\S+?) *\| (?:\d\d:\d\d:\d\d )?", re.MULTILINE)


def as_shown(output):
    """`course run`'s output as the lessons show it: no times, one space before the bar."""
    return RUN_LINE.sub(lambda m: f"{m.group(1)} | ", output)


def _without_headers(stderr):
    """stderr less the response headers the curl shim writes there."""
    kept, in_headers = [], False
    for line in stderr.splitlines(keepends=True):
        if HTTP_STATUS.match(line):
            in_headers = True
        if not in_headers:
            kept.append(line)
        elif not line.strip():
            in_headers = False
    return "".join(kept)


def _port_open(port):
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _home_page(port):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None
