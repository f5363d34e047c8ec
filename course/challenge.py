"""`quiz N`: ask a unit's challenge questions in the terminal and write the
answers into the learner folder's answers.toml, where the grader reads them.

answers.toml is edited line by line, so its comments and layout stay as the
learner left them; only the `qN = "..."` lines of the unit change.
"""
import re
import sys
import tomllib
from pathlib import Path

from course import manifest, quiz, ui

HEADER = [
    "# Your answers to each unit's challenge. Letters, e.g. q1 = \"b\" or, where",
    "# several choices are right, q1 = \"ac\". `python3 -m course quiz N` fills this in.",
]
SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")


def choices(question):
    """[(letter, text)] whether unit.toml gives a table {a = ...} or a list."""
    if isinstance(question.choices, dict):
        return list(question.choices.items())
    return [(chr(ord("a") + i), text) for i, text in enumerate(question.choices)]


def set_answers(path, unit, answers):
    """Write {qid: letters} for `unit` into answers.toml at path, keeping everything else."""
    path = Path(path)
    lines = path.read_text().splitlines() if path.is_file() else list(HEADER)
    section = f"unit_{unit.code}"
    start = next((i for i, line in enumerate(lines)
                  if (m := SECTION.match(line)) and m.group(1).strip() == section), None)
    if start is None:
        lines += ["", f"[{section}]"]
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if SECTION.match(lines[i])), len(lines))
    for qid, value in answers.items():
        key = re.compile(rf"^(\s*{re.escape(qid)}\s*=\s*)(\"[^\"]*\"|'[^']*'|[^#\s]*)(\s*#.*)?$")
        for i in range(start + 1, end):
            m = key.match(lines[i])
            if m:
                lines[i] = f'{m.group(1)}"{value}"{m.group(3) or ""}'
                break
        else:  # a new key goes after the section's last non-blank line
            at = end
            while at - 1 > start and not lines[at - 1].strip():
                at -= 1
            lines.insert(at, f'{qid} = "{value}"')
            end += 1
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # never write a file the grader cannot read
    path.write_text(text)


def current_answers(path, unit):
    try:
        return tomllib.loads(Path(path).read_text()).get(f"unit_{unit.code}", {})
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return {}


def _ask(question, previous, read):
    letters = [letter for letter, _ in choices(question)]
    keep = f"; Enter keeps \"{previous}\"" if previous else ""
    prompt = f"Your answer ({'/'.join(letters)}; several letters if several are right{keep}): "
    for _ in range(5):
        reply = read(prompt)
        if reply is None:
            return None
        if not reply.strip() and previous:
            return previous
        given = quiz.normalise(reply)
        wrong = [ch for ch in given if ch not in letters]
        if given and not wrong:
            return given
        ui.say(f"  Answer with letters from {', '.join(letters)}, e.g. \"{letters[0]}\".")
    return None


def _read_line(prompt):
    try:
        reply = input(prompt)
    except EOFError:
        print()
        return None
    if not sys.stdin.isatty():
        print(reply)  # scripted answers: keep the transcript readable
    return reply


def run(unit, target, read=_read_line):
    """Ask every question; return the exit code (0 when every answer is right)."""
    if not unit.quiz:
        ui.say(f"Unit {unit.code} has no challenge questions yet; nothing to answer. Carry on with the unit.")
        return 0
    path = Path(target) / manifest.ANSWERS_FILE
    if not Path(target).is_dir():
        ui.warn(f"there is no learner folder at {target}; pass --target with your app folder.")
        return 2
    previous = current_answers(path, unit)
    ui.say(f"Unit {unit.code} challenge: {len(unit.quiz)} question{'s' * (len(unit.quiz) != 1)}. "
           f"Your answers go into {manifest.ANSWERS_FILE}.\n")
    given, right = {}, 0
    for number, question in enumerate(unit.quiz, 1):
        ui.say(ui.paint(f"{number}. {question.question.strip()}", "bold"))
        for letter, text in choices(question):
            ui.say(f"   {letter}) {text}")
        answer = _ask(question, quiz.normalise(previous.get(question.id, "")), read)
        if answer is None:
            ui.say("Stopped; the answers so far are saved.")
            break
        given[question.id] = answer
        checked = quiz.check(unit, {f"unit_{unit.code}": {question.id: answer}})
        ok, why = next((right, why) for q, right, why in checked if q.id == question.id)
        if ok:
            right += 1
            ui.say(f"{ui.mark('passed')} Right." + (f" {why.strip()}" if why.strip() else "") + "\n")
        else:
            ui.say(f"{ui.mark('failed')} Not right yet.\n")
    if given:
        set_answers(path, unit, given)
        ui.say(f"{right} of {len(unit.quiz)} right; answers saved in {path.name}.")
        if right < len(unit.quiz):
            ui.say(f"Re-read the unit, then `python3 -m course quiz {unit.number}` again to change them.")
    return 0 if right == len(unit.quiz) else 1
