"""The autograder's harness: what every unit's checks stand on.

- feedback: failures as one or two plain sentences that name the unit step.
- learner:  runs learner code in its own process group, with a time bound,
            and turns tracebacks, hangs and leaked processes into messages.
- checks:   shared behaviour checks (a valid PDF, a job's fate, HTTP waits).
"""
from grader.feedback import LearnerFailure, fail, step_ref  # noqa: F401
