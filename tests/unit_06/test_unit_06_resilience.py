"""Unit 06, failures seen from the page: when Redis is down the routes answer
503 JSON with Retry-After (not Flask's 500 page), and a failed job's error on
the page is a short sentence, without the internal endpoint, bucket or key."""
from course import services
from grader import failure_sentence, flows, jobs, retries
from grader.feedback import LearnerFailure, fail

SOME_ID = "0123456789abcdef0123456789abcdef"


def test_redis_down_answers_503_with_retry_after(learner):
    env = learner.environment(REDIS_URL=f"redis://127.0.0.1:{services.free_port()}/0")
    requests = [("post", "post", "/report"), ("get", "get", f"/report/{SOME_ID}")]
    answers = learner.run_probe("side_by_side", requests=requests, within=50, timeout=60, env=env,
                                what="POST /report and GET /report/<id> with Redis down")["answers"]
    for name, route in (("post", "POST /report"), ("get", "GET /report/<id>")):
        if name not in answers:
            fail(f"With Redis down, {route} had not answered after 50 s; it should answer 503 at once.", step=5)
        status, body, retry_after = (answers[name][k] for k in ("status", "body", "retry_after"))
        if status != 503:
            fail(f"With Redis down, {route} answered {status}; it should answer 503 (Service Unavailable) with a "
                 "JSON error, so the page knows to try again. Add an errorhandler for redis-py's ConnectionError "
                 "and TimeoutError.", step=5)
        if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not body["error"].strip():
            fail(f"With Redis down, {route} answered 503 but not with JSON holding an error sentence: "
                 f"{str(body)[:120]!r}. Answer jsonify(error=...), 503.", step=5)
        if not retry_after:
            fail(f"With Redis down, {route} answered 503 without a Retry-After header; say how many seconds to "
                 "wait: return jsonify(error=...), 503, {\"Retry-After\": \"5\"}.", step=5)


def test_a_failed_upload_shows_a_short_message_without_internals(learner, redis, bucket):
    port = services.free_port()  # nothing listens there: every upload fails to connect
    endpoint = f"http://127.0.0.1:{port}"
    env = learner.environment(AWS_ENDPOINT_URL=endpoint, AWS_MAX_ATTEMPTS=1)
    job_id = flows.job_id_from(flows.post_report(learner, AWS_ENDPOINT_URL=endpoint), 2)
    retries.run_once(redis, job_id)  # S3 stays unreachable: every retry would fail alike
    job = jobs.fetch(redis, job_id)
    worker = learner.start_worker(env=env)
    flows.wait_for_worker(learner, redis, worker)
    try:
        state, _ = retries.follow(redis, job, 40)
    except retries.NoScheduler as error:
        fail(str(error), step=3)
    except LearnerFailure as error:
        fail(f"{error} S3 could not be reached at all, so every run should fail quickly.", step=2)
    if state != "failed":
        fail(f"S3 could not be reached, yet the job ended {state}. Let the exception propagate.", step=5)
    answer = flows.get_status(learner, f"/report/{job.id}", env=env)
    body = answer["body"] if isinstance(answer["body"], dict) else {}
    error = body.get("error")
    if answer["status"] != 200 or body.get("status") != "failed" or not isinstance(error, str) or not error.strip():
        fail(f"For a failed job the status route answered {answer['status']} {str(body)[:150]!r}; it should "
             "answer 200 with status 'failed' and an error sentence.", step=5)
    problem = failure_sentence.problem(error, "storage", "S3 could not be reached", endpoint=endpoint, bucket=bucket)
    if problem:
        fail(problem, step=5)
