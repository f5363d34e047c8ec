"""POST /report for each request of each of params["groups"]; the requests of a group at
once, like a double-click (a thread and test client each, released together by a
barrier), the groups one after another. A request is (Idempotency-Key or None, JSON body)."""
import threading

from flask import got_request_exception

from app import app
from course_probe_support import params, result

errors = []
got_request_exception.connect(lambda sender, exception, **extra: errors.append(
    f"{type(exception).__name__}: {exception}"[:300]), app, weak=False)


def post(key, body):
    headers = {} if key is None else {params["header"]: key}
    response = app.test_client().post("/report", json=body, headers=headers)
    return dict(status=response.status_code, body=response.get_json(silent=True),
                text=response.get_data(as_text=True)[:300])


answers = []
for group in params["groups"]:
    found = [None] * len(group)
    barrier = threading.Barrier(len(group))

    def send(i, request):
        try:
            barrier.wait(10)
        except threading.BrokenBarrierError:
            pass
        try:
            found[i] = post(*request)
        except Exception as error:  # the test client itself broke: say so, as a 500 would
            found[i] = dict(status=500, body=None, text=f"{type(error).__name__}: {error}"[:300])

    threads = [threading.Thread(target=send, args=(i, request)) for i, request in enumerate(group)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    answers.append(found)
result(answers=answers, error=errors[-1] if errors else None)
