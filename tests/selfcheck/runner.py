"""Grade a made-up app folder in a separate pytest run, and say what each check did.

The self-checks prove the grader honest by grading folders whose verdict is
known: the stage of each unit, the untouched starter, and the answer corpus
(corpus/unit_NN/{wrong,right}/<case>/, see corpus/README.md). Each grading is
a real `python -m pytest tests/unit_NN --target TMP --results R.json` in a
child process, exactly what a learner or an instructor runs, bounded in time:
a grader that hangs is reported, never waited on for ever.
"""
import json
import os
import shutil
import tempfile
import time
import tomllib
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from course import ROOT, manifest, pytest_runs, stages
from course.checks import check_nodes
from grader.processes import command_line, environ_has, kill_all, marked_processes, reap, strays

TESTS = ROOT / "tests"
CORPUS = Path(__file__).resolve().parent / "corpus"
# The repository files Heroku reads (requirements.txt names constraints-course.txt
# with -c); a case may bring its own copy of any of them.
PROJECT_FILES = ("Procfile", "requirements.txt", "constraints-course.txt", ".python-version", "app.json")
CASE_FILE = "case.toml"
# Time bounds for one grading run: longer than any of the grader's own bounds, so
# the grader's message is what a slow answer gets, and this only catches a hang.
ONE_CHECK_SECONDS = 120
WHOLE_UNIT_SECONDS = 240
# Set in every grading run's environment: whatever is still alive with it after
# the run (a learner process the grader failed to stop) is found and killed.
RUN_MARKER = "COURSE_SELFCHECK_RUN"
# Batches of gradings run this many at a time: two per core, at most four, unless
# COURSE_SELFCHECK_PARALLEL says otherwise. A grading mostly waits on its processes
# and jobs; since learner processes are forked preloaded, two a core keep the cores
# busy (on 2 cores: 458 s at two at a time, 364 s at four, CPU 63% -> 89% busy).
PARALLEL = int(os.environ.get("COURSE_SELFCHECK_PARALLEL") or max(1, min(4, 2 * (os.cpu_count() or 1))))


def unit_folders():
    """{unit number: tests/unit_NN} for every unit that has a grader folder."""
    return {int(p.name[5:]): p for p in sorted(TESTS.glob("unit_[0-9][0-9]")) if p.is_dir()}


# ---------------------------------------------------------------- what to grade

@dataclass(frozen=True)
class Grading:
    """One grading run: an app folder (a stage, or a copy of a folder) with files
    laid over it, graded on one unit, for one check or all of them."""
    unit: int
    stage: int = None           # the stage of this unit as the base ...
    base: Path = None           # ... or a copy of this folder
    overlay: Path = None        # files laid on top (a corpus case folder)
    delete: tuple = ()
    edits: tuple = ()           # (file, old text, new text): each old text found once, replaced
    check: str = None           # None: the whole unit
    label: str = ""
    env: tuple = ()             # (name, value) pairs added to the grader's own environment
    alone: bool = False         # graded in a run of its own (hostile code), never in a batch

    @property
    def timeout(self):
        return ONE_CHECK_SECONDS if self.check else WHOLE_UNIT_SECONDS

    def build(self, dest):
        """Write the app folder into dest: the base with its project files (the
        stage's own, or those beside the copied folder), then the overlay."""
        dest = Path(dest)
        if self.base is not None:
            shutil.copytree(self.base, dest, ignore=shutil.ignore_patterns(*stages.IGNORED))
            beside = stages.project_folder(self.base)
        else:
            stages.write_stage(self.stage, dest)  # renders the stage's Procfile and requirements.txt into dest
            beside = ROOT
        for name in PROJECT_FILES:
            if not (dest / name).is_file() and (beside / name).is_file():
                shutil.copyfile(beside / name, dest / name)
        if self.overlay is not None:
            for path in sorted(self.overlay.rglob("*")):
                rel = path.relative_to(self.overlay)
                if path.is_file() and rel.as_posix() != CASE_FILE and not stages.IGNORED & set(rel.parts):
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, dest / rel)
        for name, old, new in self.edits:
            path = dest / name
            text = path.read_text() if path.is_file() else ""
            path.write_text(edited(text, old, new, name))
        for name in self.delete:
            (dest / name).unlink(missing_ok=True)
        return dest


def edited(text, old, new, name):
    """text with its one `old` replaced by `new`; a CaseError if `old` is not there exactly once."""
    found = text.count(old)
    if found != 1:
        raise CaseError(f"the text an edit of {name} replaces is in it {found} times, not once: {old[:80]!r}")
    return text.replace(old, new)


class CaseError(ValueError):
    """A corpus case that cannot be laid on its stage."""


@dataclass
class Outcome:
    """What a grading run did: per check, 'passed'/'failed'/'skipped' and the message."""
    grading: Grading
    checks: dict = field(default_factory=dict)    # name -> {"outcome", "message"}
    problem: str = ""                             # set when the run itself went wrong
    seconds: float = 0.0
    output: str = ""
    leftovers: list = field(default_factory=list)

    def failed(self):
        return {name: c.get("message", "") for name, c in self.checks.items() if c["outcome"] == "failed"}

    def not_run(self, names=None):
        """{name: why} of the checks (of `names`, if given) that did not run: skipped, no browser."""
        return {name: c.get("message", "") for name, c in self.checks.items()
                if c["outcome"] == "skipped" and (names is None or name in names)}

    def skip_if_not_run(self, names=None):
        """Skip the self-check, saying which checks did not run and why, when its verdict
        rests on them: what was checked held, but the claim is not proven whole."""
        missing = self.not_run(names)
        if missing:
            import pytest

            why = next(iter(missing.values())).splitlines()[0].removeprefix("not run: ")
            pytest.skip(f"{self.grading.label}: {', '.join(sorted(missing))} did not run ({why}); "
                        "every check that ran gave the verdict it should")

    def describe(self):
        """All checks, one line each, for a self-check failure message."""
        lines = [f"{self.grading.label} (graded in {self.seconds:.1f} s):"]
        if self.problem:
            lines.append(f"  {self.problem}")
        for name, c in self.checks.items():
            message = " | ".join(c.get("message", "").splitlines())
            lines.append(f"  {c['outcome']:7} {name}" + (f": {message}" if message else ""))
        return "\n".join(lines)


def grade(grading, on_start=None):
    """Run the grading in a child pytest; return its Outcome. Never raises, never hangs.
    on_start(popen), if given, is called once the child runs (it may stop it)."""
    return grade_batch([grading], on_start)[0]


def grade_batch(batch, on_start=None):
    """Run gradings of one unit (and one environment) in ONE child pytest, which starts
    its Redis and S3 once and grades each app folder in turn (`--batch`); return their
    Outcomes, in order. Each folder's checks still get a flushed Redis, a new bucket and
    their own learner processes; what a batch saves is a pytest, a Redis and an S3 start
    per folder. Never raises, never hangs."""
    started = time.monotonic()
    first = batch[0]
    assert all(g.unit == first.unit and g.env == first.env for g in batch), "a batch is one unit, one environment"
    outcomes = [Outcome(g) for g in batch]
    timeout = sum(g.timeout for g in batch)
    with tempfile.TemporaryDirectory(prefix="course-selfcheck-") as tmp, \
            tempfile.TemporaryDirectory(prefix="course-results-") as private:
        plan = []
        for i, grading in enumerate(batch):
            (Path(tmp) / f"{i}").mkdir()
            plan.append({"id": f"f{i}", "target": str(grading.build(Path(tmp) / f"{i}" / "app")),
                         "check": grading.check})
        # Not beside the app folders: learner code runs there and could write them.
        results = Path(private) / "results.json"
        (Path(private) / "plan.json").write_text(json.dumps(plan))
        args = [f"tests/unit_{first.unit:02d}", "--batch", Path(private) / "plan.json", "--results", results, "-q",
                "-p", "no:cacheprovider"]
        marker = uuid.uuid4().hex
        env = pytest_runs.environment(**dict(first.env), **{RUN_MARKER: marker})
        log = Path(private) / "output.txt"
        code, problem = run_cold(args, env, log, timeout, on_start)
        output = log.read_text(errors="replace")
        leftovers = leftovers_of(marker)
        if leftovers:
            shown = "; ".join(f"pid {pid}: {cmd[:100]}" for pid, cmd in leftovers[:3])
            problem = (problem + "; " if problem else "") + (
                f"{len(leftovers)} process(es) outlived the grading run ({shown})")
        data = json.loads(results.read_text()).get("batch", {}) if results.is_file() else {}
        for entry, outcome in zip(plan, outcomes):
            outcome.output, outcome.leftovers, outcome.problem = output, leftovers, problem
            for unit in data.get(entry["id"], {}).get("units", {}).values():
                for check in unit["checks"]:
                    outcome.checks[check["check"]] = check
            if not outcome.checks and not outcome.problem:
                tail = " | ".join(l for l in output.strip().splitlines()[-5:])
                outcome.problem = f"the grading run wrote no results (exit code {code}): {tail}"
    seconds = time.monotonic() - started
    for outcome in outcomes:  # alone: the run's wall time; in a batch: its own checks' time
        outcome.seconds = seconds if len(batch) == 1 else sum(c.get("seconds", 0) for c in outcome.checks.values())
    return outcomes


def run_cold(args, env, log, timeout, on_start=None):
    """Run the grading in a child pytest of its own; (exit code, problem)."""
    with open(log, "w") as out:
        code, timed_out = pytest_runs.run(args, env=env, output=out, timeout=timeout, on_start=on_start)
    problem = (f"the grading run did not finish within {timeout} s, so it was stopped: the grader itself hung "
               "instead of bounding the learner's code") if timed_out else ""
    return code, problem


def leftovers_of(marker, grace=3):
    """What a finished grading run left alive, killed: processes that kept its marker,
    and orphans of it that came to this process. [(pid, command line)]."""
    needle = f"{RUN_MARKER}={marker}".encode()

    def alive():
        found = set(marked_processes(marker, RUN_MARKER))
        found |= {p for p in strays() if environ_has(p, needle)}
        return found

    left = alive()
    deadline = time.monotonic() + grace
    while left and time.monotonic() < deadline:  # give exiting processes a moment
        time.sleep(0.1)
        left = alive()
    shown = [(pid, command_line(pid)) for pid in sorted(left)]
    kill_all(left)
    reap(left)
    return shown


# ---------------------------------------------------------------- running many

class Pool:
    """Runs gradings PARALLEL batches at a time. Submit everything first, then ask
    for each result in turn: later ones run while earlier ones are looked at.
    Gradings of one unit and environment go in batches of up to BATCH_CHECKS checks
    (a whole unit counts its checks), in one pytest each."""

    # Each batch is a pytest with its own Redis, local S3 and preloaded Python: about
    # 2 s of CPU before its first check, and the suite is bound by CPU; but one batch
    # runs its gradings one after another, and the longest batch can end the session.
    # Counted in checks, not gradings: a batch holds up to 24, whole units or single
    # checks, so no batch holds many long gradings and ends the session alone.
    BATCH_CHECKS = 24
    ALONE_WEIGHT = BATCH_CHECKS  # only for the order: a batch of its own whatever it weighs

    def __init__(self, workers=PARALLEL):
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grading")
        self.futures = {}   # grading -> (future of its batch's outcomes, its index there)

    @staticmethod
    def weight(grading):
        """How many checks the grading runs."""
        return 1 if grading.check else len(check_nodes(manifest.unit(grading.unit)))

    def submit_all(self, gradings):
        """Queue gradings, batched, in about the order given."""
        open_batches, batches = {}, []
        for grading in dict.fromkeys(g for g in gradings if g not in self.futures):
            weight = self.weight(grading)
            key = (grading.unit, grading.env)
            current = None if grading.alone else open_batches.get(key)
            if current is None or current[0] + weight > self.BATCH_CHECKS:
                current = [0, []]
                batches.append(current[1])
                if not grading.alone:
                    open_batches[key] = current
            current[0] += weight
            current[1].append(grading)
        # The longest first: the checks that read outcomes run after everything else in
        # the session, so what counts is when the last batch ends. Later units take longer,
        # and a hostile answer graded alone runs into the grader's time bounds (6-20 s
        # each; last in line, they were the session's final 30 s, one slot at a time).
        batches.sort(key=lambda batch: -sum(g.unit * (self.ALONE_WEIGHT if g.alone else self.weight(g))
                                            for g in batch))
        for batch in batches:
            future = self.executor.submit(grade_batch, batch)
            for index, grading in enumerate(batch):
                self.futures[grading] = (future, index)

    def submit(self, grading):
        self.submit_all([grading])

    def outcome(self, grading):
        self.submit(grading)
        future, index = self.futures[grading]
        return future.result()[index]

    def close(self):
        for future, _ in self.futures.values():
            future.cancel()
        self.executor.shutdown(wait=True)


# ---------------------------------------------------------------- the corpus

@dataclass(frozen=True)
class Case:
    """One answer in the corpus: corpus/unit_NN/<kind>/<name>/."""
    unit: int
    kind: str      # "wrong" or "right"
    name: str
    folder: Path
    why: str = ""
    check: str = None
    expect: str = None
    delete: tuple = ()
    edits: tuple = ()
    stage: int = None  # the app the case changes: the stage of its unit unless it names another

    @property
    def base_stage(self):
        return self.stage or self.unit

    @property
    def id(self):
        return f"unit_{self.unit:02d}/{self.kind}/{self.name}"

    @property
    def grading(self):
        return Grading(unit=self.unit, stage=self.base_stage, overlay=self.folder, delete=self.delete, edits=self.edits,
                       check=self.check if self.kind == "wrong" else None, label=self.id)

    def problems(self):
        """What is wrong with the case folder itself ('' if nothing)."""
        if self.kind == "wrong" and not (self.check and self.expect):
            return f"{self.id}/{CASE_FILE} must name the `check` that fails and the message it should `expect`."
        if not self.why:
            return f"{self.id}/{CASE_FILE} must say `why` in one line."
        if self.unit not in unit_folders():
            return f"{self.id}: there is no tests/unit_{self.unit:02d} to grade it with."
        # The stage and its project files, with the case's own files on top, as built.
        files = {**stages.files_at(self.base_stage), **stages.project_files_at(self.base_stage)}
        files.update({name: (self.folder / name).read_text() for name, _, _ in self.edits
                      if (self.folder / name).is_file()})
        for name, old, new in self.edits:
            try:
                files[name] = edited(files.get(name, ""), old, new, name)
            except CaseError as error:
                return f"{self.id}/{CASE_FILE}: {error}; the stage of unit {self.base_stage:02d} has changed there."
        return ""

    def verdict(self, outcome):
        """'' if the grader judged the case as it should, else what went wrong."""
        if outcome.problem:
            return f"{self.id}: {outcome.problem}.\n{outcome.describe()}"
        if self.kind == "right":
            failed = outcome.failed()
            if failed or not outcome.checks:
                return (f"{self.id} is a correct answer ({self.why}), but the grader failed it.\n"
                        + outcome.describe())
            return ""
        result = outcome.checks.get(self.check)
        if result is None:
            return f"{self.id}: unit {self.unit:02d} has no check named {self.check!r}.\n{outcome.describe()}"
        if result["outcome"] != "failed":
            return (f"{self.id} is a wrong answer ({self.why}), but {self.check} {result['outcome']}.\n"
                    + outcome.describe())
        message = result.get("message", "")
        if self.expect not in message:
            return (f"{self.id}: {self.check} failed, as it should, but its message does not say "
                    f"{self.expect!r}.\n{outcome.describe()}")
        return ""


def load_case(unit, kind, folder):
    data = tomllib.loads((folder / CASE_FILE).read_text()) if (folder / CASE_FILE).is_file() else {}
    return Case(unit=unit, kind=kind, name=folder.name, folder=folder, why=data.get("why", ""),
                check=data.get("check"), expect=data.get("expect"), delete=tuple(data.get("delete", ())),
                edits=tuple((e["file"], e["old"], e["new"]) for e in data.get("edit", ())), stage=data.get("stage"))


def discover(root=CORPUS):
    """Every case folder under corpus/unit_NN/{wrong,right}/, in order."""
    cases = []
    for unit_dir in sorted(root.glob("unit_[0-9][0-9]")):
        for kind in ("wrong", "right"):
            for folder in sorted((unit_dir / kind).glob("*")):
                if folder.is_dir() and not folder.name.startswith((".", "_")):
                    cases.append(load_case(int(unit_dir.name[5:]), kind, folder))
    return cases
