"""The slow work, moved out of the request so that a worker can run it."""
import os
import uuid

import boto3

from report_data import fetch_sales
from report_pdf import build_pdf


def make_report():
    pdf = build_pdf(fetch_sales())
    key = f"reports/{uuid.uuid4()}.pdf"
    boto3.client("s3").put_object(Bucket="sales-reports", Key=key, Body=pdf)
    return key
