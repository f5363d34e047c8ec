"""Unit 05: job status and progress. The 202 answer carries a status URL; the
status route follows the job from queued to started to finished while progress
rises to 100, answers JSON 4xx for ids it does not know, and hands out a
presigned link to the PDF; the page, in a real browser, shows all of it."""
import time
import urllib.request
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from grader import failure_sentence, flows, jobs, presigned, retries, web
from grader.browser import chromium, open_page, save_screenshot, screenshots_folder
from grader.feedback import attempt, fail
from grader.storage import pdf_problem
from grader.web import http

# Long enough to watch the job run: fetch_sales reports progress 20 times, and the
# provided page polls every 0.5 s, so it reads about two values between 0 and 100
# (the check needs one). Seen on a machine with both cores kept busy: [0, 36, 81, 100]
# at the least. 2 s cost every grading of unit 05 a second more for nothing.
WATCH_SECONDS = "1"
# When screenshots are asked for (COURSE_SCREENSHOTS): a slower report, so the
# picture of the page at work catches the bar well inside PART_WAY.
SCREENSHOT_SECONDS = "6"
PART_WAY = (30, 70)
# Ids no job has: too long, or with characters rq refuses in a job id.
MALFORMED_IDS = ["x" * 1500, "not a job id!", "ünïcode", "job;DROP", "' OR '1'='1", "a\tb", "%zz", "{id}"]


def run_web_and_worker(learner, redis, **env):
    environment = learner.environment(**env)
    worker = learner.start_worker(env=environment)
    _, base = web.start_web(learner, environment)  # while the worker starts
    flows.wait_for_worker(learner, redis, worker)
    return base


def test_status_goes_queued_started_finished_with_rising_progress(learner, redis, s3, bucket):
    environment = learner.environment(REPORT_SECONDS=WATCH_SECONDS)
    _, base = web.start_web(learner, environment)
    job_id, url = web.start_report(base, 4)
    first = web.read_status(url, 5)
    if first.get("status") != "queued":
        fail(f"Before any worker ran, the status route said status {first.get('status')!r}; a job waiting on "
             "its queue is 'queued'. Answer job.get_status().", step=5)
    worker = learner.start_worker(env=environment)
    flows.wait_for_worker(learner, redis, worker)
    watched, error = attempt(web.watch, url, lambda b: b.get("status") in ("finished", "failed"), 30, 5)
    if error:
        fail(f"{error} The worker was running; does the route read the job's status from Redis each time?",
             step=5)
    seen = [first] + watched
    statuses = [b.get("status") for b in seen]
    unknown = sorted({str(s) for s in statuses} - set(web.RANK))
    if unknown:
        fail(f"The status route said {unknown[0]!r}; status should be one of queued, started, finished, failed.",
             step=5)
    if statuses[-1] == "failed":
        fail(f"The job failed: {seen[-1].get('error') or 'no error given'}", step=2)
    for before, after in zip(statuses, statuses[1:]):
        if web.RANK[after] < web.RANK[before]:
            fail(f"The status went from {before!r} back to {after!r}.", step=5)
    if "started" not in statuses:
        fail(f"The status never said 'started' while the worker ran the job for {WATCH_SECONDS} s (it said "
             f"{' -> '.join(dict.fromkeys(statuses))}). Answer job.get_status() fresh from Redis.", step=5)
    progress = [web.progress_of(b, 5) for b in seen]
    for before, after in zip(progress, progress[1:]):
        if after < before:
            fail(f"Progress went down, from {before} to {after}. It must only rise: store a value only if it is "
                 "higher than the one already in job.meta.", step=2)
    moving = {p for p, s in zip(progress, statuses) if s == "started" and 0 < p < 100}
    if len(moving) < 2:
        fail(f"While the job ran, progress never moved between 0 and 100 (it showed {sorted(set(progress))}). Pass "
             "fetch_sales(on_progress=...) a function that puts the percent in job.meta and calls job.save_meta().",
             step=2)
    if progress[-1] != 100:
        fail(f"The job finished but progress says {progress[-1]}; once finished it should say 100.",
             step=5)


def test_unknown_and_malformed_ids_get_json_4xx(learner, redis, bucket):
    _, base = web.start_web(learner)
    job_id, url = web.start_report(base, 4)
    unknown = web.with_id(url, job_id, str(uuid.uuid4()))
    code, body, _ = http("GET", unknown)
    if code != 404 or not isinstance(body, dict):
        shown = "JSON" if isinstance(body, dict) else f"{str(body)[:60]!r}"
        fail(f"For a job id no job has, the status route answered {code} with {shown}; it should answer 404 "
             "with JSON, like {\"error\": \"no such report\"}. Catch rq's NoSuchJobError.", step=5)
    for bad in MALFORMED_IDS:
        code, body, _ = http("GET", web.with_id(url, job_id, bad))
        if code >= 500:
            fail(f"For the malformed job id {bad[:40]!r} the status route crashed ({code}); rq refuses such ids "
                 "with ValueError. Check the id first (letters, digits, _ and -) and answer 400 with JSON.",
                 step=5)
        if code not in (400, 404) or not isinstance(body, dict):
            shown = "JSON" if isinstance(body, dict) else f"{str(body)[:60]!r}"
            fail(f"For the malformed job id {bad[:40]!r} the status route answered {code} with {shown}; it should "
                 "answer 400 (or 404) with JSON.", step=5)


# A download link must outlive the wait between the page showing it and a click on it
# (minutes), and must not outlive the report (the clean-up keeps a week; SigV4 allows
# no more than a week either). An hour is usual.
MIN_EXPIRY = 5 * 60
MAX_EXPIRY = 7 * 24 * 3600
CLOCK_SLACK = 30  # seconds between the link being signed and read here


def expiry_words(seconds):
    if seconds >= 2 * 24 * 3600:
        return f"{seconds / 86400:.0f} days" if seconds < 3 * 365 * 86400 else f"{seconds / (365 * 86400):.0f} years"
    return f"{seconds / 3600:.1f} hours" if seconds >= 2 * 3600 else f"{seconds:.0f} s"


def presign_problem(url):
    """'' if url carries an S3 signature and an expiry between MIN_EXPIRY and MAX_EXPIRY
    from now, whatever the signature version, else what is wrong."""
    query = {k.lower(): v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    if "x-amz-signature" in query:  # SigV4: X-Amz-Expires seconds from X-Amz-Date
        expires = query.get("x-amz-expires", "")
        if not expires.isdigit():
            return f"its X-Amz-Expires is {expires!r}, not a number of seconds"
        lifetime = int(expires)
    elif "signature" in query:  # SigV2: Expires, an epoch time
        expires = query.get("expires", "")
        if not expires.isdigit():
            return f"its Expires is {expires!r}, not a time"
        lifetime = int(expires) - time.time()
        if lifetime <= 0:
            return "it has already expired"
    else:
        return "it carries no signature, so on real S3 a private bucket refuses it"
    if lifetime < MIN_EXPIRY - CLOCK_SLACK:
        return (f"it expires {expiry_words(lifetime)} after it is made, so someone who clicks it a few minutes "
                "after the page shows it gets AccessDenied")
    if lifetime > MAX_EXPIRY + CLOCK_SLACK:
        return (f"it stays valid for {expiry_words(lifetime)}: a link that leaks cannot be taken back for that long, "
                "and the report is not kept that long")
    return ""


# The region boto3 is given (AWS_DEFAULT_REGION) while the link is made: neither the
# usual us-east-1 nor the lesson's example eu-west-1, so a region written into the
# code shows. (A region opened before 2014, so a SigV2 link is refused for being SigV2,
# as a bucket created since June 2020 refuses it, not for its region.)
LINK_REGION = "ap-southeast-2"


def signature_problem(link, secret, bucket):
    """'' if S3 would accept the link's signature for a GET in LINK_REGION, else why not."""
    method = presigned.signed_method(link, secret, bucket)
    if method is None:
        return ("its signature does not match the one S3 computes for a GET of that URL with the app's key, so S3 "
                "answers 403 SignatureDoesNotMatch: hand on the link exactly as generate_presigned_url returns it, "
                "made with the credentials boto3 finds in the environment")
    if method not in ("GET", "?"):
        return (f"it is signed for {method}, not GET: S3 checks the signature against the request's method, so a "
                f"browser's GET on it gets 403 SignatureDoesNotMatch (the local S3 does not check this; AWS does). "
                "Presign \"get_object\"")
    region = presigned.signing_region(link)
    if region is not None and region != LINK_REGION:
        return (f"it is signed for region {region}, while boto3 was given {LINK_REGION} in AWS_DEFAULT_REGION: S3 "
                "refuses a SigV4 link signed for another region than the bucket's. Make the client without "
                "region_name, so it signs for the region AWS_DEFAULT_REGION names")
    return ""


def test_finished_report_links_to_the_pdf_with_a_presigned_url(learner, redis, s3, bucket):
    base = run_web_and_worker(learner, redis, AWS_DEFAULT_REGION=LINK_REGION)
    _, url = web.start_report(base, 4)
    watched, error = attempt(web.watch, url, lambda b: b.get("status") in ("finished", "failed"), 30, 5)
    if error:
        fail(str(error), step=5)
    last = watched[-1]
    if last.get("status") != "finished":
        fail(f"The job ended {last.get('status')!r}: {last.get('error') or 'no error given'}", step=2)
    link = last.get("url")
    if not isinstance(link, str) or not link.startswith(("http://", "https://")):
        fail(f"The finished job's status JSON has url {link!r}; it should be a link to the PDF, made with "
             "s3.generate_presigned_url(\"get_object\", ...).", step=3)
    problem = presign_problem(link)
    if problem and "no signature" in problem:
        fail(f"The download url {link[:80]!r} is not presigned: {problem}. Make it with "
             "s3.generate_presigned_url(\"get_object\", Params=..., ExpiresIn=3600).", step=3)
    if problem:
        fail(f"The download url is presigned, but {problem}. Give it a lifetime between 5 minutes and 7 days: "
             "ExpiresIn=3600 (an hour) is usual.", step=3)
    problem = signature_problem(link, learner.env["AWS_SECRET_ACCESS_KEY"], bucket)
    if problem:
        fail(f"The download url is presigned, but {problem}.", step=3)
    if "x-amz-signature" not in link.lower():
        fail("The download url is signed with signature version 2 (AWSAccessKeyId, Signature, Expires): S3 refuses "
             "SigV2 for every bucket created since June 2020, so on AWS the link answers 403. Make the client that "
             "signs it with SigV4: boto3.client(\"s3\", config=Config(signature_version=\"s3v4\")).", step=3)
    try:
        with urllib.request.urlopen(link, timeout=10) as response:
            data = response.read()
    except Exception as error:
        fail(f"Downloading the report from its url failed ({error}). Presign the key the job returned, in the "
             "bucket S3_BUCKET names.", step=3)
    problem = pdf_problem(data)
    if problem:
        fail(f"The download url gives a file, but {problem}.", step=3)


def test_failed_job_says_failed_with_its_error(learner, redis, s3, bucket):
    """A job that fails (its data source is down) shows as failed, with the error, not a 500."""
    environment = learner.environment(REPORT_BROKEN_SECTIONS="north")
    _, base = web.start_web(learner, environment)
    job_id, url = web.start_report(base, 4)
    retries.run_once(redis, job_id)  # a later unit's retries would only fail alike
    worker = learner.start_worker(env=environment)
    flows.wait_for_worker(learner, redis, worker)
    _, error = attempt(retries.follow, redis, jobs.fetch(redis, job_id), 30)
    if error:
        fail(f"With the data source down, the report job did not end: {error}", step=2)
    code, body, _ = http("GET", url, headers={"Accept": "application/json"})
    if code != 200 or not isinstance(body, dict):
        fail(f"For a job that failed (its data source was down), GET {urlsplit(url).path} answered {code} with "
             f"{str(body)[:100]!r}; it should answer 200 with JSON saying status \"failed\" and the error. Ask "
             "for the download link (job.return_value()) only once the job is finished.", step=5)
    if body.get("status") != "failed":
        fail(f"For a job that failed (its data source was down), the status route said status "
             f"{body.get('status')!r}; it should say 'failed'.", step=5)
    error = body.get("error")
    if not isinstance(error, str) or not error.strip():
        fail(f"For a job that failed, the status JSON says failed but its error is {error!r}: the person waiting "
             "learns nothing. Add error: the last line of job.latest_result().exc_string.", step=5)
    if not failure_sentence.names(error, "data"):
        fail(f"For a job that failed because the data source for section 'north' was down, the status JSON's "
             f"error is {error[:120]!r}, which does not say so. Give the exception's own message, or a sentence "
             "that names the data source.", step=5)


PAGE_STATE = """() => ({
    bar: Number(document.getElementById("bar").value),
    progressShown: !document.getElementById("progress").hidden,
    linkShown: !document.getElementById("download").hidden,
    href: document.getElementById("download").href,
    message: document.getElementById("message").textContent,
})"""


@pytest.mark.browser
def test_page_shows_progress_then_the_link(learner, redis, s3, bucket):
    chromium()  # where there is no browser, the check is skipped here, before anything starts
    seconds = SCREENSHOT_SECONDS if screenshots_folder() else WATCH_SECONDS
    environment = learner.environment(REPORT_SECONDS=seconds)
    worker = learner.start_worker(env=environment)
    web_app = web.spawn_web(learner, environment)

    def ready():  # called once the browser runs: it starts while the web app and the worker do
        _, base = web.wait_web(*web_app)
        flows.wait_for_worker(learner, redis, worker)
        return base + "/"

    with open_page(ready) as page:
        page.click("#start")
        bars, state, pictured = [], {}, False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = page.evaluate(PAGE_STATE)
            if state["progressShown"]:
                bars.append(state["bar"])
                if not pictured and PART_WAY[0] <= state["bar"] <= PART_WAY[1]:
                    save_screenshot(page, "status-in-progress")
                    pictured = True
            if state["linkShown"] or "fail" in state["message"].lower() or "queued as job" in state["message"].lower():
                break
            time.sleep(0.05)
        if state.get("linkShown"):
            save_screenshot(page, "status-finished")
    if "queued as job" in state.get("message", "").lower():
        fail("In the browser, the page got a 202 without a status_url, so it had nothing to poll. Add "
             "status_url to POST /report's JSON.", step=4)
    if not state.get("linkShown"):
        said = state.get("message") or "nothing"
        fail(f"In the browser, after clicking the button, the page said {said!r} and never showed the download "
             "link. The page polls status_url and shows the link once status is 'finished' with a url.",
             step=6)
    moving = {b for b in bars if 0 < b < 100}
    if not moving:
        fail(f"In the browser the progress bar never moved between 0 and 100 (it showed {sorted(set(bars))}); "
             "the job's progress has to rise while it runs.", step=2)
    if any(after < before for before, after in zip(bars, bars[1:])):
        fail("In the browser the progress bar went backwards; progress must only rise.", step=2)
    try:
        with urllib.request.urlopen(state["href"], timeout=10) as response:
            data = response.read()
    except Exception as error:
        fail(f"The page's download link did not download ({error}).", step=3)
    problem = pdf_problem(data)
    if problem:
        fail(f"The page's download link gives a file, but {problem}.", step=3)


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
