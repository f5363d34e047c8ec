"""Unit 12: one click, one report. Requests with the same Idempotency-Key make one report job,
whatever order and timing they come in; malformed keys and sectioned reports with a key get 400."""
import uuid

import pytest

from grader import flows, jobs, queues
from grader.storage import bucket_keys
from grader.feedback import fail


STEP = 1
HEADER = "Idempotency-Key"


def new_key():
    return str(uuid.uuid4())


def post_groups(learner, groups):
    """POST /report for every request of every group; a list of answers per group."""
    return learner.run_probe("post_at_once", header=HEADER, groups=[[list(r) for r in g] for g in groups],
                             timeout=40, what="POST /report with an Idempotency-Key")


def said(answer):
    body = answer["body"] if isinstance(answer.get("body"), dict) else None
    return f"{answer['status']} {body if body is not None else answer['text'][:120]!r}"


def refused_in_json(answer):
    """True for a 4xx with a JSON error: an honest no."""
    body = answer["body"] if isinstance(answer.get("body"), dict) else {}
    return 400 <= answer["status"] < 500 and isinstance(body.get("error"), str)


def job_id_of(answer, what, error=None):
    """The job id of a 202 answer (failing, with what was sent, on anything else)."""
    body = answer["body"] if isinstance(answer.get("body"), dict) else {}
    if answer["status"] >= 500:
        raised = f" (the route raised {error})" if error else ""
        fail(f"{what} answered {answer['status']}{raised}. A key already used is not an error of the server: "
             "catch rq's DuplicateJobError and answer 202 with the job that key made.", step=STEP)
    if answer["status"] != 202 or not isinstance(body.get("job_id"), str) or not body["job_id"]:
        fail(f"{what} answered {said(answer)}; it should answer 202 with JSON holding job_id and status_url, "
             "as without a key.", step=STEP)
    return body["job_id"]


def queued_ids(redis):
    """Every job id waiting on a queue, once per time it waits there (a worker runs it that often)."""
    return [job_id for queue in jobs.queues(redis) for job_id in queue.get_job_ids()]


def job_hashes(redis):
    """The ids of the jobs Redis holds (rq:job:<id>, not the keys rq keeps beside them)."""
    return {key.decode()[len("rq:job:"):] for key in redis.scan_iter("rq:job:*", count=1000)
            if ":" not in key.decode()[len("rq:job:"):]}


# Requests with one key sent at the same moment, in each of a few rounds: a check
# and an enqueue in two steps lets several through together (each round is a new
# key; one round of two can miss the moment, eight at a time in three rounds do not).
AT_ONCE = 8
ROUNDS = 3


def test_the_same_key_twice_makes_one_report_job(learner, redis):
    first, other = new_key(), new_key()
    together = [new_key() for _ in range(ROUNDS)]
    result = post_groups(learner, [
        [(first, {})], [(first, {})],          # asked again: the answer was lost
        *[[(key, {})] * AT_ONCE for key in together],  # a double-click, a retry racing the first: at once
        [(first, {"priority": "high"})],       # the same key with other options
        [(other, {})],                         # another key
        [(None, {})], [(None, {})],            # no key: as before, a new report each time
    ])
    answers, error = result["answers"], result["error"]
    (one,), (again,), *bursts, (changed,), (another,), (plain_1,), (plain_2,) = answers
    job = job_id_of(one, f"POST /report with a new {HEADER}", error)
    repeat = job_id_of(again, f"POST /report a second time with the same {HEADER}", error)
    if repeat != job:
        fail(f"Two POSTs with the same {HEADER} made two jobs ({job} and {repeat}): a client that asks again "
             "because the first answer was lost gets a second report. Enqueue with a job id made from the key "
             "and unique=True, and on DuplicateJobError answer with that job.", step=STEP)
    burst_jobs = []
    for clicks in bursts:
        made = [job_id_of(a, f"One of {AT_ONCE} POSTs sent at the same moment with one {HEADER}", error)
                for a in clicks if not refused_in_json(a)]
        if not made or len(set(made)) > 1:
            shown = ", ".join(sorted(set(made))[:3]) if made else ", ".join(said(a) for a in clicks[:2])
            fail(f"{AT_ONCE} POSTs sent at the same moment with one {HEADER} (a double-click, or a retry racing "
                 f"the first request) answered with {len(set(made))} different jobs ({shown}): a report each. "
                 "Checking for the key's job and then enqueueing is two steps, and requests sent together all "
                 "get between them; unique=True does both in one.", step=STEP)
        burst_jobs.append(made[0])
    if changed["status"] >= 500 or (changed["status"] == 202 and (changed["body"] or {}).get("job_id") != job):
        fail(f"A POST with a key used before but another priority answered {said(changed)}. The key names the "
             f"request: answer with the first job ({job}), or refuse with a 4xx, but never make a second report "
             "under a key already used.", step=STEP)
    fresh = job_id_of(another, f"POST /report with another {HEADER}", error)
    if fresh in (job, *burst_jobs):
        fail(f"POSTs with two different {HEADER}s answered with the same job ({fresh}): each key is its own "
             "request, with its own report. Make the job id from the key.", step=STEP)
    plain = [job_id_of(a, f"POST /report without an {HEADER}", error) for a in (plain_1, plain_2)]
    if len(set(plain)) < 2 or set(plain) & {job, fresh, *burst_jobs}:
        fail(f"Two POSTs without an {HEADER} answered with jobs {plain[0]} and {plain[1]}: without a key, each "
             "POST is a new report, with a job id of its own, as before this step.", step=STEP)
    expected = [job, *burst_jobs, fresh, *plain]
    waiting = queued_ids(redis)
    times = {job_id: waiting.count(job_id) for job_id in expected}
    for job_id in burst_jobs:
        if times[job_id] > 1:
            fail(f"{AT_ONCE} POSTs sent at the same moment with one {HEADER} answered with one job ({job_id}), but "
                 f"put it on a queue {times[job_id]} times: a worker would build it {times[job_id]} times. Checking "
                 "that the job exists and then enqueueing it is two steps, and requests sent together all get "
                 "between them; enqueued again with the same job_id, the job is overwritten and pushed once more. "
                 "unique=True checks and enqueues in one step.", step=STEP)
    for job_id, what in zip(expected, ("the key asked twice", *["a key sent by requests at once"] * ROUNDS,
                                       "another key", "a POST without a key", "a POST without a key")):
        if times[job_id] != 1:
            fail(f"After the POSTs, the job of {what} ({job_id}) is on a queue {times[job_id]} times: "
                 + (f"a worker would build it {times[job_id]} times. Enqueueing again with the same job_id "
                    "overwrites the job and pushes its id once more; unique=True refuses instead."
                    if times[job_id] > 1 else "the route answered with a job no worker will run."),
                 step=STEP)
    sent = sum(len(group) for group in answers)
    extra = [job_id for job_id in waiting if job_id not in expected]
    if extra:
        fail(f"{sent} POSTs, most of them repeating a key, should leave {len(expected)} report jobs on the "
             f"queues; there are {len(waiting)}: a repeated key still enqueued a report, although the route "
             "answered with the first job.", step=STEP)
    if len(job_hashes(redis)) != len(expected):
        fail(f"{sent} POSTs, most of them repeating a key, should leave {len(expected)} jobs in Redis; there are "
             f"{len(job_hashes(redis))}.", step=STEP)


BUILD_WITHIN = 20  # seconds, for the worker to start and build one report


def test_a_key_asked_again_after_the_report_is_built_makes_no_second_report(learner, redis, s3, bucket):
    worker = learner.start_worker()
    seen = learner.run_probe("post_after_finish", header=HEADER, key=new_key(), within=BUILD_WITHIN,
                             timeout=BUILD_WITHIN + 20, what=f"POST /report with an {HEADER}, twice")
    job_id = job_id_of(seen["first"], f"POST /report with a new {HEADER}", seen["error"])
    job = jobs.fetch(redis, job_id)
    if seen["status"] != "finished":
        if not worker.alive():
            fail(f"{worker.name} stopped at start-up: {worker.explain_exit()}", step=STEP)
        state = jobs.status(job) if job is not None else "not in Redis"
        fail(f"A report job enqueued with an {HEADER} was {state} after {BUILD_WITHIN} s with your worker "
             f"running, not finished" + (f": {flows.job_error_summary(job)}" if state == "failed" else
                                        ". Does the worker listen on the queue the route enqueues it on?"),
             step=STEP)
    repeat = job_id_of(seen["second"], f"POST /report with the {HEADER} of a finished report", seen["error"])
    if repeat != job_id:
        fail(f"Once its report was built, a POST with the same {HEADER} answered with another job ({repeat}, "
             f"not {job_id}): a second report. The key's job stays in Redis (a day, its result_ttl) and "
             "answers for the key until then.", step=STEP)
    state = jobs.status(job)
    enqueued = redis.hget(f"rq:job:{job_id}", "enqueued_at")
    if state != "finished" or job_id in queued_ids(redis) or (enqueued and enqueued.decode()) != seen["enqueued_at"]:
        fail(f"Once its report was built, a POST with the same {HEADER} put the finished job back on its queue "
             f"(enqueued again, now {state}): a worker builds the report a second time. Enqueueing with the same "
             "job_id overwrites the job, whatever its state; unique=True refuses while it exists, finished too.",
             step=STEP)
    queues.settled(redis, 5)
    reports = bucket_keys(s3, bucket)
    if len(reports) != 1 or redis.xlen(f"rq:results:{job_id}") > 1:
        fail(f"One {HEADER}, POSTed before and after its report was built, left {len(reports)} reports in the "
             "bucket: the report was built again.", step=STEP)


MALFORMED = ["two words", "../../etc/passwd", "a:b", "x" * 300, "caf\u00e9", "<b>hi</b>"]


def test_a_malformed_key_is_refused_with_400(learner, redis):
    result = post_groups(learner, [[(key, {})] for key in MALFORMED])
    for key, (answer,) in zip(MALFORMED, result["answers"]):
        shown = key if len(key) < 40 else f"{key[:10]}... ({len(key)} characters)"
        if answer["status"] >= 500:
            raised = f" (the route raised {result['error']})" if result["error"] else ""
            fail(f"POST /report with {HEADER}: {shown!r} answered {answer['status']}{raised}. A key that cannot "
                 "be part of a job id is the client's mistake: check it against the same pattern as a job id "
                 "(letters, digits, '_' and '-', the whole id within 128 characters) and answer 400.",
                 step=STEP)
        if answer["status"] != 400 or not refused_in_json(answer):
            fail(f"POST /report with {HEADER}: {shown!r} answered {said(answer)}; a key that cannot be part of "
                 "a job id gets 400 with JSON like {\"error\": \"...\"}, before anything is enqueued.",
                 step=STEP)
    if queued_ids(redis) or job_hashes(redis):
        fail(f"POSTs with malformed {HEADER}s were refused, but left jobs in Redis. Check the key before "
             "enqueueing anything.", step=STEP)


def test_a_sectioned_report_with_a_key_is_not_doubled(learner, redis):
    key = new_key()
    result = post_groups(learner, [[(key, {"sections": True})], [(key, {"sections": True})]])
    answers = [group[0] for group in result["answers"]]
    for answer in answers:
        if answer["status"] >= 500:
            raised = f" (the route raised {result['error']})" if result["error"] else ""
            fail(f"A sectioned report (sections: true) POSTed with an {HEADER} answered {answer['status']}"
                 f"{raised}. rq refuses unique=True for a job with depends_on, like the merge job: refuse the "
                 "key for sectioned reports with a 400, or guard the key some other way.", step=STEP)
        if answer["status"] != 202 and not refused_in_json(answer):
            fail(f"A sectioned report POSTed with an {HEADER} answered {said(answer)}: either 202 with the "
                 "report's job, or a 4xx with a JSON error saying keys are not taken there.", step=STEP)
    made = {answer["body"].get("job_id") for answer in answers if answer["status"] == 202}
    if len(made) > 1:
        fail(f"The same sectioned report POSTed twice with one {HEADER} made two reports ({', '.join(map(str, made))})"
             ": the key is ignored there. Refuse keys for sectioned reports (400), or keep them to one report.",
             step=STEP)
    if made:
        merge = jobs.fetch(redis, made.pop())
        expected = 1 + len(merge.dependency_ids) if merge is not None else 0
        if not expected or len(job_hashes(redis)) != expected:
            fail(f"The same sectioned report POSTed twice with one {HEADER} answered with one job, but left "
                 f"{len(job_hashes(redis))} jobs in Redis, not the {expected or 'sections and merge'} jobs of "
                 "one report.", step=STEP)


@pytest.mark.quiz
def test_challenge(target):
    flows.check_quiz(target)
