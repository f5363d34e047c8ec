"""The slow work, moved out of the request so that a worker can run it."""
import os
import uuid
from datetime import datetime, timedelta, timezone

import boto3

from report_data import fetch_sales
from report_pdf import build_pdf
from report_data import SECTIONS
from rq import get_current_job


def make_report():
    """Build the sales report PDF, upload it to S3_BUCKET, and return its key."""
    job = get_current_job()  # None when called outside a worker
    # The query is most of the wait: it moves the bar from 0 to 90 %.
    rows = fetch_sales(on_progress=lambda percent: save_progress(job, percent * 90 // 100))
    pdf = build_pdf(rows)  # the whole PDF, in memory
    save_progress(job, 95)
    key = f"reports/{uuid.uuid4()}.pdf"
    s3 = boto3.client("s3")  # honours AWS_ENDPOINT_URL, so it works with a local S3
    # One PUT, the last step: S3 stores the whole object or nothing, so a
    # failed job never leaves half a report behind.
    s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=pdf, ContentType="application/pdf")
    return key


def save_progress(job, percent):
    """Store percent (0-100) in the job's meta, where the status route reads it.
    It only ever goes up, even when a retried job starts its query again."""
    if job is None or percent <= job.meta.get("progress", 0):
        return
    job.meta["progress"] = percent
    job.save_meta()


def download_url(key, expires_in=3600):
    """A presigned link to one report: whoever holds it can download that object
    until it expires (an hour), while the bucket itself stays private."""
    s3 = boto3.client("s3")
    return s3.generate_presigned_url(
        "get_object", Params={"Bucket": os.environ["S3_BUCKET"], "Key": key}, ExpiresIn=expires_in)


def fetch_section(section):
    """One section's rows, as a job of its own: with several workers the
    sections' slow queries run at the same time instead of one after another."""
    return {"section": section, "rows": fetch_sales(section=section)}


def merge_sections():
    """The last job of a sectioned report: build one PDF from the rows of the
    section jobs it depends on, upload it to S3_BUCKET and return its key.
    rq runs it only once every section job has finished."""
    job = get_current_job()
    results = [dependency.return_value() for dependency in job.fetch_dependencies()]
    rows = {result["section"]: result["rows"] for result in results}
    sections = {name.title(): rows[name] for name in SECTIONS if name in rows}
    pdf = build_pdf(None, title="Sales report by section", sections=sections)
    key = f"reports/{uuid.uuid4()}.pdf"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=pdf, ContentType="application/pdf")
    return key

# A report is a link someone opens soon after asking for it; a week is plenty.
REPORT_MAX_AGE_SECONDS = 7 * 24 * 3600


def delete_old_reports(max_age_seconds=REPORT_MAX_AGE_SECONDS):
    """Delete the reports (keys under reports/) older than max_age_seconds from
    S3_BUCKET, and return the keys it deleted. Other objects are left alone."""
    s3 = boto3.client("s3")
    bucket = os.environ["S3_BUCKET"]
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=max_age_seconds)
    old = []
    # One listing call returns at most 1,000 keys; the paginator fetches them all.
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="reports/"):
        old += [obj["Key"] for obj in page.get("Contents", []) ]
    for start in range(0, len(old), 1000):  # delete_objects takes up to 1,000 keys a call
        batch = [{"Key": key} for key in old[start:start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    return old
