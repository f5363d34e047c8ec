"""`hint N`: the unit's hints from its unit.toml, one more each time you ask,
from a nudge to a near-answer (never the solution)."""
from course import progress, ui


def show(unit, target):
    hints = unit.hints
    if not hints:
        ui.say(f"Unit {unit.code} has no hints yet. The grader's message names the step of "
               f"{unit.readme.name} to re-read: start there.")
        return 0
    seen = progress.hints_shown(target, unit)
    if seen >= len(hints):
        ui.say(f"That was every hint for unit {unit.code} ({len(hints)} of {len(hints)}). The last one again:\n")
        number = len(hints)
    else:
        number = seen + 1
        progress.set_hints_shown(target, unit, number)
    ui.say(ui.paint(f"Hint {number} of {len(hints)} for unit {unit.code}:", "bold"))
    for line in hints[number - 1].strip().splitlines():
        ui.say(f"  {line}")
    if number < len(hints):
        ui.say(f"\nStill stuck? Run `python3 -m course hint {unit.number}` again for the next one.")
    return 0
