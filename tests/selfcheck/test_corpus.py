"""The answer corpus: every wrong answer fails the check it should, with the
message it should; every right answer, written differently from solution/,
passes the whole unit. Cases are folders (see corpus/README.md), found on disk."""
import pytest

from selfcheck import runner

CASES = runner.discover()
MIN_WRONG, MIN_RIGHT = 5, 2


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_case(case, gradings):
    problem = case.problems()
    if problem:
        pytest.fail(problem, pytrace=False)
    verdict = case.verdict(gradings.outcome(case.grading))
    if verdict:
        pytest.fail(verdict, pytrace=False)


@pytest.mark.parametrize("unit", sorted(runner.unit_folders()), ids=lambda n: f"unit_{n:02d}")
def test_every_unit_has_a_corpus(unit):
    wrong = sum(c.unit == unit and c.kind == "wrong" for c in CASES)
    right = sum(c.unit == unit and c.kind == "right" for c in CASES)
    if wrong < MIN_WRONG or right < MIN_RIGHT:
        pytest.fail(f"tests/selfcheck/corpus/unit_{unit:02d} has {wrong} wrong and {right} right answers; "
                    f"each unit needs at least {MIN_WRONG} wrong and {MIN_RIGHT} right.", pytrace=False)
