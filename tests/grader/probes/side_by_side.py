"""Send params["requests"] ((name, method, path) each) side by side, one thread each, as a
page waits on them at once; answers that have not come within params["within"] seconds
are left out."""
import threading
import time

from app import app
from course_probe_support import params, record_raised, result

raised, raised_in = record_raised(app)
answers = {}


def ask(name, method, path):
    started = time.monotonic()
    response = getattr(app.test_client(), method)(path, json={} if method == "post" else None)
    answers[name] = dict(status=response.status_code, body=response.get_json(silent=True),
                         text=response.get_data(as_text=True)[:200], retry_after=response.headers.get("Retry-After"),
                         seconds=time.monotonic() - started, error=raised_in.get(threading.get_ident()))


asks = [threading.Thread(target=ask, args=request, daemon=True) for request in params["requests"]]
for thread in asks:
    thread.start()
deadline = time.monotonic() + params["within"]
for thread in asks:
    thread.join(max(0, deadline - time.monotonic()))
result(answers=dict(answers))
