"""What a probe file (a script in this folder) is given: its parameters, `result`
to hand values back to the grader, and record_raised() to learn what the app's
routes raised. grader.learner.Learner.run_probe fills `params` and `result`
before the probe runs, in the learner's app folder."""
import os
import threading
import traceback

params = {}


def result(**values):
    """Replaced, before the probe runs, by the grader's own (its values go to the grader)."""
    raise RuntimeError("a probe runs through Learner.run_probe, not on its own")


def record_raised(app):
    """Record every exception a route of `app` raises (Flask's own 4xx aside), named with
    the learner's file and line, whether or not an errorhandler then answers for it (a
    catch-all 500 or 404 says nothing of its cause). Returns (raised, raised_in): a list
    to empty before each request, and {thread id: last one} for requests sent from threads."""
    from werkzeug.exceptions import HTTPException

    raised, raised_in = [], {}
    handle_user_exception = app.handle_user_exception

    def record(error):
        if not isinstance(error, HTTPException):
            here = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith(os.getcwd())]
            where = f" ({here[-1].filename.rsplit('/', 1)[-1]}, line {here[-1].lineno})" if here else ""
            raised.append(f"{type(error).__name__}: {error}"[:200] + where)
            raised_in[threading.get_ident()] = raised[-1]
        return handle_user_exception(error)

    app.handle_user_exception = record
    return raised, raised_in
