"""The answer corpus: every wrong answer fails the check it should, with the
message it should; every right answer, written differently from solution/,
passes the whole unit. Cases are folders (see corpus/README.md), found on disk.

And no free points: the untouched starter, graded on every unit, earns nothing.
A check that passes with no work (the environment, a provided file) is marked
unscored, so the unit's points go only to the work the unit asks for."""
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from course import stages
from selfcheck import runner

CASES = runner.discover()
MIN_WRONG, MIN_RIGHT = 5, 2


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_case(case, gradings):
    problem = case.problems()
    if problem:
        pytest.fail(problem, pytrace=False)
    outcome = gradings.outcome(case.grading)
    if case.kind == "wrong" and not outcome.problem:
        outcome.skip_if_not_run({case.check})
    verdict = case.verdict(outcome)
    if verdict:
        pytest.fail(verdict, pytrace=False)
    outcome.skip_if_not_run()  # a right answer passed every check that ran


@pytest.mark.parametrize("unit", sorted(runner.unit_folders()), ids=lambda n: f"unit_{n:02d}")
def test_every_unit_has_a_corpus(unit):
    wrong = sum(c.unit == unit and c.kind == "wrong" for c in CASES)
    right = sum(c.unit == unit and c.kind == "right" for c in CASES)
    if wrong < MIN_WRONG or right < MIN_RIGHT:
        pytest.fail(f"tests/selfcheck/corpus/unit_{unit:02d} has {wrong} wrong and {right} right answers; "
                    f"each unit needs at least {MIN_WRONG} wrong and {MIN_RIGHT} right.", pytrace=False)


def _starter(unit):
    # The same grading as test_starter_and_stages' (equal Gradings run once per session).
    return runner.Grading(unit=unit, base=stages.STARTER, label=f"starter/ graded on unit {unit:02d}")


@pytest.mark.parametrize("grading", [_starter(n) for n in sorted(runner.unit_folders())],
                         ids=lambda g: f"unit_{g.unit:02d}")
def test_untouched_starter_earns_no_points(grading, gradings):
    outcome = gradings.outcome(grading)
    if outcome.problem or not outcome.checks:
        pytest.fail(f"{outcome.problem or 'no checks ran'}.\n{outcome.describe()}", pytrace=False)
    earning = {name: c.get("earned") for name, c in outcome.checks.items() if c.get("earned", 1)}
    if earning:
        shown = ", ".join(f"{name} ({points})" for name, points in earning.items())
        pytest.fail(f"The untouched starter earns points on unit {grading.unit:02d}: {shown}. A check that passes "
                    "with no work must be @pytest.mark.unscored, or check the unit's work.\n" + outcome.describe(),
                    pytrace=False)


def test_a_batch_grades_each_folder_as_a_run_of_its_own():
    """The self-checks grade folders in batches (one pytest, Redis and S3 for several
    folders); each folder must get the verdict, check by check and word for word, that
    a run of its own gives it, whatever was graded before it in the batch."""
    wrong = next(c for c in CASES if c.unit == 2 and c.kind == "wrong")
    gradings = [_starter(2), runner.Grading(unit=2, stage=2, label="the stage of unit 02"), wrong.grading]
    with ThreadPoolExecutor(len(gradings) + 1) as pool:  # the four runs are independent: side by side
        batch = pool.submit(runner.grade_batch, gradings)
        alone_runs = list(pool.map(runner.grade, gradings))
        together = batch.result()
    for batched, alone in zip(together, alone_runs):
        assert not batched.problem and not alone.problem, batched.describe() + "\n" + alone.describe()
        assert _said(batched) == _said(alone), (
            f"batched:\n{batched.describe()}\nalone:\n{alone.describe()}")


def _said(outcome):
    """{check: (outcome, message)}, the app folder's own path taken out of messages."""
    return {name: (c["outcome"], re.sub(r"\S*course-selfcheck-[^/\s]+/\d+/app", "<app>", c.get("message", "")))
            for name, c in outcome.checks.items()}


def test_an_edit_whose_text_the_stage_no_longer_holds_is_named(tmp_path):
    """A case made of edits breaks loudly when the stage changes under it, rather than
    grading the stage itself (a wrong answer that is not wrong any more)."""
    case = runner.Case(unit=7, kind="wrong", name="stale", folder=tmp_path, why="an edit of old code",
                       check="test_sections_share_one_cap_on_the_data_source", expect="x",
                       edits=(("app.py", "text the stage does not hold", "anything"),))
    problem = case.problems()
    assert "is in it 0 times, not once" in problem and "the stage of unit 07 has changed" in problem
    with pytest.raises(runner.CaseError):
        case.grading.build(tmp_path / "app")
