"""The slow work, moved out of the request so that a worker can run it."""
import os
import uuid

from report_data import fetch_sales
from report_pdf import build_pdf

s3 = None  # the S3 client: worker.py builds it when the worker starts


def make_report():
    """Build the sales report PDF, upload it to S3_BUCKET, and return its key."""
    rows = fetch_sales()  # the slow query: REPORT_SECONDS seconds
    pdf = build_pdf(rows)
    key = f"reports/{uuid.uuid4()}.pdf"
    s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=pdf, ContentType="application/pdf")
    return key
