"""The slow work, moved out of the request so that a worker can run it."""
import os
import uuid

import boto3

from report_data import fetch_sales
from report_pdf import build_pdf
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
    s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=pdf, ContentType="application/pdf")
    return key


def save_progress(job, percent):
    """Store percent (0-100) in the job's meta, where the status route reads it.
    It only ever goes up, even when a retried job starts its query again."""
    if job is None or percent <= job.meta.get("progress", 0):
        return
    job.meta["progress"] = percent
    job.save_meta()


def download_url(key, expires_in=15 * 60):
    """A presigned link to one report: whoever holds it can download that object
    until it expires (an hour), while the bucket itself stays private."""
    s3 = boto3.client("s3")
    return s3.generate_presigned_url(
        "get_object", Params={"Bucket": os.environ["S3_BUCKET"], "Key": key}, ExpiresIn=expires_in)
