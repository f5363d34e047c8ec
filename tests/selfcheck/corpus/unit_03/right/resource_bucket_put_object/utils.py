"""Report building, run by the worker."""
import os
from datetime import datetime, timezone

import boto3

from report_data import fetch_sales
from report_pdf import build_pdf


def make_report():
    rows = fetch_sales()
    key = datetime.now(timezone.utc).strftime("reports/%Y/%m/%d/%H%M%S-%f.pdf")
    bucket = boto3.resource("s3").Bucket(os.environ["S3_BUCKET"])
    bucket.put_object(Key=key, Body=build_pdf(rows, "Sales report"), ContentType="application/pdf")
    return key
