"""GET each of params["paths"] (status paths) through Flask's test client, asking for JSON."""
from app import app
from course_probe_support import params, record_raised, result

raised, _ = record_raised(app)
client = app.test_client()
answers = []
for path in params["paths"]:
    raised.clear()
    response = client.get(path, headers={"Accept": "application/json"})
    answers.append(dict(status=response.status_code, body=response.get_json(silent=True),
                        text=response.get_data(as_text=True)[:300], error=raised[-1] if raised else None))
result(answers=answers)
