"""A wrong make_report: it uploads rows of text, not a PDF."""
import os
import uuid

import boto3

from report_data import fetch_sales


def make_report(*ignored):
    rows = fetch_sales()
    key = f"reports/{uuid.uuid4()}.pdf"
    boto3.client("s3").put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=repr(rows).encode())
    return key
