import io
import os
import uuid

import boto3

from report_data import fetch_sales
from report_pdf import build_pdf

BUCKET_ENV = "S3_BUCKET"


def make_report():
    """Build the report and stream it to S3 from memory."""
    pdf = io.BytesIO(build_pdf(fetch_sales()))
    key = "reports/" + uuid.uuid4().hex + ".pdf"
    boto3.client("s3").upload_fileobj(pdf, os.environ[BUCKET_ENV], key,
                                      ExtraArgs={"ContentType": "application/pdf"})
    return key
