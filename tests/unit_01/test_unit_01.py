"""Unit 01: the request that times out. Is the environment ready, and does a
report request really produce a PDF in the bucket?"""
import sys

import pytest

from course import services
from grader import flows
from grader.feedback import fail

APP_MODULES = ("flask", "rq", "redis", "boto3", "reportlab")
# Unit 01 asks for no code: these checks show the machine and the starter work before
# anything changes (and keep working later), but the unit's points are its challenge's.
PROVIDED = pytest.mark.unscored("the environment and the starter's own route: no work of this unit")


@PROVIDED
def test_environment_is_ready(learner):
    if sys.version_info < (3, 11):
        fail(f"This is Python {sys.version.split()[0]}; the course needs 3.11 or newer.", step=1)
    seen = learner.probe(
        "import importlib.util\n"
        f"missing = [m for m in {APP_MODULES!r} if importlib.util.find_spec(m) is None]\n"
        "result(missing=missing)", what="checking the installed libraries")
    if seen["missing"]:
        fail(f"These libraries are not installed: {', '.join(seen['missing'])}. Run the grader through "
             "`python3 -m course grade 1` (it installs them), or `pip install -r requirements-course.txt`.",
             step=1)
    if not services.find_redis_server():
        fail(services.NO_REDIS, step=1)


@PROVIDED
def test_page_has_a_report_button(learner, target):
    target.require("app.py")
    seen = learner.probe(
        "from app import app\n"
        "r = app.test_client().get('/')\n"
        "result(status=r.status_code, html=r.get_data(as_text=True))", what="GET /")
    if seen["status"] != 200 or "<button" not in seen["html"]:
        fail(f"GET / answered {seen['status']} without a button; it should render templates/index.html.",
             step=2)


@PROVIDED
def test_report_request_stores_a_pdf(learner, target, redis, s3, bucket):
    """A report request ends with a valid PDF in S3_BUCKET: inside the request in the
    starter (and it blocks for the whole query), through a worker once you move it there."""
    target.require("app.py")
    answer = flows.post_report(learner, REPORT_SECONDS="1")
    if answer["status"] == 200:
        if answer["seconds"] < 1:
            fail(f"POST /report answered in {answer['seconds']:.2f} s with REPORT_SECONDS=1; the starter's route "
                 "should wait for the whole query.", step=2)
        key = (answer["body"] or {}).get("key")
        if not isinstance(key, str) or not key:
            fail(f"POST /report answered 200 with {answer['text'][:80]!r}, without the key of the PDF it uploaded; "
                 "answer JSON like {\"key\": \"reports/....pdf\"}.", step=2)
        flows.check_pdf_at(s3, bucket, key, 2, what="POST /report")
    elif answer["status"] == 202:  # past unit 03: a worker builds it
        job = flows.run_job(learner, redis, flows.job_id_from(answer, 2))
        if flows.jobs.status(job) != "finished":
            fail(f"The report job ended {flows.jobs.status(job)}: {flows.job_error_summary(job)}", step=2)
        flows.check_pdf_at(s3, bucket, flows.jobs.result(job), 2)
    else:
        hint = " Upload to the bucket S3_BUCKET names." if "NoSuchBucket" in str(answer.get("error")) else ""
        fail(f"POST /report answered {answer['status']}: {answer.get('error') or repr(answer['text'][:160])}.{hint}",
             step=2)


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
