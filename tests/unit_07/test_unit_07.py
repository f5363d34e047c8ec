"""Unit 07: priorities and fan-out. POST /report takes a priority (high, default,
low) and rejects anything else (a list or an object too) with a 400, and puts a sectioned
report's jobs on the queue it names; a real worker runs high before default
before low; a sectioned report runs one job per section and a merge job that
waits for all of them, and never runs if one of them failed; and the section jobs
of every report share one cap on the data source (SECTION_SLOTS at a time)."""
import time

import pytest

from grader import flows, jobs, queues, retries
from grader.storage import bucket_keys
from grader.feedback import fail
from grader.processes import wait_until

PRIORITIES = ["high", "default", "low"]
SECTIONS = ("north", "south", "east", "west")  # report_data.SECTIONS
BROKEN = "east"


def queued_ids(redis):
    from rq import Queue

    return {name: Queue(name, connection=redis).get_job_ids() for name in PRIORITIES}


# A sectioned report is one report: its section jobs and its merge go on the queue
# its priority names, or a high one waits behind every default job.
SECTIONED = [("json", {"priority": "high", "sections": True}), ("json", {"priority": "low", "sections": True})]


def test_route_enqueues_on_the_queue_the_priority_names(learner, redis):
    requests = [("json", {"priority": p}) for p in PRIORITIES] + [("json", {}), ("form", {"priority": "high"})]
    expected = PRIORITIES + ["default", "high"]
    answers = flows.post_many(learner, requests + SECTIONED)
    for (kind, body), answer, want in zip(requests, answers, expected):
        sent = f"a form with priority={body['priority']}" if kind == "form" else f"the JSON body {body}"
        job_id = flows.job_id_from(answer, 2)
        job = jobs.fetch(redis, job_id)
        if job is None:
            fail(f"POST /report with {sent} answered job id {job_id!r}, but Redis has no such job.", step=2)
        if job.origin != want:
            fail(f"POST /report with {sent} put the job on the {job.origin!r} queue; it belongs on {want!r}. "
                 "Read priority from the JSON body or the form (default \"default\") and enqueue on that queue.",
                 step=2)
    for (_, body), answer in zip(SECTIONED, answers[len(requests):]):
        check_sectioned_queues(redis, body, answer)


def check_sectioned_queues(redis, body, answer):
    """A sectioned report's merge job and the section jobs it waits for are all on
    the queue the request's priority names. (A route that ignores sections, as before
    step 6, answers a plain job: the loop above judged that kind.)"""
    want = body["priority"]
    merge = jobs.fetch(redis, flows.job_id_from(answer, 6))
    if merge is None:
        return  # test_sections_share_one_cap_on_the_data_source says what is wrong with it
    sections = [job for job in queues.dependencies(redis, merge) if job is not None]
    wrong = sorted({job.origin for job in sections if job.origin != want})
    if merge.origin == want and not wrong:
        return
    if wrong == [merge.origin]:
        where = f"its section jobs and its merge job on {merge.origin!r}"
    else:
        where = " and ".join(
            ([f"its section jobs on {' and '.join(repr(name) for name in wrong)}"] if wrong else [])
            + ([f"its merge job on {merge.origin!r}"] if merge.origin != want else []))
    fail(f"POST /report with the JSON body {body} put {where}; the section jobs and the merge job "
         f"belong on {want!r}, or a {want}-priority sectioned report waits behind (or jumps ahead of) every other "
         "report. Enqueue them on the queue a plain report of that priority goes on: "
         "enqueue_sectioned_report(queue).", step=6)


# Any JSON value can arrive as priority. A list or an object cannot be looked up in
# a dict or a set (TypeError: unhashable type): the route must still answer 400.
UNHASHABLE = [("json", {"priority": ["high"]}), ("json", {"priority": {}})]


def test_bad_priority_gets_400_with_a_message(learner, redis):
    requests = [("json", {"priority": "urgent"}), ("json", {"priority": 5}), ("json", {"priority": ""}),
                ("form", {"priority": "asap"}), ("raw", b'{"priority": "high"'), ("json", ["high"])] + UNHASHABLE
    answers = flows.post_many(learner, requests)
    for (kind, body), answer in zip(requests, answers):
        if kind == "raw":
            sent = f"a body that is not valid JSON ({body.decode()!r})"
        elif kind == "form":
            sent = f"a form with priority={body['priority']!r}"
        else:
            sent = f"the JSON body {body!r}"
        if answer["status"] != 400 and answer["error"]:
            unhashable = "unhashable" in answer["error"]
            fail(f"POST /report with {sent} raised {answer['error']}, so it answered {answer['status']}; it should "
                 "answer 400 with a JSON error. "
                 + ("A list or an object cannot be looked up in a dict or a set: check priority against a tuple, "
                    "`priority not in (\"high\", \"default\", \"low\")` (it compares, never hashes), or "
                    "check that it is a string first." if unhashable else
                    "Check the priority against high, default and low before using it."), step=2)
        if answer["status"] != 400:
            fail(f"POST /report with {sent} answered {answer['status']} ({answer['text'][:80]!r}); it should answer "
                 "400. Check the priority against high, default and low before enqueueing, and answer "
                 "400 for a body that is not a JSON object.", step=2)
        body_json = answer["body"]
        if not isinstance(body_json, dict) or not any(isinstance(v, str) and v.strip() for v in body_json.values()):
            fail(f"POST /report with {sent} answered 400, but not with JSON holding a message (it sent "
                 f"{answer['text'][:80]!r}). Answer like `jsonify(error=\"...\"), 400` so the page can show it.",
                 step=2)
    leftover = {name: ids for name, ids in queued_ids(redis).items() if ids}
    if leftover:
        fail(f"After only bad requests, jobs were waiting on {sorted(leftover)}: the route enqueued before it "
             "checked the priority. Check first, then enqueue.", step=2)


def test_worker_runs_high_before_default_before_low(learner, redis):
    order = ["low", "low", "default", "default", "high", "high"]
    answers = flows.post_many(learner, [("json", {"priority": p}) for p in order])
    ids = [flows.job_id_from(answer, 2) for answer in answers]
    for job_id, wanted in zip(ids, order):  # the order can only be the worker's if the route queued them right
        job = jobs.fetch(redis, job_id)
        if job is not None and job.origin != wanted:
            fail(f"POST /report with priority {wanted!r} put the job on the {job.origin!r} queue, so the order the "
                 "worker runs them in says nothing yet: the route must enqueue on the queue the priority names "
                 "(see test_route_enqueues_on_the_queue_the_priority_names).", step=2)
    worker = learner.start_worker(env=learner.environment(REPORT_SECONDS="0.05"))
    flows.wait_for_worker(learner, redis, worker)
    all_jobs = [jobs.fetch(redis, job_id) for job_id in ids]
    if not wait_until(lambda: all(jobs.status(j) in ("finished", "failed") for j in all_jobs), 40):
        states = [jobs.status(j) for j in all_jobs]
        fail(f"Six short jobs were not all done after 40 s with your worker running (states: {states}). "
             "Does the worker listen on high, default and low?", step=3)
    failed = [j for j in all_jobs if jobs.status(j) == "failed"]
    if failed:
        fail(f"A report job failed: {flows.job_error_summary(failed[0])}", step=3)
    for job in all_jobs:
        job.refresh()
    ran = [j.origin for j in sorted(all_jobs, key=lambda j: (j.started_at, j.ended_at))]
    if ran != sorted(order, key=PRIORITIES.index):
        fail(f"With jobs waiting on low, default and high, your worker ran them in the order {ran}. It must "
             "take every high job first, then default, then low: `Worker(['high', 'default', 'low'], ...)`, "
             "in that order.", step=3)


def sectioned_report(learner, redis, env=None):
    """POST a sectioned report; return the merge job and the section jobs it waits for."""
    answer = flows.post_many(learner, [("json", {"sections": True})], env=env)[0]
    return merge_and_sections(redis, answer)


def merge_and_sections(redis, answer, deferred=True):
    """The merge job a sectioned report's answer names, and the section jobs it waits for
    (and, unless deferred=False, that the merge is still deferred: asked while workers
    already run the sections, it may be done by then)."""
    job = jobs.fetch(redis, flows.job_id_from(answer, 6))
    if job is None:
        fail("POST /report with {\"sections\": true} answered a job id that Redis does not have.", step=6)
    waits_for = queues.dependencies(redis, job)
    if len(waits_for) < len(SECTIONS) or any(j is None for j in waits_for):
        fail(f"POST /report with {{\"sections\": true}} answered the id of a job that waits for "
             f"{len(waits_for)} job(s); it should answer the merge job's id, and the merge job should depend "
             f"on one job per section ({len(SECTIONS)}): `queue.enqueue(merge, depends_on=section_jobs)`.",
             step=6)
    if deferred and jobs.status(job) != "deferred":
        fail(f"Right after POST /report with {{\"sections\": true}}, the merge job is {jobs.status(job)}, not "
             "deferred: it could run before its sections. Enqueue it with depends_on=the section jobs.",
             step=6)
    return job, waits_for


# The cap on the sales database: the grader sets SECTION_SLOTS small and starts more
# workers than that, so without one cap shared by every report, more sections run at once.
SLOTS = 2
WORKERS = 3
REPORTS = 2


def test_sections_share_one_cap_on_the_data_source(learner, redis):
    env = learner.environment(REPORT_SECONDS="1", SECTION_SLOTS=SLOTS)  # a section job: 0.25 s
    workers = flows.start_workers(learner, WORKERS, env=env)
    # The requests wait for the workers, so every section job finds them idle and,
    # with no shared cap, as many sections run at once as there are workers.
    answers = flows.post_many(learner, [("json", {"sections": True})] * REPORTS, env=env, workers=WORKERS)
    flows.wait_for_workers(redis, workers)
    reports = [merge_and_sections(redis, answer, deferred=False) for answer in answers]
    merges = [merge for merge, _ in reports]
    sections = [section for _, waits_for in reports for section in waits_for]
    if not wait_until(lambda: all(jobs.status(j) in jobs.ENDED for j in sections), 30, interval=0.05):
        states = sorted(jobs.status(j) for j in sections)
        fail(f"With SECTION_SLOTS={SLOTS} and {WORKERS} workers, the section jobs of two sectioned reports were not "
             f"all done after 30 s (they are: {', '.join(states)}). A section held back by the limit must still run "
             "once a slot frees up: enqueue each section job with rate_limit= and let rq queue it.",
             step=6)
    for job in sections:
        job.refresh()
    most = queues.most_at_once((j.started_at, j.ended_at) for j in sections)
    if most > SLOTS:
        fail(f"With SECTION_SLOTS={SLOTS} and {WORKERS} workers, {most} section jobs of two sectioned reports ran "
             f"at the same moment; at most {SLOTS} may. {why_uncapped(merges, sections)}", step=6)
    failed = [j for j in sections if jobs.status(j) != "finished"]
    if failed:
        fail(f"With SECTION_SLOTS={SLOTS}, a section job ended {jobs.status(failed[0])}: "
             f"{flows.job_error_summary(failed[0])}", step=6)
    merges_run(merges)


# rq 3.0 marks a merge whose sections are all done ready_to_enqueue, then queues it.
# When two merges of one queue become ready in the same instant, rq may leave one
# ready until its worker's next clean-up (every 10 minutes by default): rq's doing,
# not the learner's, so a merge that stays ready counts as on its way.
READY = "ready_to_enqueue"
READY_FOR = 1.5  # seconds


def merges_run(merges):
    """Both merges run to the end once their sections are done (or wait, ready, on rq)."""
    ready_since = {}

    def over():
        now = time.monotonic()
        for job in merges:
            state = jobs.status(job)
            if state != READY:
                ready_since.pop(job.id, None)
            elif now - ready_since.setdefault(job.id, now) < READY_FOR:
                return False
            if state not in jobs.ENDED + (READY,):
                return False
        return True

    if not wait_until(over, 20, interval=0.05):
        states = ", ".join(jobs.status(j) for j in merges)
        fail(f"With SECTION_SLOTS={SLOTS}, every section job finished, but the merge jobs were still {states} "
             "20 s later. A merge waits only for its own sections: `depends_on=section_jobs`.", step=6)
    failed = [j for j in merges if jobs.status(j) in jobs.ENDED and jobs.status(j) != "finished"]
    if failed:
        fail(f"With SECTION_SLOTS={SLOTS}, a merge job ended {jobs.status(failed[0])}: "
             f"{flows.job_error_summary(failed[0])}", step=5)


def why_uncapped(merges, sections):
    """What rq stored about the section jobs' limit, as the likely reason the cap did not hold."""
    keys = {j.rate_limit_key for j in sections}
    limits = {j.rate_limit_concurrency for j in sections}
    how = "`rate_limit=RateLimit(\"sales-db\", SECTION_SLOTS)` with SECTION_SLOTS from the environment"
    if keys == {None}:
        if any(j.rate_limit_key for j in merges):
            return ("The rate limit is on the merge job, which runs once per report; put it on every section "
                    f"job: {how}.")
        return f"The section jobs have no rate limit: enqueue each one with {how}."
    if None in keys:
        return f"Some section jobs have no rate limit: enqueue every one with {how}."
    if len(keys) > 1:
        return (f"Their rate limits have {len(keys)} different keys, so each report (or section) gets a cap of its "
                "own. Use one key for the data source, the same for every report (one RateLimit, say "
                "`RateLimit(\"sales-db\", SECTION_SLOTS)`).")
    if limits != {SLOTS}:
        shown = ", ".join(str(n) for n in sorted(n for n in limits if n is not None))
        return (f"Their rate limit allows {shown} at once, not the SECTION_SLOTS={SLOTS} the grader set: read "
                "SECTION_SLOTS from the environment (int(os.environ.get(\"SECTION_SLOTS\", \"4\"))).")
    return f"Enqueue each section job with {how}."


def test_sectioned_report_merges_every_section_into_one_pdf(learner, redis, s3, bucket):
    merge, sections = sectioned_report(learner, redis)
    worker = learner.start_worker(env=learner.environment(REPORT_SECONDS="0.2"))
    flows.run_job(learner, redis, merge.id, worker=worker)
    if jobs.status(merge) != "finished":
        fail(f"The merge job ended {jobs.status(merge)}: {flows.job_error_summary(merge)}", step=5)
    for job in [merge, *sections]:
        job.refresh()
    early = [j for j in sections if j.ended_at is None or (merge.started_at and j.ended_at > merge.started_at)]
    if early:
        fail("The merge job started before every section job had ended. It must depend on all of them.",
             step=6)
    key = jobs.result(merge)
    data = flows.check_pdf_at(s3, bucket, key, 6, what="The merge job")
    keys = bucket_keys(s3, bucket)
    if keys != [key]:
        fail(f"After one sectioned report the bucket holds {len(keys)} objects ({keys[:4]}); it should hold "
             "one PDF, made by the merge job. Section jobs return their rows; only the merge uploads.",
             step=5)
    import io

    from pypdf import PdfReader

    text = " ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages).lower()
    missing = [name for name in SECTIONS if name not in text]
    if missing:
        fail(f"The merged PDF has no rows for {missing}. Build it from every section job's result: "
             "build_pdf(None, sections={...}) with one entry per section.", step=5)


def test_merge_never_runs_when_a_section_fails(learner, redis, s3, bucket):
    env = learner.environment(REPORT_SECONDS="0.2", REPORT_BROKEN_SECTIONS=BROKEN)
    merge, sections = sectioned_report(learner, redis, env=env)
    worker = learner.start_worker(env=env)
    flows.wait_for_worker(learner, redis, worker)

    def sections_done():
        retries.make_everything_due(redis)  # a retried section fails for good sooner
        return all(jobs.status(j) in jobs.ENDED for j in sections)

    if not wait_until(sections_done, 40, interval=0.1):
        fail(f"The section jobs were not all done after 40 s (states: {[jobs.status(j) for j in sections]}).",
             step=4)
    queues.settled(redis, 10)
    merge.refresh()
    if merge.started_at is not None or jobs.status(merge) in ("started", "finished"):
        fail(f"With the {BROKEN!r} section's data source down, the merge job still ran (it is "
             f"{jobs.status(merge)}). It must depend on every section job, so rq never runs it when one fails.",
             step=6)
    if bucket_keys(s3, bucket):
        fail("With a section failing, a report still reached the bucket. Only a merge of every section may "
             "upload.", step=6)
    seen = flows.get_status(learner, f"/report/{merge.id}", env=env)
    body = seen["body"] if isinstance(seen["body"], dict) else {}
    if seen["status"] != 200 or body.get("status") != "failed":
        fail(f"GET /report/<id> for a sectioned report whose {BROKEN!r} section failed answered {seen['status']} "
             f"{seen['text'][:120]!r}; it should say status \"failed\". A merge waiting on a failed section "
             "will never run.", step=7)
    if BROKEN not in str(body.get("error", "")):
        fail(f"GET /report/<id> says the report failed but its error ({body.get('error')!r}) does not name the "
             f"section that failed ({BROKEN!r}). Say which section job failed and why.", step=7)


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
