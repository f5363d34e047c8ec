# [unit 03.2+]
"""The slow work, moved out of the request so that a worker can run it."""
import os
import uuid
# [end]
# [unit 10+]
from datetime import datetime, timedelta, timezone
# [end]
# [unit 03.2+]

import boto3
# [end]
# [unit 05.3+]
from botocore.config import Config
# [end]

# [unit 03.2-07.4]
# from report_data import fetch_sales
# [end]
# [unit 07.5+]
from report_data import SECTIONS, fetch_sales
# [end]
# [unit 03.2+]
from report_pdf import build_pdf
# [end]
# [unit 05.2+]
from rq import get_current_job
# [end]
# [unit 10+]

# One S3 client for the whole worker process, not one per job: boto3.client()
# reads the service's model and endpoint data, tens of milliseconds each time.
# worker.py imports this module before its first job, so the client is built
# once, in the worker's main process; the work horse forked for each job
# inherits it ready-made (with no connection open yet: each horse opens its own).
# It honours AWS_ENDPOINT_URL, so it works with a local S3.
s3 = boto3.client("s3")
# [end]
# [unit 03.2+]


def make_report():
    """Build the sales report PDF, upload it to S3_BUCKET, and return its key."""
# [end]
# [unit 03.2-05.1]
#     rows = fetch_sales()  # the slow query: REPORT_SECONDS seconds
#     pdf = build_pdf(rows)
# [end]
# [unit 05.2+]
    job = get_current_job()  # None when called outside a worker
    # The query is most of the wait: it moves the bar from 0 to 90 %.
    rows = fetch_sales(on_progress=lambda percent: save_progress(job, percent * 90 // 100))
    pdf = build_pdf(rows)  # the whole PDF, in memory
    save_progress(job, 95)
# [end]
# [unit 03.2+]
    key = f"reports/{uuid.uuid4()}.pdf"
# [end]
# [unit 03.2-09]
#     s3 = boto3.client("s3")  # honours AWS_ENDPOINT_URL, so it works with a local S3
# [end]
# [unit 06.6+]
    # One PUT, the last step: S3 stores the whole object or nothing, so a
    # failed job never leaves half a report behind.
# [end]
# [unit 03.2+]
    s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=pdf, ContentType="application/pdf")
    return key
# [end]
# [unit 05.2+]


def save_progress(job, percent):
    """Store percent (0-100) in the job's meta, where the status route reads it.
    It only ever goes up, even when a retried job starts its query again."""
    if job is None or percent <= job.meta.get("progress", 0):
        return
    job.meta["progress"] = percent
    job.save_meta()
# [end]
# [unit 05.3+]


def download_url(key, expires_in=3600):
    """A presigned link to one report: whoever holds it can download that object
    until it expires (an hour), while the bucket itself stays private."""
    # Signature version 4, signed for the region boto3 is given (AWS_DEFAULT_REGION:
    # set it to the bucket's). Without the Config, boto3 can sign with the old
    # version 2 on the global endpoint, which newer regions and buckets refuse.
    signer = boto3.client("s3", config=Config(signature_version="s3v4"))
    return signer.generate_presigned_url(
        "get_object", Params={"Bucket": os.environ["S3_BUCKET"], "Key": key}, ExpiresIn=expires_in)
# [end]
# [unit 07.4+]


def fetch_section(section):
    """One section's rows, as a job of its own: with several workers the
    sections' slow queries run at the same time instead of one after another."""
    return {"section": section, "rows": fetch_sales(section=section)}
# [end]
# [unit 07.5+]


def merge_sections():
    """The last job of a sectioned report: build one PDF from the rows of the
    section jobs it depends on, upload it to S3_BUCKET and return its key.
    rq runs it only once every section job has finished."""
    job = get_current_job()
    save_progress(job, 90)  # the sections are done: where the bar stood while it waited
    results = [dependency.return_value() for dependency in job.fetch_dependencies()]
    rows = {result["section"]: result["rows"] for result in results}
    sections = {name.title(): rows[name] for name in SECTIONS if name in rows}
    pdf = build_pdf(None, title="Sales report by section", sections=sections)
    save_progress(job, 95)
    key = f"reports/{uuid.uuid4()}.pdf"
# [end]
# [unit 07.5-09]
#     s3 = boto3.client("s3")
# [end]
# [unit 07.5+]
    s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=pdf, ContentType="application/pdf")
    return key
# [end]
# [unit 10+]

# A report is a link someone opens soon after asking for it; a week is plenty.
REPORT_MAX_AGE_SECONDS = 7 * 24 * 3600


def delete_old_reports(max_age_seconds=REPORT_MAX_AGE_SECONDS):
    """Delete the reports (keys under reports/) older than max_age_seconds from
    S3_BUCKET, and return the keys it deleted. Other objects are left alone."""
    bucket = os.environ["S3_BUCKET"]
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=max_age_seconds)
    old = []
    # One listing call returns at most 1,000 keys; the paginator fetches them all.
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="reports/"):
        old += [obj["Key"] for obj in page.get("Contents", []) if obj["LastModified"] < cutoff]
    for start in range(0, len(old), 1000):  # delete_objects takes up to 1,000 keys a call
        batch = [{"Key": key} for key in old[start:start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    return old
# [end]
