"""The starter and the stages: starter/ is the generated stage of unit 01; the
provided files are the same in starter/ and solution/; each unit's grader
passes the stage of its unit and fails the folders from before it, for the
reason the unit is about; the quiz keys match solution/'s answers.

What "for the reason" means is written per unit in corpus/unit_NN/stages.toml:

    [starter]     # the untouched starter/ graded on this unit
    test_name = "text its failure message must hold"
    [previous]    # the stage of the unit before, graded on this unit
    test_name = "..."

A unit without that file (or a section) gets the general rule: at least one
check other than the challenge fails, and every failure is a short message,
not a traceback.
"""
import tomllib

import pytest

from course import ROOT, manifest, quiz, stages
from selfcheck import runner

UNITS = sorted(runner.unit_folders())
CHALLENGE = "test_challenge"


def _starter(unit):
    return runner.Grading(unit=unit, base=stages.STARTER, label=f"starter/ graded on unit {unit:02d}")


def _previous(unit):
    return runner.Grading(unit=unit, stage=unit - 1,
                          label=f"the stage of unit {unit - 1:02d} graded on unit {unit:02d}")


def _own(unit):
    return runner.Grading(unit=unit, stage=unit, label=f"the stage of unit {unit:02d} graded on unit {unit:02d}")


def _ids(grading):
    return f"unit_{grading.unit:02d}"


def expectations(unit, section):
    path = runner.CORPUS / f"unit_{unit:02d}" / "stages.toml"
    return tomllib.loads(path.read_text()).get(section) if path.is_file() else None


def test_starter_is_the_stage_of_unit_01():
    differ = stages.differences(1, stages.STARTER, answered=0)
    differ += [f"{name} (top level)" for name in stages.project_differences(1, ROOT)]
    if differ:
        pytest.fail(f"starter/ is not the stage of unit 01 made from solution/; these differ: {', '.join(differ)}. "
                    "Run `python3 -m course stages` to regenerate starter/ (never edit it by hand).", pytrace=False)


def test_provided_files_are_the_same_in_starter_and_solution():
    learner_owned = (set(manifest.learner_files()) | {manifest.ANSWERS_FILE} | stages.SOLUTION_ONLY
                     | set(stages.PROJECT_FILES))

    def provided(folder):
        return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*")
                if p.is_file() and not stages.IGNORED & set(p.relative_to(folder).parts)
                and p.relative_to(folder).as_posix() not in learner_owned}

    in_starter, in_solution = provided(stages.STARTER), provided(stages.SOLUTION)
    differ = sorted(set(in_starter) ^ set(in_solution))
    differ += sorted(n for n in set(in_starter) & set(in_solution)
                     if in_starter[n].read_bytes() != in_solution[n].read_bytes())
    if differ:
        pytest.fail(f"Provided files differ between starter/ and solution/: {', '.join(differ)}. Learners do not "
                    "edit these; change solution/ and run `python3 -m course stages`.", pytrace=False)


def _fails_for_the_right_reason(outcome, expected):
    if outcome.problem:
        pytest.fail(f"{outcome.problem}.\n{outcome.describe()}", pytrace=False)
    failed = outcome.failed()
    if expected is None:  # the general rule
        if not set(failed) - {CHALLENGE}:
            pytest.fail("Only the challenge failed: this unit's grader does not check the unit's own work.\n"
                        + outcome.describe(), pytrace=False)
        unclear = [n for n, m in failed.items() if "Traceback" in m or len(m.splitlines()) > 3 or not m.strip()]
        if unclear:
            pytest.fail(f"These failures are not short, plain messages: {', '.join(unclear)}.\n"
                        + outcome.describe(), pytrace=False)
        return
    for check, text in expected.items():
        if check not in outcome.checks:
            pytest.fail(f"There is no check {check!r} (named in stages.toml).\n{outcome.describe()}", pytrace=False)
        if check not in failed:
            pytest.fail(f"{check} should fail here, but it {outcome.checks[check]['outcome']}.\n"
                        + outcome.describe(), pytrace=False)
        if text not in failed[check]:
            pytest.fail(f"{check} failed, but its message does not say {text!r}.\n{outcome.describe()}",
                        pytrace=False)


@pytest.mark.parametrize("grading", [_starter(n) for n in UNITS if n >= 2], ids=_ids)
def test_untouched_starter_fails_the_unit(grading, gradings):
    _fails_for_the_right_reason(gradings.outcome(grading), expectations(grading.unit, "starter"))


@pytest.mark.parametrize("grading", [_previous(n) for n in UNITS if n >= 2], ids=_ids)
def test_stage_of_the_unit_before_fails_the_unit(grading, gradings):
    _fails_for_the_right_reason(gradings.outcome(grading), expectations(grading.unit, "previous"))


@pytest.mark.parametrize("grading", [_own(n) for n in UNITS], ids=_ids)
def test_stage_of_the_unit_passes_it(grading, gradings):
    outcome = gradings.outcome(grading)
    if outcome.problem or outcome.failed() or not outcome.checks:
        pytest.fail(f"The unit's own stage (solution/ as it stands after the unit) must pass every check.\n"
                    + outcome.describe(), pytrace=False)


@pytest.mark.parametrize("unit", [u.number for u in manifest.units()], ids=lambda n: f"unit_{n:02d}")
def test_quiz_keys_match_the_solution_answers(unit):
    """What `python3 -m course quiz-keys` would write, compared without writing it."""
    u = manifest.unit(unit)
    if not u.quiz:
        pytest.fail(f"Unit {u.code} has no challenge questions in its unit.toml yet.", pytrace=False)
    answers = tomllib.loads((stages.SOLUTION / manifest.ANSWERS_FILE).read_text()).get(f"unit_{u.code}", {})
    path = stages.SOLUTION / quiz.EXPLANATIONS_FILE
    explanations = tomllib.loads(path.read_text()).get(f"unit_{u.code}", {}) if path.is_file() else {}
    stale = []
    for q in u.quiz:
        answer = answers.get(q.id)
        if not answer:
            pytest.fail(f"solution/answers.toml has no answer for [unit_{u.code}] {q.id}.", pytrace=False)
        if q.key != quiz.answer_hash(u, q.id, answer) or \
                quiz.decrypt(u, q.id, answer, q.explanation) != explanations.get(q.id, ""):
            stale.append(q.id)
    if stale:
        pytest.fail(f"units/{u.folder.name}/keys.toml does not match solution/ for {', '.join(stale)}. "
                    f"Run `python3 -m course quiz-keys {unit}`.", pytrace=False)
